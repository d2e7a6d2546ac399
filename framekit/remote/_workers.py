"""The command server in worker processes: one port, several processes, several cores.

With ``ServerConfig.workers`` above 1, :func:`serve_command_workers` is a supervisor.
It binds the port first: one listening socket per worker, all on the same port, each
with the kernel's balancing ``SO_REUSEPORT`` (Linux; ``SO_REUSEPORT_LB`` on FreeBSD),
so the kernel spreads new connections over them. Each worker is a fresh interpreter
(``sys.executable``) that inherits its socket (``pass_fds``) and serves commands there
in a nursery of its own, with its share of the limits. The supervisor keeps every socket
open: a worker that dies is replaced on the same socket, and the connections that queued
there meanwhile are served by its successor instead of being reset.

Two pipes join the supervisor to each worker. Supervisor to worker: the worker's
settings, pickled (never in its argv or environment, so the token does not show in
``ps``), then nothing: its end of file (the supervisor closing it, or dying) stops the
worker gracefully, running commands' process groups killed as in a single server.
Worker to supervisor: frames (framekit's own length prefix) saying ``ready``, carrying
log records (logged by the supervisor, marked ``worker=N pid=P``), or why it failed to
start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, NoReturn

import trio

from .._errors import ProtocolError, UnsupportedPlatform
from ..codec import NEED_DATA, FrameDecoder, FrameEncoder
from ..streams._serve import ReportValue, listen_error
from ._config import ServerConfig
from ._files import UploadDirectory
from ._server import log_listening, serve_connections
from ._shared import SharedState

__all__ = [
    "REUSEPORT",
    "require_worker_sockets",
    "serve_command_workers",
    "share",
    "worker_config",
    "worker_main",
]

log = logging.getLogger("framekit.server")


def _balancing_option() -> int | None:
    name = "SO_REUSEPORT" if sys.platform.startswith("linux") else "SO_REUSEPORT_LB"
    option: int | None = getattr(socket, name, None)  # SO_REUSEPORT_LB: FreeBSD 12+
    return option


#: The socket option that lets every worker listen on the one port while the kernel
#: spreads new connections among them: ``SO_REUSEPORT`` on Linux, ``SO_REUSEPORT_LB`` on
#: FreeBSD. ``None`` elsewhere (macOS's ``SO_REUSEPORT`` gives every connection to one
#: of the sockets), where more than one worker is refused.
REUSEPORT: Final = _balancing_option()
#: Seconds a worker gets past ``shutdown_grace`` to stop before it is killed.
STOP_MARGIN: Final = 5.0
#: Seconds a new worker has to start listening.
BOOT_TIMEOUT: Final = 60.0
#: Seconds before restarting a worker that died; doubled for each quick death in a row.
FIRST_BACKOFF: Final = 0.1
MAX_BACKOFF: Final = 5.0
#: A worker that served this many seconds before it died is restarted without delay
#: growing (its death was not a crash loop).
STABLE_AFTER: Final = 10.0
#: What the worker runs: ``framekit`` from where this process found it.
_BOOT: Final = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from framekit.remote._workers import worker_main; worker_main(sys.argv[2:])"
)
_PLATFORM_NAMES: Final = {"darwin": "macOS", "win32": "Windows", "cygwin": "Cygwin"}


def require_worker_sockets() -> None:
    """Refuse more than one worker where the kernel cannot balance a shared port.

    Raises:
        UnsupportedPlatform: no ``SO_REUSEPORT`` that balances (macOS, Windows, ...).
    """
    if REUSEPORT is not None:
        return
    name = _PLATFORM_NAMES.get(sys.platform, sys.platform)
    raise UnsupportedPlatform(
        f"worker processes are not supported on {name}: they need a port the kernel "
        "balances across processes (SO_REUSEPORT on Linux, SO_REUSEPORT_LB on FreeBSD); "
        "serve with one worker here",
        feature="worker processes",
        platform=sys.platform,
    )


def share(total: int, workers: int, index: int) -> int:
    """Worker ``index``'s part of a limit of ``total``: the parts differ by one at most
    (the first ``total % workers`` workers get the extra one) and add up to ``total``."""
    return total // workers + (index < total % workers)


def worker_config(config: ServerConfig, index: int) -> ServerConfig:
    """What worker ``index`` runs: ``config`` with its share of the server's limits, no
    UDP or raw TCP echo (the supervisor runs those), and one worker: itself."""
    n = config.workers
    return replace(
        config,
        workers=1,
        udp_port=None,
        tcp_echo_port=None,
        max_connections=share(config.max_connections, n, index),
        max_unauthenticated=share(config.max_unauthenticated, n, index),
        max_processes=share(config.max_processes, n, index),
    )


# -- the supervisor ---------------------------------------------------------------------


def _listening_socket(family: int, proto: int, address: Any, *, reuseport: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as trio does
        if reuseport:
            assert REUSEPORT is not None
            sock.setsockopt(socket.SOL_SOCKET, REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        if reuseport:
            sock.listen(0xFFFF)  # trio's backlog; the kernel caps it (somaxconn)
    except BaseException:
        sock.close()
        raise
    return sock


async def _bind(config: ServerConfig) -> list[list[socket.socket]]:
    """For each address ``host`` resolves to, ``workers`` listening sockets on one port.

    A fixed port is first bound alone, without ``SO_REUSEPORT``: that fails if anything
    listens there, so a second server of the same user is refused (``ListenError``, as
    with one worker) instead of quietly sharing the port. Port 0 is resolved by the
    first socket; the others bind the port it got.

    Raises:
        ListenError: an address could not be bound.
    """
    host, port = config.host, config.tcp_port
    groups: list[list[socket.socket]] = []
    try:
        infos = await trio.socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, _type, proto, _name, address in infos:
            if port != 0:
                _listening_socket(family, proto, address, reuseport=False).close()
            group: list[socket.socket] = []
            groups.append(group)
            for _ in range(config.workers):
                group.append(_listening_socket(family, proto, address, reuseport=True))
                address = group[0].getsockname()  # port 0: the one the first socket got
    except OSError as exc:
        for sock in (s for group in groups for s in group):
            sock.close()
        raise listen_error(exc, "tcp", host, port) from exc
    return groups


@dataclass
class _Run:
    """One worker process, as the supervisor follows it."""

    process: trio.Process
    ready: bool = False
    #: Set once the worker is ready, or once its channel closed before that.
    settled: trio.Event = field(default_factory=trio.Event)
    closed: trio.Event = field(default_factory=trio.Event)
    #: Why it failed to start, as it reported it.
    failure: BaseException | None = None
    #: The channel reader's scope: shielded, so a stopping worker's log still arrives.
    reading: trio.CancelScope = field(default_factory=lambda: trio.CancelScope(shield=True))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Worker:
    """One worker slot: its sockets and settings, and the process that serves them now."""

    def __init__(self, config: ServerConfig, index: int, sockets: list[socket.socket]) -> None:
        self.index = index
        self.fds = [s.fileno() for s in sockets]
        self.grace = config.shutdown_grace + STOP_MARGIN
        own = worker_config(config, index)
        settings = {f.name: getattr(own, f.name) for f in fields(own) if f.name != "ssl_context"}
        if own.env is not None:
            settings["env"] = dict(own.env)
        self.payload = FrameEncoder().encode(
            pickle.dumps(
                {
                    "config": settings,
                    "listeners": self.fds,
                    "index": index,
                    "log_level": logging.getLogger(log.name).getEffectiveLevel(),
                }
            )
        )

    def _argv(self, control: int, channel: int) -> list[str]:
        root = str(Path(__file__).resolve().parents[2])  # the folder framekit is in
        name = "framekit-worker"  # what `ps` shows after the interpreter's -c
        return [
            sys.executable,
            "-c",
            _BOOT,
            root,
            name,
            str(self.index),
            str(control),
            str(channel),
        ]

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Run the worker, report once it listens, and restart it whenever it dies.

        Raises:
            Exception: the first worker failed to start (what it raised, if it could say).
        """
        run: _Run | None
        run, lived = await self._run_once(task_status)
        if not run.ready:
            raise run.failure or RuntimeError(
                f"worker {self.index} failed to start ({_describe_exit(run.process.returncode)})"
            )
        quick = 0
        while True:
            quick = 0 if run is not None and run.ready and lived >= STABLE_AFTER else quick + 1
            delay = min(FIRST_BACKOFF * 2 ** (quick - 1), MAX_BACKOFF) if quick else 0.0
            log.warning(
                "worker %d %s; restarting it in %.1f s", self.index, self._ending(run), delay
            )
            await trio.sleep(delay)
            try:
                run, lived = await self._run_once(None)
            except OSError as exc:  # out of processes or descriptors: try again later
                log.error("worker %d could not be started: %s", self.index, exc)
                run, lived = None, 0.0

    def _ending(self, run: _Run | None) -> str:
        if run is None:
            return "could not be started"
        what = "exited unexpectedly" if run.ready else "failed to start"
        if not run.ready and run.failure is not None:
            what += f": {run.failure}"
        return f"(pid {run.process.pid}) {what} ({_describe_exit(run.process.returncode)})"

    async def _run_once(self, task_status: trio.TaskStatus[None] | None) -> tuple[_Run, float]:
        """Start one worker process and follow it until it exits; stop it gracefully
        (kill it after ``shutdown_grace`` + :data:`STOP_MARGIN`) if cancelled. Returns it
        and how long it served."""
        control_end, control = os.pipe()
        channel, channel_end = os.pipe()
        try:
            process = await trio.lowlevel.open_process(
                self._argv(control_end, channel_end),
                stdin=subprocess.DEVNULL,
                pass_fds=(control_end, channel_end, *self.fds),
            )
        except BaseException:
            os.close(control)
            os.close(channel)
            raise
        finally:
            os.close(control_end)
            os.close(channel_end)
        run = _Run(process)
        control_stream = trio.lowlevel.FdStream(control)
        log.debug("worker %d started (pid %d)", self.index, process.pid)
        began = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_channel, trio.lowlevel.FdStream(channel), run)
            try:
                with trio.move_on_after(BOOT_TIMEOUT):  # the settings, and "ready"
                    with contextlib.suppress(trio.BrokenResourceError):
                        await control_stream.send_all(self.payload)
                    await run.settled.wait()
                if run.ready:
                    began = trio.current_time()
                    log.info("worker %d ready (pid %d)", self.index, process.pid)
                    if task_status is not None:
                        task_status.started()
                elif process.returncode is None and not run.closed.is_set():
                    log.error(
                        "worker %d (pid %d) did not start within %.0f s; killing it",
                        self.index,
                        process.pid,
                        BOOT_TIMEOUT,
                    )
                    process.kill()
                await process.wait()
            finally:
                await self._stop(run, control_stream)
        return run, trio.current_time() - began

    async def _stop(self, run: _Run, control: trio.lowlevel.FdStream) -> None:
        """End of file to the worker, which stops gracefully; kill it if it takes more
        than its grace. Then let its last log lines arrive."""
        process = run.process
        with trio.CancelScope(shield=True):
            control.close()
            if process.returncode is None:
                with trio.move_on_after(self.grace):
                    await process.wait()
                if process.poll() is not None:  # (not narrowed: wait() sets it)
                    log.info(
                        "worker %d (pid %d) stopped (%s)",
                        self.index,
                        process.pid,
                        _describe_exit(process.returncode),
                    )
            if process.returncode is None:
                log.warning(
                    "worker %d (pid %d) did not stop within %.1f s; killing it",
                    self.index,
                    process.pid,
                    self.grace,
                )
                process.kill()
                await process.wait()
            with trio.move_on_after(1.0):  # the channel closes when the worker's fds do
                await run.closed.wait()
            run.reading.cancel()

    async def _read_channel(self, stream: trio.lowlevel.FdStream, run: _Run) -> None:
        """Follow the worker's channel to its end. Read it all: a worker whose channel
        filled up would block in its next log call."""
        decoder: FrameDecoder | None = FrameDecoder()
        try:
            with run.reading:
                while data := await stream.receive_some():
                    if decoder is None:
                        continue  # it broke the framing: drained, no longer understood
                    try:
                        decoder.receive_data(data)
                        for frame in decoder.frames():
                            self._received(pickle.loads(frame), run)
                    except Exception as exc:  # our own worker sent it: a bug
                        log.error(
                            "worker %d (pid %d) sent a bad message: %r",
                            self.index,
                            run.process.pid,
                            exc,
                        )
                        if isinstance(exc, ProtocolError):
                            decoder = None
        finally:
            stream.close()
            run.settled.set()
            run.closed.set()

    def _received(self, message: tuple[str, Any], run: _Run) -> None:
        kind, value = message
        if kind == "ready":
            run.ready = True
            run.settled.set()
        elif kind == "failed":
            run.failure = value
        elif kind == "log":
            record = logging.makeLogRecord(value)
            record.msg = f"worker={self.index} pid={run.process.pid}: {record.msg}"
            record.worker = self.index
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)


