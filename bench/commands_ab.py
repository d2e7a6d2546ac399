"""The command server's cost per command, this checkout against another, paired in time.

Usage:
    .venv/bin/python bench/commands_ab.py BASELINE_DIR [--rounds N] [--chunk N] [--json OUT]

Two servers run side by side, each ``bench/commands.py``'s framekit-server worker
(``framekit.serve``, defaults, loopback) in its own process: one imports framekit from
``BASELINE_DIR`` (a checkout of another commit, e.g. ``git worktree add /tmp/base
<commit>``), the other from this checkout. One
blocking client (``bench/commands.py``'s, speaking the protocol through the sans-IO
classes) runs ``--chunk`` ``true`` commands on one server, then on the other, for
``--rounds`` rounds, alternating which goes first. Each chunk's server CPU (from
``/proc``) and commands per second are taken, so both servers see the same moments of
a noisy machine, and the result is each round's ratio (this / baseline): their median
and min..max.

For a change too small for ``bench/commands.py``'s separate runs to see: there, the
machine's speed drifts more between runs than the change moves.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import Worker, Workers, cpu_seconds
from commands import SCRIPT, BlockingFramekitClient

HERE = Path(__file__).resolve().parent
COMMAND = ["true"]
WARMUP = 100


def start_server(workers: Workers, name: str, source: Path) -> tuple[Worker, int]:
    """``commands.py``'s framekit-server worker, importing framekit from ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    found = subprocess.run(
        [sys.executable, "-c", "import framekit; print(framekit.__file__)"],
        env=env,
        cwd=source,  # as for the worker, whose sys.path starts with bench/, not with a checkout
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    if not Path(found).is_relative_to(source):
        raise SystemExit(f"{name}: framekit comes from {found}, not {source}")
    server = workers.start(name, SCRIPT, ["worker", "server", "framekit-server"], env)
    return server, int(server.expect("PORT", time.monotonic() + 30))


def server_cpu(server: Worker) -> float:
    used = cpu_seconds(server.proc.pid)
    if used is None:
        raise SystemExit("no /proc here: the server's CPU cannot be read")
    return used


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--chunk", type=int, default=400, help="commands per server per round")
    parser.add_argument("--json", type=Path, help="write every chunk's figures here")
    args = parser.parse_args()
    sides = {"baseline": args.baseline.resolve(), "this": HERE.parent}
    workers = Workers()
    try:
        servers = {name: start_server(workers, name, source) for name, source in sides.items()}
        clients = {name: BlockingFramekitClient(port) for name, (_, port) in servers.items()}
        for client in clients.values():
            for _ in range(WARMUP):
                client.run(COMMAND)
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        rate: dict[str, list[float]] = {name: [] for name in sides}
        for k in range(args.rounds):
            order = ["baseline", "this"] if k % 2 == 0 else ["this", "baseline"]
            for name in order:
                server, client = servers[name][0], clients[name]
                cpu0, t0 = server_cpu(server), time.perf_counter()
                for _ in range(args.chunk):
                    if not client.run(COMMAND):
                        raise SystemExit(f"{name}: a command failed")
                t1, cpu1 = time.perf_counter(), server_cpu(server)
                cpu[name].append((cpu1 - cpu0) / args.chunk * 1e3)
                rate[name].append(args.chunk / (t1 - t0))
    finally:
        workers.close()
    cpu_ratio = [t / b for t, b in zip(cpu["this"], cpu["baseline"], strict=True)]
    rate_ratio = [t / b for t, b in zip(rate["this"], rate["baseline"], strict=True)]
    report = {
        "baseline": str(sides["baseline"]),
        "rounds": args.rounds,
        "chunk": args.chunk,
        "server_cpu_ms_per_command": {name: spread(values) for name, values in cpu.items()},
        "commands_per_second": {name: spread(values) for name, values in rate.items()},
        "cpu_ratio": spread(cpu_ratio),
        "rate_ratio": spread(rate_ratio),
        "chunks": {"cpu_ms": cpu, "commands_per_second": rate},
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")

    def show(ratios: dict[str, float]) -> str:
        return f"{ratios['median']:.3f}x ({ratios['min']:.3f}x..{ratios['max']:.3f}x)"

    print(f"{args.rounds} rounds of {args.chunk} `true` per server, paired per round")
    for name in sides:
        print(
            f"  {name:8s} server CPU {statistics.median(cpu[name]):.3f} ms/command, "
            f"{statistics.median(rate[name]):,.0f} commands/s (medians)"
        )
    print(f"  this / baseline: server CPU {show(report['cpu_ratio'])}, ", end="")
    print(f"commands/s {show(report['rate_ratio'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
