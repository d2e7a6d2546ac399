"""Draw the benchmark targets as one picture: how far framekit is from each one.

Run: .venv/bin/python bench/plot.py [--out docs/images/performance.svg]
       [bench/results/framing.json bench/results/commands.json bench/results/udp.json]

Reads the ``--json`` files the benchmarks wrote and draws, per target, framekit's
figure divided by what the target needs (so 1.0 is "just met"), with the measured ratio
written beside each bar. Nothing is measured here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

DEFAULT_INPUTS = [
    "bench/results/framing.json",
    "bench/results/commands.json",
    "bench/results/udp.json",
]


def rows(path: Path) -> list[tuple[str, float, str]]:
    """(label, achieved / needed, text) for every target with a threshold."""
    report: dict[str, Any] = json.loads(path.read_text())
    out = []
    for t in report.get("targets", []):
        threshold = t.get("threshold")
        if threshold is None or t.get("result") not in ("PASS", "FAIL"):
            continue
        if t.get("ratio") is not None:
            score = t["ratio"] / threshold
            text = f"{t['ratio']:.2f}x (needs {threshold:g}x)"
        else:  # a level rather than a ratio, e.g. the UDP burst's percent received
            score = t["framekit"] / threshold
            text = f"{t['framekit']:.1f} (needs {threshold:g})"
        out.append((f"{path.stem}: {t['target']}", score, text))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", default=DEFAULT_INPUTS)
    parser.add_argument("--out", default="docs/images/performance.svg")
    args = parser.parse_args()
    data = [r for name in args.inputs if Path(name).exists() for r in rows(Path(name))]
    if not data:
        raise SystemExit("no benchmark results with targets found")
    labels, scores, texts = zip(*reversed(data), strict=True)
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(data) + 1.2))
    colours = ["#2e7d32" if s >= 1 else "#c62828" for s in scores]
    ax.barh(labels, scores, color=colours)
    ax.axvline(1.0, color="black", linewidth=1)
    for y, (score, text) in enumerate(zip(scores, texts, strict=True)):
        ax.text(score + 0.02, y, text, va="center", fontsize=8)
    ax.set_xlim(0, max(1.6, max(scores) + 0.6))
    ax.set_xlabel("framekit's figure / the target's (1.0 = target just met; green = met)")
    ax.set_title("framekit against its performance targets (same-run peers, 2-core loopback)")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(args.out, format=Path(args.out).suffix.lstrip(".") or "svg")
    print(f"wrote {args.out} ({len(data)} targets)")


if __name__ == "__main__":
    main()
