"""Small helpers shared by the Trio wrappers."""

from __future__ import annotations

from types import TracebackType
from typing import Any, NoReturn, final

import trio

__all__ = ["ConflictDetector", "ReportValue", "bound_addresses", "raise_single"]


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


def bound_addresses(listeners: list[trio.SocketListener]) -> list[tuple[str, int]]:
    """``(host, port)`` of each listener, for reporting through ``task_status``."""
    names = (listener.socket.getsockname() for listener in listeners)
    return [(str(name[0]), int(name[1])) for name in names]


@final
class ReportValue:
    """A task_status that reports ``value`` when ``started()`` is called with anything.

    ``trio.serve_listeners`` reports its listener objects; framekit's servers report
    plain addresses instead, which are what callers (and tests) want.
    """

    def __init__(self, task_status: trio.TaskStatus[Any], value: object) -> None:
        self._task_status = task_status
        self._value = value

    def started(self, value: object = None) -> None:
        self._task_status.started(self._value)
