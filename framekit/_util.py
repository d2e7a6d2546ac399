"""Small helpers shared by the Trio wrappers."""

from __future__ import annotations

from types import TracebackType
from typing import final

import trio

__all__ = ["ConflictDetector"]


@final
class ConflictDetector:
    """Raises :class:`trio.BusyResourceError` when two tasks use one resource at once.

    trio has the same thing privately (``trio._util.ConflictDetector``).
    """

    __slots__ = ("_held", "_msg")

    def __init__(self, msg: str) -> None:
        self._msg = msg
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._msg)
        self._held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._held = False
