"""The streams' fast paths on a plain TCP socket: its descriptor read or written at once
when the kernel has the bytes or the room, reporting what Trio's ``SocketStream`` would."""

from __future__ import annotations

import errno
import os
from typing import Final

import trio

from .._types import BytesLike
from ._state import StreamState

__all__ = [
    "DIRECT_READ",
    "DIRECT_WRITE",
    "plain_socket",
    "stream_error",
    "write_error",
    "write_now",
]

#: Whether a socket's descriptor may be written with ``os.write`` (POSIX).
DIRECT_WRITE: Final = os.name == "posix"
#: Whether it may be read with ``os.read`` and ``os.readv`` (POSIX); elsewhere the
#: streams read through Trio (``receive_some``, the socket's ``recv_into``).
DIRECT_READ: Final = os.name == "posix" and hasattr(os, "readv")
#: The errnos trio's SocketStream reports as a closed stream rather than a broken one.
_CLOSED_ERRNOS: Final = frozenset({errno.EBADF, errno.ENOTSOCK})


def plain_socket(stream: trio.abc.Stream, usable: bool) -> trio.socket.SocketType | None:
    """The socket under ``stream`` if it is a plain TCP ``trio.SocketStream`` (not TLS,
    in-memory or a wrapper) and ``usable`` (the platform allows the fast path); else
    ``None``, and the caller goes through the stream's own methods."""
    if usable and type(stream) is trio.SocketStream:
        return stream.socket
    return None


def stream_error(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    """The error ``SocketStream`` reports for ``exc`` from a read or write."""
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


def write_error(
    sock: trio.socket.SocketType, exc: OSError
) -> trio.ClosedResourceError | trio.BrokenResourceError:
    """The error ``SocketStream.send_all`` reports when writing ``sock`` failed with
    ``exc``: after ``send_eof`` the write fails (EPIPE), and that is a closed stream."""
    if sock.did_shutdown_SHUT_WR:
        return trio.ClosedResourceError("can't send data after sending EOF")
    return stream_error(exc)


def write_now(sock: trio.socket.SocketType, data: BytesLike, state: StreamState) -> int:
    """Write what the kernel takes of ``data`` now, without suspending: no checkpoint.

    Returns the bytes written. 0 when nothing could be: no room in the kernel, or a
    case the caller's ``with state.sending: await send_all(...)`` reports with the
    right error (another task sending, sending broken, a socket already closed, whose
    descriptor is never written: its number may belong to another file by now).

    Raises:
        trio.ClosedResourceError: the stream was closed, or EOF was sent.
        trio.BrokenResourceError: the write failed; sending is now broken.
    """
    fd = sock.fileno()  # -1 once the socket is closed
    if fd < 0 or state.send_error is not None or state.busy_sending:
        return 0
    if state.closed:
        raise trio.ClosedResourceError(f"this {state.name} was closed")
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except OSError as exc:
        error = write_error(sock, exc)
        state.break_send(error)
        raise error from exc
