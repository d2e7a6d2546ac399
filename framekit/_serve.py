"""``serve``: the command server, the UDP echo and the raw TCP echo in one nursery."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Final, NoReturn

import trio

from .datagram import UdpEchoStats, serve_tcp_echo, serve_udp_echo
from .datagram._socket import SOCKET_BUFFER
from .remote import ServerConfig, serve_commands
from .remote._config import check_bind_safety
from .remote._processes import require_process_groups
from .remote._workers import require_worker_sockets, serve_command_workers
from .streams._groups import raise_single

__all__ = ["STOP_SIGNALS", "ServerAddresses", "serve", "serve_until_signal"]

log = logging.getLogger("framekit.server")

#: Signals that stop the server gracefully. SIGHUP is the terminal closing or an ssh
#: session dropping: a server started by hand then stops as for Ctrl-C, its commands'
#: process groups killed, instead of dying at once and orphaning them.
STOP_SIGNALS: Final = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)


#: ``ServerConfig()``: every default (loopback only, port 9999).
_DEFAULTS: Final = ServerConfig()


@dataclass(frozen=True, slots=True)
class ServerAddresses:
    """What :func:`serve` reports once it is listening.

    Attributes:
        tcp: the command server's ``(host, port)`` addresses.
        udp: the UDP echo's (empty when it is off).
        tcp_echo: the raw TCP echo's (empty unless ``tcp_echo_port`` was set).
    """

    tcp: list[tuple[str, int]]
    udp: list[tuple[str, int]]
    tcp_echo: list[tuple[str, int]] = field(default_factory=list)


async def serve(
    config: ServerConfig = _DEFAULTS,
    *,
    udp_stats: UdpEchoStats | None = None,
    task_status: trio.TaskStatus[ServerAddresses] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Run the command server (TCP) and the UDP echo server side by side until cancelled.

    Use it with ``nursery.start``: it reports the bound :class:`ServerAddresses`.
    Cancelling it stops accepting, sends running commands SIGTERM, gives them
    ``shutdown_grace`` seconds, then kills their process groups.

    With ``config.workers`` above 1, commands are served by that many worker processes
    on the one port (see ``ServerConfig.workers``); this process supervises them and runs
    the UDP echo and the raw TCP echo. It reports once every worker listens; cancelling
    it stops every worker as above, and returns once all have exited.

    The command server needs POSIX process groups (Linux, macOS, the BSDs); on Windows
    it refuses at once. The UDP echo alone runs everywhere: :func:`~framekit.serve_udp_echo`.

    Raises:
        UnsupportedPlatform: no POSIX process groups here (Windows), or more than one
            worker where the kernel cannot balance a shared port (macOS): refused before
            anything is bound.
        InsecureBindError: non-loopback host without a token and without ``insecure``.
        OSError: a port could not be bound, or the upload directory is unusable.
    """
    require_process_groups()  # before anything is bound, and raised as it is
    if config.workers > 1:
        require_worker_sockets()
    await check_bind_safety(config)
    try:
        await _serve(config, udp_stats, task_status)
    except BaseExceptionGroup as group:
        # The servers raise only while starting (a port in use): one error, unwrapped.
        raise_single(group)


async def _serve(
    config: ServerConfig,
    udp_stats: UdpEchoStats | None,
    task_status: trio.TaskStatus[ServerAddresses],
) -> NoReturn:
    async with trio.open_nursery() as nursery:
        commands = serve_commands if config.workers == 1 else serve_command_workers
        tcp = await nursery.start(partial(commands, config))
        udp: list[tuple[str, int]] = []
        if config.udp_port is not None:
            udp = await nursery.start(
                partial(
                    serve_udp_echo,
                    config.udp_port,
                    host=config.host,
                    stats=udp_stats,
                    buffer_size=config.udp_buffer or SOCKET_BUFFER,
                )
            )
        tcp_echo: list[tuple[str, int]] = []
        if config.tcp_echo_port is not None:
            tcp_echo = await nursery.start(
                partial(
                    serve_tcp_echo,
                    config.tcp_echo_port,
                    host=config.host,
                    idle_timeout=config.idle_timeout,
                )
            )
        task_status.started(ServerAddresses(tcp=tcp, udp=udp, tcp_echo=tcp_echo))
    raise AssertionError("unreachable")  # pragma: no cover


async def serve_until_signal(
    config: ServerConfig,
    *,
    on_started: Callable[[ServerAddresses], object] | None = None,
    signals: Sequence[int] = STOP_SIGNALS,
) -> int:
    """Run :func:`serve` until one of ``signals`` arrives; return that signal's number.

    The shutdown is the graceful one of :func:`serve` (commands get SIGTERM, then
    ``shutdown_grace``, then SIGKILL), for Ctrl-C, ``kill`` and a closed terminal
    (SIGHUP) alike.

    Raises:
        UnsupportedPlatform: no POSIX process groups here (Windows), or more than one
            worker without a balanced shared port (macOS), before anything else.
        ExceptionGroup: holding what :func:`serve` raised while starting
            (``InsecureBindError``, ``ListenError``, ...).
    """
    require_process_groups()  # raised as it is, not inside the nursery's group
    if config.workers > 1:
        require_worker_sockets()
    received = 0
    with trio.open_signal_receiver(*signals) as incoming:
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(partial(serve, config))
            if on_started is not None:
                on_started(addresses)
            async for signum in incoming:
                received = signum
                log.info("received %s; shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    return received
