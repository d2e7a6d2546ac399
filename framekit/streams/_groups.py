"""Unwrapping the exception groups of framekit's internal nurseries."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["raise_single"]


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
