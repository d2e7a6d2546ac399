"""Small helpers shared by the Trio wrappers."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Final, NoReturn, final

import trio

__all__ = ["ConflictDetector", "ReadSize", "ReportValue", "bound_addresses", "raise_single"]

#: The first read's size, and the floor reads shrink back to: trio's own default.
FIRST_READ: Final = 64 * 1024


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


@final
class ReadSize:
    """How many bytes to ask the transport for on the next read, at most ``limit``.

    CPython allocates the whole buffer before ``recv`` fills it, so asking for 1 MiB
    costs ~12 us per call here even when 100 bytes arrive: more than the ``recv`` itself.
    Reads start at 64 KiB (or ``limit`` if smaller), double while they come back full
    (a bulk transfer), and halve again when one comes back less than a quarter full.
    """

    __slots__ = ("floor", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.floor = self.size = min(limit, FIRST_READ)

    def update(self, received: int) -> None:
        """Adjust to a read of ``size`` bytes that returned ``received``."""
        size = self.size
        if received >= size:
            if size < self.limit:
                self.size = min(size * 2, self.limit)
        elif received < size >> 2 and size > self.floor:
            self.size = max(size >> 1, self.floor)


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