async def serve_command_workers(
    config: ServerConfig,
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Run the command server in ``config.workers`` processes until cancelled.

    Reports the bound addresses once every worker listens. Cancelling it stops every
    worker gracefully (their commands get SIGTERM, ``shutdown_grace``, then SIGKILL for
    their process groups) and returns once all have exited; a worker still running
    :data:`STOP_MARGIN` seconds after its grace is killed. A worker that dies meanwhile
    is logged and restarted, after a delay that grows while it keeps dying young.

    The caller checks the platform (:func:`require_worker_sockets`) and the bind safety
    first, as :func:`~framekit.serve` does.

    Raises:
        ListenError: the port could not be bound.
        OSError: the upload directory is unusable.
        Exception: a worker failed to start (what it raised).
    """
    if config.upload_dir is not None:  # once, here: a worker's cleanup would delete the
        await SharedState.create(config)  # uploads other workers have in progress
    groups = await _bind(config)
    try:
        bound = [(str(g[0].getsockname()[0]), int(g[0].getsockname()[1])) for g in groups]
        log_listening(config, bound, f", {config.workers} worker processes")
        workers = [_Worker(config, i, [g[i] for g in groups]) for i in range(config.workers)]
        async with trio.open_nursery() as nursery:
            failures: list[Exception] = []
            async with trio.open_nursery() as starting:  # all at once

                async def start(worker: _Worker) -> None:
                    try:
                        await nursery.start(worker.run)
                    except Exception as exc:  # the first failure is the one raised
                        failures.append(exc)
                        starting.cancel_scope.cancel()

                for worker in workers:
                    starting.start_soon(start, worker)
            if failures:
                raise failures[0]  # the workers that started are stopped on the way out
            ReportValue(task_status, bound).started()
    finally:
        for sock in (s for group in groups for s in group):
            sock.close()
    raise AssertionError("unreachable")  # pragma: no cover


# -- a worker -----------------------------------------------------------------------------


class _Channel:
    """The worker's end of its channel: whole frames, written under a lock (log records
    may come from any thread), blocking (the supervisor reads all the time)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self.encoder = FrameEncoder()
        self.ready = False

    def send(self, kind: str, value: object = None) -> None:
        data = memoryview(self.encoder.encode(pickle.dumps((kind, value))))
        with self.lock:
            while data:
                data = data[os.write(self.fd, data) :]


