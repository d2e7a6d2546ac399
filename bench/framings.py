"""Framings other than the length prefix: line throughput against asyncio, anyio and
Twisted, a long line fed byte by byte, and the varint and netstring decoders against u32.

Usage:
    .venv/bin/python bench/framings.py [--quick] [--repeat N] [--parts lines,long,decoders]
                                       [--lines N] [--frames N] [--long-sizes 1,4,16]
                                       [--json OUT] [--markdown] [--load JSON]

Three parts, each run in interleaved rounds (``--repeat``, default 5; quick 1): every round
runs each case of the part once, in an order that rotates from round to round, so a slow
patch of the machine hits them all. Every case runs in a fresh process (pinned to one of
the first two CPUs, ``--no-pin`` to leave them free). Figures are medians with min..max,
and the comparisons are paired: a ratio per round, then its median with min..max.

1. ``lines``: line framing over loopback TCP. ``--lines`` lines (default 1,000,000; quick
   100,000) of 64 bytes (63 printable bytes and ``\\n``, cycling through three
   different lines) are sent by a separate sender process: one plain blocking socket,
   ``sendall`` of 1 MiB slices of one pre-built buffer, so it is never the bottleneck. Each
   receiver, in its own fresh process, counts the lines and their bytes, checks every
   1024th line and the last one, and a clean end of stream after it; it times from the
   first line (the first bytes to arrive) to the last. Receivers:
   ``framekit-batch`` (``FramedStream(stream, format=parse_framing("lines"))``,
   ``receive_many()``), ``framekit`` (the same, ``receive()`` per line), ``asyncio``
   (``StreamReader.readline()``; ``asyncio-uvloop`` too when uvloop is installed),
   ``anyio`` (``BufferedByteReceiveStream.receive_until(b"\\n", 65536)`` on the Trio
   backend), ``twisted-lineonly`` and ``twisted-line`` (``LineOnlyReceiver`` and
   ``LineReceiver`` with ``delimiter = b"\\n"``, counting in ``lineReceived``, the
   default reactor). Goal: framekit's batch path at least 1.5x the best peer.
2. ``long``: one line of 1, 4 and 16 MiB (``--long-sizes``; quick 1,4) fed to the sans-IO
   ``DelimitedDecoder`` (``parse_framing("lines:max=32M")``) one byte at a time, calling
   ``receive_data(b"x")`` and ``frames()`` after each byte, then its ``\\n``. Seconds
   and ns per byte: a decoder that rescans its buffer would grow quadratically. If
   feeding single bytes takes over 60 s for a size, it is also measured in 16-byte chunks.
3. ``decoders``: the sans-IO decoders fed the same ``--frames`` payloads (default
   1,000,000; quick 200,000) of 32 bytes, pre-encoded, in 64 KiB chunks: frames/s for
   ``u32be`` (``FrameDecoder``), ``varint``, ``netstring`` and ``lines``, each counting
   frames and bytes. Goal: varint and netstring within 1.2x of u32be's rate (>= 0.83x).

A run during which other work took more than 5% of a CPU (``--max-interference``; the
whole machine's busy time from /proc/stat minus the case's own processes and the
driver's) is redone once the machine is quiet again, up to ``--retries`` times (default
3); one still disturbed is kept, marked, and counted in the medians. Before each round
the driver waits (up to ``--quiet-wait``) for the machine to be quiet (``--quiet``).
Every wait has a deadline, every worker dies of SIGALRM after ``--timeout`` seconds and
exits when the driver closes its stdin; the driver kills what is left when it exits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from time import perf_counter, process_time
from typing import Any

SCRIPT = os.path.abspath(__file__)
HOST = "127.0.0.1"
LINE_SIZE = 64  # bytes per line on the wire, "\n" included
VARIANTS = 3  # line i is pool[i % VARIANTS]: a shifted or merged line shows
SAMPLE_EVERY = 1024  # receivers check every this-many-th line, and the last one
SEND_SLICE = 1024 * 1024  # the sender's sendall size
LINES_SPEC = "lines"
LONG_SPEC = "lines:max=32M"
LONG_SLOW = 60.0  # seconds: above this, a long line is also fed in 16-byte chunks
LONG_CHUNK = 16
DECODE_PAYLOAD = 32
DECODE_CHUNK = 64 * 1024
DECODERS = ("u32be", "varint", "netstring", "lines")
PARTS = ("lines", "long", "decoders")
#: A run is disturbed when other work took more than this many CPUs during it.
DISTURBED_CPUS = 0.05
LINE_GOAL = 1.5  # framekit-batch / best peer
DECODER_GOAL = 1 / 1.2  # varint and netstring / u32be
MIB = 1024 * 1024
#: The code these figures depend on: hashed before and after each part, so a change made
#: while the benchmark ran (a checkout shared with other work) shows in the report.
FRAMING_CODE = ("framekit/codec", "framekit/streams", "framekit/_types.py", "framekit/_errors.py")

Result = dict[str, Any]


class BenchError(Exception):
    """A receiver or decoder delivered the wrong lines or frames."""


# -- the worker side -------------------------------------------------------------------------


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_for(word: str) -> None:
    """Block until the driver says ``word`` (exit if it is gone)."""
    line = sys.stdin.readline()
    if line.strip() != word:
        raise SystemExit(0)


def start_worker(cpu: str, timeout: str) -> None:
    if cpu != "-":
        os.sched_setaffinity(0, {int(cpu)})
    signal.alarm(max(1, int(float(timeout))))  # a stuck worker dies (SIGALRM's default)


def finish_worker(result: Result) -> None:
    """Report, then stay alive (so the driver can read our CPU time) until stdin closes."""
    emit("RESULT " + json.dumps(result))
    sys.stdin.read()


def line_pool() -> tuple[bytes, ...]:
    """``VARIANTS`` different lines of ``LINE_SIZE - 1`` printable bytes (no CR, no LF)."""
    return tuple(
        bytes(33 + (j * 29 + k * 7) % 94 for k in range(LINE_SIZE - 1)) for j in range(VARIANTS)
    )


@dataclass
class Plan:
    """One receiver's trial: how many lines, and what each must be."""

    count: int
    keeps_delimiter: bool  # the receiver's lines end in b"\n" (asyncio's readline)
    ready: Callable[[], None]

    def __post_init__(self) -> None:
        tail = b"\n" if self.keeps_delimiter else b""
        self.pool = tuple(p + tail for p in line_pool())
        self.size = LINE_SIZE if self.keeps_delimiter else LINE_SIZE - 1


