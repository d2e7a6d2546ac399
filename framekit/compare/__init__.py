"""The experiments behind ``framekit compare``: result objects, no printing."""

from __future__ import annotations

from ._experiment import BurstResult as BurstResult
from ._experiment import CompareOptions as CompareOptions
from ._experiment import CompareReport as CompareReport
from ._experiment import Piece as Piece
from ._experiment import WayResult as WayResult
from ._experiment import cycle_sizes as cycle_sizes
from ._experiment import run_compare as run_compare

__all__ = [
    "BurstResult",
    "CompareOptions",
    "CompareReport",
    "Piece",
    "WayResult",
    "cycle_sizes",
    "run_compare",
]
