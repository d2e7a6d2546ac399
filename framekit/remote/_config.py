"""The command server's configuration, and the refusal to expose it without a token."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import trio

from .._errors import FramekitError
from ..streams._tls import server_ssl_context
from ._protocol import DEFAULT_PORT

__all__ = [
    "MAX_WORKERS",
    "InsecureBindError",
    "ServerConfig",
    "check_bind_safety",
    "is_loopback",
]

#: The most worker processes one server may have (``ServerConfig.workers``).
MAX_WORKERS = 64
#: The limits that are the whole server's, and so are divided among its workers.
DIVIDED_LIMITS = ("max_connections", "max_unauthenticated", "max_processes")
#: The attribute of an ``ssl.SSLContext`` that :class:`ServerConfig` loaded from
#: ``tls_cert``/``tls_key``: those files, so ``dataclasses.replace`` keeps the context.
_TLS_FILES = "_framekit_tls_files"


class InsecureBindError(FramekitError):
    """Refused to listen beyond loopback without a token (see ``ServerConfig.insecure``).

    Attributes:
        host: the address that was refused.
    """

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.host = host


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything :func:`serve` needs; every limit has a safe default.

    Attributes:
        host: address to bind, TCP and UDP (default loopback only).
        tcp_port: command server port (0: any free port).
        udp_port: echo server port (0: any free port; ``None``: no UDP echo).
        udp_buffer: kernel buffer asked for the UDP echo socket (``None``: 32 MiB, which
            holds a burst of ~26,000 small datagrams; on Linux, beyond
            ``net.core.rmem_max`` only root gets it).
        tcp_echo_port: a raw TCP echo port for ``framekit compare --tcp-echo`` (0: any
            free port; ``None``, the default: off).
        workers: processes serving commands, all on the one ``tcp_port`` (Linux,
            FreeBSD): 1, the default, serves in this process. More use more cores: a
            supervisor binds the port, starts the workers and restarts one that dies.
            ``max_connections``, ``max_unauthenticated`` and ``max_processes`` are the
            whole server's, divided among the workers (each must be at least
            ``workers``); ``max_auth_failures`` counts per worker. The UDP echo and the
            raw TCP echo run in the supervisor. Read by :func:`~framekit.serve`:
            :func:`~framekit.serve_commands` serves in its caller's process.
        token: shared secret for the HMAC challenge; ``None`` disables authentication.
        insecure: allow a non-loopback ``host`` without a token.
        ssl_context: serve TLS with this server-side context (with ``workers`` above 1,
            give ``tls_cert`` instead: a context cannot be handed to another process).
        tls_cert: serve TLS with this certificate chain (PEM file): the configuration
            loads it into ``ssl_context`` at once (each worker loads its own).
        tls_key: the private key for ``tls_cert``, if it is not in that file.
        allow: the exact ``argv[0]`` values that may run (a bare name is looked up on
            the server's PATH; list absolute paths to allow those); ``None`` allows any.
            With an allowlist, shell strings are refused even with ``allow_shell``.
        allow_shell: accept ``shell`` command strings (run by ``/bin/sh -c``).
        upload_dir: directory for ``put``/``get``; ``None`` disables file transfer.
        workdir: working directory of commands (the server's choice, not the client's).
        env: environment of commands (default: the server's own environment without
            ``FRAMEKIT_TOKEN``).
        max_connections: simultaneous connections; more get ``busy``.
        max_unauthenticated: simultaneous connections still in their TLS handshake or
            authentication; a new one beyond it closes the oldest such connection
            (``busy``), so silent connections cannot keep real clients out.
        max_auth_failures: wrong tokens from one address (IPv6: one /64) within
            ``auth_block_time`` before further attempts from it are refused unchecked
            for ``auth_block_time`` seconds.
        auth_block_time: seconds an address stays blocked, and the window its failures
            are counted in.
        max_processes: simultaneous commands; a request waits ``queue_timeout`` for a
            slot, then gets ``busy``.
        queue_timeout: seconds a run request waits for a free process slot.
        command_timeout: longest a command may run (a client may ask for less).
        max_output: stdout + stderr bytes sent per command; beyond it the command is
            killed and its exit reports ``truncated``.
        max_stdin: largest stdin body of a run request.
        max_upload: largest upload.
        max_header_size: largest message header.
        handshake_timeout: seconds from accepting a connection to a completed TLS
            handshake and authentication, all waits included.
        idle_timeout: seconds a connection may wait for a request header to arrive
            whole, and the longest any receive or send may go without progress after
            authentication (a stalled body, a client that stops reading output or a file).
        auth_failure_delay: seconds before answering a wrong token; attempts from one
            address are checked one at a time, so this slows guessing across connections.
        shutdown_grace: seconds running commands get after SIGTERM when the server
            stops, before SIGKILL.
    """

    host: str = "127.0.0.1"
    tcp_port: int = DEFAULT_PORT
    udp_port: int | None = DEFAULT_PORT
    tcp_echo_port: int | None = None
    udp_buffer: int | None = None
    workers: int = 1
    token: str | None = None
    insecure: bool = False
    ssl_context: ssl.SSLContext | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow: frozenset[str] | None = None
    allow_shell: bool = False
    upload_dir: Path | None = None
    workdir: Path | None = None
    env: Mapping[str, str] | None = None
    max_connections: int = 256
    max_unauthenticated: int = 64
    max_auth_failures: int = 5
    auth_block_time: float = 60.0
    max_processes: int = 32
    queue_timeout: float = 30.0
    command_timeout: float = 60.0
    max_output: int = 16 * 1024 * 1024
    max_stdin: int = 16 * 1024 * 1024
    max_upload: int = 1024 * 1024 * 1024
    max_header_size: int = 64 * 1024
    handshake_timeout: float = 10.0
    idle_timeout: float = 300.0
    auth_failure_delay: float = 1.0
    shutdown_grace: float = 5.0

    def __post_init__(self) -> None:
        for name in (
            "max_connections",
            "max_unauthenticated",
            "max_auth_failures",
            "max_processes",
            "max_output",
            "max_header_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerConfig.{name} must be at least 1")
        for name in ("max_stdin", "max_upload"):
            if getattr(self, name) < 0:
                raise ValueError(f"ServerConfig.{name} must not be negative")
        for name in ("auth_failure_delay", "auth_block_time", "shutdown_grace"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ServerConfig.{name} must be >= 0 seconds")
        for name in ("command_timeout", "handshake_timeout", "idle_timeout", "queue_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServerConfig.{name} must be a positive number of seconds")
        if self.token is not None and not self.token:
            raise ValueError("ServerConfig.token must not be empty (use None for no token)")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"ServerConfig.workers must be between 1 and {MAX_WORKERS}")
        for name in DIVIDED_LIMITS:
            if getattr(self, name) < self.workers:
                raise ValueError(
                    f"ServerConfig.{name} ({getattr(self, name)}) must be at least workers "
                    f"({self.workers}): the limit is divided among the worker processes"
                )
        self._load_tls()

    def _load_tls(self) -> None:
        """Load ``tls_cert``/``tls_key`` into ``ssl_context``; refuse what workers cannot use.

        Raises:
            OSError / ssl.SSLError: the files are missing or do not match.
        """
        files = (self.tls_cert, self.tls_key)
        if self.tls_cert is None:
            if self.tls_key is not None:
                raise ValueError("ServerConfig.tls_key needs tls_cert")
            if self.ssl_context is not None and self.workers > 1:
                raise ValueError(
                    "ServerConfig.ssl_context cannot be handed to worker processes: give "
                    "tls_cert (and tls_key) instead, which each worker loads"
                )
            return
        if self.ssl_context is None:
            context = server_ssl_context(self.tls_cert, self.tls_key)
            setattr(context, _TLS_FILES, files)
            object.__setattr__(self, "ssl_context", context)  # frozen: set once, here
        elif getattr(self.ssl_context, _TLS_FILES, None) != files:
            raise ValueError("give ServerConfig.ssl_context or tls_cert, not both")


async def is_loopback(host: str) -> bool:
    """Whether ``host`` names only loopback addresses (``localhost`` is resolved, off
    the event loop)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = await trio.socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


async def check_bind_safety(config: ServerConfig) -> None:
    """Refuse a non-loopback bind without a token unless ``insecure`` is set.

    Raises:
        InsecureBindError: with what to do about it.
    """
    if config.token is None and not config.insecure and not await is_loopback(config.host):
        raise InsecureBindError(
            f"refusing to serve commands on {config.host} without a token: anyone who can "
            "reach it could run programs as this user. Set a token, or set "
            "ServerConfig.insecure if you really mean it.",
            host=config.host,
        )
