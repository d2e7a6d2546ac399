"""Unwrapping the exception groups of framekit's internal nurseries."""

from __future__ import annotations

from typing import NoReturn

import trio

__all__ = ["raise_single"]


def raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise the only exception of ``group`` unwrapped (else the group itself).

    For context managers whose internal tasks never raise: the caller's exception should
    come out as it went in, not inside an ExceptionGroup. A group of nothing but
    :class:`trio.Cancelled` (the body and a helper task, cancelled together) is one
    ``Cancelled``, so code that treats cancellation specially still sees it.
    """
    if len(group.exceptions) != 1:
        cancelled, rest = group.split(trio.Cancelled)
        if rest is not None or cancelled is None:
            raise group
        exc: BaseException = cancelled
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
    else:
        exc = group.exceptions[0]
        if isinstance(exc, BaseExceptionGroup):
            raise_single(exc)
    try:
        raise exc
    finally:
        del exc
