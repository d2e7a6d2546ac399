"""Commands per second: framekit's command server against local spawning and a threaded server.

Usage:
    .venv/bin/python bench/commands.py [--quick] [--repeat N] [--commands N]
                                       [--arrangement processes|threads] [--only NAME,...]
                                       [--json OUT] [--markdown] [--load JSON]

Every case runs ``true`` a fixed number of times and reports commands/s (the median of
``--repeat`` runs; each run is timed from the first command's start to the last one's
end, over all clients):

* ``subprocess``: ``subprocess.run(["true"])`` in a loop, in a worker process.
* ``trio-run-process``: ``await trio.run_process(["true"])``, 1 task, and 8 concurrent
  tasks, in a worker process.
* ``popen-session`` and ``posix-spawn``: the spawn framekit's server needs (a new
  session, stdin from ``/dev/null``, stdout and stderr on pipes read to their end, then
  reaped), one command at a time in a worker process: through ``subprocess.Popen``
  (``start_new_session=True``, ``close_fds`` as default), as the server does, and
  through ``os.posix_spawnp`` (``setsid=True``, the descriptors set up by file actions),
  the cheaper spawn the issue names.
* ``threaded-server``: a tutorial-style server done competently, in its own process:
  ``socketserver.ThreadingTCPServer`` (a thread per connection) that reads a
  length-prefixed JSON argv, runs ``subprocess.run(argv, shell=False,
  capture_output=True)`` and answers with one length-prefixed reply (return code +
  output). Clients are blocking sockets on persistent connections.
* ``framekit-server``: ``framekit.serve`` in its own process (defaults: no token,
  loopback, ``max_processes`` 32). Clients are blocking sockets on persistent
  connections, like the threaded server's, speaking framekit's protocol through its
  sans-IO ``MessageEncoder``/``MessageDecoder``: one ``run`` request per command, then
  messages until its ``exit``, each checked ``exited`` with return code 0.
* ``framekit-server-w2``, ``framekit-server-w4``: the same server and clients, with
  ``workers=2`` (4): that many worker processes serve the one port (the server's CPU
  figure adds up the supervisor's and the workers').
* ``framekit-server+client``: the same server, driven by ``framekit.Client`` (Trio) on
  persistent connections, ``await client.run(["true"])`` in a loop, each result checked
  ``ok``: what an application using both halves of framekit gets.
* ``trio-minimal-server``: the threaded server's protocol served by the least a Trio
  server can do per command (``trio.serve_tcp``, a task per connection, ``Popen`` in the
  Trio thread, the pipes and a pidfd awaited with ``wait_readable``; no limits, no
  framing layer). The threaded server's blocking clients. It shows how close any Trio
  server can get on this machine.

Both servers get the same client arrangement. With ``--arrangement processes`` (the
default) each of the 8 connections is driven by its own client process, so neither
server is held back by a client sharing one interpreter (and one GIL) with seven
others; ``--arrangement threads`` puts all 8 connections in one client process instead
(8 threads for the blocking client, 8 Trio tasks for framekit). Each client runs a few
unmeasured commands when it connects, so connection set-up and first-use costs stay out
of the figures. The machine running the benchmark also runs every client, so on a
small machine the figures include the clients' CPU share.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import socketserver
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from _common import (
    CaseError,
    Worker,
    Workers,
    add_run_options,
    cpu_seconds,
    driver_parser,
    emit,
    error_lines,
    exit_on_eof,
    guarded,
    limit_lifetime,
    load_report,
    median_of,
    publish,
    read_command,
    selected,
    source_state,
    wait_for_quiet,
)
from framing import environment, fmt, markdown_table, text_table

SCRIPT = str(Path(__file__).resolve())
COMMAND = ["true"]
CLIENTS = 8
WARMUP = 5  # unmeasured commands per connection when it opens
#: Lifetime of any worker process, whatever happens.
WORKER_LIFETIME = 1800

PREFIX = struct.Struct("!I")
#: The threaded server's reply: return code, then the length of stdout + stderr.
REPLY = struct.Struct("!iI")


@dataclass(frozen=True)
class Impl:
    name: str
    kind: str  # "local" (one worker runs the commands) or "server" (server + clients)
    description: str
    reference: dict[int, float]  # the medians, by concurrency


IMPLS = {
    impl.name: impl
    for impl in [
        Impl("subprocess", "local", 'local `subprocess.run(["true"])` loop', {1: 1090}),
        Impl(
            "trio-run-process",
            "local",
            'local `await trio.run_process(["true"])`, 1 task / 8 concurrent tasks',
            {1: 650, 8: 910},
        ),
        Impl(
            "popen-session",
            "local",
            "local `Popen(['true'], start_new_session=True)`, stdout/stderr piped: "
            "framekit's spawn",
            {},
        ),
        Impl(
            "posix-spawn",
            "local",
            "local `os.posix_spawnp('true', setsid=True)`, the same pipes by file actions",
            {},
        ),
        Impl(
            "threaded-server",
            "server",
            "tutorial-style ThreadingTCPServer: length-prefixed argv, "
            "`subprocess.run(argv, capture_output=True)`, length-prefixed reply",
            {8: 1300},
        ),
        Impl(
            "trio-minimal-server",
            "server",
            "the threaded server's protocol on a minimal Trio server: inline `Popen`, "
            "pipes and a pidfd awaited; blocking clients",
            {},
        ),
        Impl(
            "framekit-server",
            "server",
            "framekit.serve (own process); blocking clients driving framekit's sans-IO "
            "message classes, one `run` request per command",
            {},
        ),
        *(
            Impl(
                f"framekit-server-w{n}",
                "server",
                f"framekit.serve with workers={n} (own processes); the blocking clients of "
                "framekit-server",
                {},
            )
            for n in (2, 4)
        ),
        Impl(
            "framekit-server+client",
            "server",
            "framekit.serve (own process); framekit.Client `run(['true'])` per command",
            {},
        ),
    ]
}
#: The local spawn loops run one command at a time; everything else at 1 and at CLIENTS.
CONCURRENCY = {"subprocess": (1,), "popen-session": (1,), "posix-spawn": (1,)}


@dataclass(frozen=True)
class Target:
    what: str
    impl: str
    conc: int
    peer: str
    peer_conc: int
    threshold: float


TARGETS = (
    # Issue 13's goals, each against framekit's strongest form on this machine.
    Target(
        "8 clients, 2 workers vs threaded server",
        "framekit-server-w2",
        8,
        "threaded-server",
        8,
        1.2,
    ),
    Target("1 client vs threaded server", "framekit-server", 1, "threaded-server", 1, 1.0),
)
#: Shown for context, not targets.
CONTEXT = (
    ("8 clients, 1 worker vs threaded server", "framekit-server", 8, "threaded-server", 8),
    ("1 client vs local trio.run_process", "framekit-server", 1, "trio-run-process", 1),
    (
        "8 clients, framekit.Client vs threaded server",
        "framekit-server+client",
        8,
        "threaded-server",
        8,
    ),
    (
        "1 client, framekit.Client vs local trio.run_process",
        "framekit-server+client",
        1,
        "trio-run-process",
        1,
    ),
    (
        "8 clients, minimal Trio server vs threaded server",
        "trio-minimal-server",
        8,
        "threaded-server",
        8,
    ),
    (
        "1 client, 2 workers vs threaded server",
        "framekit-server-w2",
        1,
        "threaded-server",
        1,
    ),
    ("8 clients, 2 workers vs 1 worker", "framekit-server-w2", 8, "framekit-server", 8),
    ("1 client, 2 workers vs 1 worker", "framekit-server-w2", 1, "framekit-server", 1),
    ("8 clients vs local trio.run_process x8", "framekit-server", 8, "trio-run-process", 8),
    ("1 client vs local subprocess.run", "framekit-server", 1, "subprocess", 1),
    ("local posix_spawnp vs Popen, framekit's spawn", "posix-spawn", 1, "popen-session", 1),
)


# -- worker processes ------------------------------------------------------------------------


def recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    """Exactly ``n`` bytes, or ``None`` at a clean EOF before the first byte."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if buf:
                raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
            return None
        buf += chunk
    return bytes(buf)


