"""Framing throughput and round trips: framekit side by side with other ways to frame TCP.

Usage:
    .venv/bin/python bench/framing.py [--quick] [--repeat N] [--json OUT] [--markdown]
                                      [--only NAME,...] [--cases GROUP,...] [--load JSON]

For every implementation in ``peers.py`` it measures one-way throughput (frames/s and
MB/s of payload, 1 MB = 10**6 bytes) at payloads of 64 B, 1 KiB, 64 KiB and 4 MiB, and
ping-pong round trips/s at 64 B, then checks framekit's targets against its peers.

How:

* Each case runs a receiver (the server) and a sender (the client) in two worker
  processes over loopback TCP, pinned to two different CPUs. The receiver times from
  the first frame it gets to the last, and checks it got exactly the frames that were
  sent (count, bytes, sampled content, clean end of stream): a peer that mis-frames
  fails the case instead of reporting a number. Ping-pong is timed by the client.
* A short calibration trial scales each case's frame count so a run lasts about
  ``--seconds``; every count is bounded, every wait has a timeout.
* Cases that are compared with each other (same payload size) run interleaved: each
  round runs one trial of every implementation (starting one further along the list
  each round), so a slow patch of the machine hits them all. Each figure is the median
  of ``--repeat`` rounds.
* A run is disturbed when, meanwhile, other processes (or the hypervisor) took more than
  5% of a CPU (all busy time of the machine, minus that of the workers and the driver),
  or the workers waited more than 5% of the run for a CPU that something else held
  (``run_delay`` in /proc/PID/task/*/schedstat). A disturbed run is re-run once the
  machine is quiet again (up to ``--retries`` times, waiting up to 30 s each time); one
  still disturbed is kept and flagged, and left out of the median unless every run of
  the case was disturbed (then the figure is marked ``*``). Runs that were re-run are
  kept in the JSON too.
* Each target is a ratio taken within a round (framekit's figure / the peer's in the
  same round), reported as the median (min..max) over the rounds. A round whose
  framekit or peer run was disturbed gives no ratio, nor does one whose peer run is
  under half that peer's median (a slow ceiling the accounting missed); a target with
  no clean round left says "disturbed" instead of PASS or FAIL.
"""

from __future__ import annotations

import datetime
import functools
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from _common import CaseError, Worker, driver_parser, publish
from peers import IMPLS, ONEWAY, PINGPONG

