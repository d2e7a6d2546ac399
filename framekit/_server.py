"""The framed remote-command server and the UDP echo server, side by side in one nursery."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import signal
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final, NoReturn

import trio

from ._commands import CommandOutcome, run_command_streaming
from ._connect import peer_name, serve_messages
from ._echo import serve_tcp_echo
from ._errors import ChecksumMismatch, FramekitError, FrameTooLarge, HeaderTooLarge, ProtocolError
from ._files import BodyStalled, UploadDirectory
from ._message_stream import IncomingMessage, MessageStream
from ._protocol import (
    PROTOCOL_VERSION,
    BadRequest,
    ErrorCode,
    FileRequest,
    RunRequest,
    check_mac,
    error_header,
    new_nonce,
    parse_request,
)
from ._udp import SOCKET_BUFFER, UdpEchoStats, serve_udp_echo
from ._util import raise_single
from ._version import __version__

__all__ = [
    "DEFAULT_PORT",
    "InsecureBindError",
    "ServerAddresses",
    "ServerConfig",
    "serve",
    "serve_until_signal",
]

log = logging.getLogger("framekit.server")

#: The tutorials' port.
DEFAULT_PORT: Final = 9999
#: Environment variables never passed on to commands (the token must not leak to them).
SECRET_ENV: Final = frozenset({"FRAMEKIT_TOKEN"})
#: Seconds a command runs before the server starts watching its client for ``cancel``
#: or a hang-up (see ``_Connection._run_process``).
WATCH_AFTER: Final = 0.05


class InsecureBindError(FramekitError):
    """Refused to listen beyond loopback without a token (see ``ServerConfig.insecure``)."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything :func:`serve` needs; every limit has a safe default.

    Attributes:
        host: address to bind, TCP and UDP (default loopback only).
        tcp_port: command server port (0: any free port).
        udp_port: echo server port (0: any free port; ``None``: no UDP echo).
        udp_buffer: kernel buffer asked for the UDP echo socket (32 MiB holds a burst of
            ~26,000 small datagrams; beyond ``net.core.rmem_max`` only root gets it).
        tcp_echo_port: a raw TCP echo port for ``framekit compare --tcp-echo`` (0: any
            free port; ``None``, the default: off).
        token: shared secret for the HMAC challenge; ``None`` disables authentication.
        insecure: allow a non-loopback ``host`` without a token.
        ssl_context: serve TLS with this server-side context.
        allow: the exact ``argv[0]`` values that may run (a bare name is looked up on
            the server's PATH; list absolute paths to allow those); ``None`` allows any.
            With an allowlist, shell strings are refused even with ``allow_shell``.
        allow_shell: accept ``shell`` command strings (run by ``/bin/sh -c``).
        upload_dir: directory for ``put``/``get``; ``None`` disables file transfer.
        workdir: working directory of commands (the server's choice, not the client's).
        env: environment of commands (default: the server's own environment without
            ``FRAMEKIT_TOKEN``).
        max_connections: simultaneous connections; more get ``busy``.
        max_processes: simultaneous commands; a request waits ``queue_timeout`` for a
            slot, then gets ``busy``.
        queue_timeout: seconds a run request waits for a free process slot.
        command_timeout: longest a command may run (a client may ask for less).
        max_output: stdout + stderr bytes sent per command; beyond it the command is
            killed and its exit reports ``truncated``.
        max_stdin: largest stdin body of a run request.
        max_upload: largest upload.
        max_header_size: largest message header.
        handshake_timeout: seconds for a client to authenticate.
        idle_timeout: seconds a connection may wait between requests, and the longest a
            request (header, or any pause in a body) may take to arrive.
        auth_failure_delay: seconds before answering a wrong token (slows guessing).
        shutdown_grace: seconds running commands get after SIGTERM when the server
            stops, before SIGKILL.
    """

    host: str = "127.0.0.1"
    tcp_port: int = DEFAULT_PORT
    udp_port: int | None = DEFAULT_PORT
    tcp_echo_port: int | None = None
    udp_buffer: int = SOCKET_BUFFER
    token: str | None = None
    insecure: bool = False
    ssl_context: ssl.SSLContext | None = None
    allow: frozenset[str] | None = None
    allow_shell: bool = False
    upload_dir: Path | None = None
    workdir: Path | None = None
    env: Mapping[str, str] | None = None
    max_connections: int = 256
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
        for name in ("max_connections", "max_processes", "max_output", "max_header_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerConfig.{name} must be at least 1")
        for name in ("command_timeout", "handshake_timeout", "idle_timeout", "queue_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServerConfig.{name} must be a positive number of seconds")
        if self.token is not None and not self.token:
            raise ValueError("ServerConfig.token must not be empty (use None for no token)")


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


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only loopback addresses (``localhost`` is resolved)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind_safety(config: ServerConfig) -> None:
    """Refuse a non-loopback bind without a token unless ``insecure`` is set.

    Raises:
        InsecureBindError: with what to do about it.
    """
    if config.token is None and not config.insecure and not is_loopback(config.host):
        raise InsecureBindError(
            f"refusing to serve commands on {config.host} without a token: anyone who can "
            "reach it could run programs as this user. Set a token (FRAMEKIT_TOKEN / "
            "--token), or pass insecure=True (--insecure) if you really mean it."
        )


class _Connection:
    """One client connection: handshake, then requests until EOF or idle."""

    watchers: trio.Nursery  # runs the client watchers of long commands

    def __init__(self, server: _CommandServer, stream: MessageStream, peer: str) -> None:
        self.server = server
        self.config = server.config
        self.stream = stream
        self.peer = peer

    async def send_error(self, code: ErrorCode, message: str, request_id: Any = None) -> None:
        await self.stream.send_message(error_header(code, message, request_id))

    async def handshake(self) -> bool:
        config = self.config
        hello: dict[str, Any] = {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "server": f"framekit/{__version__}",
            "auth": "none",
            "shell": config.allow_shell,
            "files": config.upload_dir is not None,
        }
        nonce = None
        if config.token is not None:
            nonce = new_nonce()
            hello.update(auth="hmac-sha256", nonce=nonce)
        await self.stream.send_message(hello)
        if nonce is None:
            return True
        answer = None
        with trio.move_on_after(config.handshake_timeout):
            answer = await self.stream.receive_message(max_body_size=0)
        if answer is None:
            log.warning("handshake timeout from %s", self.peer)
            await self.send_error(
                ErrorCode.TIMEOUT, f"no authentication within {config.handshake_timeout:g} s"
            )
            return False
        if answer.header.get("type") == "auth" and check_mac(
            config.token or "", nonce, answer.header.get("mac")
        ):
            await self.stream.send_message({"type": "ready"})
            return True
        log.warning("authentication failed from %s", self.peer)
        await trio.sleep(config.auth_failure_delay)  # slows down guessing
        await self.send_error(ErrorCode.AUTH_FAILED, "wrong token: check FRAMEKIT_TOKEN / --token")
        return False

    async def run(self) -> None:
        if not await self.handshake():
            return
        try:
            # Watchers of long commands run here (see _run_process): one nursery per
            # connection instead of one per request.
            async with trio.open_nursery() as self.watchers:
                await self._requests()
        except BaseExceptionGroup as group:
            raise_single(group)

    async def _requests(self) -> None:
        config = self.config
        # One scope for the connection: its deadline is armed only while waiting for a
        # request (cheaper than entering a new timeout scope per request).
        with trio.CancelScope() as idle:
            while True:
                idle.deadline = trio.current_time() + config.idle_timeout
                try:
                    message = await self.stream.receive_message_stream()
                except trio.EndOfChannel:
                    return
                idle.deadline = math.inf
                await self._request(message)
        await self.send_error(
            ErrorCode.TIMEOUT, f"no complete request within {config.idle_timeout:g} s; closing"
        )

    async def _request(self, message: IncomingMessage) -> None:
        config = self.config
        request_id = message.header.get("id")
        try:
            request = parse_request(message.header.fields, max_timeout=config.command_timeout)
            if isinstance(request, RunRequest):
                await self.handle_run(request, message)
            else:
                await self.handle_file(request, message)
        except BadRequest as exc:
            await self.send_error(exc.code, str(exc), request_id)
            await message.discard()  # keep in step with the client
        except ChecksumMismatch as exc:
            await self.send_error(ErrorCode.BAD_REQUEST, str(exc), request_id)

    async def handle_run(self, request: RunRequest, message: IncomingMessage) -> None:
        config = self.config
        if request.shell is not None and not config.allow_shell:
            raise BadRequest(
                "this server does not run shell strings; send 'argv' (or start the server "
                "with allow_shell / --allow-shell)",
                ErrorCode.NOT_ALLOWED,
            )
        if config.allow is not None:
            program = request.program
            if request.shell is not None:
                raise BadRequest(
                    "this server has an allowlist, which a shell string would bypass; send 'argv'",
                    ErrorCode.NOT_ALLOWED,
                )
            # Exact match only: "echo" admits argv[0] "echo" (found on the server's
            # PATH), not "./echo" or "/tmp/x/echo"; list absolute paths to allow them.
            if program not in config.allow:
                raise BadRequest(
                    f"program {program!r} is not in this server's allowlist", ErrorCode.NOT_ALLOWED
                )
        if request.stdin_size > config.max_stdin:
            raise BadRequest(
                f"stdin of {request.stdin_size} bytes is over the server's limit "
                f"of {config.max_stdin}",
                ErrorCode.TOO_LARGE,
            )
        stdin = b""
        if request.stdin_size:
            with trio.move_on_after(config.idle_timeout):
                stdin = await message.read_all(max_size=config.max_stdin)
            if len(stdin) != request.stdin_size:
                raise BodyStalled(
                    f"the request's stdin did not arrive within {config.idle_timeout:g} s"
                )
        else:
            await message.discard()  # no body: only the end-of-message event is pending
        slots = self.server.processes
        try:
            slots.acquire_nowait()  # the common case: a slot is free, no timer needed
        except trio.WouldBlock:
            with trio.move_on_after(config.queue_timeout) as queue_scope:
                await slots.acquire()
            if queue_scope.cancelled_caught:
                raise BadRequest(
                    f"all {config.max_processes} process slots stayed busy for "
                    f"{config.queue_timeout:g} s; try again later",
                    ErrorCode.BUSY,
                ) from None
        try:
            await self._run_process(request, stdin)
        finally:
            self.server.processes.release()

    async def _run_process(self, request: RunRequest, stdin: bytes) -> None:
        config = self.config
        stream = self.stream
        outcome: CommandOutcome | None = None
        ended_by: str | None = None  # why the command was stopped early, if it was
        start_error: OSError | None = None
        args: Sequence[str] | str = (
            request.shell if request.shell is not None else (request.argv or ())
        )
        start = trio.current_time()
        # The watcher's cancel scope and its "ended" event, once it has been started.
        watching: tuple[trio.CancelScope, trio.Event] | None = None
        with trio.CancelScope() as command_scope:

            def stop(reason: str) -> None:
                nonlocal ended_by
                ended_by = ended_by or reason
                command_scope.cancel()

            async def sink(name: str, data: bytes) -> None:
                # A client that stops reading would block this send forever (and hold
                # its process slot): after idle_timeout without progress it counts as
                # gone, and the command is killed.
                with trio.move_on_after(config.idle_timeout) as stalled:
                    try:  # one task runs the command, so sends never overlap
                        await stream.send_message(
                            {"type": "output", "id": request.id, "stream": name}, data
                        )
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        stop("gone")
                if stalled.cancelled_caught:
                    log.warning("%s stopped reading output of request %r", self.peer, request.id)
                    stop("gone")

            async def watch_client(scope: trio.CancelScope, ended: trio.Event) -> None:
                # While a command runs the client may only cancel it or hang up. Most
                # commands end within a few milliseconds: watching only starts once one
                # has run for WATCH_AFTER, which saves starting and cancelling a task
                # for them (measured: ~0.15 ms of server CPU per request). A client that
                # leaves earlier is still noticed, when the output or exit message fails.
                try:
                    with scope:
                        try:
                            incoming = await stream.receive_message_stream()
                            await incoming.discard()
                        except (trio.EndOfChannel, trio.BrokenResourceError, ProtocolError):
                            stop("gone")
                            return
                        stop("cancel" if incoming.header.get("type") == "cancel" else "pipelined")
                finally:
                    ended.set()

            def start_watching() -> None:
                nonlocal watching
                watching = (trio.CancelScope(), trio.Event())
                self.watchers.start_soon(watch_client, *watching)

            # The command runs in this task (one task fewer per request); stop() cancels
            # it through command_scope, which absorbs that cancellation.
            try:
                outcome = await run_command_streaming(
                    args,
                    sink=sink,
                    stdin=stdin,
                    shell=request.shell is not None,
                    cwd=config.workdir,
                    env=self.server.command_env,
                    timeout=request.timeout or config.command_timeout,
                    max_output=config.max_output,
                    # a vanished client's command is killed at once; on server
                    # shutdown it gets SIGTERM and the grace period first
                    shutdown_grace=lambda: 0 if ended_by == "gone" else config.shutdown_grace,
                    slow_after=WATCH_AFTER,
                    on_slow=start_watching,
                )
            except OSError as exc:
                start_error = exc
        if watching is not None:  # the command ran long enough to be watched: end that
            watcher_scope, watcher_ended = watching
            watcher_scope.cancel()
            await watcher_ended.wait()
        elapsed = trio.current_time() - start
        program = request.program
        if start_error is not None:
            raise BadRequest(
                f"cannot run {program!r}: {start_error.strerror or start_error}",
                ErrorCode.NOT_FOUND,
            )
        if ended_by == "gone":
            log.info("%s left during request %r (%s); killed it", self.peer, request.id, program)
            raise trio.BrokenResourceError("client disconnected during a command")
        if ended_by is not None or outcome is None:
            log.info(
                "%s request %r (%s) cancelled after %.3f s", self.peer, request.id, program, elapsed
            )
            await stream.send_message(
                {
                    "type": "exit",
                    "id": request.id,
                    "status": "cancelled",
                    "returncode": None,
                    "signal": None,
                    "duration": round(elapsed, 6),
                    "stdout_bytes": 0,
                    "stderr_bytes": 0,
                    "truncated": False,
                }
            )
            if ended_by == "pipelined":
                raise BadRequest(
                    f"a request arrived while request {request.id!r} was running; send one "
                    "request at a time (or 'cancel')"
                )
            return
        log.info(
            "%s request %r %s: %s rc=%s signal=%s in %.3f s%s",
            self.peer,
            request.id,
            program,
            outcome.status,
            outcome.returncode,
            outcome.signal,
            outcome.duration,
            " (truncated)" if outcome.truncated else "",
        )
        await stream.send_message({"type": "exit", "id": request.id, **outcome.to_fields()})

    async def handle_file(self, request: FileRequest, message: IncomingMessage) -> None:
        uploads = self.server.uploads
        if uploads is None:
            raise BadRequest(
                "file transfer is disabled on this server (start it with an upload directory)",
                ErrorCode.NOT_ALLOWED,
            )
        if request.kind == "put":
            if request.size > self.config.max_upload:
                raise BadRequest(
                    f"upload of {request.size} bytes is over the server's limit "
                    f"of {self.config.max_upload}",
                    ErrorCode.TOO_LARGE,
                )
            await uploads.receive_upload(
                request.name, message, stall_timeout=self.config.idle_timeout
            )
            log.info("%s put %s (%d bytes)", self.peer, request.name, request.size)
            await self.stream.send_message(
                {
                    "type": "stored",
                    "id": request.id,
                    "name": request.name,
                    "file_size": request.size,
                    "file_sha256": message.sha256,
                }
            )
            return
        await message.discard()
        real = uploads.resolve_for_get(request.name)
        log.info("%s get %s", self.peer, request.name)
        await self.stream.send_file({"type": "file", "id": request.id, "name": request.name}, real)


class _CommandServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.connections = 0
        self.processes = trio.Semaphore(config.max_processes)
        self.uploads = UploadDirectory(config.upload_dir) if config.upload_dir is not None else None

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

    async def handle(self, stream: MessageStream) -> None:
        peer = peer_name(stream.transport_stream)
        self.connections += 1
        try:
            await self._handle(stream, peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.info("%s disconnected: %s", peer, exc)
        finally:
            self.connections -= 1

    async def _handle(self, stream: MessageStream, peer: str) -> None:
        """Serve one connection, turning every failure into an error message if possible."""
        limit = self.config.max_connections
        if self.connections > limit:
            log.warning("refusing %s: %d connections already", peer, limit)
            await _try_send_error(
                stream,
                ErrorCode.BUSY,
                f"server is at its limit of {limit} connections; try again later",
            )
            return
        try:
            await _Connection(self, stream, peer).run()
        except BodyStalled as exc:
            log.warning("%s stalled in the middle of a message: %s", peer, exc)
            await _try_send_error(stream, ErrorCode.TIMEOUT, f"{exc}; closing")
        except (HeaderTooLarge, FrameTooLarge) as exc:
            log.warning("%s sent an oversized message: %s", peer, exc)
            await _try_send_error(stream, ErrorCode.TOO_LARGE, str(exc))
        except ProtocolError as exc:
            log.warning("%s broke the protocol: %s", peer, exc)
            await _try_send_error(stream, ErrorCode.BAD_REQUEST, str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise
        except Exception:
            log.exception("internal error serving %s", peer)
            await _try_send_error(
                stream, ErrorCode.INTERNAL, "internal server error; see the server log"
            )


async def _try_send_error(stream: MessageStream, code: ErrorCode, message: str) -> None:
    with trio.move_on_after(1):
        try:
            await stream.send_message(error_header(code, message))
        except (trio.BrokenResourceError, trio.ClosedResourceError, FramekitError):
            pass


async def serve(
    config: ServerConfig = ServerConfig(),
    *,
    udp_stats: UdpEchoStats | None = None,
    task_status: trio.TaskStatus[ServerAddresses] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Run the command server (TCP) and the UDP echo server side by side until cancelled.

    Use it with ``nursery.start``: it reports the bound :class:`ServerAddresses`.
    Cancelling it stops accepting, sends running commands SIGTERM, gives them
    ``shutdown_grace`` seconds, then kills their process groups.

    Raises:
        InsecureBindError: non-loopback host without a token and without ``insecure``.
        OSError: a port could not be bound.
    """
    check_bind_safety(config)
    server = _CommandServer(config)
    async with trio.open_nursery() as nursery:
        tcp = await nursery.start(
            partial(
                serve_messages,
                server.handle,
                config.tcp_port,
                host=config.host,
                ssl_context=config.ssl_context,
                max_header_size=config.max_header_size,
            )
        )
        udp: list[tuple[str, int]] = []
        if config.udp_port is not None:
            udp = await nursery.start(
                partial(
                    serve_udp_echo,
                    config.udp_port,
                    host=config.host,
                    stats=udp_stats,
                    buffer_size=config.udp_buffer,
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
        log.info("command server on %s; UDP echo on %s", tcp, udp or "(off)")
        task_status.started(ServerAddresses(tcp=tcp, udp=udp, tcp_echo=tcp_echo))
    raise AssertionError("unreachable")  # pragma: no cover


async def serve_until_signal(
    config: ServerConfig,
    *,
    on_started: Callable[[ServerAddresses], object] | None = None,
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
) -> int:
    """Run :func:`serve` until one of ``signals`` arrives; return that signal's number.

    The shutdown is the graceful one of :func:`serve` (commands get SIGTERM, then
    ``shutdown_grace``, then SIGKILL), for Ctrl-C and ``kill`` alike.
    """
    received = 0
    with trio.open_signal_receiver(*signals) as incoming:
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(partial(serve, config))
            if on_started is not None:
                on_started(addresses)
            async for signum in incoming:
                received = signum
                log.info("received signal %d; shutting down", signum)
                nursery.cancel_scope.cancel()
                break
    return received