class ThreadedCommandHandler(socketserver.BaseRequestHandler):
    """One thread per connection: request = prefix + JSON argv; reply = rc, size, output."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            head = recv_exactly(sock, PREFIX.size)
            if head is None:
                return
            body = recv_exactly(sock, PREFIX.unpack(head)[0])
            if body is None:
                return
            argv = json.loads(body)
            try:
                done = subprocess.run(argv, shell=False, capture_output=True, check=False)
                rc, output = done.returncode, done.stdout + done.stderr
            except OSError as exc:
                rc, output = 127, str(exc).encode()
            sock.sendall(REPLY.pack(rc, len(output)) + output)


class ThreadedCommandServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


async def minimal_trio_spawn(argv: list[str]) -> tuple[int, bytes]:
    """``true`` the cheapest way Trio allows: inline ``Popen``, pipes and a pidfd awaited."""
    import trio

    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    output = bytearray()
    pipes = [proc.stdout, proc.stderr]
    for pipe in pipes:
        assert pipe is not None
        os.set_blocking(pipe.fileno(), False)
    while pipes:
        pipe = pipes[0]
        assert pipe is not None
        try:
            data = os.read(pipe.fileno(), 65536)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(pipe)
            continue
        if data:
            output += data
        else:
            pipes.pop(0).close()  # type: ignore[union-attr]
    if proc.poll() is None:
        pidfd = os.pidfd_open(proc.pid)
        try:
            await trio.lowlevel.wait_readable(pidfd)
        finally:
            os.close(pidfd)
    return proc.wait(), bytes(output)


def run_minimal_trio_server() -> None:
    import trio

    async def handler(stream: trio.SocketStream) -> None:
        buf = bytearray()
        while True:
            while len(buf) < PREFIX.size or len(buf) < PREFIX.size + PREFIX.unpack_from(buf)[0]:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buf += data
            end = PREFIX.size + PREFIX.unpack_from(buf)[0]
            argv = json.loads(buf[PREFIX.size : end])
            del buf[:end]
            try:
                rc, output = await minimal_trio_spawn(argv)
            except OSError as exc:
                rc, output = 127, str(exc).encode()
            await stream.send_all(REPLY.pack(rc, len(output)) + output)

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        emit(f"PORT {listeners[0].socket.getsockname()[1]}")
        await trio.serve_listeners(handler, listeners)

    exit_on_eof()
    trio.run(main)


def run_server(impl: str) -> None:
    if impl == "threaded-server":
        server = ThreadedCommandServer(("127.0.0.1", 0), ThreadedCommandHandler)
        exit_on_eof()
        emit(f"PORT {server.server_address[1]}")
        server.serve_forever()
        return
    if impl == "trio-minimal-server":
        run_minimal_trio_server()
        return

    import trio

    import framekit

    workers = int(impl.rpartition("-w")[2]) if impl.startswith("framekit-server-w") else 1

    async def main() -> None:
        config = framekit.ServerConfig(host="127.0.0.1", tcp_port=0, udp_port=None, workers=workers)
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(framekit.serve, config)
            emit(f"PORT {addresses.tcp[0][1]}")

    exit_on_eof()
    trio.run(main)


def blocking_command(sock: socket.socket, request: bytes) -> int:
    sock.sendall(request)
    head = recv_exactly(sock, REPLY.size)
    if head is None:
        raise ConnectionError("the server closed the connection")
    rc, size = REPLY.unpack(head)
    if size and recv_exactly(sock, size) is None:
        raise ConnectionError("the server closed the connection")
    return int(rc)


def split(count: int, parts: int) -> list[int]:
    """``count`` shared as evenly as possible among ``parts``."""
    return [count // parts + (i < count % parts) for i in range(parts)]


def blocking_ok(sock: socket.socket, request: bytes) -> bool:
    return blocking_command(sock, request) == 0


def report_result(count: int, t0: float, t1: float, failures: int) -> None:
    emit("RESULT " + json.dumps({"count": count, "t0": t0, "t1": t1, "failures": failures}))


def repeat_command(one: Callable[[], bool], n: int, failures: list[int]) -> None:
    for _ in range(n):
        if not one():
            failures.append(1)


def drive_blocking_clients(commands: list[Callable[[], bool]]) -> None:
    """For each ``RUN n``, run ``n`` commands shared among the connections, each callable
    running one command on its own connection (a thread each when there are several)."""
    emit("CONNECTED")
    while words := read_command():
        count = int(words[1])
        failures: list[int] = []
        t0 = time.monotonic()
        if len(commands) == 1:
            repeat_command(commands[0], count, failures)
        else:
            threads = [
                threading.Thread(target=repeat_command, args=(one, n, failures))
                for one, n in zip(commands, split(count, len(commands)), strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        report_result(count, t0, time.monotonic(), len(failures))


def run_threaded_clients(port: int, conns: int) -> None:
    body = json.dumps(COMMAND).encode()
    request = PREFIX.pack(len(body)) + body
    commands = []
    for _ in range(conns):
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(WARMUP):
            blocking_command(sock, request)
        commands.append(partial(blocking_ok, sock, request))
    drive_blocking_clients(commands)


class BlockingFramekitClient:
    """framekit's protocol over a blocking socket, through the sans-IO message classes."""

    def __init__(self, port: int) -> None:
        import framekit

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.framekit = framekit
        self.encoder = framekit.MessageEncoder()
        self.decoder = framekit.MessageDecoder()
        self.ids = 0
        hello = self.next_header()
        if hello.get("type") != "hello" or hello.get("auth") != "none":
            raise ConnectionError(f"unexpected greeting {hello.fields}")

    def next_header(self) -> Any:
        """The next message's header (its body, if any, is skipped)."""
        framekit = self.framekit
        header = None
        while True:
            event = self.decoder.next_event()
            if event is framekit.NEED_DATA:
                self.decoder.receive_data(self.sock.recv(65536))
                continue
            if isinstance(event, framekit.Header):
                header = event
            elif isinstance(event, framekit.EndOfMessage):
                return header
            elif event is framekit.END_OF_STREAM:
                raise ConnectionError("the server closed the connection")

    def run(self, argv: list[str]) -> bool:
        """Run ``argv``; whether it exited with 0."""
        self.ids += 1
        self.sock.sendall(self.encoder.message({"type": "run", "id": self.ids, "argv": argv}))
        while True:
            header = self.next_header()
            kind = header.get("type")
            if kind == "exit":
                return bool(header.get("status") == "exited" and header.get("returncode") == 0)
            if kind != "output":
                raise ConnectionError(f"unexpected reply {header.fields}")


