"""A raw TCP echo server: the byte-stream counterpart of the UDP echo.

``framekit compare`` can point its TCP experiments at one (``--tcp-echo``): the echoed
bytes come back merged and split just as the stream carried them.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import NoReturn

import trio

from ..streams import DeadlineStream
from ..streams._address import format_address
from ..streams._serve import ReportValue, bound_addresses, listen_tcp, serve_listeners

__all__ = ["serve_tcp_echo"]

log = logging.getLogger("framekit.echo")


async def _echo(stream: trio.SocketStream, *, idle_timeout: float) -> None:
    # A peer that goes silent, or stops reading its echo, is dropped after idle_timeout.
    bounded = DeadlineStream(
        stream, send_timeout=idle_timeout, receive_timeout=idle_timeout, phase="echoing"
    )
    async with bounded:
        try:
            while data := await bounded.receive_some():
                await bounded.send_all(data)  # exactly what arrived: never amplified
            await stream.send_eof()  # finish our half after theirs, as echo servers do
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # gone or timed out (StreamTimeout is a BrokenResourceError)


async def serve_tcp_echo(
    port: int,
    *,
    host: str = "127.0.0.1",
    idle_timeout: float = 300.0,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Echo every byte back on each TCP connection until the peer finishes sending.

    When the peer half-closes, the echo finishes and closes its side too, so a client
    can send, ``send_eof()``, and read until end of stream. A peer that sends nothing,
    or stops reading, for ``idle_timeout`` seconds is dropped. Reports the bound
    ``[(host, port), ...]`` through ``task_status``.
    """
    listeners = await listen_tcp(port, host)
    bound = bound_addresses(listeners)
    for host, port in bound:
        log.info("TCP echo listening on tcp://%s", format_address(host, port))
    await serve_listeners(
        partial(_echo, idle_timeout=idle_timeout),
        listeners,
        task_status=ReportValue(task_status, bound),
    )
    raise AssertionError("unreachable")  # pragma: no cover
