"""The command server: accepting connections, the limits they share, and serving each."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Final, NoReturn

import trio

from ..streams._serve import ReportValue, bound_addresses, format_address, peer_address
from ._auth import AuthThrottle
from ._config import ServerConfig, check_bind_safety
from ._connection import Connection
from ._files import UploadDirectory
from ._log_text import escape

__all__ = ["CommandServer", "serve_commands"]

log = logging.getLogger("framekit.server")

#: Environment variables never passed on to commands (the token must not leak to them).
SECRET_ENV: Final = frozenset({"FRAMEKIT_TOKEN"})


class CommandServer:
    """What the connections of one command server share: counts, slots, uploads, auth.

    Create it with :meth:`create`; :meth:`handle` serves one accepted stream.
    """

    def __init__(self, config: ServerConfig, uploads: UploadDirectory | None) -> None:
        self.config = config
        self.uploads = uploads
        self.connections = 0
        self.processes = trio.Semaphore(config.max_processes)
        self.auth = AuthThrottle(
            delay=config.auth_failure_delay,
            max_failures=config.max_auth_failures,
            block_time=config.auth_block_time,
        )
        # Connections not yet authenticated, oldest first (the first to be dropped).
        self._unauthenticated: OrderedDict[Connection, None] = OrderedDict()

    @classmethod
    async def create(cls, config: ServerConfig) -> CommandServer:
        """Check the upload directory and clear what a killed server left in it.

        Raises:
            OSError: the upload directory is missing or not a directory.
        """
        uploads = None
        if config.upload_dir is not None:
            uploads = await UploadDirectory.open(config.upload_dir)
            stale = await uploads.remove_stale_uploads()
            if stale:
                log.info(
                    "removed %d unfinished upload(s) left by an earlier server in %s",
                    len(stale),
                    uploads.root,
                )
        return cls(config, uploads)

    @property
    def command_env(self) -> Mapping[str, str] | None:
        """Commands get the server's environment minus its own secret, unless told
        otherwise. ``None`` (inherit it as it is) when it holds no secret, which spares
        ``Popen`` re-encoding every variable for every command."""
        if self.config.env is not None:
            return self.config.env
        if not any(name in os.environ for name in SECRET_ENV):
            return None
        return {k: v for k, v in os.environ.items() if k not in SECRET_ENV}

    def authenticated(self, connection: Connection) -> None:
        """``connection`` passed its handshake: it no longer counts as unauthenticated."""
        self._unauthenticated.pop(connection, None)

    def _admit(self, connection: Connection) -> None:
        """Count a new connection as unauthenticated, dropping the oldest over the cap."""
        waiting = self._unauthenticated
        while len(waiting) >= self.config.max_unauthenticated:
            oldest, _ = waiting.popitem(last=False)
            oldest.evicted = True
            oldest.scope.cancel()
        waiting[connection] = None

    async def handle(self, transport: trio.abc.Stream) -> None:
        """Serve one accepted (TCP or TLS) stream until it ends; never raises for a client."""
        address = peer_address(transport)
        host = address[0] if address else "?"
        peer = format_address(*address) if address else "?"
        connection = Connection(self, transport, peer, host)
        self.connections += 1
        try:
            if self.connections > self.config.max_connections:
                log.warning(
                    "refusing %s: %d connections already", peer, self.config.max_connections
                )
                await connection.refuse_busy(
                    f"server is at its limit of {self.config.max_connections} connections; "
                    "try again later"
                )
                return
            self._admit(connection)
            await connection.serve()
        finally:
            self.connections -= 1
            self._unauthenticated.pop(connection, None)


async def serve_commands(
    config: ServerConfig,
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Run the command server alone until cancelled; report its bound addresses.

    Cancelling it stops accepting and ends every connection: running commands get
    SIGTERM, ``shutdown_grace`` seconds, then SIGKILL for their process group.

    Raises:
        InsecureBindError: non-loopback host without a token and without ``insecure``.
        OSError: the port could not be bound, or the upload directory is unusable.
    """
    await check_bind_safety(config)
    server = await CommandServer.create(config)
    tcp_listeners = await trio.open_tcp_listeners(config.tcp_port, host=config.host)
    bound = bound_addresses(tcp_listeners)
    listeners: list[trio.abc.Listener[trio.abc.Stream]] = list(tcp_listeners)
    if config.ssl_context is not None:
        listeners = [trio.SSLListener(li, config.ssl_context) for li in tcp_listeners]
    scheme = "tls" if config.ssl_context is not None else "tcp"
    for host, port in bound:
        log.info(
            "command server listening on %s://%s (%s)",
            scheme,
            escape(format_address(host, port)),
            "token required" if config.token is not None else "no token",
        )
    await trio.serve_listeners(
        server.handle, listeners, task_status=ReportValue(task_status, bound)
    )
    raise AssertionError("serve_listeners returned")  # pragma: no cover
