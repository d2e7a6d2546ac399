"""Small helpers shared by the Trio wrappers."""

from __future__ import annotations

from types import TracebackType
from typing import NoReturn, final

import trio

__all__ = ["ConflictDetector", "raise_single"]


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


def raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise the only exception of ``group`` unwrapped (else the group itself).

    For context managers whose internal tasks never raise: the caller's exception should
    come out as it went in, not inside an ExceptionGroup.
    """
    if len(group.exceptions) == 1:
        exc = group.exceptions[0]
        if isinstance(exc, BaseExceptionGroup):
            raise_single(exc)
        try:
            raise exc
        finally:
            del exc
    raise group
