"""The lessons behind ``framekit compare``: framing, ``recv``, a connection's life.

Each runs on loopback and returns result objects; nothing here prints."""

from __future__ import annotations

from ._conditions import Conditions as Conditions
from ._experiment import COMPARE_SCHEMA as COMPARE_SCHEMA
from ._experiment import BurstResult as BurstResult
from ._experiment import CompareOptions as CompareOptions
from ._experiment import CompareReport as CompareReport
from ._experiment import Piece as Piece
from ._experiment import RepeatReport as RepeatReport
from ._experiment import WayResult as WayResult
from ._experiment import WayTally as WayTally
from ._experiment import cycle_sizes as cycle_sizes
from ._experiment import run_compare as run_compare
from ._experiment import run_compare_repeated as run_compare_repeated
from ._lifecycle import LIFECYCLE_SCHEMA as LIFECYCLE_SCHEMA
from ._lifecycle import BindAttempt as BindAttempt
from ._lifecycle import ClosingRun as ClosingRun
from ._lifecycle import HandshakeResult as HandshakeResult
from ._lifecycle import LifecycleLesson as LifecycleLesson
from ._lifecycle import LifecycleOptions as LifecycleOptions
from ._lifecycle import RebindResult as RebindResult
from ._lifecycle import TcpStates as TcpStates
from ._lifecycle import run_lifecycle_lesson as run_lifecycle_lesson
from ._recv import RECV_SCHEMA as RECV_SCHEMA
from ._recv import RecvCall as RecvCall
from ._recv import RecvLesson as RecvLesson
from ._recv import RecvOptions as RecvOptions
from ._recv import RecvStep as RecvStep
from ._recv import run_recv_lesson as run_recv_lesson

__all__ = [
    "COMPARE_SCHEMA",
    "LIFECYCLE_SCHEMA",
    "RECV_SCHEMA",
    "BindAttempt",
    "BurstResult",
    "ClosingRun",
    "CompareOptions",
    "CompareReport",
    "Conditions",
    "HandshakeResult",
    "LifecycleLesson",
    "LifecycleOptions",
    "Piece",
    "RebindResult",
    "RecvCall",
    "RecvLesson",
    "RecvOptions",
    "RecvStep",
    "RepeatReport",
    "TcpStates",
    "WayResult",
    "WayTally",
    "cycle_sizes",
    "run_compare",
    "run_compare_repeated",
    "run_lifecycle_lesson",
    "run_recv_lesson",
]
