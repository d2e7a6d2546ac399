"""Worker processes for ``commands.py`` and ``udp.py``, driven one line at a time.

``framing.py`` has the tables, number formatting and environment record (imported from
there); what it lacks is a worker that runs any command line, so this module has one.
A worker prints words on its stdout (``PORT 4242``, ``RESULT {json}``) and reads
commands on its stdin; the driver side (:class:`Worker`) waits for each word with a
deadline. Every worker also arms ``signal.alarm`` for its whole life and exits when its
stdin reaches EOF, so nothing outlives the driver.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Self


class CaseError(Exception):
    """A worker failed, timed out or said something unexpected."""


class Worker:
    """One worker process: ``python SCRIPT ARGS...``, driven over its stdin/stdout."""

    def __init__(
        self, name: str, script: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True).start()

    def _pump(self, stream: IO[str], is_stdout: bool) -> None:
        for line in stream:
            if is_stdout:
                self.lines.put(line.rstrip("\n"))
            else:
                self.stderr.append(line)
        if is_stdout:
            self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise self.error(f"cannot write to it ({exc})") from None

    def expect(self, word: str, deadline: float) -> str:
        """The rest of the next line, which must start with ``word``."""
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise self.error(f"timed out waiting for {word}") from None
        if line is None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            raise self.error(f"exited ({self.proc.returncode}) before {word}")
        if not line.startswith(word):
            raise self.error(f"said {line!r} instead of {word}")
        return line[len(word) :].strip()

    def error(self, what: str) -> CaseError:
        time.sleep(0.1)  # let the stderr pump catch up
        tail = "".join(self.stderr[-12:]).rstrip()
        return CaseError(f"{self.name} {what}" + (f":\n{tail}" if tail else ""))

    def close(self) -> None:
        """Close its stdin (it exits on EOF); kill it if it does not within 5 s."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class Workers:
    """Workers that are all closed together, even when starting one of them fails."""

    def __init__(self) -> None:
        self.all: list[Worker] = []

    def start(
        self, name: str, script: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> Worker:
        worker = Worker(name, script, args, env)
        self.all.append(worker)
        return worker

    def close(self) -> None:
        for worker in reversed(self.all):
            worker.close()
        self.all.clear()


# -- the worker side -------------------------------------------------------------------------


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def read_command() -> list[str]:
    """The next command's words; ``[]`` when the driver closed our stdin."""
    line = sys.stdin.readline()
    return line.split() if line else []


def limit_lifetime(seconds: int) -> None:
    """Die of SIGALRM after ``seconds`` whatever happens (a stuck worker cannot linger)."""
    signal.alarm(max(1, int(seconds)))


def exit_on_eof(cleanup: Callable[[], None] | None = None) -> None:
    """In a daemon thread: when stdin reaches EOF, run ``cleanup`` and exit the process.

    For servers whose main thread runs an event loop or a blocking accept/recv loop.
    A ``COUNT`` line on stdin is left to :func:`serve_control` instead.
    """

    def watch() -> None:
        sys.stdin.read()
        if cleanup is not None:
            try:
                cleanup()
            except Exception:
                pass
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def serve_control(answers: dict[str, Callable[[], str]]) -> None:
    """In a daemon thread: answer ``WORD`` lines on stdin with ``WORD answer``; exit on EOF.

    The thread sleeps in ``readline`` between questions, so it takes no CPU (and no GIL)
    from the server it watches.
    """

    def loop() -> None:
        for line in sys.stdin:
            word = line.strip()
            answer = answers.get(word)
            emit(f"{word} {answer()}" if answer is not None else f"ERROR unknown {word!r}")
        os._exit(0)

    threading.Thread(target=loop, daemon=True).start()


# -- the machine -----------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far; ``None`` without /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _busy_jiffies() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as f:
            values = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def machine_busy(interval: float = 0.5) -> float | None:
    """Fraction of all CPUs busy over ``interval`` seconds (``None`` without /proc/stat)."""
    before = _busy_jiffies()
    time.sleep(interval)
    after = _busy_jiffies()
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def wait_for_quiet(threshold: float, max_wait: float) -> float | None:
    """Wait (up to ``max_wait`` s) until other work leaves the CPUs below ``threshold`` busy.

    Benchmarks on a small shared machine are skewed by anything else running; the
    driver calls this between cases, while none of its own workers run. Returns the
    last busy fraction seen (the caller records it; ``None`` where it cannot be known).
    """
    deadline = time.monotonic() + max_wait
    busy = machine_busy()
    while busy is not None and busy > threshold and time.monotonic() < deadline:
        time.sleep(1.0)
        busy = machine_busy()
    return busy


def source_state() -> dict[str, object]:
    """The commit and the uncommitted framekit files the figures were measured with."""
    repo = Path(__file__).resolve().parent.parent
    state: dict[str, object] = {"commit": None, "modified": None}
    try:
        state["commit"] = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "framekit"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        state["modified"] = [line[3:] for line in status.splitlines()]
    except (OSError, subprocess.SubprocessError):
        pass
    return state


def _own_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and of the children it has reaped (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / _TICKS  # utime stime cutime cstime


class Interference:
    """How much CPU other work took while a trial ran, in CPUs (0.25: a quarter of one).

    All busy CPU time on the machine, minus what the trial's own processes (and the
    children they reaped, such as the commands a server ran) and this driver used.
    Kernel threads working for the trial (softirq) count as other work, so expect a few
    hundredths even on a quiet machine.
    """

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.cpus: float | None = None

    def _ours(self) -> float:
        t = os.times()
        return t.user + t.system + sum(_own_seconds(pid) for pid in self.pids)

    def __enter__(self) -> Self:
        self._busy = _busy_jiffies()
        self._ours0 = self._ours()
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        busy = _busy_jiffies()
        wall = time.monotonic() - self._t0
        if busy is None or self._busy is None or wall <= 0:
            return
        machine = (busy[0] - self._busy[0]) / _TICKS
        self.cpus = max(0.0, machine - (self._ours() - self._ours0)) / wall


def guarded(
    trial: Callable[[], dict[str, Any]],
    pids: Sequence[int],
    max_interference: float,
    retries: int,
) -> dict[str, Any]:
    """Run ``trial``; redo it (after waiting for quiet) while other work took more than
    ``max_interference`` CPUs during it, at most ``retries`` times. The result records
    the interference seen and the number of redos."""
    for attempt in range(retries + 1):
        with Interference(pids) as seen:
            result = trial()
        result["interference"] = seen.cpus
        result["redone"] = attempt
        if seen.cpus is None or seen.cpus <= max_interference or attempt == retries:
            return result
        wait_for_quiet(0.15, 60.0)
    raise AssertionError("unreachable")


def driver_parser(doc: str, quick_help: str) -> argparse.ArgumentParser:
    """A driver's parser, described by its docstring's first paragraph, with the
    ``--quick`` and ``--repeat`` options every driver has."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--repeat", type=int, help="measured runs per case (default 3; quick 1)")
    return parser


def error_lines(results: list[dict[str, Any]], case: Callable[[dict[str, Any]], str]) -> list[str]:
    """The ERRORS section of a report: one line per failed case (named by ``case``)."""
    errors = [r for r in results if "error" in r]
    if not errors:
        return []
    return ["\nERRORS"] + [f"- {case(r)}: {r['error']}" for r in errors]


def add_run_options(parser: argparse.ArgumentParser, what: str) -> None:
    """The options ``commands.py`` and ``udp.py`` share: output, timeouts, quiet guards."""
    parser.add_argument("--json", metavar="OUT", help="write the results to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables too")
    parser.add_argument("--load", metavar="JSON", help="render a saved --json file, run nothing")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.15,
        metavar="FRACTION",
        help=f"before each {what} wait until other work keeps the CPUs below this busy "
        "fraction (default 0.15; 1 disables)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=120.0, help="longest wait for quiet, seconds"
    )
    parser.add_argument(
        "--max-interference",
        type=float,
        default=0.15,
        metavar="CPUS",
        help="redo a run during which other work took more than this many CPUs (default 0.15)",
    )
    parser.add_argument("--retries", type=int, default=3, help="redos allowed per run")


def load_report(path: str) -> dict[str, Any]:
    """A report saved with ``--json``."""
    report: dict[str, Any] = json.loads(Path(path).read_text())
    return report


def selected(
    parser: argparse.ArgumentParser, only: str | None, known: Sequence[str], what: str
) -> list[str]:
    """The names ``--only`` picked (all of ``known`` without it); unknown ones are an error."""
    if not only:
        return list(known)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown {what}(s) {unknown}; choose from {list(known)}")
    return names


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    """Median of ``key`` over the runs that have it (None if none has)."""
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def publish(
    report: dict[str, Any], render: Callable[..., str], markdown: bool, json_path: str | None
) -> None:
    """Print the report (and its markdown tables), and save it as JSON if asked."""
    print()
    print(render(report, markdown=False))
    if markdown:
        print()
        print(render(report, markdown=True))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
