"""UDP echo: framekit's echo server against asyncio, Twisted, naive Trio and a raw socket.

Usage:
    .venv/bin/python bench/udp.py [--quick] [--repeat N] [--round-trips N] [--burst N]
                                  [--only NAME,...] [--json OUT] [--markdown] [--load JSON]

Every echo server runs alone in its own worker process on 127.0.0.1, counts the datagrams
it receives and echoes each one back to its sender. A control thread in that process
answers ``COUNT`` on its stdin (it sleeps in ``readline`` otherwise, taking no CPU).

* Round trips: ONE client for every server - a blocking socket in its own process,
  ``connect``-ed to the server, sending a 64-byte datagram (carrying its sequence
  number) and waiting for its echo (``recv`` with a 1 s timeout; a late or stale echo is
  skipped, a lost one counted) - for a fixed number of round trips after an unmeasured
  warm-up. Figure: round trips/s, median of ``--repeat`` runs.
* Burst: one sender process blasts ``--burst`` (default 50,000) datagrams of 512 bytes
  with blocking ``sendto`` as fast as it can (4 MiB SO_SNDBUF; it never reads the echoes,
  which the kernel drops once its receive buffer is full). After the sender is done the
  driver polls the server's count until it stops changing, then reports received % =
  datagrams the server received / datagrams sent. Median of ``--repeat`` bursts.

Servers (each the way its documentation shows, default options unless noted):
``framekit`` (``serve_udp_echo`` with ``UdpEchoStats``), ``asyncio`` (a
``DatagramProtocol`` on ``create_datagram_endpoint``), ``twisted`` (a ``DatagramProtocol``
on ``reactor.listenUDP``, default reactor), ``trio-naive`` (``trio.socket``:
``await recvfrom`` then ``await sendto`` in a loop) and ``raw-blocking`` (a blocking
socket ``recvfrom``/``sendto`` loop with a 4 MiB SO_RCVBUF). ``uvloop`` runs the asyncio
server on uvloop when uvloop is installed (it is not a dependency; skipped otherwise).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import sys
import time
from dataclasses import dataclass
from functools import partial
from importlib.util import find_spec
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
    guarded,
    limit_lifetime,
    load_report,
    median_of,
    publish,
    read_command,
    selected,
    serve_control,
    source_state,
    wait_for_quiet,
)
from framing import environment, fmt, markdown_table, text_table

SCRIPT = str(Path(__file__).resolve())
HOST = "127.0.0.1"  # loopback only, always
RTT_SIZE = 64
BURST_SIZE = 512
RAW_RCVBUF = 4 * 1024 * 1024
SENDER_SNDBUF = 4 * 1024 * 1024
RECV_TIMEOUT = 1.0
WARMUP = 500  # unmeasured round trips before each measured run
#: A run with more lost round trips than this fraction is an error, not a figure.
MAX_LOSS = 0.01
#: The driver calls a burst settled when the server's count holds still this long.
SETTLE_STILL = 0.3
SETTLE_MAX = 10.0
WORKER_LIFETIME = 1800
SEQ = struct.Struct("!Q")


@dataclass(frozen=True)
class Impl:
    name: str
    description: str
    reference_rtt: float | None  # the medians
    reference_burst: float | None


IMPLS = {
    impl.name: impl
    for impl in [
        Impl("framekit", "framekit.serve_udp_echo(port, stats=UdpEchoStats())", None, None),
        Impl("asyncio", "asyncio DatagramProtocol, create_datagram_endpoint", 11_000, 13.0),
        Impl("uvloop", "the asyncio server on uvloop (only if uvloop is installed)", 21_000, None),
        Impl(
            "twisted", "Twisted DatagramProtocol, reactor.listenUDP (epoll reactor)", 16_000, 99.5
        ),
        Impl("trio-naive", "trio.socket: await recvfrom; await sendto", 10_000, 34.0),
        Impl(
            "raw-blocking", "blocking socket recvfrom/sendto loop, 4 MiB SO_RCVBUF", 22_000, 100.0
        ),
    ]
}


@dataclass(frozen=True)
class Target:
    what: str
    kind: str  # "rtt": ratio to a peer; "burst": received % against a floor
    peer: str | None
    threshold: float


TARGETS = (
    Target("64 B round trips vs asyncio DatagramProtocol", "rtt", "asyncio", 1.0),
    Target("burst of 50,000 x 512 B: received", "burst", None, 99.0),
)
CONTEXT = ("raw-blocking", "twisted", "trio-naive", "uvloop")


# -- echo servers (worker processes) ---------------------------------------------------------


class Counter:
    """Datagrams received; the server loop writes it, the control thread reads it."""

    def __init__(self) -> None:
        self.n = 0


def serve_raw(counter: Counter) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RAW_RCVBUF)
    sock.bind((HOST, 0))
    start_control(sock.getsockname()[1], lambda: counter.n)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        data, addr = recvfrom(65536)
        counter.n += 1
        try:
            sendto(data, addr)
        except OSError:
            pass


def serve_asyncio(counter: Counter, use_uvloop: bool) -> None:
    import asyncio

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # the selector loop's transport does not subclass DatagramTransport
            self.transport: Any = transport

        def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
            counter.n += 1
            self.transport.sendto(data, addr)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=(HOST, 0))
        start_control(transport.get_extra_info("sockname")[1], lambda: counter.n)
        await asyncio.Event().wait()  # forever; the control thread ends the process

    if use_uvloop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def serve_twisted(counter: Counter) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol

    class Echo(DatagramProtocol):
        def datagramReceived(self, datagram: bytes, addr: Any) -> None:
            counter.n += 1
            self.transport.write(datagram, addr)

    port = reactor.listenUDP(0, Echo(), interface=HOST)
    start_control(port.getHost().port, lambda: counter.n)
    reactor.run(installSignalHandlers=False)


def serve_trio_naive(counter: Counter) -> None:
    import trio

    async def main() -> None:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await sock.bind((HOST, 0))
        start_control(sock.getsockname()[1], lambda: counter.n)
        while True:
            data, addr = await sock.recvfrom(65536)
            counter.n += 1
            await sock.sendto(data, addr)

    trio.run(main)


def serve_framekit() -> None:
    import trio

    import framekit

    stats = framekit.UdpEchoStats()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(
                lambda task_status: framekit.serve_udp_echo(
                    0, host=HOST, stats=stats, task_status=task_status
                )
            )
            start_control(bound[0][1], lambda: stats.datagrams)

    trio.run(main)


def start_control(port: int, count: Any) -> None:
    serve_control({"COUNT": lambda: str(count())})
    emit(f"PORT {port}")


def run_server(impl: str) -> None:
    counter = Counter()
    if impl == "raw-blocking":
        serve_raw(counter)
    elif impl in ("asyncio", "uvloop"):
        serve_asyncio(counter, use_uvloop=impl == "uvloop")
    elif impl == "twisted":
        serve_twisted(counter)
    elif impl == "trio-naive":
        serve_trio_naive(counter)
    else:
        serve_framekit()


# -- clients (worker processes) --------------------------------------------------------------


def ping_pong(sock: socket.socket, count: int, size: int) -> tuple[int, int]:
    """``count`` round trips; returns (completed, lost). Gives up once too many are lost
    (each costs the 1 s timeout), so a broken server fails the run quickly."""
    pad = bytes(size - SEQ.size)
    lost = 0
    give_up = max(3, int(count * MAX_LOSS))
    for i in range(count):
        if lost > give_up:
            return i - lost, lost
        tag = SEQ.pack(i)
        sock.send(tag + pad)
        while True:
            try:
                reply = sock.recv(2048)
            except TimeoutError:
                lost += 1
                break
            if reply[: SEQ.size] == tag and len(reply) == size:
                break
            # a late echo of an earlier, already-counted-lost datagram: skip it
    return count - lost, lost


def run_rtt_client(port: int, size: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((HOST, port))
    sock.settimeout(RECV_TIMEOUT)
    while words := read_command():
        count = int(words[1])
        ping_pong(sock, WARMUP, size)
        t0 = time.perf_counter()
        done, lost = ping_pong(sock, count, size)
        elapsed = time.perf_counter() - t0
        emit(
            "RESULT " + json.dumps({"count": count, "done": done, "lost": lost, "elapsed": elapsed})
        )


def run_burst_sender(port: int, size: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SENDER_SNDBUF)
    sock.settimeout(RECV_TIMEOUT)  # a send blocked this long raises instead of hanging
    payload = bytes(size)
    addr = (HOST, port)
    sendto = sock.sendto
    while words := read_command():
        count = int(words[1])
        errors = 0
        t0 = time.perf_counter()
        for _ in range(count):
            try:
                sendto(payload, addr)
            except OSError:
                errors += 1
        elapsed = time.perf_counter() - t0
        result = {"sent": count - errors, "errors": errors, "elapsed": elapsed}
        emit("RESULT " + json.dumps(result))


def worker_main(argv: list[str]) -> None:
    """``worker server IMPL`` | ``worker rtt PORT SIZE`` | ``worker burst PORT SIZE``."""
    limit_lifetime(WORKER_LIFETIME)
    role = argv[0]
    if role == "server":
        run_server(argv[1])
    elif role == "rtt":
        run_rtt_client(int(argv[1]), int(argv[2]))
    else:
        run_burst_sender(int(argv[1]), int(argv[2]))


# -- driver ----------------------------------------------------------------------------------


def server_count(server: Worker, deadline: float) -> int:
    server.send("COUNT")
    return int(server.expect("COUNT", deadline))


def rtt_trial(server: Worker, client: Worker, count: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    cpu0 = cpu_seconds(server.proc.pid)
    client.send(f"RUN {count}")
    r = json.loads(client.expect("RESULT", deadline))
    cpu1 = cpu_seconds(server.proc.pid)
    if r["lost"] > count * MAX_LOSS:
        raise CaseError(f"{r['lost']} of {count} round trips got no echo within {RECV_TIMEOUT} s")
    if r["elapsed"] <= 0:
        raise CaseError(f"nothing measured: {r}")
    # the server's CPU covers the warm-up round trips too
    cpu_us = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / (count + WARMUP) * 1e6
    return {**r, "rtps": r["done"] / r["elapsed"], "server_cpu_us": cpu_us}


def burst_trial(server: Worker, sender: Worker, count: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    before = server_count(server, deadline)
    cpu0 = cpu_seconds(server.proc.pid)
    sender.send(f"RUN {count}")
    sent = json.loads(sender.expect("RESULT", deadline))
    # settle: wait until the server has drained what its socket buffer holds
    settle_end = time.monotonic() + SETTLE_MAX
    last, still_since = server_count(server, deadline), time.monotonic()
    while time.monotonic() < settle_end:
        time.sleep(0.05)
        now = server_count(server, deadline)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= SETTLE_STILL:
            break
    cpu1 = cpu_seconds(server.proc.pid)
    received = last - before
    if sent["sent"] <= 0:
        raise CaseError(f"the sender sent nothing: {sent}")
    cpu_us = None if cpu0 is None or cpu1 is None or not received else (cpu1 - cpu0) / received
    return {
        "server_cpu_us": None if cpu_us is None else cpu_us * 1e6,
        "sent": sent["sent"],
        "send_errors": sent["errors"],
        "send_rate": sent["sent"] / sent["elapsed"] if sent["elapsed"] > 0 else None,
        "received": received,
        "percent": 100.0 * received / sent["sent"],
    }


def run_all(
    names: list[str], modes: list[str], rtts: int, args: argparse.Namespace, repeat: int
) -> list[dict[str, Any]]:
    """Start every server (with its round-trip client and burst sender) first, then run
    rounds: each round one trial per server, in a rotating order, so a burst of outside
    load hits all servers alike instead of one server's every run."""
    workers = Workers()
    errors: dict[tuple[str, str], str] = {}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {(n, m): [] for n in names for m in modes}
    peers: dict[tuple[str, str], tuple[Worker, Worker]] = {}
    try:
        for name in names:
            try:
                server = workers.start(f"{name} server", SCRIPT, ["worker", "server", name])
                port = server.expect("PORT", time.monotonic() + 30)
                for mode in modes:
                    size = RTT_SIZE if mode == "rtt" else BURST_SIZE
                    client = workers.start(
                        f"{name} {mode} client", SCRIPT, ["worker", mode, port, str(size)]
                    )
                    peers[name, mode] = (server, client)
            except CaseError as exc:
                for mode in modes:
                    errors[name, mode] = str(exc)
                print(f"{name}: ERROR: {exc}", file=sys.stderr)
        for mode in modes:
            for rnd in range(repeat):
                busy = wait_for_quiet(args.quiet, args.quiet_wait) if args.quiet < 1 else None
                if busy is not None and busy > args.quiet:
                    print(
                        f"warning: the machine is {busy:.0%} busy with other work", file=sys.stderr
                    )
                shift = rnd % len(names)
                for name in names[shift:] + names[:shift]:
                    if (name, mode) in errors:
                        continue
                    server, client = peers[name, mode]
                    if mode == "rtt":
                        trial = partial(rtt_trial, server, client, rtts, args.timeout)
                    else:
                        trial = partial(burst_trial, server, client, args.burst, args.timeout)
                    t = time.monotonic()
                    try:
                        r = guarded(
                            trial,
                            [server.proc.pid, client.proc.pid],
                            args.max_interference,
                            args.retries,
                        )
                    except CaseError as exc:
                        errors[name, mode] = str(exc)
                        print(f"[{mode} {rnd + 1}] {name}: ERROR: {exc}", file=sys.stderr)
                        continue
                    runs[name, mode].append(r)
                    got = (
                        f"{fmt(r['rtps'])} round trips/s"
                        if mode == "rtt"
                        else (f"{r['percent']:.1f} % received (sent at {fmt(r['send_rate'])}/s)")
                    )
                    redo = f", redone {r['redone']}x" if r["redone"] else ""
                    print(
                        f"[{mode} {rnd + 1}/{repeat}] {name}: {got} "
                        f"(server CPU {fmt(r['server_cpu_us'])} µs each; other load "
                        f"{fmt(r['interference'])} CPUs{redo}) [{time.monotonic() - t:.1f}s]",
                        file=sys.stderr,
                    )
    finally:
        workers.close()
    results = []
    for name in names:
        for mode in modes:
            if (name, mode) in errors:
                results.append({"impl": name, "mode": mode, "error": errors[name, mode]})
                continue
            rs = runs[name, mode]
            r: dict[str, Any] = {"impl": name, "mode": mode, "runs": rs}
            if mode == "rtt":
                r.update(count=rtts, rtps=statistics.median(x["rtps"] for x in rs))
            else:
                r.update(
                    count=args.burst,
                    percent=statistics.median(x["percent"] for x in rs),
                    send_rate=median_of(rs, "send_rate"),
                )
            r["server_cpu_us"] = median_of(rs, "server_cpu_us")
            r["interference_max"] = max(
                (x["interference"] for x in rs if x["interference"] is not None), default=None
            )
            results.append(r)
    return results