PEERS_SCRIPT = Path(__file__).with_name("peers.py")
FRAMING_CODE = ("framekit/streams", "framekit/codec", "framekit/_types.py")
SIZES = (64, 1024, 64 * 1024, 4 * 1024 * 1024)
PINGPONG_SIZE = 64
LABELS = {64: "64 B", 1024: "1 KiB", 64 * 1024: "64 KiB", 4 * 1024 * 1024: "4 MiB"}
#: Upper bounds on one trial, whatever the calibration says.
MAX_FRAMES = 5_000_000
MAX_BYTES = 2_500_000_000
MAX_ROUND_TRIPS = 300_000
MIN_FRAMES = 16
#: A run is disturbed when other processes took more than this share of one CPU, or
#: the workers waited for a CPU more than this share of the run.
DISTURBED = 0.05
#: ... and by more than this many seconds (the CPU accounting counts in clock ticks).
DISTURBED_FLOOR = 0.03
#: A peer's run under this share of that peer's median gives no paired ratio.
SLOW_CEILING = 0.5
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Case:
    impl: str
    mode: str
    size: int

    @property
    def key(self) -> str:
        return f"{self.impl} {self.mode} {LABELS[self.size]}"

    @property
    def cap(self) -> int:
        if self.mode == PINGPONG:
            return MAX_ROUND_TRIPS
        return max(MIN_FRAMES, min(MAX_FRAMES, MAX_BYTES // self.size))

    @property
    def first_count(self) -> int:
        """The calibration trial's count: short even for the slowest peer."""
        if self.mode == PINGPONG:
            return 300
        return max(MIN_FRAMES, min(2000, (512 * 1024) // self.size))


@dataclass(frozen=True)
class Target:
    """framekit's ``impl`` against ``peers`` (several forms of one peer: each round's
    ceiling is the fastest of them); ``threshold`` None is a row for information."""

    what: str
    impl: str
    peers: tuple[str, ...]
    size: int
    threshold: float | None
    mode: str = ONEWAY


TWISTED = ("twisted-push", "twisted-pull")

TARGETS = (
    Target(
        "64 B, FramedStream.send per frame vs sendall per frame",
        "framekit-stream",
        ("blocking-tutorial",),
        64,
        1.0,
    ),
    Target("64 B, channel vs Twisted (faster producer)", "framekit-channel", TWISTED, 64, 1.5),
    Target(
        "64 B, channel vs coalescing blocking pair",
        "framekit-channel",
        ("blocking-coalesce",),
        64,
        1.0,
    ),
    Target("1 KiB, channel vs Twisted (faster producer)", "framekit-channel", TWISTED, 1024, 1.5),
    Target(
        "1 KiB, batch API vs blocking batch to batch",
        "framekit-batch",
        ("blocking-bulk",),
        1024,
        1.0,
    ),
    Target("64 KiB, receive_into vs raw Trio", "framekit-into", ("raw-trio",), 64 << 10, 0.9),
    Target("4 MiB, receive_into vs raw Trio", "framekit-into", ("raw-trio",), 4 << 20, 0.9),
    Target(
        "64 B ping-pong, FramedStream vs asyncio on uvloop",
        "framekit-stream",
        ("asyncio-uvloop",),
        PINGPONG_SIZE,
        1.0,
        PINGPONG,
    ),
    # for information: no goal
    Target("64 KiB, receive() bytes vs raw Trio", "framekit-stream", ("raw-trio",), 65536, None),
    Target("4 MiB, receive() bytes vs raw Trio", "framekit-stream", ("raw-trio",), 4 << 20, None),
    Target(
        "64 B, batch API vs blocking batch to batch",
        "framekit-batch",
        ("blocking-bulk",),
        64,
        None,
    ),
    Target(
        "64 B, FramedStream.send vs sendall, both into the tutorial's receiver",
        "cross-stream-to-tutorial",
        ("blocking-tutorial",),
        64,
        None,
    ),
    Target(
        "64 B, sendall into framekit's receiver vs into the tutorial's",
        "cross-tutorial-to-stream",
        ("blocking-tutorial",),
        64,
        None,
    ),
    Target(
        "64 B ping-pong, FramedStream vs naive Trio",
        "framekit-stream",
        ("trio-naive",),
        PINGPONG_SIZE,
        None,
        PINGPONG,
    ),
    Target(
        "64 B ping-pong, FramedStream vs asyncio",
        "framekit-stream",
        ("asyncio",),
        PINGPONG_SIZE,
        None,
        PINGPONG,
    ),
)


# -- worker processes ------------------------------------------------------------------------


def peer_worker(role: str, case: Case, timeout: float, cpu: int | None) -> Worker:
    """One ``peers.py`` process for ``case``, driven line by line."""
    args = [role, case.impl, case.mode, str(case.size)]
    args += [str(int(timeout) + 1), "-" if cpu is None else str(cpu)]
    return Worker(f"{role} worker ({case.key})", str(PEERS_SCRIPT), args)


def cpu_ticks(pids: tuple[int, ...]) -> tuple[int, int] | None:
    """Busy clock ticks of the whole machine (user, nice, system, steal) and of ``pids``
    (all their threads), from /proc; None without /proc. (``framings.py`` uses it;
    this driver uses :class:`Usage`, which also counts interrupt time.)"""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
        ours = 0
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            ours += int(stat[11]) + int(stat[12])  # utime, stime
    except (OSError, ValueError, IndexError):
        return None
    return fields[0] + fields[1] + fields[2] + fields[7], ours


@dataclass(frozen=True)
class Usage:
    """A snapshot of the machine's busy time, our processes' CPU time and the time the
    workers' threads spent waiting for a CPU (all in seconds)."""

    machine: float
    ours: float
    waited: float

    @classmethod
    def take(cls, pids: tuple[int, ...], workers: tuple[int, ...]) -> Usage | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
            ours = 0
            for pid in pids:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read().rsplit(")", 1)[1].split()
                ours += int(stat[11]) + int(stat[12])  # utime, stime
            waited = 0
            for pid in workers:
                for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
                    with open(path) as f:
                        waited += int(f.read().split()[1])  # run_delay, ns
        except (OSError, ValueError, IndexError):
            return None
        idle = fields[3] + fields[4]  # idle, iowait; the rest (irq, steal, ...) is busy
        busy = sum(fields[:8]) - idle
        return cls(busy / TICKS, ours / TICKS, waited / 1e9)


def wait_quiet(pids: tuple[int, ...], longest: float = 30.0) -> None:
    """Wait (up to ``longest`` seconds) for half a second in which the rest of the
    machine used less than ``DISTURBED`` of a CPU."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        before = cpu_ticks(pids)
        time.sleep(0.5)
        after = cpu_ticks(pids)
        if not before or not after:
            return
        if (after[0] - before[0]) - (after[1] - before[1]) <= DISTURBED * 0.5 * TICKS:
            return


def is_disturbed(run: dict[str, Any]) -> bool:
    """Whether other work took CPU time (or the workers' CPUs) during ``run``."""
    limit: float = max(DISTURBED_FLOOR, DISTURBED * run["wall"])
    foreign: float = run.get("foreign_cpu", 0.0)
    waited: float = run.get("waited", 0.0)
    return foreign > limit or waited > limit


class Pair:
    """A receiver and a sender worker for one case; runs trials over fresh connections."""

    def __init__(self, case: Case, timeout: float, cpus: tuple[int, int] | None) -> None:
        self.case = case
        self.timeout = timeout
        self.receiver = peer_worker("recv", case, timeout, cpus and cpus[1])
        self.sender = peer_worker("send", case, timeout, cpus and cpus[0])
        self.workers = (self.receiver.proc.pid, self.sender.proc.pid)
        self.pids = (*self.workers, os.getpid())
        self.port = 0
        self.count = 0
        self.runs: list[dict[str, Any]] = []
        self.redone: list[dict[str, Any]] = []

    def trial(self, count: int) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        if not self.port:
            self.port = int(self.receiver.expect("PORT", deadline))
        self.sender.send(f"RUN {self.port} {count}")
        self.sender.expect("CONNECTED", deadline)
        self.receiver.send(f"RUN {count}")
        self.receiver.expect("READY", deadline)
        before = Usage.take(self.pids, self.workers)
        started = time.monotonic()
        self.sender.send("GO")
        received = json.loads(self.receiver.expect("RESULT", deadline))
        sent = json.loads(self.sender.expect("RESULT", deadline))
        wall = time.monotonic() - started
        after = Usage.take(self.pids, self.workers)
        case = self.case
        if case.mode == PINGPONG:
            result = sent
            if received.get("echoed") != count or sent.get("frames_total") != count:
                raise CaseError(f"{case.key}: {count} round trips planned, got {sent}/{received}")
        else:
            result = received
            if (result.get("frames_total"), result.get("bytes_total")) != (
                count,
                count * case.size,
            ):
                raise CaseError(f"{case.key}: {count} frames planned, receiver says {result}")
        if result["elapsed"] <= 0:
            raise CaseError(f"{case.key}: nothing measured ({result})")
        run = {
            "count": count,
            "elapsed": result["elapsed"],
            "wall": round(wall, 4),
            "fps": result["frames"] / result["elapsed"],
            "mbps": result["bytes"] / result["elapsed"] / 1e6,
        }
        if before and after:
            # CPU time the rest of the machine took meanwhile, and the time the workers
            # were ready to run but had no CPU
            foreign = (after.machine - before.machine) - (after.ours - before.ours)
            run["foreign_cpu"] = round(foreign, 3)
            run["waited"] = round(after.waited - before.waited, 4)
        return run

    def calibrate(self, seconds: float) -> None:
        """Pick the count for the measured runs: about ``seconds`` long, within the caps."""
        case = self.case
        count = case.first_count
        for _ in range(8):  # grow the count until a trial takes measurable time
            elapsed = self.trial(count)["elapsed"]
            if elapsed >= min(0.05, seconds / 3) or count >= case.cap:
                break
            count = min(case.cap, int(count * min(50.0, max(2.0, 0.08 / elapsed))))
        self.count = max(MIN_FRAMES, min(case.cap, int(count * seconds / elapsed)))

    def measure(self, round_: int, retries: int) -> None:
        """Round ``round_``'s run, re-run (after a pause) while other load disturbed it;
        the disturbed attempts are kept in ``redone``."""
        for attempt in range(retries + 1):
            run = {"round": round_, "attempt": attempt, **self.trial(self.count)}
            if not is_disturbed(run):
                break
            run["disturbed"] = True
            if attempt < retries:
                self.redone.append(run)
                log(
                    f"  {self.case.key}: other load took {run.get('foreign_cpu', 0):.2f} CPU-s "
                    f"(waited {run.get('waited', 0):.2f} s) meanwhile; again"
                )
                wait_quiet(self.pids)
        self.runs.append(run)

    def close(self) -> None:
        self.sender.close()
        self.receiver.close()


def run_group(
    cases: list[Case],
    repeat: int,
    seconds: float,
    timeout: float,
    cpus: tuple[int, int] | None,
    retries: int,
) -> list[dict[str, Any]]:
    """Calibrate each case, then run ``repeat`` rounds of one trial of every case."""
    pairs: dict[Case, Pair] = {}
    errors: dict[Case, str] = {}

    def attempt(case: Case, step: Callable[[Pair], object]) -> None:
        if case not in errors:
            try:
                step(pairs[case])
            except CaseError as exc:
                errors[case] = str(exc)
                pairs[case].close()
                log(f"  {case.key}: ERROR: {exc}")

    try:
        for case in cases:
            pairs[case] = Pair(case, timeout, cpus)
        for case in cases:
            attempt(case, lambda pair: pair.calibrate(seconds))
        for k in range(repeat):
            wait_quiet((os.getpid(),))
            shift = k % len(cases)  # each round starts one case further along
            for case in cases[shift:] + cases[:shift]:
                attempt(case, functools.partial(Pair.measure, round_=k, retries=retries))
    finally:
        for pair in pairs.values():
            pair.close()
    results = []
    for case in cases:
        r: dict[str, Any] = {"impl": case.impl, "mode": case.mode, "size": case.size}
        if case in errors:
            r["error"] = errors[case]
        else:
            runs = pairs[case].runs
            clean = [x for x in runs if not x.get("disturbed")]
            r.update(
                count=pairs[case].count,
                fps=statistics.median(x["fps"] for x in clean or runs),
                mbps=statistics.median(x["mbps"] for x in clean or runs),
                clean_runs=len(clean),
                runs=runs,
                redone=pairs[case].redone,
            )
            each = ", ".join(fmt(x["fps"]) + ("*" if x.get("disturbed") else "") for x in runs)
            log(f"  {case.key}: {fmt(r['fps'])}/s, {fmt(r['mbps'])} MB/s (runs: {each})")
        results.append(r)
    return results


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def pick_cpus() -> tuple[int, int] | None:
    """Two CPUs to pin the sender and the receiver to, if there are two."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


# -- results ---------------------------------------------------------------------------------


def cases_for(names: list[str]) -> list[Case]:
    cases = []
    for size in SIZES:
        for name in names:
            sizes = IMPLS[name].sizes
            if sizes is None or size in sizes:
                cases.append(Case(name, ONEWAY, size))
    cases += [Case(name, PINGPONG, PINGPONG_SIZE) for name in names if IMPLS[name].pingpong]
    return cases


def lookup(results: list[dict[str, Any]], impl: str, mode: str, size: int) -> dict[str, Any] | None:
    for r in results:
        if (r["impl"], r["mode"], r["size"]) == (impl, mode, size):
            return r
    return None


def paired_rounds(ours: dict[str, Any], peers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per round: framekit's figure, the ceiling (the fastest of the peer's
    forms) and their ratio, or why that round gives none."""
    medians = {p["impl"]: p["fps"] for p in peers}
    by_round = {x["round"]: x for x in ours["runs"]}
    rounds = []
    for k in sorted(by_round):
        run = by_round[k]
        entry: dict[str, Any] = {"round": k, "framekit": run["fps"]}
        why = []
        if run.get("disturbed"):
            why.append(f"{ours['impl']} disturbed")
        best: tuple[float, str] | None = None
        for peer in peers:
            prun = next((x for x in peer["runs"] if x["round"] == k), None)
            name = peer["impl"]
            if prun is None:
                why.append(f"{name} did not run")
                continue
            entry[name] = prun["fps"]
            if prun.get("disturbed"):
                why.append(f"{name} disturbed")
            elif peer["clean_runs"] and prun["fps"] < SLOW_CEILING * medians[name]:
                why.append(f"{name} under {SLOW_CEILING:g}x its median")
            if best is None or prun["fps"] > best[0]:
                best = (prun["fps"], name)
        if why or best is None:
            entry["skipped"] = "; ".join(why)
        else:
            entry.update(peer=best[0], peer_impl=best[1], ratio=run["fps"] / best[0])
        rounds.append(entry)
    return rounds


def check_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    checks = []
    for t in TARGETS:
        ours = lookup(results, t.impl, t.mode, t.size)
        peers = [lookup(results, p, t.mode, t.size) for p in t.peers]
        row: dict[str, Any] = {
            "target": t.what,
            "framekit": t.impl,
            "peer": " / ".join(t.peers),
            "peers": list(t.peers),
            "mode": t.mode,
            "size": t.size,
            "threshold": t.threshold,
            "framekit_fps": None,
            "peer_fps": {},
            "rounds": [],
            "ratio": None,
            "ratio_min": None,
            "ratio_max": None,
            "clean_rounds": 0,
        }
        found = [p for p in peers if p is not None and "fps" in p]
        if ours is None or "fps" not in ours or len(found) != len(peers):
            row["result"] = "n/a"
            checks.append(row)
            continue
        row["framekit_fps"] = ours["fps"]
        row["peer_fps"] = {p["impl"]: p["fps"] for p in found}
        row["rounds"] = paired_rounds(ours, found)
        ratios = [x["ratio"] for x in row["rounds"] if "ratio" in x]
        if not ratios:
            row["result"] = "disturbed"
        else:
            ratio = statistics.median(ratios)
            row.update(
                ratio=ratio, ratio_min=min(ratios), ratio_max=max(ratios), clean_rounds=len(ratios)
            )
            if t.threshold is None:
                row["result"] = "info"
            else:
                row["result"] = "PASS" if ratio >= t.threshold else "FAIL"
        checks.append(row)
    return checks


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:,.1f}" if x >= 10 else f"{x:,.2f}"


def figure(r: dict[str, Any] | None, key: str) -> str:
    """A result's median, ``*`` when every run of it was disturbed."""
    if r is None:
        return "-"
    if "error" in r:
        return "ERROR"
    return fmt(r[key]) + ("" if r.get("clean_runs", 1) else "*")


def results_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    sizes = [s for s in SIZES if any((r["mode"], r["size"]) == (ONEWAY, s) for r in results)]
    pingpong = any(r["mode"] == PINGPONG for r in results)
    header = ["implementation"]
    for size in sizes:
        header += [f"{LABELS[size]} frames/s", f"{LABELS[size]} MB/s"]
    if pingpong:
        header.append(f"ping-pong {LABELS[PINGPONG_SIZE]} round trips/s")
    rows = []
    for name in dict.fromkeys(r["impl"] for r in results):
        row = [name]
        for size in sizes:
            r = lookup(results, name, ONEWAY, size)
            row += [figure(r, "fps"), figure(r, "mbps")]
        if pingpong:
            row.append(figure(lookup(results, name, PINGPONG, PINGPONG_SIZE), "fps"))
        rows.append(row)
    return header, rows


def target_rows(checks: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "target",
        "framekit (median)",
        "peer (median)",
        "paired ratio",
        "min..max",
        "clean rounds",
        "needed",
        "result",
    ]
    rows = []
    for c in checks:
        if c["result"] == "n/a":  # framekit's row or the peer's did not run
            continue
        unit = "round trips/s" if c["mode"] == PINGPONG else "frames/s"
        threshold = c["threshold"]
        peers = c["peer_fps"] or dict.fromkeys(c["peers"])
        spread = "-"
        if c["ratio"] is not None:
            spread = (
                f"{ratio_text(c['ratio_min'], threshold)}..{ratio_text(c['ratio_max'], threshold)}"
            )
        rows.append(
            [
                c["target"],
                f"{c['framekit']}: {fmt(c['framekit_fps'])} {unit}",
                ", ".join(f"{p}: {fmt(v)}" for p, v in peers.items()) + f" {unit}",
                ratio_text(c["ratio"], threshold),
                spread,
                f"{c['clean_rounds']}/{len(c['rounds'])}",
                "-" if threshold is None else f">= {threshold}x",
                c["result"],
            ]
        )
    return header, rows


def ratio_text(ratio: float | None, threshold: float | None) -> str:
    """Two decimals, or three where two would round onto the threshold."""
    if ratio is None:
        return "-"
    text = f"{ratio:.2f}"
    if threshold is not None and float(text) == threshold and ratio != threshold:
        text = f"{ratio:.3f}"
    return text + "x"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    lines = []
    for i, row in enumerate([header, *rows]):
        cells = [
            cell.ljust(w) if j == 0 or not i else cell.rjust(w)
            for j, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if not i:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("| " + " | ".join(":--" if j < left else "--:" for j in range(len(header))) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def notes(results: list[dict[str, Any]], checks: list[dict[str, Any]]) -> list[str]:
    out = []
    runs = [x for r in results for x in r.get("runs", [])]
    redone = sum(len(r.get("redone", [])) for r in results)
    disturbed = [
        f"{r['impl']} {r['mode']} {LABELS[r['size']]}"
        for r in results
        for x in r.get("runs", [])
        if x.get("disturbed")
    ]
    if redone:
        out.append(f"{redone} disturbed runs were re-run (kept in the JSON as `redone`)")
    if disturbed:
        out.append(
            f"{len(disturbed)} of {len(runs)} runs were still disturbed by other load after "
            f"the retries (left out of the medians where the case had clean runs, and of "
            f"the paired ratios): {', '.join(dict.fromkeys(disturbed))}"
        )
    for c in checks:
        skipped = [x for x in c["rounds"] if "skipped" in x]
        if skipped:
            why = "; ".join(f"round {x['round'] + 1}: {x['skipped']}" for x in skipped)
            out.append(f"{c['target']}: no ratio from {why}")
    missing = [c["target"] for c in checks if c["result"] == "n/a"]
    if missing:
        out.append(f"{len(missing)} targets not measured in this run: {', '.join(missing)}")
    out += [
        f"ERROR {r['impl']} {r['mode']} {LABELS[r['size']]}: {r['error']}"
        for r in results
        if "error" in r
    ]
    return out


def render(report: dict[str, Any], markdown: bool) -> str:
    results, checks = report["results"], report["targets"]
    out = []
    if markdown:
        out.append(markdown_table(*results_rows(results)))
        out.append("")
        out.append(markdown_table(*target_rows(checks), left=3))
        out.append("")
        described = [[f"`{n}`", d] for n, d in report["implementations"].items()]
        out.append(markdown_table(["implementation", "what it does"], described, left=2))
    else:
        out.append("Results (medians of the clean runs; MB = 10**6 payload bytes)\n")
        out.append(text_table(*results_rows(results)))
        out.append("\nTargets (framekit / peer, paired within each round)\n")
        out.append(text_table(*target_rows(checks)))
    extra = notes(results, checks)
    if extra:
        out.append("")
        out += [f"- {line}" if markdown else line for line in extra]
    return "\n".join(out)


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in ("framekit", "trio", "anyio", "twisted", "uvloop"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }
    try:
        git = ["git", "-C", str(Path(__file__).resolve().parent.parent)]

        def run_git(*args: str) -> str:
            out = subprocess.run([*git, *args], capture_output=True, text=True, check=True)
            return out.stdout.strip()

        env["commit"] = run_git("rev-parse", "--short", "HEAD")
        # The code this benchmark exercises, and whether it differs from that commit.
        env["framing_code_commit"] = run_git("log", "-1", "--format=%h", "--", *FRAMING_CODE)
        env["framing_code_modified"] = bool(run_git("status", "--porcelain", "--", *FRAMING_CODE))
    except (OSError, subprocess.CalledProcessError):
        pass
    return env


# -- command line ----------------------------------------------------------------------------


def main() -> int:
    parser = driver_parser(__doc__, "one short run per case (~1-2 min)")
    parser.add_argument("--seconds", type=float, help="target length of a run (default 0.6)")
    parser.add_argument("--only", help="comma-separated implementations: " + ", ".join(IMPLS))
    parser.add_argument(
        "--cases", help="comma-separated groups to run: 64B, 1KiB, 64KiB, 4MiB, pingpong"
    )
    parser.add_argument("--json", metavar="OUT", help="write the results to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables too")
    parser.add_argument("--load", metavar="JSON", help="render a saved --json file, run nothing")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per trial")
    parser.add_argument(
        "--retries", type=int, help="re-runs of a run disturbed by other load (default 3; quick 0)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin workers to CPUs")
    args = parser.parse_args()

    if args.load:
        report = json.loads(Path(args.load).read_text())
        print(render(report, markdown=args.markdown))
        return 0

    names = list(IMPLS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in IMPLS]
        if unknown:
            parser.error(f"unknown implementation(s) {unknown}; choose from {list(IMPLS)}")
    repeat = args.repeat or (1 if args.quick else 3)
    seconds = args.seconds or (0.12 if args.quick else 0.6)
    retries = args.retries if args.retries is not None else (0 if args.quick else 3)
    cpus = None if args.no_pin else pick_cpus()
    cases = cases_for(names)
    if args.cases:
        groups = {LABELS[size].replace(" ", ""): (ONEWAY, size) for size in SIZES}
        groups["pingpong"] = (PINGPONG, PINGPONG_SIZE)
        wanted = [g.strip() for g in args.cases.split(",") if g.strip()]
        if not set(wanted) <= set(groups):
            parser.error(f"--cases: choose from {', '.join(groups)}")
        cases = [c for c in cases if (c.mode, c.size) in {groups[g] for g in wanted}]

    env = environment()
    started = time.monotonic()
    results = []
    for key in dict.fromkeys((c.mode, c.size) for c in cases):
        group = [c for c in cases if (c.mode, c.size) == key]
        what = "ping-pong" if key[0] == PINGPONG else "one-way"
        log(f"{what} {LABELS[key[1]]}: {len(group)} implementations, {repeat} rounds")
        results += run_group(group, repeat, seconds, args.timeout, cpus, retries)

    report = {
        "environment": env,
        "settings": {
            "repeat": repeat,
            "seconds": seconds,
            "retries": retries,
            "quick": args.quick,
            "pinned_cpus": cpus,
            "disturbed_share": DISTURBED,
            "disturbed_floor_seconds": DISTURBED_FLOOR,
            "slow_ceiling": SLOW_CEILING,
        },
        "implementations": {n: IMPLS[n].description for n in names},
        "results": results,
        "targets": check_targets(results),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    publish(report, render, args.markdown, args.json)
    log(f"\n{len(cases)} cases in {report['wall_seconds']} s")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