def check(plan: Plan, i: int, line: bytes | bytearray) -> None:
    if line != plan.pool[i % VARIANTS]:
        raise BenchError(
            f"line {i}: wrong content ({len(line)} bytes, expected {plan.size}; "
            f"starts {bytes(line[:8])!r}, expected {plan.pool[i % VARIANTS][:8]!r})"
        )


def measured(
    plan: Plan, lines: int, nbytes: int, first: int, t0: float, t1: float, cpu: float
) -> Result:
    """The receiver's report; raises unless exactly the planned lines and bytes came."""
    if lines != plan.count or nbytes != plan.count * plan.size:
        raise BenchError(
            f"received {lines} lines / {nbytes} bytes, "
            f"expected {plan.count} lines / {plan.count * plan.size} bytes"
        )
    return {
        "lines_total": lines,
        "bytes_total": nbytes,
        "lines": lines - first,  # the lines that arrived after the clock started
        "elapsed": t1 - t0,
        "cpu": cpu,
    }


async def consume(receive: Callable[[], Awaitable[bytes]], plan: Plan) -> Result:
    """One call per line; the clock starts when the first line is in."""
    count = plan.count
    plan.ready()
    line = await receive()
    t0, c0 = perf_counter(), process_time()
    nbytes = len(line)
    check(plan, 0, line)
    for i in range(1, count):
        line = await receive()
        nbytes += len(line)
        if not i % SAMPLE_EVERY:
            check(plan, i, line)
    t1, c1 = perf_counter(), process_time()
    check(plan, count - 1, line)
    return measured(plan, count, nbytes, 1, t0, t1, c1 - c0)


async def consume_batches(receive_many: Callable[[], Awaitable[list[bytes]]], plan: Plan) -> Result:
    """Every line ready at once; the clock starts when the first batch is in."""
    count = plan.count
    plan.ready()
    batch = await receive_many()
    t0, c0 = perf_counter(), process_time()
    check(plan, 0, batch[0])
    first = got = len(batch)
    nbytes = sum(map(len, batch))
    next_check = SAMPLE_EVERY
    while got < count:
        batch = await receive_many()
        if got >= next_check:
            check(plan, got, batch[0])
            next_check = got + SAMPLE_EVERY
        got += len(batch)
        nbytes += sum(map(len, batch))
    t1, c1 = perf_counter(), process_time()
    check(plan, got - 1, batch[-1])
    return measured(plan, got, nbytes, first, t0, t1, c1 - c0)


def extra_data(what: object) -> BenchError:
    return BenchError(f"data after the last line: {what!r:.80}")


def run_framekit(batch: bool, sock: socket.socket, plan: Plan) -> Result:
    """``FramedStream(stream, format=parse_framing("lines"))``; ``receive_many`` or
    ``receive``."""
    import trio

    import framekit

    fmt = framekit.parse_framing(LINES_SPEC)

    async def main() -> Result:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        async with framekit.FramedStream(stream, format=fmt) as fs:
            if batch:
                result = await consume_batches(fs.receive_many, plan)
            else:
                result = await consume(fs.receive, plan)
            try:
                extra = await fs.receive()
            except trio.EndOfChannel:
                return result
            raise extra_data(extra)

    result: Result = trio.run(main)
    return result


def run_asyncio(uvloop: bool, sock: socket.socket, plan: Plan) -> Result:
    """``asyncio.open_connection`` (default limit); ``await reader.readline()`` per line."""
    import asyncio

    async def main() -> Result:
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            result = await consume(reader.readline, plan)
            extra = await reader.read()
            if extra:
                raise extra_data(extra)
            result["loop"] = type(asyncio.get_running_loop()).__module__
            return result
        finally:
            writer.close()
            await writer.wait_closed()

    loop_factory = None
    if uvloop:
        import uvloop as uv  # only when the driver found it installed

        loop_factory = uv.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result: Result = runner.run(main())
    return result