def lookup(results: list[dict[str, Any]], impl: str, mode: str) -> dict[str, Any] | None:
    for r in results:
        if (r["impl"], r["mode"]) == (impl, mode):
            return r
    return None


def value(results: list[dict[str, Any]], impl: str, mode: str) -> float | None:
    r = lookup(results, impl, mode)
    key = "rtps" if mode == "rtt" else "percent"
    return None if r is None else r.get(key)


def check_targets(results: list[dict[str, Any]], burst: int) -> list[dict[str, Any]]:
    checks = []
    for t in TARGETS:
        ours = value(results, "framekit", t.kind)
        row: dict[str, Any] = {"target": t.what, "kind": t.kind, "threshold": t.threshold}
        if t.kind == "rtt":
            peer = value(results, t.peer or "", "rtt")
            ratio = None if ours is None or peer is None else ours / peer
            row.update(framekit=ours, peer=t.peer, peer_value=peer, ratio=ratio)
            ok = ratio is not None and ratio >= t.threshold
        else:
            row.update(framekit=ours, peer=None, peer_value=None, ratio=None, burst=burst)
            ok = ours is not None and ours >= t.threshold
        row["result"] = "n/a" if ours is None else ("PASS" if ok else "FAIL")
        checks.append(row)
    ours = value(results, "framekit", "rtt")
    for peer in CONTEXT:
        theirs = value(results, peer, "rtt")
        if ours is not None and theirs is not None:
            checks.append(
                {
                    "target": f"64 B round trips vs {peer}",
                    "kind": "rtt",
                    "threshold": None,
                    "framekit": ours,
                    "peer": peer,
                    "peer_value": theirs,
                    "ratio": ours / theirs,
                    "result": "info",
                }
            )
    return checks


