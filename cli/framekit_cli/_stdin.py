"""Reading our own stdin from Trio, as it comes."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import AsyncIterator

import trio

__all__ = ["stdin_chunks"]


async def stdin_chunks() -> AsyncIterator[bytes]:
    """Our stdin as it comes (a line of ``tail -f`` as soon as it is written), read on a
    worker thread that is abandoned, not waited for, once the command has ended.

    The descriptor is read directly (``os.read``): an abandoned read of the buffered
    ``sys.stdin`` would hold its lock when the interpreter exits, which aborts it.
    """
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's BytesIO)
        read = functools.partial(sys.stdin.buffer.read1, 64 * 1024)  # type: ignore[union-attr]
    else:
        read = functools.partial(os.read, fd, 64 * 1024)
    while chunk := await trio.to_thread.run_sync(read, abandon_on_cancel=True):
        yield chunk
