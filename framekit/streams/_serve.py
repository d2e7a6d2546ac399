"""Serving framed connections in a nursery: one task per peer, one bad peer ends one task."""

from __future__ import annotations

import errno
import logging
import math
import os
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, NoReturn, TypeVar, final

import trio

from .._errors import FramekitError, ListenError
from ..codec import DEFAULT_FORMAT, DEFAULT_MAX_HEADER_SIZE, FrameFormat, Framing
from ._address import format_address
from ._deadline import DeadlineStream, StreamTimeout
from ._framed import FramedStream
from ._message_stream import MessageStream

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "ReportValue",
    "bound_addresses",
    "listen_error",
    "listen_tcp",
    "peer_address",
    "peer_name",
    "serve_framed",
    "serve_listeners",
    "serve_messages",
]

log = logging.getLogger("framekit")

#: Seconds a served connection may wait for its peer (to send, or to read what is sent)
#: before it is closed: five minutes, as ssh's and most servers' keep-alive budgets go.
DEFAULT_IDLE_TIMEOUT = 300.0

T = TypeVar("T", FramedStream, MessageStream)


def peer_address(stream: trio.abc.Stream) -> tuple[str, int] | None:
    """``(host, port)`` of the peer of a (TLS over, deadline-wrapped) TCP stream."""
    inner: Any = stream
    while isinstance(inner, trio.SSLStream | DeadlineStream):
        inner = inner.transport_stream
    if isinstance(inner, trio.SocketStream):
        try:
            peer = inner.socket.getpeername()
        except OSError:
            return None
        return str(peer[0]), int(peer[1])
    return None


def peer_name(stream: trio.abc.Stream) -> str:
    """``host:port`` (``[v6]:port``) of the peer of a stream, for logs; ``?`` if unknown."""
    address = peer_address(stream)
    return "?" if address is None else format_address(*address)


async def listen_tcp(port: int, host: str) -> list[trio.SocketListener]:
    """``trio.open_tcp_listeners``, with an error that names the address and says what
    to do (for servers that accept connections themselves, as ``framekit cat -l`` does).

    Raises:
        ListenError: the address is in use, not permitted, or not local.
    """
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise listen_error(exc, "tcp", host, port) from exc


def listen_error(exc: OSError, scheme: str, host: str, port: int) -> ListenError:
    """``exc`` (from a bind) as a :class:`ListenError` naming ``scheme://host:port``."""
    reason = exc.strerror or str(exc)
    hint = ""
    if exc.errno == errno.EADDRINUSE:
        hint = "; is another server running there? choose another port"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = "; ports below 1024 need privileges"
    elif exc.errno == errno.EADDRNOTAVAIL:
        hint = "; the address is not one of this machine's"
    return ListenError(
        exc.errno or 0, f"cannot listen on {scheme}://{format_address(host, port)}: {reason}{hint}"
    )


def bound_addresses(listeners: list[trio.SocketListener]) -> list[tuple[str, int]]:
    """``(host, port)`` of each listener, for reporting through ``task_status``."""
    names = (listener.socket.getsockname() for listener in listeners)
    return [(str(name[0]), int(name[1])) for name in names]


@final
class ReportValue:
    """A task_status that reports ``value`` when ``started()`` is called with anything.

    ``trio.serve_listeners`` reports its listener objects; framekit's servers report
    plain addresses instead, which are what callers (and tests) want.
    """

    def __init__(self, task_status: trio.TaskStatus[Any], value: object) -> None:
        self._task_status = task_status
        self._value = value

    def started(self, value: object = None) -> None:
        self._task_status.started(self._value)


#: ``accept()`` errors that mean the process or the system is out of descriptors or
#: memory (trio's own list): the listener waits :data:`ACCEPT_RETRY` and tries again.
_ACCEPT_SHORTAGE: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
#: Seconds between two accept attempts while descriptors are short.
ACCEPT_RETRY: Final = 0.1


async def serve_listeners(
    handler: Callable[[trio.abc.Stream], Awaitable[object]],
    listeners: Sequence[trio.abc.Listener[Any]],
    *,
    handler_closes: bool = False,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """:func:`trio.serve_listeners`, except that running out of descriptors is one
    warning when it starts and one when it ends, not an ERROR and a traceback every
    100 ms. Each accepted stream is served by ``handler`` in its own task, then closed.

    With ``handler_closes``, ``handler`` closes each stream itself, whatever happens
    (the command server's connections do): the task then runs ``handler`` alone, with
    no wrapper frame kept alive under every connection.
    """
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_forever, listener, nursery, handler, handler_closes)
        task_status.started(listeners)
    raise AssertionError("serve_listeners returned")  # pragma: no cover


