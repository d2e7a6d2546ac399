"""What the connections of one command server share: limits, uploads, authentication."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import trio

from ._auth import AuthThrottle
from ._config import ServerConfig
from ._files import UploadDirectory

if TYPE_CHECKING:  # a connection registers itself here; no import at run time
    from ._connection import Connection

__all__ = ["SharedState"]

log = logging.getLogger("framekit.server")

#: Environment variables never passed on to commands (the token must not leak to them).
SECRET_ENV: Final = frozenset({"FRAMEKIT_TOKEN"})


class SharedState:
    """What the connections of one command server share: counts, slots, uploads, auth.

    Create it with :meth:`create`.
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
        #: Connections not yet authenticated, oldest first (the first to be dropped).
        self.unauthenticated: OrderedDict[Connection, None] = OrderedDict()

    @classmethod
    async def create(cls, config: ServerConfig) -> SharedState:
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

    def admit(self, connection: Connection) -> bool:
        """Count a new connection in; ``False`` if the server is full.

        A new connection is never refused while an older one is still authenticating:
        the oldest such connection is dropped instead (and so when more than
        ``max_unauthenticated`` are authenticating), so silent or slow peers cannot hold
        the server's slots against real clients.
        """
        config = self.config
        waiting = self.unauthenticated
        self.connections += 1
        connection.counted = True
        if self.connections > config.max_connections and not self._drop_oldest():
            return False
        while len(waiting) >= config.max_unauthenticated:
            self._drop_oldest()
        waiting[connection] = None
        return True

    def _drop_oldest(self) -> bool:
        if not self.unauthenticated:
            return False
        oldest, _ = self.unauthenticated.popitem(last=False)
        oldest.evicted = True
        oldest.scope.cancel()
        self.release(oldest)  # its slot is free now, not once it has closed
        return True

    def release(self, connection: Connection) -> None:
        """Count ``connection`` out (idempotent)."""
        self.unauthenticated.pop(connection, None)
        if connection.counted:
            connection.counted = False
            self.connections -= 1