def run_blocking_framekit_clients(port: int, conns: int) -> None:
    commands = []
    for _ in range(conns):
        client = BlockingFramekitClient(port)
        for _ in range(WARMUP):
            client.run(COMMAND)
        commands.append(partial(client.run, COMMAND))
    drive_blocking_clients(commands)


def run_framekit_clients(port: int, conns: int) -> None:
    import trio

    import framekit

    async def loop(client: framekit.Client, n: int, failures: list[int]) -> None:
        for _ in range(n):
            if not (await client.run(COMMAND)).ok:
                failures.append(1)

    async def main() -> None:
        clients = []
        try:
            for _ in range(conns):
                with trio.fail_after(60):
                    client = await framekit.Client.connect("127.0.0.1", port)
                clients.append(client)
                for _ in range(WARMUP):
                    await client.run(COMMAND)
            emit("CONNECTED")
            while words := await trio.to_thread.run_sync(read_command):
                count = int(words[1])
                failures: list[int] = []
                t0 = time.monotonic()
                async with trio.open_nursery() as nursery:
                    for client, n in zip(clients, split(count, conns), strict=True):
                        nursery.start_soon(loop, client, n, failures)
                report_result(count, t0, time.monotonic(), len(failures))
        finally:
            for client in clients:
                await client.aclose()

    trio.run(main)


