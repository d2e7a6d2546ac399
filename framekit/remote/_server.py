"""The command server: accepting connections and serving each one."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from functools import partial
from typing import NoReturn

import trio

from ..streams._address import format_address
from ..streams._serve import (
    ReportValue,
    bound_addresses,
    listen_tcp,
    peer_address,
    serve_listeners,
)
from ._config import ServerConfig, check_bind_safety
from ._connection import Connection
from ._log_text import escape
from ._processes import require_process_groups
from ._shared import SharedState

__all__ = ["handle_connection", "log_listening", "serve_commands", "serve_connections"]

log = logging.getLogger("framekit.server")


def handle_connection(shared: SharedState, transport: trio.abc.Stream) -> Awaitable[None]:
    """Serve one accepted (TCP or TLS) stream until it ends; never raises for a client.

    A plain function returning :meth:`Connection.serve`'s coroutine: no frame of its own
    stays alive under each of thousands of idle connections.
    """
    address = peer_address(transport)
    host = address[0] if address else "?"
    peer = format_address(*address) if address else "?"
    return Connection(shared, transport, peer, host).serve()


async def serve_commands(
    config: ServerConfig,
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Run the command server alone until cancelled; report its bound addresses.

    Cancelling it stops accepting and ends every connection: running commands get
    SIGTERM, ``shutdown_grace`` seconds, then SIGKILL for their process group.

    Raises:
        UnsupportedPlatform: no POSIX process groups here (Windows): refused before
            anything is bound.
        InsecureBindError: non-loopback host without a token and without ``insecure``.
        OSError: the port could not be bound, or the upload directory is unusable.
    """
    require_process_groups()
    await check_bind_safety(config)
    shared = await SharedState.create(config)
    tcp_listeners = await listen_tcp(config.tcp_port, config.host)
    bound = bound_addresses(tcp_listeners)
    log_listening(config, bound)
    await serve_connections(shared, tcp_listeners, task_status=ReportValue(task_status, bound))


def log_listening(config: ServerConfig, bound: list[tuple[str, int]], workers: str = "") -> None:
    """One line per bound address: where the command server listens, and how."""
    scheme = "tls" if config.ssl_context is not None else "tcp"
    for host, port in bound:
        log.info(
            "command server listening on %s://%s (%s)%s",
            scheme,
            escape(format_address(host, port)),
            "token required" if config.token is not None else "no token",
            workers,
        )


async def serve_connections(
    shared: SharedState,
    tcp_listeners: Sequence[trio.SocketListener],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve every connection ``tcp_listeners`` accept (over TLS if the config says so)
    until cancelled: the part of :func:`serve_commands` a worker process runs too."""
    config = shared.config
    listeners: list[trio.abc.Listener[trio.abc.Stream]] = list(tcp_listeners)
    if config.ssl_context is not None:
        listeners = [trio.SSLListener(li, config.ssl_context) for li in tcp_listeners]
    await serve_listeners(
        partial(handle_connection, shared),
        listeners,
        handler_closes=True,  # Connection.serve closes its stream
        task_status=task_status,
    )
    raise AssertionError("serve_listeners returned")  # pragma: no cover