async def _accept_forever(
    listener: trio.abc.Listener[Any],
    nursery: trio.Nursery,
    handler: Callable[[trio.abc.Stream], Awaitable[object]],
    handler_closes: bool,
) -> NoReturn:
    async with listener:
        short_since: float | None = None
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_SHORTAGE:
                    raise
                if short_since is None:
                    short_since = trio.current_time()
                    log.warning(
                        "cannot accept connections: %s; new clients wait until some close "
                        "(raise the descriptor limit, ulimit -n, or lower max_connections)",
                        os.strerror(exc.errno or 0),
                    )
                await trio.sleep(ACCEPT_RETRY)
                continue
            if short_since is not None:
                log.warning(
                    "accepting connections again after %.1f s", trio.current_time() - short_since
                )
                short_since = None
            if handler_closes:
                nursery.start_soon(handler, stream)
            else:
                nursery.start_soon(_serve_stream, handler, stream)


async def _serve_stream(
    handler: Callable[[trio.abc.Stream], Awaitable[object]], stream: trio.abc.Stream
) -> None:
    try:
        await handler(stream)
    finally:
        await trio.aclose_forcefully(stream)


def _log_ending(peer: str, exc: Exception) -> None:
    """One line for a connection that ended with an exception (a traceback only for bugs)."""
    if isinstance(exc, trio.EndOfChannel):
        log.info("%s closed the connection", peer)
    elif isinstance(exc, StreamTimeout):
        log.info("%s timed out: %s", peer, exc)
    elif isinstance(exc, FramekitError):
        log.warning("%s broke the framing: %s", peer, exc)
    elif isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError | OSError):
        log.info("%s connection lost: %s", peer, exc)
    else:
        log.error("handler for %s raised %s", peer, type(exc).__name__, exc_info=exc)


async def _serve(
    wrap: Callable[[trio.abc.Stream], T],
    handler: Callable[[T], Awaitable[object]],
    port: int,
    *,
    host: str,
    ssl_context: ssl.SSLContext | None,
    idle_timeout: float | None,
    task_status: trio.TaskStatus[list[tuple[str, int]]],
) -> NoReturn:
    tcp_listeners = await listen_tcp(port, host)
    addresses = bound_addresses(tcp_listeners)
    listeners: list[trio.abc.Listener[Any]] = list(tcp_listeners)
    if ssl_context is not None:
        listeners = [trio.SSLListener(listener, ssl_context) for listener in listeners]
    timeout = math.inf if idle_timeout is None else idle_timeout

    async def handle(stream: trio.abc.Stream) -> None:
        peer = peer_name(stream)
        transport = DeadlineStream(
            stream, send_timeout=timeout, receive_timeout=timeout, phase="serving"
        )
        try:
            async with wrap(transport) as channel:
                await handler(channel)
        except Exception as exc:
            # One peer, or one handler's bug, must not take the server and every other
            # connection down: serve_listeners does not catch anything itself.
            _log_ending(peer, exc)

    log.info("serving on %s", ", ".join(format_address(h, p) for h, p in addresses))
    await serve_listeners(handle, listeners, task_status=ReportValue(task_status, addresses))
    raise AssertionError("serve_listeners returned")  # pragma: no cover


async def serve_framed(
    handler: Callable[[FramedStream], Awaitable[object]],
    port: int,
    *,
    host: str = "127.0.0.1",
    format: Framing = DEFAULT_FORMAT,
    ssl_context: ssl.SSLContext | None = None,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Accept TCP (or TLS) connections and run ``handler(FramedStream)`` for each.

    Each connection runs in its own task; the stream is closed when the handler returns.
    Whatever the handler raises ends only its own connection, with one log line: a peer
    that closed (``trio.EndOfChannel``), timed out, broke the framing or vanished at
    INFO/WARNING, any other exception (a bug in the handler) at ERROR with its traceback.
    Use it with ``nursery.start``: it reports the bound ``[(host, port), ...]`` (so port 0
    works) once it is listening.

    Args:
        handler: ``async def handler(channel: FramedStream)``.
        port: TCP port; 0 picks a free one.
        host: address to bind (default loopback only).
        format: frame format.
        ssl_context: serve TLS with this (server-side) context.
        idle_timeout: seconds any receive may wait for the peer, and any send may wait
            for it to read (the TLS handshake included); the handler then gets
            :class:`StreamTimeout`. ``None``: wait forever.
    """
    await _serve(
        lambda s: FramedStream(s, format=format),
        handler,
        port,
        host=host,
        ssl_context=ssl_context,
        idle_timeout=idle_timeout,
        task_status=task_status,
    )


async def serve_messages(
    handler: Callable[[MessageStream], Awaitable[object]],
    port: int,
    *,
    host: str = "127.0.0.1",
    format: FrameFormat = DEFAULT_FORMAT,
    ssl_context: ssl.SSLContext | None = None,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Like :func:`serve_framed`, with a :class:`MessageStream` per connection."""
    await _serve(
        lambda s: MessageStream(s, format=format, max_header_size=max_header_size),
        handler,
        port,
        host=host,
        ssl_context=ssl_context,
        idle_timeout=idle_timeout,
        task_status=task_status,
    )