async def trio_local(count: int, conc: int) -> tuple[float, float]:
    import trio

    async def loop(n: int) -> None:
        for _ in range(n):
            await trio.run_process(COMMAND)  # check=True: a failure raises

    await trio.run_process(COMMAND)  # warm up trio's process machinery
    t0 = time.monotonic()
    async with trio.open_nursery() as nursery:
        for n in split(count, conc):
            nursery.start_soon(loop, n)
    return t0, time.monotonic()


def popen_session() -> int:
    """``true`` spawned as framekit's server spawns it, through ``subprocess.Popen``."""
    proc = subprocess.Popen(
        COMMAND,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    with proc.stdout, proc.stderr:
        while proc.stdout.read1(65536):
            pass
        while proc.stderr.read1(65536):
            pass
    return proc.wait()


def posix_spawn_session(devnull: int) -> int:
    """The same through ``os.posix_spawnp``: a new session, the descriptors by file
    actions (every other one is close-on-exec already), SIGPIPE and SIGXFSZ back to
    their defaults as ``Popen`` restores them."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawnp(
            COMMAND[0],
            COMMAND,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setsid=True,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
    finally:
        os.close(out_w)
        os.close(err_w)
    try:
        while os.read(out_r, 65536):
            pass
        while os.read(err_r, 65536):
            pass
    finally:
        os.close(out_r)
        os.close(err_r)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def spawn_with_run(argv: list[str]) -> int:
    """``subprocess.run(argv)``: the plain local loop."""
    return subprocess.run(argv, check=False).returncode


def run_local(impl: str, conc: int) -> None:
    if impl == "trio-run-process":
        import trio  # before the first run, so no run pays for the import
    elif impl == "posix-spawn":
        devnull = os.open(os.devnull, os.O_RDWR)
        spawn: Callable[[], int] = partial(posix_spawn_session, devnull)
    elif impl == "popen-session":
        spawn = popen_session
    else:
        spawn = partial(spawn_with_run, COMMAND)
    while words := read_command():
        count = int(words[1])
        failures = 0
        if impl == "trio-run-process":
            t0, t1 = trio.run(trio_local, count, conc)
        else:
            t0 = time.monotonic()
            for _ in range(count):
                if spawn() != 0:
                    failures += 1
            t1 = time.monotonic()
        report_result(count, t0, t1, failures)


def worker_main(argv: list[str]) -> None:
    """``worker local IMPL CONC`` | ``worker server IMPL`` | ``worker client IMPL PORT CONNS``."""
    limit_lifetime(WORKER_LIFETIME)
    role, impl = argv[0], argv[1]
    if role == "local":
        run_local(impl, int(argv[2]))
    elif role == "server":
        run_server(impl)
    elif impl in ("threaded-server", "trio-minimal-server"):
        run_threaded_clients(int(argv[2]), int(argv[3]))
    elif impl == "framekit-server" or impl.startswith("framekit-server-w"):
        run_blocking_framekit_clients(int(argv[2]), int(argv[3]))
    else:
        run_framekit_clients(int(argv[2]), int(argv[3]))


# -- driver ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    impl: str
    conc: int

    @property
    def key(self) -> str:
        return f"{self.impl} x{self.conc}"


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (a server's workers), from /proc; [] without it.
    Each thread lists the children it started (Trio starts processes from a thread)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(found))


def tree_cpu_seconds(pids: list[int]) -> float | None:
    """CPU seconds ``pids`` used together (a server: its supervisor and its workers)."""
    used = [cpu_seconds(pid) for pid in pids]
    return None if None in used else sum(u for u in used if u is not None)


def trial(
    clients: list[Worker],
    count: int,
    timeout: float,
    server: Worker | None,
    server_workers: tuple[int, ...] | list[int] = (),
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    watched = [[server.proc.pid, *server_workers]] if server is not None else []
    watched += [[w.proc.pid] for w in clients]
    cpu_before = [tree_cpu_seconds(pids) for pids in watched]
    for worker, n in zip(clients, split(count, len(clients)), strict=True):
        worker.send(f"RUN {n}")
    results = [json.loads(w.expect("RESULT", deadline)) for w in clients]
    cpu_after = [tree_cpu_seconds(pids) for pids in watched]
    failures = sum(r["failures"] for r in results)
    if failures:
        raise CaseError(f"{failures} of {count} commands failed")
    elapsed = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    if elapsed <= 0:
        raise CaseError(f"nothing measured: {results}")
    used = [
        None if a is None or b is None else a - b
        for a, b in zip(cpu_after, cpu_before, strict=True)
    ]
    server_used, client_used = (used[0], used[1:]) if server is not None else (None, used)
    per_command = {
        "server_cpu_ms": None if server_used is None else server_used / count * 1e3,
        "client_cpu_ms": None if None in client_used else sum(client_used) / count * 1e3,
    }
    return {"count": count, "elapsed": elapsed, "cps": count / elapsed, **per_command}


class Setup:
    """The worker processes of one case, started once and used by every round."""

    def __init__(self, case: Case, arrangement: str, workers: Workers) -> None:
        impl = IMPLS[case.impl]
        self.server: Worker | None = None
        #: The server's worker processes (framekit-server-wN), counted as the server.
        self.server_workers: list[int] = []
        if impl.kind == "local":
            args = ["worker", "local", case.impl, str(case.conc)]
            self.clients = [workers.start(case.key, SCRIPT, args)]
            return
        self.server = workers.start(f"{case.key} server", SCRIPT, ["worker", "server", case.impl])
        port = self.server.expect("PORT", time.monotonic() + 30)
        self.server_workers = children(self.server.proc.pid)
        layout = [1] * case.conc if arrangement == "processes" else [case.conc]
        self.clients = [
            workers.start(
                f"{case.key} client {i}", SCRIPT, ["worker", "client", case.impl, port, str(n)]
            )
            for i, n in enumerate(layout)
        ]
        deadline = time.monotonic() + 60
        for worker in self.clients:
            worker.expect("CONNECTED", deadline)

    @property
    def pids(self) -> list[int]:
        workers = ([self.server] if self.server is not None else []) + self.clients
        return [w.proc.pid for w in workers] + self.server_workers


def run_cases(
    cases: list[Case], counts: dict[Case, int], args: argparse.Namespace, repeat: int
) -> list[dict[str, Any]]:
    """Every case's workers start first; then each round runs one trial of every case
    (in a rotating order), so a burst of outside load hits all cases alike instead of
    one case's every run."""
    workers = Workers()
    setups: dict[Case, Setup] = {}
    errors: dict[Case, str] = {}
    runs: dict[Case, list[dict[str, Any]]] = {case: [] for case in cases}
    try:
        for case in cases:
            try:
                setups[case] = Setup(case, args.arrangement, workers)
            except CaseError as exc:
                errors[case] = str(exc)
                print(f"{case.key}: ERROR: {exc}", file=sys.stderr)
        for rnd in range(repeat):
            busy = wait_for_quiet(args.quiet, args.quiet_wait) if args.quiet < 1 else None
            if busy is not None and busy > args.quiet:
                print(f"warning: the machine is {busy:.0%} busy with other work", file=sys.stderr)
            shift = rnd % len(cases)
            for case in cases[shift:] + cases[:shift]:
                if case in errors:
                    continue
                setup = setups[case]
                t = time.monotonic()
                try:
                    r = guarded(
                        partial(
                            trial,
                            setup.clients,
                            counts[case],
                            args.timeout,
                            setup.server,
                            setup.server_workers,
                        ),
                        setup.pids,
                        args.max_interference,
                        args.retries,
                    )
                except CaseError as exc:
                    errors[case] = str(exc)
                    print(f"[round {rnd + 1}] {case.key}: ERROR: {exc}", file=sys.stderr)
                    continue
                runs[case].append(r)
                redo = f", redone {r['redone']}x" if r["redone"] else ""
                other = r["interference"]
                print(
                    f"[round {rnd + 1}/{repeat}] {case.key}: {fmt(r['cps'])}/s "
                    f"(cpu {cpu_cell(r)}; other load {fmt(other)} CPUs{redo}) "
                    f"[{time.monotonic() - t:.1f}s]",
                    file=sys.stderr,
                )
    finally:
        workers.close()
    results = []
    for case in cases:
        if case in errors:
            results.append({"impl": case.impl, "conc": case.conc, "error": errors[case]})
            continue
        case_runs = runs[case]
        results.append(
            {
                "impl": case.impl,
                "conc": case.conc,
                "count": counts[case],
                "runs": case_runs,
                "cps": statistics.median(r["cps"] for r in case_runs),
                "server_cpu_ms": median_of(case_runs, "server_cpu_ms"),
                "client_cpu_ms": median_of(case_runs, "client_cpu_ms"),
                "interference_max": max(
                    (r["interference"] for r in case_runs if r["interference"] is not None),
                    default=None,
                ),
            }
        )
    return results


def lookup(results: list[dict[str, Any]], impl: str, conc: int) -> dict[str, Any] | None:
    for r in results:
        if (r["impl"], r["conc"]) == (impl, conc):
            return r
    return None


def cps(results: list[dict[str, Any]], impl: str, conc: int) -> float | None:
    r = lookup(results, impl, conc)
    return r["cps"] if r is not None and "cps" in r else None


def paired(
    results: list[dict[str, Any]], ours: tuple[str, int], peer: tuple[str, int], limit: float
) -> list[float]:
    """framekit / peer per round (runs are interleaved by round), leaving out a round
    where either run was disturbed by other load (over ``limit`` CPUs)."""
    a, b = lookup(results, *ours), lookup(results, *peer)
    if a is None or b is None or "runs" not in a or "runs" not in b:
        return []

    def clean(run: dict[str, Any]) -> bool:
        return run.get("interference") is None or run["interference"] <= limit

    return [
        x["cps"] / y["cps"]
        for x, y in zip(a["runs"], b["runs"], strict=False)
        if clean(x) and clean(y)
    ]


def check_targets(results: list[dict[str, Any]], limit: float) -> list[dict[str, Any]]:
    """Each target's paired ratios: the median decides; with no undisturbed pair there
    is no ratio and no verdict."""
    rows: list[tuple[str, str, int, str, int, float | None]] = [
        (t.what, t.impl, t.conc, t.peer, t.peer_conc, t.threshold) for t in TARGETS
    ]
    rows += [(*c, None) for c in CONTEXT]
    checks = []
    for what, impl, conc, peer, peer_conc, threshold in rows:
        ratios = paired(results, (impl, conc), (peer, peer_conc), limit)
        row: dict[str, Any] = {
            "target": what,
            "framekit": f"{impl} x{conc}",
            "peer": f"{peer} x{peer_conc}",
            "threshold": threshold,
            "framekit_cps": cps(results, impl, conc),
            "peer_cps": cps(results, peer, peer_conc),
            "paired": ratios,
            "ratio": statistics.median(ratios) if ratios else None,
        }
        if row["framekit_cps"] is None or row["peer_cps"] is None:
            row["result"] = "n/a"
        elif not ratios:
            row["result"] = "disturbed"
        elif threshold is None:
            row["result"] = "info"
        else:
            row["result"] = "PASS" if row["ratio"] >= threshold else "FAIL"
        checks.append(row)
    return checks


def cpu_cell(r: dict[str, Any] | None) -> str:
    """``server / clients`` CPU ms per command (local cases: the spawning process's)."""
    if r is None or "error" in r or r.get("client_cpu_ms") is None:
        return "-"
    if r.get("server_cpu_ms") is None:
        return f"{r['client_cpu_ms']:.2f}"
    return f"{r['server_cpu_ms']:.2f} / {r['client_cpu_ms']:.2f}"


def results_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "implementation",
        "x1 commands/s",
        f"x{CLIENTS} commands/s",
        "x1 CPU ms/cmd",
        f"x{CLIENTS} CPU ms/cmd",
        "issue's figures",
    ]
    rows = []
    for name in dict.fromkeys(r["impl"] for r in results):
        row = [name]
        for conc in (1, CLIENTS):
            r = lookup(results, name, conc)
            row.append("ERROR" if r is not None and "error" in r else fmt(r and r["cps"]))
        row += [cpu_cell(lookup(results, name, conc)) for conc in (1, CLIENTS)]
        ref = IMPLS[name].reference
        row.append(", ".join(f"x{c}: ~{v:,.0f}" for c, v in ref.items()) or "-")
        rows.append(row)
    return header, rows


