"""Varint length prefixes (unsigned LEB128): protobuf's ``writeDelimitedTo`` and
libp2p's ``it-length-prefixed``, with over-long and non-minimal prefixes refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from .._errors import FrameTooLarge, IncompleteFrame, InvalidFormat, MalformedFrame
from ._buffer import BufferedDecoder
from ._common import FormatCommon, HeadTailEncoder
from ._format import DEFAULT_MAX_FRAME_SIZE, Oversize

__all__ = ["VarintDecoder", "VarintEncoder", "VarintFormat", "encode_varint"]

_MAX_LIMIT = (1 << 63) - 1


def encode_varint(n: int) -> bytes:
    """``n`` (non-negative) as unsigned LEB128: 7 bits a byte, low bits first."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class VarintFormat(FormatCommon):
    """A varint length, then that many payload bytes.

    A prefix is refused as soon as it is longer than the limit's own encoding needs (so a
    peer cannot send endless continuation bytes), and a prefix with a needless zero byte
    at its end (``0x80 0x00`` for 0) is a :class:`MalformedFrame`.

    Args:
        max_frame_size: the largest payload.
        oversize: ``"error"`` (terminal :class:`FrameTooLarge`) or ``"discard"``.
    """

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    oversize: Oversize = "error"

    def __post_init__(self) -> None:
        m = self.max_frame_size
        if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= _MAX_LIMIT:
            raise InvalidFormat(f"max_frame_size must be an integer from 0 to 2**63-1, not {m!r}")
        if self.oversize not in ("error", "discard"):
            raise InvalidFormat(f"oversize must be 'error' or 'discard', not {self.oversize!r}")

    @property
    def max_prefix(self) -> int:
        """The most bytes a length prefix may take: the limit's own encoding."""
        return len(encode_varint(self.max_frame_size))

    def decoder(self) -> VarintDecoder:
        """A new decoder for this format."""
        return VarintDecoder(self)

    def encoder(self) -> VarintEncoder:
        """A new encoder for this format."""
        return VarintEncoder(self)


@final
class VarintEncoder(HeadTailEncoder):
    """Puts a varint length in front of each payload.

    Raises:
        FrameTooLarge: (from every method) a payload is over ``max_frame_size``.
        TypeError: (from every method) a payload is not bytes-like.
    """

    __slots__ = ("format",)

    def __init__(self, format: VarintFormat) -> None:
        super().__init__(format.max_frame_size)
        self.format = format

    def _head(self, n: int) -> bytes:
        return bytes((n,)) if n < 0x80 else encode_varint(n)


@final
class VarintDecoder(BufferedDecoder):
    """Turns varint-prefixed frames, fed in any chunking, back into payloads."""

    __slots__ = ("_limit", "_max_prefix", "_skip", "format")

    def __init__(self, format: VarintFormat) -> None:
        super().__init__()
        self.format = format
        self._limit = format.max_frame_size
        self._max_prefix = format.max_prefix
        self._skip = 0

    def _decode_batch(self) -> list[bytes]:
        buf, start = self._buf, self._start
        end = len(buf)
        if self._skip or start >= end:
            return []
        first = buf[start]
        if first >= 0x80 or start + 1 + first > end:
            return []  # a long prefix, or the first frame incomplete: no copy
        chunk = self._complete(end)
        out: list[bytes] = []
        limit, n, pos = self._limit, len(chunk), 0
        append = out.append
        while pos < n:
            length = chunk[pos]
            if length >= 0x80 or length > limit:
                break  # multi-byte prefix or oversize: _decode_one's
            frame_end = pos + 1 + length
            if frame_end > n:
                break
            append(chunk[pos + 1 : frame_end])
            pos = frame_end
        self._start = start + pos
        return out

    def _decode_one(self) -> bytes | None:
        buf = self._buf
        end = len(buf)
        while True:
            start = self._start
            if self._skip:
                k = min(self._skip, end - start)
                self._skip -= k
                self._start += k
                if self._skip:
                    return None
                continue
            if start >= end:
                return None
            first = buf[start]
            if first < 0x80:  # the common case: a one-byte length
                length, pos = first, start + 1
            else:
                length = shift = 0
                pos = start
                while True:
                    if pos >= end:
                        if pos - start >= self._max_prefix:
                            raise self._prefix_too_long()
                        return None
                    byte = buf[pos]
                    pos += 1
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if byte < 0x80:
                        break
                    if pos - start >= self._max_prefix:
                        raise self._prefix_too_long()
                if byte == 0:
                    raise MalformedFrame(
                        f"varint length in {pos - start} bytes ends with a zero byte: not "
                        "the shortest encoding; the stream is corrupt"
                    )
            if length > self._limit:
                if self.format.oversize == "error":
                    raise self._too_large(length)
                self.skipped_frames += 1
                self.skipped_bytes += pos - start + length
                self._start = pos
                self._skip = length
                continue
            frame_end = pos + length
            if frame_end > end:
                return None
            self._start = frame_end
            return bytes(buf[pos:frame_end])

    def _too_large(self, length: int) -> FrameTooLarge:
        return FrameTooLarge(
            f"peer declared a {length}-byte frame, over max_frame_size "
            f"({self._limit} bytes); raise max_frame_size if this is expected",
            length=length,
            limit=self._limit,
        )

    def _prefix_too_long(self) -> FrameTooLarge:
        return FrameTooLarge(
            f"varint length longer than {self._max_prefix} bytes: over max_frame_size "
            f"({self._limit} bytes) or padded; the stream is corrupt",
            length=-1,
            limit=self._limit,
        )

    def _at_end(self) -> bytes | None:
        if self._skip:
            raise IncompleteFrame(
                f"stream ended while skipping an oversized frame; {self._skip} bytes never arrived",
                expected=self._skip,
                received=0,
            )
        return super()._at_end()
