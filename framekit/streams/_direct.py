"""The streams' fast paths on a plain TCP socket: its descriptor read or written at once
when the kernel has the bytes or the room, reporting what Trio's ``SocketStream`` would."""

from __future__ import annotations

import errno
import os
from typing import Final

import trio

__all__ = ["DIRECT_READ", "DIRECT_WRITE", "stream_error"]

#: Whether a socket's descriptor may be written with ``os.write`` (POSIX).
DIRECT_WRITE: Final = os.name == "posix"
#: Whether it may be read with ``os.read`` and ``os.readv`` (POSIX); elsewhere the
#: streams read through Trio (``receive_some``, the socket's ``recv_into``).
DIRECT_READ: Final = os.name == "posix" and hasattr(os, "readv")
#: The errnos trio's SocketStream reports as a closed stream rather than a broken one.
_CLOSED_ERRNOS: Final = frozenset({errno.EBADF, errno.ENOTSOCK})


def stream_error(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    """The error ``SocketStream`` reports for ``exc`` from a read or write."""
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")