def results_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "server",
        "64 B round trips/s",
        "server CPU µs/round trip",
        "burst received %",
        "sender datagrams/s",
        "server CPU µs/datagram",
        "issue's figures",
    ]
    rows = []
    for name in dict.fromkeys(r["impl"] for r in results):
        rtt, burst = lookup(results, name, "rtt"), lookup(results, name, "burst")
        row = [name]
        if rtt is not None and "error" in rtt:
            row += ["ERROR", "-"]
        else:
            row.append(fmt(rtt and rtt["rtps"]))
            row.append(fmt(rtt and rtt.get("server_cpu_us")))
        if burst is not None and "error" in burst:
            row += ["ERROR", "-", "-"]
        else:
            row.append("-" if burst is None else f"{burst['percent']:.1f}")
            row.append(fmt(burst and burst.get("send_rate")))
            row.append(fmt(burst and burst.get("server_cpu_us")))
        impl = IMPLS[name]
        ref = []
        if impl.reference_rtt:
            ref.append(f"~{impl.reference_rtt:,.0f}/s")
        if impl.reference_burst is not None:
            ref.append(f"{impl.reference_burst:g} %")
        row.append(", ".join(ref) or "-")
        rows.append(row)
    return header, rows


def target_rows(checks: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["target", "framekit", "peer", "ratio", "needed", "result"]
    rows = []
    for c in checks:
        if c["kind"] == "rtt":
            rows.append(
                [
                    c["target"],
                    f"{fmt(c['framekit'])}/s",
                    f"{fmt(c['peer_value'])}/s ({c['peer']})",
                    "-" if c["ratio"] is None else f"{c['ratio']:.2f}x",
                    "-" if c["threshold"] is None else f">= {c['threshold']}x",
                    c["result"],
                ]
            )
        else:
            ours = c["framekit"]
            rows.append(
                [
                    c["target"],
                    "-" if ours is None else f"{ours:.2f} %",
                    "-",
                    "-",
                    f">= {c['threshold']:g} %",
                    c["result"],
                ]
            )
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
            f"UDP echo on loopback (medians of {s['repeat']}; {s['round_trips']:,} round trips "
            f"of {RTT_SIZE} B per run; bursts of {s['burst']:,} x {BURST_SIZE} B)\n"
        )
        out.append(text_table(*results_rows(results)))
        loads = [
            f"{r['impl']} {r['mode']} {fmt(r.get('interference_max'))}"
            for r in results
            if r.get("interference_max") is not None
        ]
        if loads:
            out.append("\nOutside load, max CPUs other work took during a run: " + ", ".join(loads))
        out.append("\nTargets (framekit / peer, same run, same client)\n")
        out.append(text_table(*target_rows(checks)))
    skipped = report.get("skipped") or {}
    if skipped:
        out.append("\nSkipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()))
    out += error_lines(results, lambda r: f"{r['impl']} {r['mode']}")
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
        return 0
    parser = driver_parser(__doc__, "shorter runs, one per case")
    parser.add_argument(
        "--round-trips", type=int, help="round trips per run (default 20,000; quick 5,000)"
    )
    parser.add_argument(
        "--burst", type=int, default=50_000, help="datagrams per burst (default 50,000)"
    )
    parser.add_argument("--only", help="comma-separated servers: " + ", ".join(IMPLS))
    parser.add_argument(
        "--mode", choices=("both", "rtt", "burst"), default="both", help="what to measure"
    )
    add_run_options(parser, "server")
    args = parser.parse_args()

    if args.load:
        print(render(load_report(args.load), markdown=args.markdown))
        return 0

    names = selected(parser, args.only, list(IMPLS), "server")
    skipped = {}
    if "uvloop" in names and find_spec("uvloop") is None:
        names.remove("uvloop")
        skipped["uvloop"] = "not installed"
    if "twisted" in names and find_spec("twisted") is None:
        names.remove("twisted")
        skipped["twisted"] = "not installed"
    repeat = args.repeat or (1 if args.quick else 3)
    rtts = args.round_trips or (5_000 if args.quick else 20_000)
    modes = ["rtt", "burst"] if args.mode == "both" else [args.mode]

    started = time.monotonic()
    results = run_all(names, modes, rtts, args, repeat)

    report = {
        "environment": {**environment(), "source": source_state()},
        "settings": {
            "repeat": repeat,
            "round_trips": rtts,
            "rtt_size": RTT_SIZE,
            "burst": args.burst,
            "burst_size": BURST_SIZE,
            "quick": args.quick,
            "max_interference": args.max_interference,
            "only": names,
        },
        "implementations": {n: IMPLS[n].description for n in names},
        "skipped": skipped,
        "results": results,
        "targets": check_targets(results, args.burst),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    publish(report, render, args.markdown, args.json)
    print(f"\n{len(names)} servers in {report['wall_seconds']} s", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
