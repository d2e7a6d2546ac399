"""Feeding a framing's decoder a byte stream split at chosen points."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import strategies as st

from framekit import Framing


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` cut at the given points (any order, duplicates and out-of-range ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def decode(framing: Framing, chunks: Sequence[bytes], *, eof: bool = True) -> list[bytes]:
    """Every frame the decoder returns for ``chunks`` (then the end of the stream)."""
    decoder = framing.decoder()
    out: list[bytes] = []
    for chunk in chunks:
        decoder.receive_data(chunk)
        out.extend(decoder.frames())
    if eof:
        decoder.receive_data(b"")
        out.extend(decoder.frames())
    return out


def decode_one_by_one(framing: Framing, data: bytes) -> list[bytes]:
    """The same through ``next_frame``, fed a byte at a time."""
    from framekit import END_OF_STREAM, NEED_DATA

    decoder = framing.decoder()
    out: list[bytes] = []
    for i in range(len(data) + 1):
        decoder.receive_data(data[i : i + 1])
        while True:
            frame = decoder.next_frame()
            if frame is NEED_DATA or frame is END_OF_STREAM:
                break
            out.append(frame)
    return out


cuts = st.lists(st.integers(min_value=1, max_value=4096), max_size=30)
