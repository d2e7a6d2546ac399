"""The command server's cost per command, this checkout against another, paired in time.

Usage:
    .venv/bin/python bench/commands_ab.py BASELINE_DIR [--rounds N] [--chunk N] [--json OUT]

Two servers run side by side, each in its own process (``framekit.serve``, defaults,
loopback): one imports framekit from ``BASELINE_DIR`` (a checkout of another commit,
e.g. ``git worktree add /tmp/base <commit>``), the other from this checkout. One
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

from commands import BlockingFramekitClient

HERE = Path(__file__).resolve().parent
COMMAND = ["true"]
WARMUP = 100

SERVER = """
import trio, framekit
async def main():
    config = framekit.ServerConfig(host="127.0.0.1", tcp_port=0, udp_port=None)
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(framekit.serve, config)
        print(addresses.tcp[0][1], flush=True)
        print(framekit.__file__, flush=True)
trio.run(main)
"""


def start_server(source: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    """A server importing framekit from ``source``; its process, port and framekit path."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, env=env, cwd=source
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port, proc.stdout.readline().decode().strip()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (``/proc``, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    servers = {name: start_server(source) for name, source in sides.items()}
    try:
        for name, (_, _, path) in servers.items():
            if not Path(path).is_relative_to(sides[name]):
                raise SystemExit(f"{name}: framekit came from {path}, not {sides[name]}")
        clients = {name: BlockingFramekitClient(port) for name, (_, port, _) in servers.items()}
        for client in clients.values():
            for _ in range(WARMUP):
                client.run(COMMAND)
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        rate: dict[str, list[float]] = {name: [] for name in sides}
        for k in range(args.rounds):
            order = ["baseline", "this"] if k % 2 == 0 else ["this", "baseline"]
            for name in order:
                pid, client = servers[name][0].pid, clients[name]
                cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                for _ in range(args.chunk):
                    if not client.run(COMMAND):
                        raise SystemExit(f"{name}: a command failed")
                t1, cpu1 = time.perf_counter(), cpu_seconds(pid)
                cpu[name].append((cpu1 - cpu0) / args.chunk * 1e3)
                rate[name].append(args.chunk / (t1 - t0))
    finally:
        for proc, _, _ in servers.values():
            proc.terminate()
            proc.wait()
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