def target_rows(checks: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["target", "framekit", "peer", "paired ratio (min..max)", "needed", "result"]
    rows = [
        [
            c["target"],
            f"{fmt(c['framekit_cps'])}/s ({c['framekit']})",
            f"{fmt(c['peer_cps'])}/s ({c['peer']})",
            "-"
            if c["ratio"] is None
            else f"{c['ratio']:.2f}x ({min(c['paired']):.2f}..{max(c['paired']):.2f})",
            "-" if c["threshold"] is None else f">= {c['threshold']}x",
            c["result"],
        ]
        for c in checks
    ]
    return header, rows


def render(report: dict[str, Any], markdown: bool) -> str:
    results, checks = report["results"], report["targets"]
    out = []
    if markdown:
        out.append(markdown_table(*results_rows(results)))
        out.append("")
        out.append(markdown_table(*target_rows(checks), left=3))
    else:
        s = report["settings"]
        out.append(
            f"Commands/s running `true` (medians of {s['repeat']}; "
            f"{s['commands']} commands per 8-client run, {s['commands_one']} per 1-client run; "
            f"clients: {s['arrangement']})\n"
        )
        out.append(text_table(*results_rows(results)))
        out.append(
            "\nCPU ms/cmd: CPU time per command of the server process / of all client "
            "processes together\n(local cases: of the process that spawns), from /proc.\n"
        )
        loads = [
            f"{r['impl']} x{r['conc']} {fmt(r.get('interference_max'))}"
            for r in results
            if r.get("interference_max") is not None
        ]
        if loads:
            out.append("Outside load, max CPUs other work took during a run: " + ", ".join(loads))
            out.append("")
        out.append("Targets (framekit / peer, same run)\n")
        out.append(text_table(*target_rows(checks)))
    out += error_lines(results, lambda r: f"{r['impl']} x{r['conc']}")
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
        return 0
    parser = driver_parser(__doc__, "fewer commands, one run per case")
    parser.add_argument(
        "--commands",
        type=int,
        help="commands per 8-client run (default 1600; quick 400); 1-client runs do half",
    )
    parser.add_argument(
        "--arrangement",
        choices=("processes", "threads"),
        default="processes",
        help="8 clients as 8 processes (default) or as 8 threads/tasks in one process",
    )
    parser.add_argument("--only", help="comma-separated implementations: " + ", ".join(IMPLS))
    add_run_options(parser, "case")
    args = parser.parse_args()

    if args.load:
        report = load_report(args.load)
        # the targets as this version checks them (paired, disturbed rounds left out)
        report["targets"] = check_targets(
            report["results"], report["settings"].get("max_interference", 0.15)
        )
        print(render(report, markdown=args.markdown))
        return 0

    names = selected(parser, args.only, list(IMPLS), "implementation")
    repeat = args.repeat or (1 if args.quick else 3)
    commands = args.commands or (400 if args.quick else 1600)
    commands_one = max(1, commands // 2)
    cases = [Case(n, c) for n in names for c in CONCURRENCY.get(n, (1, CLIENTS))]

    started = time.monotonic()
    counts = {case: commands if case.conc > 1 else commands_one for case in cases}
    results = run_cases(cases, counts, args, repeat)

    report = {
        "environment": {**environment(), "source": source_state()},
        "settings": {
            "repeat": repeat,
            "commands": commands,
            "commands_one": commands_one,
            "arrangement": args.arrangement,
            "max_interference": args.max_interference,
            "quick": args.quick,
            "only": names,
        },
        "implementations": {n: IMPLS[n].description for n in names},
        "results": results,
        "targets": check_targets(results, args.max_interference),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    publish(report, render, args.markdown, args.json)
    print(f"\n{len(cases)} cases in {report['wall_seconds']} s", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