class _Forward(logging.Handler):
    """Every record of the worker, to the supervisor, which logs it as its own."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self.channel = channel
        self.gone = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.gone:
            return
        fields = dict(record.__dict__)
        fields.update(msg=record.getMessage(), args=None, exc_info=None)
        if record.exc_info:
            fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
        try:
            try:
                self.channel.send("log", fields)
            except (pickle.PicklingError, TypeError, AttributeError):  # an odd extra
                plain = logging.makeLogRecord({}).__dict__
                self.channel.send("log", {k: v for k, v in fields.items() if k in plain})
        except OSError:
            self.gone = True  # the supervisor died: the worker is stopping anyway


def _ignore(signum: int, frame: object) -> None:
    pass


def _read_settings(fd: int) -> dict[str, Any]:
    decoder = FrameDecoder()
    try:
        while (frame := decoder.next_frame()) is NEED_DATA:
            decoder.receive_data(os.read(fd, 65536))
    except ProtocolError:  # cut short: the supervisor stopped (or died) while sending
        raise SystemExit(0) from None
    if not isinstance(frame, bytes):  # end of file: the supervisor is gone already
        raise SystemExit(0)
    settings: dict[str, Any] = pickle.loads(frame)
    return settings


def worker_main(argv: list[str]) -> None:
    """A worker process: ``framekit-worker INDEX CONTROL_FD CHANNEL_FD`` (see the module)."""
    # Ctrl-C and a closed terminal reach the whole process group: the supervisor stops
    # the workers itself. A handler, not SIG_IGN, which commands would inherit.
    signal.signal(signal.SIGINT, _ignore)
    signal.signal(signal.SIGHUP, _ignore)
    control, channel_fd = int(argv[2]), int(argv[3])
    channel = _Channel(channel_fd)
    settings = _read_settings(control)
    for fd in (control, channel_fd, *settings["listeners"]):
        os.set_inheritable(fd, False)  # pass_fds made them inheritable: not for commands
    root = logging.getLogger()
    root.handlers[:] = [_Forward(channel)]
    root.setLevel(settings["log_level"])
    try:
        trio.run(_work, settings, control, channel)
    except BaseException as exc:
        if channel.ready:  # it served, then failed: a bug, with its traceback
            log.critical("worker %s failed", argv[1], exc_info=exc)
        else:  # the supervisor raises it (a worker it restarts logs it)
            with contextlib.suppress(OSError):
                try:
                    pickle.loads(pickle.dumps(exc))
                    channel.send("failed", exc)
                except Exception:
                    channel.send("failed", RuntimeError(f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None


async def _work(settings: dict[str, Any], control: int, channel: _Channel) -> None:
    config = ServerConfig(**settings["config"])
    listeners = [
        trio.SocketListener(trio.socket.from_stdlib_socket(socket.socket(fileno=fd)))
        for fd in settings["listeners"]
    ]
    uploads = None
    if config.upload_dir is not None:
        uploads = await UploadDirectory.open(config.upload_dir)
    shared = SharedState(config, uploads)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_connections, shared, listeners)
        channel.send("ready")
        channel.ready = True
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio.open_nursery() as waiting:
                waiting.start_soon(_until_end_of_file, control, waiting.cancel_scope)
                waiting.start_soon(_until_signal, signals, waiting.cancel_scope)
        nursery.cancel_scope.cancel()


async def _until_end_of_file(fd: int, done: trio.CancelScope) -> None:
    async with trio.lowlevel.FdStream(fd) as stream:
        while await stream.receive_some():
            pass
    log.debug("the supervisor closed its pipe; stopping")
    done.cancel()


async def _until_signal(signals: Any, done: trio.CancelScope) -> None:
    async for signum in signals:
        log.info("received %s; stopping", signal.Signals(signum).name)
        done.cancel()
        return