def run_anyio(sock: socket.socket, plan: Plan) -> Result:
    """anyio's ``SocketStream`` on the Trio backend;
    ``BufferedByteReceiveStream.receive_until(b"\\n", 65536)`` per line."""
    import anyio
    from anyio.abc import SocketStream
    from anyio.streams.buffered import BufferedByteReceiveStream

    async def main() -> Result:
        async with await SocketStream.from_socket(sock) as stream:
            buffered = BufferedByteReceiveStream(stream)
            result = await consume(partial(buffered.receive_until, b"\n", 65536), plan)
            try:
                extra = await buffered.receive()
            except anyio.EndOfStream:
                return result
            raise extra_data(extra)

    result: Result = anyio.run(main, backend="trio")
    return result


def run_twisted(line_only: bool, sock: socket.socket, plan: Plan) -> Result:
    """``LineOnlyReceiver`` or ``LineReceiver`` with ``delimiter = b"\\n"``, counting in
    ``lineReceived``; the default reactor, run in this (fresh) process's main thread."""
    from twisted.internet import protocol, reactor
    from twisted.protocols.basic import LineOnlyReceiver, LineReceiver

    base: type[Any] = LineOnlyReceiver if line_only else LineReceiver
    count = plan.count
    outcome: dict[str, Any] = {}

    class Receiver(base):  # type: ignore[misc]
        delimiter = b"\n"
        n = 0
        nbytes = 0
        t0 = t1 = 0.0
        c0 = c1 = 0.0
        error: BaseException | None = None

        def fail(self, error: BaseException) -> None:
            if self.error is None:
                self.error = error
            self.transport.abortConnection()

        def connectionMade(self) -> None:
            plan.ready()

        def lineReceived(self, line: bytes) -> None:
            i = self.n
            self.n = i + 1
            self.nbytes += len(line)
            if not i % SAMPLE_EVERY or self.n == count:
                if i == 0:
                    self.t0, self.c0 = perf_counter(), process_time()
                if self.n == count:
                    self.t1, self.c1 = perf_counter(), process_time()
                try:
                    check(plan, i, line)
                except BenchError as exc:
                    self.fail(exc)

        def lineLengthExceeded(self, line: bytes) -> None:
            self.fail(BenchError(f"a line over MAX_LENGTH: {line[:40]!r}"))

        def connectionLost(self, reason: Any = None) -> None:
            if self.error is None and self._buffer:
                self.error = extra_data(self._buffer)
            if self.error is None:
                try:
                    outcome["result"] = measured(
                        plan, self.n, self.nbytes, 1, self.t0, self.t1, self.c1 - self.c0
                    )
                except BenchError as exc:
                    self.error = exc
            outcome["error"] = self.error
            reactor.stop()

    def adopt() -> None:
        factory = protocol.Factory.forProtocol(Receiver)
        reactor.adoptStreamConnection(sock.fileno(), socket.AF_INET, factory)
        sock.close()  # the reactor holds its own duplicate

    reactor.callWhenRunning(adopt)
    reactor.run(installSignalHandlers=False)
    if outcome.get("error") is not None:
        raise outcome["error"]
    result: Result = outcome["result"]
    result["reactor"] = type(reactor).__module__
    return result


#: Receiver name -> (runner, whether its lines keep their b"\n", what it does).
RECEIVERS: dict[str, tuple[Callable[[socket.socket, Plan], Result], bool, str]] = {
    "framekit-batch": (
        partial(run_framekit, True),
        False,
        '`FramedStream(stream, format=parse_framing("lines"))`, `await fs.receive_many()`',
    ),
    "framekit": (
        partial(run_framekit, False),
        False,
        "the same `FramedStream`, `await fs.receive()` per line",
    ),
    "asyncio": (
        partial(run_asyncio, False),
        True,
        "`asyncio.open_connection(sock=...)`, `await reader.readline()` per line",
    ),
    "asyncio-uvloop": (
        partial(run_asyncio, True),
        True,
        "the same on uvloop's event loop",
    ),
    "anyio": (
        run_anyio,
        False,
        '`BufferedByteReceiveStream(stream).receive_until(b"\\n", 65536)` per line, Trio backend',
    ),
    "twisted-lineonly": (
        partial(run_twisted, True),
        False,
        '`LineOnlyReceiver`, `delimiter = b"\\n"`, counting in `lineReceived`; default reactor',
    ),
    "twisted-line": (
        partial(run_twisted, False),
        False,
        '`LineReceiver`, `delimiter = b"\\n"`, counting in `lineReceived`; default reactor',
    ),
}
FRAMEKIT_RECEIVERS = ("framekit-batch", "framekit")


def recv_main(name: str, count: int, timeout: str, cpu: str) -> None:
    start_worker(cpu, timeout)
    run, keeps, _ = RECEIVERS[name]
    listener = socket.create_server((HOST, 0))
    emit(f"PORT {listener.getsockname()[1]}")
    sock, _ = listener.accept()
    listener.close()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    plan = Plan(count, keeps, ready=lambda: emit("READY"))
    finish_worker(run(sock, plan))


