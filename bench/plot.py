"""Draw the benchmark targets as one picture: how far framekit is from each one.

Run: .venv/bin/python bench/plot.py [--out docs/images/performance.svg]
       [bench/results/framing.json bench/results/commands.json bench/results/udp.json]

Reads the ``--json`` files the benchmarks wrote and draws, per target, framekit's
figure divided by what the target needs (so 1.0 is "just met"), with the measured ratio
written beside each bar. Where a benchmark paired its ratios round by round
(``ratio_min``/``ratio_max``, as framing.py does), the bar is the median and a whisker
spans the rounds' min..max. A target whose runs were all disturbed has no bar, only the
word "disturbed". Nothing is measured here.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Row:
    label: str
    score: float | None  # achieved / needed; None: no clean measurement
    text: str
    spread: tuple[float, float] | None = None  # min..max / needed, over paired rounds


def rows(path: Path) -> list[Row]:
    """One row for every target with a threshold."""
    report: dict[str, Any] = json.loads(path.read_text())
    out = []
    for t in report.get("targets", []):
        threshold = t.get("threshold")
        if threshold is None:
            continue
        label = f"{path.stem}: {t['target']}"
        if t.get("result") == "disturbed":
            out.append(Row(label, None, f"disturbed: no clean round (needs {threshold:g}x)"))
            continue
        if t.get("result") not in ("PASS", "FAIL"):
            continue
        if t.get("ratio") is not None:
            score = t["ratio"] / threshold
            text = f"{t['ratio']:.2f}x (needs {threshold:g}x)"
            spread = None
            if t.get("ratio_min") is not None and t.get("ratio_max") is not None:
                spread = (t["ratio_min"] / threshold, t["ratio_max"] / threshold)
                text = (
                    f"{t['ratio']:.2f}x, {t['ratio_min']:.2f}..{t['ratio_max']:.2f} "
                    f"(needs {threshold:g}x)"
                )
            out.append(Row(label, score, text, spread))
        else:  # a level rather than a ratio, e.g. the UDP burst's percent received
            score = t["framekit"] / threshold
            out.append(Row(label, score, f"{t['framekit']:.1f} (needs {threshold:g})"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", default=DEFAULT_INPUTS)
    parser.add_argument("--out", default="docs/images/performance.svg")
    args = parser.parse_args()
    data = [r for name in args.inputs if Path(name).exists() for r in rows(Path(name))]
    if not data:
        raise SystemExit("no benchmark results with targets found")
    data.reverse()  # the first target on top
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(data) + 1.2))
    scores = [r.score or 0.0 for r in data]
    colours = ["#2e7d32" if s >= 1 else "#c62828" for s in scores]
    ax.barh([r.label for r in data], scores, color=colours)
    ax.axvline(1.0, color="black", linewidth=1)
    right = 1.6
    for y, r in enumerate(data):
        end = r.score or 0.0
        if r.spread is not None:
            low, high = r.spread
            ax.plot([low, high], [y, y], color="black", linewidth=1)
            ax.plot([low, low], [y - 0.15, y + 0.15], color="black", linewidth=1)
            ax.plot([high, high], [y - 0.15, y + 0.15], color="black", linewidth=1)
            end = max(end, high)
        ax.text(end + 0.02, y, r.text, va="center", fontsize=8)
        right = max(right, end + 0.9)
    ax.set_xlim(0, right)
    ax.set_xlabel(
        "framekit's figure / the target's (1.0 = just met; green = met); "
        "whiskers: min..max over paired rounds",
        fontsize=9,
    )
    ax.set_title("framekit against its targets (same-run peers, 2-core loopback)", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(args.out, format=Path(args.out).suffix.lstrip(".") or "svg")
    print(f"wrote {args.out} ({len(data)} targets)")


if __name__ == "__main__":
    main()
