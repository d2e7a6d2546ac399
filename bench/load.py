"""Load: 10,000 authenticated connections held by one framekit server, beside a minimal Trio
echo server holding as many; then 500 concurrent command clients.

Usage:
    .venv/bin/python bench/load.py [--quick] [--repeat N] [--connections N] [--clients N]
                                   [--cases connections,commands,profile] [--server cli|api]
                                   [--json OUT] [--markdown] [--load JSON]

Loopback only (the servers listen on a random address of 127.0.0.0/8, new for each run).
Every process is a worker of this script (or the ``framekit serve`` CLI run inside one)
that exits when its stdin closes and dies of SIGALRM after ``WORKER_LIFETIME`` whatever
happens; every wait of the driver has a deadline. The script raises its RLIMIT_NOFILE
soft limit to the hard limit (the workers inherit it, and raise their own too), and
scales the connection counts down, saying so, when that or the ephemeral port range
cannot hold them.

Case ``connections`` (run for ``framekit`` and ``echo``, interleaved, ``--repeat`` times;
the order alternates, and each repetition gives one paired ratio):

* The server runs in its own process. ``framekit``: ``framekit.serve`` (``--server api``,
  the default) or the ``framekit serve`` CLI itself (``--server cli``), with a token (from
  ``FRAMEKIT_TOKEN``), ``max_connections`` N+100, no UDP echo, logging at WARNING (any
  WARNING or ERROR line it logs counts as an error), every other limit at its default
  (``max_unauthenticated`` 64 included). ``echo``:
  ``trio.serve_tcp`` with a handler that echoes ``receive_some()`` with ``send_all`` until
  EOF, the least a Trio server holding a connection can be.
* ``--clients`` client processes (default 2, so the clients' work is spread over both
  CPUs as the server's is not) share the N connections. framekit's clients use
  ``framekit.Client.connect(token=...)`` and ``client.ping()``; the echo's use
  ``trio.open_tcp_stream`` and send 8 bytes, then read them back (and check them).
* Ramp: each client process opens its share with a fixed pool of connecting tasks; the
  pools add up to ``--ramp`` (default 64, the server's ``max_unauthenticated``), so no
  more than that many connections are ever authenticating at once. One connection per
  run is opened, pinged and closed first (warm-up), alone.
* All N are then held open together while ``--rounds`` burst rounds run (every held
  connection sends one ping at once, per round), then one bounded round (every
  connection pings once, ``--bounded`` round trips in flight at most, over all clients).
  Latency is timed around each round trip by the client (``perf_counter``). Any failed
  connect or round trip (each has its own deadline) is an error; the run needs zero.
* The server's ``/proc/PID/status`` is read before any connection (idle), after the
  warm-up, with all N open, and after the rounds with all N still open (VmRSS and VmHWM).
  Bytes per connection = (VmHWM with all N held, after the rounds - idle VmRSS) / N
  ("peak": the rounds leave their high-water mark), and (VmRSS with all N open, before
  any round - idle VmRSS) / N ("after ramp"). The goal compares the peak figure.

Case ``commands``: one framekit server (as above; ``max_connections`` clients+100,
``max_processes`` 32, ``queue_timeout`` 120 s), ``--command-clients`` connections (default
500, each its own authenticated ``framekit.Client``, shared by ``--clients`` processes,
ramped as above), one unmeasured ``true`` each, then every connection runs ``true``
``--commands-each`` times in a row, all connections at once. Commands/s is counted from the
first command's start to the last one's end; latency is per command, so with 500 clients
and 32 process slots it is mostly the wait for a slot.

Case ``profile`` (``--profile-connections``, default 1,000): a framekit server (in-process
API) and an echo server, each under ``tracemalloc``, hold that many connections; the
difference between snapshots taken after the warm-up and with all held (each after a
second of quiet) is listed by owner, the innermost framekit line (or echo handler line)
of each allocation's traceback, so a trio ``CancelScope`` is charged to the framekit line
that opened it; beside it, the GC-tracked objects gained per connection.

The machine is shared: before each repetition the driver waits (up to ``--quiet-wait``)
for the CPUs to be quiet, and it records how much CPU other work took during every run
(``interference``, in CPUs); a run over ``--max-interference`` is marked ``disturbed``.
Memory figures do not depend on it; latencies and commands/s do. A disturbed commands run
is redone if ``--retries`` allows (default 0: on a machine that is never quiet each redo
only adds a wait); a connections run is not (it would take minutes), only marked.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from _common import (
    CaseError,
    Interference,
    Worker,
    Workers,
    add_run_options,
    driver_parser,
    emit,
    exit_on_eof,
    guarded,
    limit_lifetime,
    load_report,
    publish,
    source_state,
    wait_for_quiet,
)
from framing import environment, fmt, markdown_table, text_table

SCRIPT = str(Path(__file__).resolve())
HOST_ENV = "FRAMEKIT_LOAD_HOST"
#: The servers' address: a random one of 127.0.0.0/8, picked by the driver for each run
#: (the workers inherit it), so that no other program on this machine that connects to
#: 127.0.0.1 reaches our servers by chance (a first run met 13 such connections).
HOST = os.environ.get(HOST_ENV, "127.0.0.1")
TOKEN_ENV = "FRAMEKIT_TOKEN"
#: Lifetime of any worker process, whatever happens.
WORKER_LIFETIME = 1800
#: Deadlines inside the clients: one connection (TCP + greeting + token), one round trip,
#: one command.
CONNECT_TIMEOUT = 30.0
PING_TIMEOUT = 60.0
COMMAND_TIMEOUT = 150.0
ECHO_PAYLOAD = b"ping1234"
COMMAND = ["true"]
#: The server's default; the ramp stays within it.
MAX_UNAUTHENTICATED = 64
MAX_PROCESSES = 32
QUEUE_TIMEOUT = 120.0
#: Goal: framekit's bytes per connection at most this many times the echo server's.
GOAL = 1.5
#: File descriptors a process needs besides its connections.
FD_MARGIN = 256
IMPLS = ("framekit", "echo")
CASES = ("connections", "commands", "profile")


# -- limits ----------------------------------------------------------------------------------


def raise_nofile(need: int = 0) -> dict[str, Any]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it).

    Returns what it found and did; ``ok`` is False when even the hard limit is below
    ``need``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            target = max(soft, need, 65536)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            target = soft
    else:
        target = soft
    return {"soft_before": soft, "hard": hard, "soft": target, "need": need, "ok": target >= need}


def port_range() -> tuple[int, int] | None:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return None
    return int(low), int(high)


def split(count: int, parts: int) -> list[int]:
    """``count`` shared as evenly as possible among ``parts``."""
    return [count // parts + (i < count % parts) for i in range(parts)]


# -- the worker side -------------------------------------------------------------------------


def run_cli_server(cli_args: list[str]) -> None:
    """``framekit serve`` itself, in this process: bounded, and stopped by SIGTERM (its
    graceful stop) when our stdin closes."""

    def watch() -> None:
        sys.stdin.read()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    sys.argv = ["framekit", "serve", *cli_args]
    from framekit_cli.app import main

    main()


#: Frames kept per traced allocation: enough to reach, from trio's or the stdlib's own
#: allocation, the framekit (or echo handler) line that caused it.
TRACE_FRAMES = 40


def tracing_control(name: str) -> None:
    """Answer ``N n``, ``SNAP_IDLE`` and ``SNAP_HELD`` on stdin with tracemalloc and gc
    figures, per connection (``n`` of them) between the two snapshots.

    Each allocation is charged to its *owner*: the innermost framekit frame of its
    traceback (or the echo handler's), so that a trio ``CancelScope`` shows up as the
    framekit line that opened it; allocations with no such frame are charged to their own
    site (trio's accept loop and task machinery, the socket objects). Order matters: the
    object census of the idle state is taken before its snapshot, and that of the held
    state after both snapshots are gone, so neither measures the other.
    """
    import linecache
    import tracemalloc

    saved: dict[str, Any] = {}
    echo_code = run_echo_server.__code__
    echo_lines = range(echo_code.co_firstlineno, echo_code.co_firstlineno + 40)

    def type_counts() -> tuple[Counter[type], Counter[type]]:
        counts: Counter[type] = Counter()
        sizes: Counter[type] = Counter()
        objects = gc.get_objects()
        for obj in objects:
            if obj is not objects:
                counts[type(obj)] += 1
                sizes[type(obj)] += sys.getsizeof(obj)
        return counts, sizes

    def snapshot() -> Any:
        gc.collect()
        return tracemalloc.take_snapshot().filter_traces(
            [
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
                tracemalloc.Filter(False, "<unknown>"),
            ]
        )

    def owner(traceback: Any) -> tuple[str, str, int]:
        for frame in reversed(traceback):  # innermost first
            path = frame.filename
            if "/framekit/" in path or (path == SCRIPT and frame.lineno in echo_lines):
                return "app", path, frame.lineno
        frame = traceback[-1]
        return "lib", frame.filename, frame.lineno

    def idle() -> str:
        saved["types"] = type_counts()
        saved["snap"] = snapshot()
        return "ok"

    def held() -> str:
        n = max(1, int(saved.get("n", 1)))
        snap = snapshot()
        base = saved.pop("snap")
        by_owner: Counter[tuple[str, str, int]] = Counter()
        blocks: Counter[tuple[str, str, int]] = Counter()
        for stat in snap.compare_to(base, "traceback"):
            key = owner(stat.traceback)
            by_owner[key] += stat.size_diff
            blocks[key] += stat.count_diff
        by_file: Counter[str] = Counter()
        for stat in snap.compare_to(base, "filename"):
            by_file[short_path(stat.traceback[0].filename)] += stat.size_diff
        total = sum(by_owner.values())
        del snap, base
        counts, sizes = type_counts()
        before_counts, before_sizes = saved.pop("types")
        sites = [
            {
                "site": ("" if kind == "app" else "(in trio/stdlib) ")
                + f"{short_path(path)}:{line}",
                "code": linecache.getline(path, line).strip()[:90],
                "bytes_per_conn": size / n,
                "blocks_per_conn": blocks[kind, path, line] / n,
            }
            for (kind, path, line), size in by_owner.most_common(40)
        ]
        objects = sorted(
            (
                {
                    "type": f"{kind.__module__}.{kind.__qualname__}",
                    "per_conn": (counts[kind] - before_counts[kind]) / n,
                    "bytes_per_conn": (sizes[kind] - before_sizes[kind]) / n,
                }
                for kind in counts
                if counts[kind] - before_counts[kind] >= n // 2
            ),
            key=lambda x: -x["bytes_per_conn"],
        )[:30]
        return json.dumps(
            {
                "name": name,
                "connections": n,
                "traced_bytes_per_conn": total / n,
                "sites": sites,
                "files": [{"file": f, "bytes_per_conn": b / n} for f, b in by_file.most_common(15)],
                "objects": objects,
            }
        )

    def loop() -> None:
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["N"]:
                saved["n"] = int(words[1])
                emit("N ok")
            elif words[:1] == ["SNAP_IDLE"]:
                emit(f"SNAP_IDLE {idle()}")
            elif words[:1] == ["SNAP_HELD"]:
                emit(f"SNAP_HELD {held()}")
            else:
                emit(f"ERROR unknown {line!r}")
        os._exit(0)

    threading.Thread(target=loop, daemon=True).start()


def short_path(filename: str) -> str:
    """``trio/_socket.py``, ``framekit/remote/_server.py``, ``json/decoder.py``, ..."""
    if filename == SCRIPT:
        return "bench/load.py"
    at = filename.find("site-packages/")
    if at >= 0:
        return filename[at + len("site-packages/") :]
    at = filename.rfind("/framekit/")
    if at >= 0:
        return filename[at + 1 :]
    return re.sub(r"^.*/lib/python3\.\d+/", "", filename)


def run_api_server(
    max_connections: int, max_processes: int, queue_timeout: float, trace: bool
) -> None:
    """``framekit.serve`` in this process, configured and logging as ``framekit serve``
    would be with the same flags (and able to answer tracemalloc questions)."""
    import logging

    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if trace:
        import tracemalloc

        tracemalloc.start(TRACE_FRAMES)
    import trio

    import framekit

    async def main() -> None:
        config = framekit.ServerConfig(
            host=HOST,
            tcp_port=0,
            udp_port=None,
            token=os.environ[TOKEN_ENV],
            max_connections=max_connections,
            max_processes=max_processes,
            queue_timeout=queue_timeout,
        )
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(framekit.serve, config)
            emit(f"PORT {addresses.tcp[0][1]}")

    if trace:
        tracing_control("framekit")
    else:
        exit_on_eof()
    trio.run(main)


def run_echo_server(trace: bool) -> None:
    """The peer: a minimal Trio echo server (a task per connection, echo until EOF)."""
    if trace:
        import tracemalloc

        tracemalloc.start(TRACE_FRAMES)
    import trio

    async def echo(stream: trio.SocketStream) -> None:
        try:
            while data := await stream.receive_some():
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host=HOST))
            emit(f"PORT {listeners[0].socket.getsockname()[1]}")

    if trace:
        tracing_control("echo")
    else:
        exit_on_eof()
    trio.run(main)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def read_line() -> list[str]:
    import trio

    line = await trio.to_thread.run_sync(sys.stdin.readline)
    return line.split() if line else []


async def open_many(
    connect: Any, count: int, ramp: int, conns: list[Any], errors: list[str]
) -> dict[str, Any]:
    """Open ``count`` connections with a pool of ``ramp`` connecting tasks."""
    import trio

    remaining = count
    in_flight = peak = 0
    started = time.monotonic()

    async def opener() -> None:
        nonlocal remaining, in_flight, peak
        while remaining > 0:
            remaining -= 1
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                with trio.fail_after(CONNECT_TIMEOUT):
                    conns.append(await connect())
            except Exception as exc:
                errors.append(describe(exc))
            finally:
                in_flight -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(min(ramp, count)):
            nursery.start_soon(opener)
    return {
        "opened": len(conns),
        "errors": len(errors),
        "first_errors": errors[:5],
        "seconds": time.monotonic() - started,
        "max_in_flight": peak,
    }


def run_conn_client(kind: str, port: int, count: int, ramp: int) -> None:
    """Hold ``count`` connections to ``port``; ``WARM``, ``OPEN``, ``ROUNDS k conc``, ``CLOSE``."""
    import trio

    token = os.environ.get(TOKEN_ENV)
    if kind == "framekit":
        import framekit

        async def connect() -> Any:
            return await framekit.Client.connect(
                HOST, port, token=token, handshake_timeout=CONNECT_TIMEOUT
            )

        async def ping(conn: Any) -> None:
            await conn.ping()

    else:

        async def connect() -> Any:
            return await trio.open_tcp_stream(HOST, port)

        async def ping(conn: Any) -> None:
            await conn.send_all(ECHO_PAYLOAD)
            got = b""
            while len(got) < len(ECHO_PAYLOAD):
                data = await conn.receive_some(len(ECHO_PAYLOAD) - len(got))
                if not data:
                    raise ConnectionError("the echo server closed the connection")
                got += data
            if got != ECHO_PAYLOAD:
                raise ConnectionError(f"echoed {got!r}, sent {ECHO_PAYLOAD!r}")

    async def rounds(conns: list[Any], k: int, conc: int) -> dict[str, Any]:
        latencies: list[int] = []
        errors: list[str] = []
        broken: list[Any] = []
        per_round = []

        async def one(conn: Any) -> None:
            start = time.perf_counter()
            try:
                with trio.fail_after(PING_TIMEOUT):
                    await ping(conn)
            except Exception as exc:
                errors.append(describe(exc))
                broken.append(conn)
                return
            latencies.append(round((time.perf_counter() - start) * 1e6))

        for _ in range(k):
            live = [c for c in conns if c not in broken]
            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                if conc <= 0:  # all at once
                    for conn in live:
                        nursery.start_soon(one, conn)
                else:
                    queue = iter(live)

                    async def runner(queue: Any = queue) -> None:
                        for conn in queue:
                            await one(conn)

                    for _ in range(min(conc, len(live))):
                        nursery.start_soon(runner)
            per_round.append({"round_trips": len(live), "seconds": time.perf_counter() - start})
        for conn in broken:
            conns.remove(conn)
            await trio.aclose_forcefully(conn.stream if kind == "framekit" else conn)
        return {
            "latencies_us": latencies,
            "errors": len(errors),
            "first_errors": errors[:5],
            "rounds": per_round,
            "held": len(conns),
        }

    async def main() -> None:
        conns: list[Any] = []
        emit("READY")
        while words := await read_line():
            if words[0] == "WARM":
                warm: list[Any] = []
                opened = await open_many(connect, 1, 1, warm, [])
                pinged = await rounds(warm, 1, 0)
                for conn in warm:
                    await conn.aclose()
                result = {
                    "connect_errors": opened["errors"],
                    "ping_errors": pinged["errors"],
                    "first_errors": opened["first_errors"] + pinged["first_errors"],
                }
                emit("WARMED " + json.dumps(result))
            elif words[0] == "OPEN":
                emit("OPENED " + json.dumps(await open_many(connect, count, ramp, conns, [])))
            elif words[0] == "ROUNDS":
                emit("ROUNDS " + json.dumps(await rounds(conns, int(words[1]), int(words[2]))))
            elif words[0] == "CLOSE":
                start = time.monotonic()
                for conn in conns:
                    await conn.aclose()
                conns.clear()
                emit("CLOSED " + json.dumps({"seconds": time.monotonic() - start}))
            else:
                emit(f"ERROR unknown {words!r}")

    trio.run(main)


def run_cmd_client(port: int, count: int, ramp: int) -> None:
    """``count`` framekit clients; ``OPEN`` (and one command each), ``RUN k``, ``CLOSE``."""
    import trio

    import framekit

    token = os.environ.get(TOKEN_ENV)

    async def connect() -> Any:
        return await framekit.Client.connect(
            HOST, port, token=token, handshake_timeout=CONNECT_TIMEOUT
        )

    async def run_each(clients: list[Any], k: int) -> dict[str, Any]:
        latencies: list[int] = []
        errors: list[str] = []

        async def loop(client: Any) -> None:
            for _ in range(k):
                start = time.perf_counter()
                try:
                    with trio.fail_after(COMMAND_TIMEOUT):
                        result = await client.run(COMMAND)
                except Exception as exc:
                    errors.append(describe(exc))
                    continue
                if not result.ok:
                    errors.append(f"{result.status} rc={result.returncode}")
                    continue
                latencies.append(round((time.perf_counter() - start) * 1e6))

        t0 = time.monotonic()
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(loop, client)
        return {
            "t0": t0,
            "t1": time.monotonic(),
            "commands": k * len(clients),
            "latencies_us": latencies,
            "errors": len(errors),
            "first_errors": errors[:5],
        }

    async def main() -> None:
        clients: list[Any] = []
        emit("READY")
        while words := await read_line():
            if words[0] == "OPEN":
                result = await open_many(connect, count, ramp, clients, [])
                warm = await run_each(clients, 1)
                result["warmup_errors"] = warm["errors"]
                result["first_errors"] += warm["first_errors"]
                emit("OPENED " + json.dumps(result))
            elif words[0] == "RUN":
                emit("RESULT " + json.dumps(await run_each(clients, int(words[1]))))
            elif words[0] == "CLOSE":
                for client in clients:
                    await client.aclose()
                clients.clear()
                emit("CLOSED {}")
            else:
                emit(f"ERROR unknown {words!r}")

    trio.run(main)


def worker_main(argv: list[str]) -> None:
    """``worker ROLE ARGS...`` (see the ``start_*`` functions of the driver)."""
    limit_lifetime(WORKER_LIFETIME)
    raise_nofile()
    role, args = argv[0], argv[1:]
    if role == "cli-server":
        run_cli_server(args)
    elif role == "api-server":
        run_api_server(int(args[0]), int(args[1]), float(args[2]), trace=args[3:] == ["trace"])
    elif role == "echo-server":
        run_echo_server(trace=args == ["trace"])
    elif role == "conn-client":
        run_conn_client(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif role == "cmd-client":
        run_cmd_client(int(args[0]), int(args[1]), int(args[2]))
    else:
        raise SystemExit(f"unknown worker role {role!r}")


# -- driver: processes -----------------------------------------------------------------------


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of ``pid`` in bytes, and its open file descriptors."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) * 1024
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        pass
    return out


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Server:
    """A server worker: ``framekit`` (the CLI or the API in-process) or ``echo``."""

    def __init__(
        self,
        workers: Workers,
        impl: str,
        mode: str,
        max_connections: int,
        max_processes: int = MAX_PROCESSES,
        queue_timeout: float = 30.0,  # ServerConfig's default
        trace: bool = False,
    ) -> None:
        self.impl = impl
        deadline = time.monotonic() + 60
        if impl == "echo":
            args = ["worker", "echo-server"] + (["trace"] if trace else [])
            self.worker = workers.start("echo server", SCRIPT, args)
            self.port = int(self.worker.expect("PORT", deadline))
        elif mode == "api" or trace:
            args = ["worker", "api-server", str(max_connections), str(max_processes)]
            args += [str(queue_timeout)] + (["trace"] if trace else [])
            self.worker = workers.start("framekit server (API)", SCRIPT, args)
            self.port = int(self.worker.expect("PORT", deadline))
        else:
            self._dir = tempfile.TemporaryDirectory(prefix="framekit-load-")
            address_file = Path(self._dir.name) / "address.json"
            cli = [
                "--host",
                HOST,
                "--tcp-port",
                "0",
                "--no-udp",
                "--address-file",
                str(address_file),
                "--max-connections",
                str(max_connections),
                "--log-level",
                "WARNING",
                "--max-processes",
                str(max_processes),
                "--queue-timeout",
                str(queue_timeout),
            ]
            self.worker = workers.start("framekit serve", SCRIPT, ["worker", "cli-server", *cli])
            self.port = self._wait_for_address(address_file, deadline)
        self.pid = self.worker.proc.pid

    def _wait_for_address(self, path: Path, deadline: float) -> int:
        while time.monotonic() < deadline:
            if self.worker.proc.poll() is not None:
                raise self.worker.error(f"exited ({self.worker.proc.returncode}) before listening")
            try:
                return int(json.loads(path.read_text())["tcp"][0][1])
            except (OSError, ValueError, KeyError, IndexError):
                time.sleep(0.05)
        raise self.worker.error("did not write its address file within 60 s")

    def memory(self) -> dict[str, int]:
        return proc_memory(self.pid)

    def log_problems(self) -> list[str]:
        """WARNING / ERROR lines (and tracebacks) the server logged so far."""
        time.sleep(0.2)  # let the stderr pump catch up
        return [
            line.rstrip()
            for line in list(self.worker.stderr)
            if " WARNING " in line or " ERROR " in line or "Traceback" in line
        ]


def start_clients(
    workers: Workers, role: str, extra: list[str], counts: list[int], ramps: list[int]
) -> list[Worker]:
    clients = [
        workers.start(
            f"{role} {i}", SCRIPT, ["worker", role, *extra, str(count), str(max(1, ramp))]
        )
        for i, (count, ramp) in enumerate(zip(counts, ramps, strict=True))
    ]
    deadline = time.monotonic() + 60
    for client in clients:
        client.expect("READY", deadline)
    return clients


def ask_all(clients: list[Worker], command: str, word: str, seconds: float) -> list[Any]:
    """Send ``command`` to every client (all start together), then gather their answers."""
    deadline = time.monotonic() + seconds
    for client in clients:
        client.send(command)
    return [json.loads(client.expect(word, deadline)) for client in clients]


# -- driver: the cases -----------------------------------------------------------------------


def percentiles(values_us: list[int]) -> dict[str, float | None]:
    """p50, p99 and max in milliseconds (nearest rank), and the count."""
    if not values_us:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values_us)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] / 1e3

    return {
        "count": len(ordered),
        "p50_ms": rank(0.50),
        "p99_ms": rank(0.99),
        "max_ms": ordered[-1] / 1e3,
    }


def merge_rounds(answers: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for a in answers for x in a["latencies_us"]]
    per_round = []
    for i in range(len(answers[0]["rounds"])):
        trips = sum(a["rounds"][i]["round_trips"] for a in answers)
        seconds = max(a["rounds"][i]["seconds"] for a in answers)
        per_round.append({"round_trips": trips, "seconds": seconds, "per_s": trips / seconds})
    return {
        **percentiles(latencies),
        "errors": sum(a["errors"] for a in answers),
        "first_errors": [e for a in answers for e in a["first_errors"]][:5],
        "rounds": per_round,
    }


def connections_trial(impl: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """One server holding ``n`` connections: RSS, ramp, round trips, errors."""
    workers = Workers()
    started = time.monotonic()
    budget = args.timeout + n * 0.02  # seconds for each step
    try:
        server = Server(workers, impl, args.server, n + 100)
        time.sleep(0.5)
        idle = server.memory()
        clients = start_clients(
            workers,
            "conn-client",
            [impl, str(server.port)],
            split(n, args.clients),
            split(args.ramp, args.clients),
        )
        pids = [server.pid] + [c.proc.pid for c in clients]
        result: dict[str, Any] = {"impl": impl, "connections": n, "server_pid": server.pid}
        with Interference(pids) as seen:
            clients[0].send("WARM")
            warm = json.loads(clients[0].expect("WARMED", time.monotonic() + 60))
            time.sleep(0.2)
            after_warm = server.memory()
            opened = ask_all(clients, "OPEN", "OPENED", budget)
            time.sleep(0.2)
            after_open = server.memory()
            burst = merge_rounds(
                ask_all(clients, f"ROUNDS {args.rounds} 0", "ROUNDS", budget * args.rounds)
            )
            bounded = None
            if args.bounded:
                answers = []
                deadline = time.monotonic() + budget
                for client, conc in zip(clients, split(args.bounded, len(clients)), strict=True):
                    client.send(f"ROUNDS 1 {max(1, conc)}")
                for client in clients:
                    answers.append(json.loads(client.expect("ROUNDS", deadline)))
                bounded = merge_rounds(answers)
                held_count = sum(a["held"] for a in answers)
            else:
                held_count = sum(o["opened"] for o in opened) - burst["errors"]
            time.sleep(0.2)
            held = server.memory()
            closed = ask_all(clients, "CLOSE", "CLOSED", budget)
        problems = server.log_problems()
        connect_errors = sum(o["errors"] for o in opened) + warm["connect_errors"]
        ping_errors = burst["errors"] + (bounded["errors"] if bounded else 0) + warm["ping_errors"]
        errors = connect_errors + ping_errors + len(problems)
        denominator = max(1, held_count)
        result.update(
            held=held_count,
            errors=errors,
            connect_errors=connect_errors,
            ping_errors=ping_errors,
            server_log_problems=problems[:10],
            server_log_problem_count=len(problems),
            first_errors=(
                warm["first_errors"]
                + [e for o in opened for e in o["first_errors"]]
                + burst["first_errors"]
                + (bounded["first_errors"] if bounded else [])
            )[:8],
            ramp={
                "seconds": max(o["seconds"] for o in opened),
                "connections_per_s": sum(o["opened"] for o in opened)
                / max(o["seconds"] for o in opened),
                "max_authenticating": sum(o["max_in_flight"] for o in opened),
                "limit": args.ramp,
            },
            burst=burst,
            bounded=bounded,
            close_seconds=max(c["seconds"] for c in closed),
            memory={"idle": idle, "warm": after_warm, "opened": after_open, "held": held},
            bytes_per_conn_peak=(held["VmHWM"] - idle["VmRSS"]) / denominator,
            bytes_per_conn_held=(held["VmRSS"] - idle["VmRSS"]) / denominator,
            bytes_per_conn_opened=(after_open["VmRSS"] - idle["VmRSS"])
            / max(1, sum(o["opened"] for o in opened)),
            bytes_per_conn_warm=(held["VmHWM"] - after_warm["VmRSS"]) / denominator,
            interference=seen.cpus,
            disturbed=seen.cpus is not None and seen.cpus > args.max_interference,
            seconds=round(time.monotonic() - started, 1),
        )
        return result
    finally:
        workers.close()


def commands_trial(args: argparse.Namespace) -> dict[str, Any]:
    """``--command-clients`` framekit clients running ``true`` at once on one server."""
    workers = Workers()
    n = args.command_clients
    started = time.monotonic()
    try:
        server = Server(
            workers,
            "framekit",
            args.server,
            n + 100,
            queue_timeout=QUEUE_TIMEOUT,
        )
        clients = start_clients(
            workers,
            "cmd-client",
            [str(server.port)],
            split(n, args.clients),
            split(args.ramp, args.clients),
        )
        pids = [server.pid] + [c.proc.pid for c in clients]
        opened = ask_all(clients, "OPEN", "OPENED", args.timeout + n * 0.05)

        def trial() -> dict[str, Any]:
            answers = ask_all(
                clients,
                f"RUN {args.commands_each}",
                "RESULT",
                args.timeout + n * args.commands_each * 0.05,
            )
            elapsed = max(a["t1"] for a in answers) - min(a["t0"] for a in answers)
            commands = sum(a["commands"] for a in answers)
            return {
                "commands": commands,
                "elapsed": elapsed,
                "cps": commands / elapsed,
                "errors": sum(a["errors"] for a in answers),
                "first_errors": [e for a in answers for e in a["first_errors"]][:5],
                **percentiles([x for a in answers for x in a["latencies_us"]]),
            }

        result = guarded(trial, pids, args.max_interference, args.retries)
        ask_all(clients, "CLOSE", "CLOSED", args.timeout)
        problems = server.log_problems()
        connect_errors = sum(o["errors"] + o["warmup_errors"] for o in opened)
        result.update(
            clients=n,
            connected=sum(o["opened"] for o in opened),
            commands_each=args.commands_each,
            connect_errors=connect_errors,
            server_log_problems=problems[:10],
            server_log_problem_count=len(problems),
            total_errors=result["errors"] + connect_errors + len(problems),
            first_connect_errors=[e for o in opened for e in o["first_errors"]][:5],
            ramp_seconds=max(o["seconds"] for o in opened),
            disturbed=result["interference"] is not None
            and result["interference"] > args.max_interference,
            seconds=round(time.monotonic() - started, 1),
        )
        return result
    finally:
        workers.close()


def profile_trial(impl: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """tracemalloc and gc figures of a server (under tracemalloc) holding ``n`` connections."""
    workers = Workers()
    try:
        server = Server(workers, impl, "api", n + 100, trace=True)
        deadline = time.monotonic() + args.timeout + n * 0.05
        time.sleep(0.3)
        idle_rss = server.memory()
        clients = start_clients(
            workers,
            "conn-client",
            [impl, str(server.port)],
            split(n, args.clients),
            split(args.ramp, args.clients),
        )
        clients[0].send("WARM")
        clients[0].expect("WARMED", deadline)
        time.sleep(1.0)  # every task of the server back to waiting
        server.worker.send("SNAP_IDLE")
        server.worker.expect("SNAP_IDLE", deadline)
        warm_rss = server.memory()
        opened = ask_all(clients, "OPEN", "OPENED", args.timeout + n * 0.05)
        burst = merge_rounds(ask_all(clients, "ROUNDS 1 0", "ROUNDS", args.timeout + n * 0.05))
        held_count = sum(o["opened"] for o in opened) - burst["errors"]
        time.sleep(1.0)  # every task of the server back to waiting for a request
        held_rss = server.memory()
        server.worker.send(f"N {held_count}")
        server.worker.expect("N", deadline)
        server.worker.send("SNAP_HELD")
        report: dict[str, Any] = json.loads(server.worker.expect("SNAP_HELD", deadline))
        ask_all(clients, "CLOSE", "CLOSED", args.timeout)
        report.update(
            impl=impl,
            errors=sum(o["errors"] for o in opened) + burst["errors"],
            rss_bytes_per_conn=(held_rss["VmRSS"] - warm_rss["VmRSS"]) / max(1, held_count),
            idle_rss=idle_rss,
            held_rss=held_rss,
        )
        return report
    finally:
        workers.close()


# -- report ----------------------------------------------------------------------------------


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def mib(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:.1f}"


def median_or_none(values: list[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def summarise(report: dict[str, Any]) -> None:
    """Medians per implementation, the paired ratios and the verdict, into ``report``."""
    runs = report["connections"]
    pairs = []
    for rep in sorted({r["rep"] for r in runs}):
        both = {r["impl"]: r for r in runs if r["rep"] == rep and "error" not in r}
        if set(both) == set(IMPLS):
            fk, echo = both["framekit"], both["echo"]
            pairs.append(
                {
                    "rep": rep,
                    "framekit_peak": fk["bytes_per_conn_peak"],
                    "echo_peak": echo["bytes_per_conn_peak"],
                    "ratio_peak": fk["bytes_per_conn_peak"] / echo["bytes_per_conn_peak"],
                    "framekit_opened": fk["bytes_per_conn_opened"],
                    "echo_opened": echo["bytes_per_conn_opened"],
                    "ratio_opened": fk["bytes_per_conn_opened"] / echo["bytes_per_conn_opened"],
                    "disturbed": fk["disturbed"] or echo["disturbed"],
                }
            )
    report["pairs"] = pairs
    ratios = [p["ratio_peak"] for p in pairs]
    opened = [p["ratio_opened"] for p in pairs]
    report["goal"] = {
        "max_ratio": GOAL,
        "ratio_peak_median": median_or_none(list(ratios)),
        "ratio_peak_min": min(ratios, default=None),
        "ratio_peak_max": max(ratios, default=None),
        "ratio_opened_median": median_or_none(list(opened)),
        "ratio_opened_min": min(opened, default=None),
        "ratio_opened_max": max(opened, default=None),
        "met": bool(ratios) and statistics.median(ratios) <= GOAL,
        "met_every_run": bool(ratios) and max(ratios) <= GOAL,
    }
    commands = [c for c in report.get("commands", []) if "error" not in c]
    errors = sum(r.get("errors", 0) for r in runs) + sum(c["total_errors"] for c in commands)
    failed = [r for r in runs + report.get("commands", []) if "error" in r]
    report["zero_errors"] = errors == 0 and not failed


def connection_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "server",
        "connections held",
        "errors",
        "burst p50 / p99 / max ms",
        "burst round trips/s",
        "bounded p50 / p99 / max ms",
        "idle RSS MiB",
        "peak RSS MiB",
        "bytes/conn peak (min..max)",
        "bytes/conn after ramp",
    ]
    rows = []
    for impl in IMPLS:
        runs = [r for r in report["connections"] if r["impl"] == impl and "error" not in r]
        failed = [r for r in report["connections"] if r["impl"] == impl and "error" in r]
        if not runs:
            if failed:
                rows.append([impl, "ERROR"] + ["-"] * (len(header) - 2))
            continue

        def med(get: Any, runs: list[dict[str, Any]] = runs) -> float | None:
            return median_or_none([get(r) for r in runs])

        def lat(kind: str, runs: list[dict[str, Any]] = runs) -> str:
            if any(r[kind] is None for r in runs):
                return "-"
            parts = [med(lambda r, q=q: r[kind][q]) for q in ("p50_ms", "p99_ms", "max_ms")]
            return " / ".join(ms(p) for p in parts)

        peaks = [r["bytes_per_conn_peak"] for r in runs]
        rates = [
            statistics.median(x["per_s"] for x in r["burst"]["rounds"])
            for r in runs
            if r["burst"]["rounds"]
        ]
        rows.append(
            [
                impl + (f" ({report['settings']['server']})" if impl == "framekit" else ""),
                f"{min(r['held'] for r in runs):,} of {runs[0]['connections']:,}",
                str(sum(r["errors"] for r in runs) + len(failed)),
                lat("burst"),
                fmt(median_or_none(list(rates))),
                lat("bounded"),
                mib(med(lambda r: r["memory"]["idle"]["VmRSS"])),
                mib(med(lambda r: r["memory"]["held"]["VmHWM"])),
                f"{statistics.median(peaks):,.0f} ({min(peaks):,.0f}..{max(peaks):,.0f})",
                f"{med(lambda r: r['bytes_per_conn_opened']):,.0f}",
            ]
        )
    return header, rows


def pair_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "repetition",
        "framekit bytes/conn",
        "echo bytes/conn",
        "ratio (peak)",
        "ratio (after ramp)",
        "disturbed",
    ]
    rows = [
        [
            str(p["rep"]),
            f"{p['framekit_peak']:,.0f}",
            f"{p['echo_peak']:,.0f}",
            f"{p['ratio_peak']:.2f}x",
            f"{p['ratio_opened']:.2f}x",
            "yes" if p["disturbed"] else "no",
        ]
        for p in report["pairs"]
    ]
    goal = report["goal"]
    if goal["ratio_peak_median"] is not None:
        verdict = "MET" if goal["met"] else "NOT MET"
        rows.append(
            [
                "median (min..max)",
                "",
                "",
                f"{goal['ratio_peak_median']:.2f}x ({goal['ratio_peak_min']:.2f}.."
                f"{goal['ratio_peak_max']:.2f})",
                f"{goal['ratio_opened_median']:.2f}x ({goal['ratio_opened_min']:.2f}.."
                f"{goal['ratio_opened_max']:.2f})",
                f"goal <= {GOAL}x: {verdict}",
            ]
        )
    return header, rows


def command_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "run",
        "clients",
        "commands",
        "errors",
        "commands/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "other load (CPUs)",
    ]
    rows = []
    for i, c in enumerate(report.get("commands", []), 1):
        if "error" in c:
            rows.append([str(i), "ERROR"] + ["-"] * (len(header) - 2))
            continue
        rows.append(
            [
                str(i),
                f"{c['connected']:,} of {c['clients']:,}",
                f"{c['commands']:,}",
                str(c["total_errors"]),
                fmt(c["cps"]),
                ms(c["p50_ms"]),
                ms(c["p99_ms"]),
                ms(c["max_ms"]),
                fmt(c["interference"]) + (" (disturbed)" if c["disturbed"] else ""),
            ]
        )
    return header, rows


def profile_rows(profile: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["owner: framekit line (or trio/stdlib site)", "bytes/conn", "blocks/conn", "code"]
    rows = [
        [
            s["site"],
            f"{s['bytes_per_conn']:,.0f}",
            f"{s['blocks_per_conn']:.1f}",
            "`" + s["code"].replace("|", "\\|") + "`",
        ]
        for s in profile["sites"][:25]
        if abs(s["bytes_per_conn"]) >= 16
    ]
    return header, rows


def object_rows(profile: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["GC-tracked type", "objects/conn", "bytes/conn (getsizeof)"]
    rows = [
        [o["type"], f"{o['per_conn']:.1f}", f"{o['bytes_per_conn']:,.0f}"]
        for o in profile["objects"][:20]
    ]
    return header, rows


def render(report: dict[str, Any], markdown: bool) -> str:
    def table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
        return markdown_table(header, rows, left) if markdown else text_table(header, rows)

    s = report["settings"]
    out = []
    if report["connections"]:
        out.append(
            f"Connections: {s['connections']:,} held at once per server, {s['clients']} client "
            f"processes, ramp <= {s['ramp']} authenticating; {s['rounds']} burst rounds (all "
            f"at once) + 1 bounded round ({s['bounded']} in flight); medians of "
            f"{s['repeat']} repetitions\n"
        )
        out.append(table(*connection_rows(report)))
        out.append("")
        out.append("Per-connection memory, paired per repetition (framekit / echo)\n")
        out.append(table(*pair_rows(report)))
    if report.get("commands"):
        out.append("")
        out.append(
            f"Commands: {s['command_clients']} concurrent clients x {s['commands_each']} "
            f"`true` each, one server (--max-processes {MAX_PROCESSES}, --queue-timeout "
            f"{QUEUE_TIMEOUT:g})\n"
        )
        out.append(table(*command_rows(report)))
    for profile in report.get("profile", []):
        if "error" in profile:
            out.append(f"\nprofile {profile['impl']}: ERROR {profile['error']}")
            continue
        out.append("")
        out.append(
            f"tracemalloc, {profile['impl']} server holding {profile['connections']:,} "
            f"connections: {profile['traced_bytes_per_conn']:,.0f} traced bytes/conn, "
            f"RSS {profile['rss_bytes_per_conn']:,.0f} bytes/conn (under tracemalloc)\n"
        )
        out.append(table(*profile_rows(profile), left=1))
        out.append("")
        out.append(table(*object_rows(profile), left=1))
    notes = report_notes(report)
    if notes:
        out.append("")
        out += [f"- {n}" for n in notes]
    return "\n".join(out)


def report_notes(report: dict[str, Any]) -> list[str]:
    notes = list(report.get("limits", {}).get("messages", []))
    disturbed = [f"{r['impl']} #{r['rep']}" for r in report["connections"] if r.get("disturbed")]
    disturbed += [
        f"commands #{i}" for i, c in enumerate(report.get("commands", []), 1) if c.get("disturbed")
    ]
    if disturbed:
        notes.append(
            "disturbed by other load (over "
            f"{report['settings']['max_interference']} CPUs): {', '.join(disturbed)}; "
            "latency and commands/s there are pessimistic, memory is not affected"
        )
    for r in report["connections"] + report.get("commands", []) + report.get("profile", []):
        if "error" in r:
            notes.append(f"ERROR {r.get('impl', 'commands')}: {r['error']}")
        for e in r.get("first_errors", [])[:3]:
            notes.append(f"error seen ({r.get('impl', 'commands')}): {e}")
        for line in r.get("server_log_problems", [])[:3]:
            notes.append(f"server log ({r.get('impl', 'commands')}): {line}")
    return notes


# -- command line ----------------------------------------------------------------------------


def plan_limits(args: argparse.Namespace) -> dict[str, Any]:
    """Raise RLIMIT_NOFILE; scale the connection counts down (with a message) if it or
    the ephemeral port range cannot hold them."""
    per_client = math.ceil(max(args.connections, args.command_clients) / args.clients)
    need = max(args.connections, args.command_clients) + FD_MARGIN
    limits = raise_nofile(max(need, per_client + FD_MARGIN))
    messages = []
    if not limits["ok"]:
        room = max(100, limits["soft"] - FD_MARGIN)
        messages.append(
            f"RLIMIT_NOFILE hard limit is {limits['hard']}, below the {need} file descriptors "
            f"the server needs: scaling down to {room} connections (raise it with "
            f"`ulimit -Hn` / limits.conf to run the full size)"
        )
        args.connections = min(args.connections, room)
        args.command_clients = min(args.command_clients, room)
    ports = port_range()
    if ports is not None:
        room = ports[1] - ports[0] + 1 - 1000
        if args.connections > room:
            messages.append(
                f"the ephemeral port range {ports} leaves room for {room} connections: "
                f"scaling down from {args.connections}"
            )
            args.connections = room
    for message in messages:
        log(f"WARNING: {message}")
    limits.update(ephemeral_ports=ports, messages=messages)
    return limits


PATHS = ("--", "framekit", "cli")


def tree_state() -> list[str]:
    """``git status --porcelain`` of the code the servers and clients run (others may be
    editing it while this runs)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(SCRIPT).parent.parent), "status", "--porcelain", *PATHS],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ["unknown"]
    return out.splitlines()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
        return 0
    parser = driver_parser(__doc__, "1,000 connections, 50 command clients, one repetition")
    parser.add_argument("--connections", type=int, help="connections held (default 10000)")
    parser.add_argument(
        "--clients", type=int, default=2, help="client processes sharing them (default 2)"
    )
    parser.add_argument(
        "--ramp",
        type=int,
        default=MAX_UNAUTHENTICATED,
        help=f"most connections authenticating at once, over all clients ({MAX_UNAUTHENTICATED})",
    )
    parser.add_argument("--rounds", type=int, help="burst rounds (default 3; quick 2)")
    parser.add_argument(
        "--bounded", type=int, default=64, help="round trips in flight in the bounded round"
    )
    parser.add_argument("--command-clients", type=int, help="default 500 (quick 50)")
    parser.add_argument("--commands-each", type=int, default=4, help="commands per client")
    parser.add_argument(
        "--server",
        choices=("api", "cli"),
        default="api",
        help="framekit server process: framekit.serve (default) or the `framekit serve` CLI",
    )
    parser.add_argument("--cases", default="connections,commands", help=", ".join(CASES))
    parser.add_argument("--profile-connections", type=int, default=1000)
    add_run_options(parser, "repetition")
    parser.set_defaults(quiet_wait=30.0, retries=0, timeout=60.0)
    args = parser.parse_args()

    if args.load:
        print(render(load_report(args.load), markdown=args.markdown))
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not set(cases) <= set(CASES):
        parser.error(f"--cases: choose from {', '.join(CASES)}")
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.connections = args.connections or (1000 if args.quick else 10_000)
    args.command_clients = args.command_clients or (50 if args.quick else 500)
    args.rounds = args.rounds or (2 if args.quick else 3)
    limits = plan_limits(args)

    os.environ[TOKEN_ENV] = secrets.token_hex(16)  # the servers and clients inherit it
    global HOST
    HOST = os.environ[HOST_ENV] = "127.{}.{}.{}".format(
        *(secrets.randbelow(254) + 1 for _ in "abc")
    )
    started = time.monotonic()
    report: dict[str, Any] = {
        "environment": {**environment(), "source": source_state(), "tree": tree_state()},
        "settings": {
            "repeat": args.repeat,
            "connections": args.connections,
            "clients": args.clients,
            "ramp": args.ramp,
            "rounds": args.rounds,
            "bounded": args.bounded,
            "command_clients": args.command_clients,
            "commands_each": args.commands_each,
            "max_processes": MAX_PROCESSES,
            "queue_timeout": QUEUE_TIMEOUT,
            "server": args.server,
            "host": HOST,
            "cases": cases,
            "max_interference": args.max_interference,
            "quick": args.quick,
        },
        "limits": limits,
        "connections": [],
        "commands": [],
    }
    for rep in range(1, args.repeat + 1):
        busy = wait_for_quiet(args.quiet, args.quiet_wait) if args.quiet < 1 else None
        if busy is not None and busy > args.quiet:
            log(f"warning: the machine is {busy:.0%} busy with other work")
        if "connections" in cases:
            order = IMPLS if rep % 2 else tuple(reversed(IMPLS))
            for impl in order:
                log(f"[{rep}/{args.repeat}] {impl}: {args.connections:,} connections ...")
                try:
                    r = connections_trial(impl, args.connections, args)
                except CaseError as exc:
                    r = {"impl": impl, "error": str(exc)}
                    log(f"  ERROR: {exc}")
                else:
                    log(
                        f"  held {r['held']:,}, errors {r['errors']}, ramp "
                        f"{r['ramp']['seconds']:.1f} s, burst p50/p99 "
                        f"{ms(r['burst']['p50_ms'])}/{ms(r['burst']['p99_ms'])} ms, "
                        f"{r['bytes_per_conn_peak']:,.0f} B/conn peak, "
                        f"{r['bytes_per_conn_opened']:,.0f} after ramp; other load "
                        f"{fmt(r['interference'])} CPUs [{r['seconds']} s]"
                    )
                r["rep"] = rep
                report["connections"].append(r)
        if "commands" in cases:
            log(f"[{rep}/{args.repeat}] commands: {args.command_clients} clients ...")
            try:
                c = commands_trial(args)
            except CaseError as exc:
                c = {"error": str(exc)}
                log(f"  ERROR: {exc}")
            else:
                log(
                    f"  {fmt(c['cps'])} commands/s, errors {c['total_errors']}, p50/p99 "
                    f"{ms(c['p50_ms'])}/{ms(c['p99_ms'])} ms; other load "
                    f"{fmt(c['interference'])} CPUs [{c['seconds']} s]"
                )
            c["rep"] = rep
            report["commands"].append(c)
    if "profile" in cases:
        report["profile"] = []
        for impl in IMPLS:
            log(f"profile {impl}: {args.profile_connections:,} connections under tracemalloc ...")
            try:
                report["profile"].append(profile_trial(impl, args.profile_connections, args))
            except CaseError as exc:
                report["profile"].append({"impl": impl, "error": str(exc)})
                log(f"  ERROR: {exc}")
    summarise(report)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    # framekit may have changed under the run (others edit this checkout): say so
    report["environment"]["tree_at_end"] = tree_state()
    report["environment"]["source_at_end"] = source_state()
    publish(report, render, args.markdown, args.json)
    log(f"\nall done in {report['wall_seconds']} s")
    return 0 if report["zero_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