def send_main(port: int, count: int, timeout: str, cpu: str) -> None:
    """A plain blocking sender: one pre-built buffer, ``sendall`` of 1 MiB slices."""
    start_worker(cpu, timeout)
    pool = [p + b"\n" for p in line_pool()]
    data = b"".join(pool) * (count // VARIANTS) + b"".join(pool[: count % VARIANTS])
    view = memoryview(data)
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    emit("CONNECTED")
    wait_for("GO")
    t0 = perf_counter()
    for i in range(0, len(data), SEND_SLICE):
        sock.sendall(view[i : i + SEND_SLICE])
    sock.shutdown(socket.SHUT_WR)
    elapsed = perf_counter() - t0
    finish_worker({"bytes": len(data), "elapsed": elapsed})
    sock.close()


def long_main(size: int, chunk: int, timeout: str, cpu: str) -> None:
    """One line of ``size`` bytes fed ``chunk`` bytes at a time, ``frames()`` after each."""
    start_worker(cpu, timeout)
    import framekit

    decoder = framekit.parse_framing(LONG_SPEC).decoder()
    receive_data, frames = decoder.receive_data, decoder.frames
    piece = b"x" * chunk
    calls = size // chunk
    if calls * chunk != size:
        raise SystemExit(f"{size} is not a multiple of {chunk}")
    emit("READY")
    wait_for("GO")
    t0, c0 = perf_counter(), process_time()
    for _ in range(calls):
        receive_data(piece)
        frames()
    receive_data(b"\n")
    out = frames()
    t1, c1 = perf_counter(), process_time()
    if len(out) != 1 or len(out[0]) != size or out[0].count(b"x") != size:
        raise BenchError(f"expected one {size}-byte line, got {[len(x) for x in out]}")
    finish_worker({"size": size, "chunk": chunk, "elapsed": t1 - t0, "cpu": c1 - c0})


def decode_payloads(count: int) -> list[bytes]:
    """``count`` payloads of ``DECODE_PAYLOAD`` printable bytes, cycling through 3 kinds."""
    pool = [
        bytes(33 + (j * 31 + k * 11) % 94 for k in range(DECODE_PAYLOAD)) for j in range(VARIANTS)
    ]
    return (pool * (count // VARIANTS + 1))[:count]


def decode_main(name: str, count: int, timeout: str, cpu: str) -> None:
    """``count`` frames pre-encoded in framing ``name``, fed in 64 KiB chunks."""
    start_worker(cpu, timeout)
    import framekit

    fmt = framekit.parse_framing(name)
    payloads = decode_payloads(count)
    data = fmt.encoder().encode_many(payloads)
    chunks = [data[i : i + DECODE_CHUNK] for i in range(0, len(data), DECODE_CHUNK)]
    decoder = fmt.decoder()
    receive_data, frames = decoder.receive_data, decoder.frames
    emit("READY")
    wait_for("GO")
    n = nbytes = 0
    last: list[bytes] = []
    t0, c0 = perf_counter(), process_time()
    for chunk in chunks:
        receive_data(chunk)
        out = frames()
        n += len(out)
        nbytes += sum(map(len, out))
        if out:
            last = out
    receive_data(b"")
    out = frames()
    n += len(out)
    nbytes += sum(map(len, out))
    t1, c1 = perf_counter(), process_time()
    if out:
        last = out
    if n != count or nbytes != count * DECODE_PAYLOAD or last[-1] != payloads[-1]:
        raise BenchError(f"{name}: decoded {n} frames / {nbytes} bytes, expected {count}")
    finish_worker(
        {
            "framing": name,
            "frames": n,
            "wire_bytes": len(data),
            "elapsed": t1 - t0,
            "cpu": c1 - c0,
        }
    )


def worker_main(argv: list[str]) -> int:
    role, rest = argv[0], argv[1:]
    if role == "recv":
        recv_main(rest[0], int(rest[1]), rest[2], rest[3])
    elif role == "send":
        send_main(int(rest[0]), int(rest[1]), rest[2], rest[3])
    elif role == "long":
        long_main(int(rest[0]), int(rest[1]), rest[2], rest[3])
    elif role == "decode":
        decode_main(rest[0], int(rest[1]), rest[2], rest[3])
    else:
        raise SystemExit(f"unknown worker role {role!r}")
    return 0


# -- the driver ------------------------------------------------------------------------------


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Driver:
    """Runs trials in fresh worker processes, each checked for disturbance and redone."""

    def __init__(
        self, timeout: float, retries: int, max_cpus: float, cpus: tuple[int, int] | None
    ) -> None:
        from _common import Workers

        self.timeout = timeout
        self.retries = retries
        self.max_cpus = max_cpus
        self.cpus = cpus
        self.workers = Workers()

    def start(self, name: str, args: list[str], cpu: int) -> Any:
        """A worker: ``args``, then its lifetime and the CPU to pin it to (index 0 or 1)."""
        pin = "-" if self.cpus is None else str(self.cpus[cpu])
        return self.workers.start(name, SCRIPT, [*args, str(int(self.timeout) + 5), pin])

    def timed(self, workers: list[Any], go: Any, deadline: float) -> tuple[Result, float | None]:
        """Say GO to ``go``, wait for the RESULT of ``workers[0]``; the CPU seconds other
        work took meanwhile (None without /proc)."""
        from framing import TICKS, cpu_ticks

        pids = (*(w.proc.pid for w in workers), os.getpid())
        before = cpu_ticks(pids)
        go.send("GO")
        result: Result = json.loads(workers[0].expect("RESULT", deadline))
        after = cpu_ticks(pids)
        if before is None or after is None:
            return result, None
        return result, ((after[0] - before[0]) - (after[1] - before[1])) / TICKS

    def line_trial(self, name: str, count: int) -> Result:
        deadline = time.monotonic() + self.timeout
        try:
            recv = self.start(f"receiver {name}", ["recv", name, str(count)], 1)
            port = int(recv.expect("PORT", deadline))
            send = self.start("sender", ["send", str(port), str(count)], 0)
            send.expect("CONNECTED", deadline)
            recv.expect("READY", deadline)
            result, foreign = self.timed([recv, send], send, deadline)
            sent = json.loads(send.expect("RESULT", deadline))
        finally:
            self.workers.close()
        run = {
            "count": count,
            "lines_per_s": result["lines"] / result["elapsed"],
            "elapsed": result["elapsed"],
            "cpu_share": result["cpu"] / result["elapsed"],
            "sender_elapsed": sent["elapsed"],
            "foreign_cpu": foreign,
        }
        for key in ("loop", "reactor"):
            if key in result:
                run[key] = result[key]
        return run

    def long_trial(self, size: int, chunk: int) -> Result:
        deadline = time.monotonic() + self.timeout
        try:
            worker = self.start(f"long line {size}", ["long", str(size), str(chunk)], 1)
            worker.expect("READY", deadline)
            result, foreign = self.timed([worker], worker, deadline)
        finally:
            self.workers.close()
        return {
            "size": size,
            "chunk": chunk,
            "elapsed": result["elapsed"],
            "ns_per_byte": result["elapsed"] / size * 1e9,
            "cpu_share": result["cpu"] / result["elapsed"],
            "foreign_cpu": foreign,
        }

    def decode_trial(self, name: str, count: int) -> Result:
        deadline = time.monotonic() + self.timeout
        try:
            worker = self.start(f"decoder {name}", ["decode", name, str(count)], 1)
            worker.expect("READY", deadline)
            result, foreign = self.timed([worker], worker, deadline)
        finally:
            self.workers.close()
        return {
            "framing": name,
            "count": count,
            "wire_bytes_per_frame": result["wire_bytes"] / count,
            "elapsed": result["elapsed"],
            "frames_per_s": result["frames"] / result["elapsed"],
            "ns_per_frame": result["elapsed"] / result["frames"] * 1e9,
            "cpu_share": result["cpu"] / result["elapsed"],
            "foreign_cpu": foreign,
        }

    def guarded(self, what: str, trial: Callable[[], Result]) -> Result:
        """``trial``, redone (after waiting for quiet) while other work disturbed it."""
        from framing import TICKS, wait_quiet

        for attempt in range(self.retries + 1):
            run = trial()
            foreign = run.get("foreign_cpu") or 0.0
            # /proc/stat counts in ticks: two ticks in a short run is no sign
            run["disturbed"] = foreign > max(2 / TICKS, self.max_cpus * run["elapsed"])
            run["redone"] = attempt
            if not run["disturbed"]:
                break
            if attempt < self.retries:
                log(f"  {what}: other work took {foreign:.2f} CPU-s meanwhile; again")
                wait_quiet((os.getpid(),))
        return run


def code_state() -> dict[str, Any]:
    """The commit, the modified framekit files and a hash of the framing code as it is now."""
    import hashlib
    from pathlib import Path

    from _common import source_state

    root = Path(SCRIPT).parent.parent
    digest = hashlib.sha256()
    for rel in FRAMING_CODE:
        path = root / rel
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return {**source_state(), "framing_code_sha256": digest.hexdigest()[:12]}


def rotated(names: list[Any], rnd: int) -> list[Any]:
    k = rnd % len(names)
    return names[k:] + names[:k]


def quiet_before_round(args: Any) -> None:
    from _common import wait_for_quiet

    if args.quiet < 1:
        busy = wait_for_quiet(args.quiet, args.quiet_wait)
        if busy is not None and busy > args.quiet:
            log(f"warning: the machine is {busy:.0%} busy with other work")


def run_lines(driver: Driver, args: Any, names: list[str]) -> list[dict[str, Any]]:
    rounds = []
    for rnd in range(args.repeat):
        quiet_before_round(args)
        runs = {}
        for name in rotated(names, rnd):
            runs[name] = driver.guarded(name, partial(driver.line_trial, name, args.lines))
            r = runs[name]
            log(
                f"[lines {rnd + 1}/{args.repeat}] {name:<17} {r['lines_per_s']:>12,.0f} lines/s"
                f"  ({r['elapsed']:.3f} s, CPU {r['cpu_share']:.0%})"
                + (" DISTURBED" if r["disturbed"] else "")
            )
        rounds.append(runs)
    return rounds


def run_long(driver: Driver, args: Any) -> list[dict[str, Any]]:
    cases = [(size, 1) for size in args.long_sizes]
    rounds = []
    for rnd in range(args.repeat):
        quiet_before_round(args)
        runs = {}
        for size, chunk in rotated(cases, rnd):
            key = f"{size}/{chunk}"
            runs[key] = driver.guarded(key, partial(driver.long_trial, size, chunk))
            r = runs[key]
            log(
                f"[long {rnd + 1}/{args.repeat}] {size // MIB:>3} MiB by {chunk:>2} B: "
                f"{r['elapsed']:7.2f} s, {r['ns_per_byte']:7.1f} ns/byte"
                + (" DISTURBED" if r["disturbed"] else "")
            )
            if chunk == 1 and r["elapsed"] > LONG_SLOW and (size, LONG_CHUNK) not in cases:
                log(f"  over {LONG_SLOW:.0f} s: {size // MIB} MiB is also fed in {LONG_CHUNK} B")
                cases.append((size, LONG_CHUNK))
        rounds.append(runs)
    return rounds


def run_decoders(driver: Driver, args: Any) -> list[dict[str, Any]]:
    rounds = []
    for rnd in range(args.repeat):
        quiet_before_round(args)
        runs = {}
        for name in rotated(list(DECODERS), rnd):
            runs[name] = driver.guarded(name, partial(driver.decode_trial, name, args.frames))
            r = runs[name]
            log(
                f"[decoders {rnd + 1}/{args.repeat}] {name:<10} {r['frames_per_s']:>12,.0f} "
                f"frames/s ({r['ns_per_frame']:.0f} ns/frame)"
                + (" DISTURBED" if r["disturbed"] else "")
            )
        rounds.append(runs)
    return rounds


# -- summary ---------------------------------------------------------------------------------


def stats(values: list[float]) -> dict[str, float]:
    import statistics

    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(report: dict[str, Any]) -> None:
    """Medians, spreads, paired ratios and goals, from the rounds (kept in the report)."""
    summary: dict[str, Any] = {}
    lines = report.get("lines")
    if lines:
        rounds = lines["rounds"]
        names = [n for n in lines["receivers"] if all(n in r for r in rounds)]
        peers = [n for n in names if n not in FRAMEKIT_RECEIVERS]
        per = {
            n: {
                "lines_per_s": stats([r[n]["lines_per_s"] for r in rounds]),
                "cpu_share": stats([r[n]["cpu_share"] for r in rounds]),
            }
            for n in names
        }
        ratios = []
        for ours in [n for n in FRAMEKIT_RECEIVERS if n in names]:
            if peers:
                ratios.append(
                    {
                        "ratio": f"{ours} / best peer",
                        "values": [
                            r[ours]["lines_per_s"] / max(r[p]["lines_per_s"] for p in peers)
                            for r in rounds
                        ],
                    }
                )
            for p in peers:
                ratios.append(
                    {
                        "ratio": f"{ours} / {p}",
                        "values": [r[ours]["lines_per_s"] / r[p]["lines_per_s"] for r in rounds],
                    }
                )
        for r in ratios:
            r.update(stats(r["values"]))
        best = max(peers, key=lambda p: per[p]["lines_per_s"]["median"]) if peers else None
        summary["lines"] = {"receivers": per, "ratios": ratios, "best_peer": best}
    long = report.get("long")
    if long:
        rounds = long["rounds"]
        keys = list(dict.fromkeys(k for r in rounds for k in r))
        per = {}
        for key in keys:
            runs = [r[key] for r in rounds if key in r]
            per[key] = {
                "size": runs[0]["size"],
                "chunk": runs[0]["chunk"],
                "elapsed": stats([x["elapsed"] for x in runs]),
                "ns_per_byte": stats([x["ns_per_byte"] for x in runs]),
            }
        ratios = []
        for chunk in sorted({p["chunk"] for p in per.values()}):
            sizes = sorted(p["size"] for p in per.values() if p["chunk"] == chunk)
            base = f"{sizes[0]}/{chunk}"
            for size in sizes[1:]:
                key = f"{size}/{chunk}"
                values = [
                    r[key]["ns_per_byte"] / r[base]["ns_per_byte"]
                    for r in rounds
                    if key in r and base in r
                ]
                ratios.append(
                    {
                        "ratio": f"ns/byte, {size // MIB} MiB / {sizes[0] // MIB} MiB"
                        + (f" (by {chunk} B)" if chunk != 1 else ""),
                        "size_factor": size / sizes[0],
                        "values": values,
                        **stats(values),
                    }
                )
        summary["long"] = {"cases": per, "ratios": ratios}
    decoders = report.get("decoders")
    if decoders:
        rounds = decoders["rounds"]
        per = {
            n: {
                "frames_per_s": stats([r[n]["frames_per_s"] for r in rounds]),
                "ns_per_frame": stats([r[n]["ns_per_frame"] for r in rounds]),
                "wire_bytes_per_frame": rounds[0][n]["wire_bytes_per_frame"],
            }
            for n in DECODERS
        }
        ratios = []
        for n in DECODERS[1:]:
            values = [r[n]["frames_per_s"] / r["u32be"]["frames_per_s"] for r in rounds]
            ratios.append(
                {"ratio": f"{n} / u32be", "framing": n, "values": values, **stats(values)}
            )
        summary["decoders"] = {"framings": per, "ratios": ratios}
    summary["goals"] = goals(summary)
    report["summary"] = summary


def goals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    lines = summary.get("lines")
    if lines:
        for r in lines["ratios"]:
            if r["ratio"] == "framekit-batch / best peer":
                out.append(
                    {
                        "goal": "lines, framekit receive_many vs the best peer (paired)",
                        "figure": r,
                        "needed": LINE_GOAL,
                        "met": r["median"] >= LINE_GOAL,
                        "every_round": r["min"] >= LINE_GOAL,
                    }
                )
    long = summary.get("long")
    if long:
        for r in long["ratios"]:
            if r["size_factor"] >= 16 and "(by" not in r["ratio"]:
                out.append(
                    {
                        "goal": f"long line: {r['ratio']} (quadratic would be "
                        f"{r['size_factor']:.0f}x)",
                        "figure": r,
                        "needed": None,
                        "met": r["max"] < 2.0,
                        "every_round": r["max"] < 2.0,
                    }
                )
    decoders = summary.get("decoders")
    if decoders:
        for r in decoders["ratios"]:
            if r["framing"] in ("varint", "netstring"):
                out.append(
                    {
                        "goal": f"decoding, {r['ratio']} frames/s (paired)",
                        "figure": r,
                        "needed": DECODER_GOAL,
                        "met": r["median"] >= DECODER_GOAL,
                        "every_round": r["min"] >= DECODER_GOAL,
                    }
                )
    return out


# -- tables ----------------------------------------------------------------------------------


def spread(s: dict[str, float], fmt: Callable[[float], str]) -> str:
    return f"{fmt(s['median'])} ({fmt(s['min'])}..{fmt(s['max'])})"


def count_fmt(x: float) -> str:
    return f"{x:,.0f}"


def ratio_fmt(x: float) -> str:
    return f"{x:.2f}x"


def pct_fmt(x: float) -> str:
    return f"{x * 100:.0f}%"


def line_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    s = report["summary"]["lines"]
    header = ["receiver", "lines/s", "MB/s", "receiver CPU / wall", "framekit-batch / this"]
    paired = {r["ratio"]: r for r in s["ratios"]}
    rows = []
    for name, per in s["receivers"].items():
        mbps = {k: v * LINE_SIZE / 1e6 for k, v in per["lines_per_s"].items()}
        ratio = paired.get(f"framekit-batch / {name}")
        rows.append(
            [
                f"`{name}`" if report.get("_md") else name,
                spread(per["lines_per_s"], count_fmt),
                f"{mbps['median']:.0f}",
                spread(per["cpu_share"], pct_fmt),
                spread(ratio, ratio_fmt) if ratio else "-",
            ]
        )
    return header, rows


def ratio_rows(ratios: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["paired ratio", "median (min..max)"]
    return header, [[r["ratio"], spread(r, ratio_fmt)] for r in ratios]


def long_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    s = report["summary"]["long"]
    header = ["line", "fed", "seconds", "ns/byte"]
    rows = []
    for per in s["cases"].values():
        rows.append(
            [
                f"{per['size'] // MIB} MiB",
                "byte by byte" if per["chunk"] == 1 else f"{per['chunk']} B chunks",
                spread(per["elapsed"], lambda x: f"{x:.2f}"),
                spread(per["ns_per_byte"], lambda x: f"{x:.0f}"),
            ]
        )
    return header, rows


def decoder_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    s = report["summary"]["decoders"]
    paired = {r["framing"]: r for r in s["ratios"]}
    header = ["framing", "wire bytes/frame", "frames/s", "ns/frame", "rate / u32be (paired)"]
    rows = []
    for name, per in s["framings"].items():
        ratio = paired.get(name)
        rows.append(
            [
                f"`{name}`" if report.get("_md") else name,
                f"{per['wire_bytes_per_frame']:.0f}",
                spread(per["frames_per_s"], count_fmt),
                spread(per["ns_per_frame"], lambda x: f"{x:.0f}"),
                spread(ratio, ratio_fmt) if ratio else "1",
            ]
        )
    return header, rows


def goal_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["goal", "paired ratio, median (min..max)", "needed", "result"]
    rows = []
    for g in report["summary"]["goals"]:
        needed = f">= {g['needed']:.2f}x" if g["needed"] is not None else "< 2x (flat)"
        result = "MET" if g["met"] else "NOT MET"
        if g["met"] and not g["every_round"]:
            result += " (not in every round)"
        rows.append([g["goal"], spread(g["figure"], ratio_fmt), needed, result])
    return header, rows


def render(report: dict[str, Any], markdown: bool) -> str:
    from framing import markdown_table, text_table

    report = {**report, "_md": markdown}
    s = report["settings"]
    out = []

    def table(rows: tuple[list[str], list[list[str]]], left: int = 1) -> None:
        out.append(markdown_table(*rows, left=left) if markdown else text_table(*rows))
        out.append("")

    if "lines" in report["summary"]:
        if not markdown:
            out.append(
                f"Lines: {s['lines']:,} lines of {LINE_SIZE} B over loopback TCP, each "
                f"receiver a fresh process; median (min..max) of {s['repeat']} rounds\n"
            )
        table(line_rows(report))
        table(ratio_rows(report["summary"]["lines"]["ratios"]))
    if "long" in report["summary"]:
        if not markdown:
            out.append(f"One long line fed to DelimitedDecoder ({LONG_SPEC})\n")
        table(long_rows(report), left=2)
        table(ratio_rows(report["summary"]["long"]["ratios"]))
    if "decoders" in report["summary"]:
        if not markdown:
            out.append(
                f"Sans-IO decoders: {s['frames']:,} frames of {DECODE_PAYLOAD} B, fed in "
                f"{DECODE_CHUNK // 1024} KiB chunks\n"
            )
        table(decoder_rows(report))
    table(goal_rows(report))
    out += notes(report)
    return "\n".join(out).rstrip()


def notes(report: dict[str, Any]) -> list[str]:
    out = []
    runs = [
        (part, key, run)
        for part in PARTS
        if part in report
        for rnd in report[part]["rounds"]
        for key, run in rnd.items()
    ]
    disturbed = [
        f"{part} {key}" if part != "long" else f"long {run['size'] // MIB} MiB by {run['chunk']} B"
        for part, key, run in runs
        if run["disturbed"]
    ]
    redone = sum(run["redone"] for _, _, run in runs)
    out.append(
        f"{len(disturbed)} of {len(runs)} runs disturbed by other work after {redone} redo(s)"
        + (f": {', '.join(disturbed)}" if disturbed else "")
        + "."
    )
    for part in PARTS:
        code = report.get(part, {}).get("code")
        if not code:
            continue
        b, a = code["before"], code["after"]
        if b["framing_code_sha256"] != a["framing_code_sha256"]:
            out.append(
                f"WARNING: the framing code changed while the {part} part ran (commit "
                f"{b['commit']} -> {a['commit']}): its figures mix two versions."
            )
        else:
            out.append(
                f"{part}: commit {a['commit']}, framing code {a['framing_code_sha256']}, "
                f"modified framekit files: {', '.join(a['modified'] or []) or 'none'}."
            )
    skipped = report.get("lines", {}).get("skipped")
    if skipped:
        out.append(f"Not run: {skipped}.")
    env = report["environment"]
    out.append(
        f"Python {env['python']}, "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
        + f"; {env['cpus']} CPUs; {report['wall_seconds']} s in all."
    )
    return out


# -- command line ----------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("recv", "send", "long", "decode"):
        return worker_main(sys.argv[1:])

    import importlib.util

    from _common import add_run_options, driver_parser, load_report, publish, source_state
    from framing import environment, pick_cpus

    parser = driver_parser(__doc__, "100,000 lines, 200,000 frames, 1 and 4 MiB lines, 1 round")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma list of " + ", ".join(PARTS)
    )
    parser.add_argument("--lines", type=int, help="lines per trial (default 1,000,000)")
    parser.add_argument("--frames", type=int, help="frames per decoder trial (default 1,000,000)")
    parser.add_argument("--long-sizes", help="long line sizes in MiB (default 1,4,16; quick 1,4)")
    parser.add_argument(
        "--receivers", help="comma list of line receivers (default all): " + ", ".join(RECEIVERS)
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin workers to CPUs")
    add_run_options(parser, "round")
    # This benchmark's own defaults, with help that says so.
    parser.set_defaults(max_interference=DISTURBED_CPUS)
    for action in parser._actions:
        if action.dest == "repeat":
            action.help = "rounds of every case (default 5; quick 1)"
        elif action.dest == "max_interference":
            action.help = (
                f"redo a run during which other work took more than this many CPUs "
                f"(default {DISTURBED_CPUS})"
            )
    args = parser.parse_args()
    if args.load:
        print(render(load_report(args.load), markdown=args.markdown))
        return 0
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not parts or any(p not in PARTS for p in parts):
        parser.error(f"--parts: choose from {', '.join(PARTS)}")
    args.repeat = args.repeat or (1 if args.quick else 5)
    args.lines = args.lines or (100_000 if args.quick else 1_000_000)
    args.frames = args.frames or (200_000 if args.quick else 1_000_000)
    sizes = args.long_sizes or ("1,4" if args.quick else "1,4,16")
    args.long_sizes = [int(x) * MIB for x in sizes.split(",") if x.strip()]
    if args.lines < 2 * VARIANTS or args.frames < 1:
        parser.error("--lines and --frames need a few")
    names = list(RECEIVERS)
    if args.receivers:
        names = [n.strip() for n in args.receivers.split(",") if n.strip()]
        if any(n not in RECEIVERS for n in names):
            parser.error(f"--receivers: choose from {', '.join(RECEIVERS)}")
    skipped = None
    if "asyncio-uvloop" in names and importlib.util.find_spec("uvloop") is None:
        names.remove("asyncio-uvloop")
        skipped = "asyncio-uvloop (uvloop is not installed)"
    cpus = None if args.no_pin else pick_cpus()

    began = time.monotonic()
    driver = Driver(args.timeout, args.retries, args.max_interference, cpus)
    report: dict[str, Any] = {
        "environment": {**environment(), "source": source_state()},
        "settings": {
            "parts": parts,
            "repeat": args.repeat,
            "lines": args.lines,
            "line_size": LINE_SIZE,
            "frames": args.frames,
            "frame_payload": DECODE_PAYLOAD,
            "decode_chunk": DECODE_CHUNK,
            "long_sizes": args.long_sizes,
            "retries": args.retries,
            "max_interference": args.max_interference,
            "quiet": args.quiet,
            "quick": args.quick,
            "pinned_cpus": cpus,
        },
    }
    from _common import CaseError

    try:
        if "lines" in parts:
            before = code_state()
            report["lines"] = {
                "receivers": names,
                "descriptions": {n: RECEIVERS[n][2] for n in names},
                "skipped": skipped,
                "rounds": run_lines(driver, args, names),
                "code": {"before": before, "after": code_state()},
            }
        if "long" in parts:
            before = code_state()
            report["long"] = {
                "spec": LONG_SPEC,
                "rounds": run_long(driver, args),
                "code": {"before": before, "after": code_state()},
            }
        if "decoders" in parts:
            before = code_state()
            report["decoders"] = {
                "rounds": run_decoders(driver, args),
                "code": {"before": before, "after": code_state()},
            }
    except CaseError as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        driver.workers.close()
    report["wall_seconds"] = round(time.monotonic() - began, 1)
    summarize(report)
    publish(report, render, args.markdown, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
