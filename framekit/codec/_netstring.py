"""Netstrings (``12:hello world!,``): djb's length-prefixed strings, decimal digits then
a colon, the payload, and a comma, with the limit enforced on the digits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from .._errors import FrameTooLarge, InvalidFormat, MalformedFrame
from ._buffer import BufferedDecoder
from ._common import FormatCommon, HeadTailEncoder
from ._format import DEFAULT_MAX_FRAME_SIZE

__all__ = ["NetstringDecoder", "NetstringEncoder", "NetstringFormat"]

#: Distinct lengths a decoder remembers parsed (a few KiB at most).
_LENGTH_CACHE = 1024


@dataclass(frozen=True, slots=True)
class NetstringFormat(FormatCommon):
    """Netstrings, as Twisted's ``NetstringReceiver`` speaks them.

    The length is refused from its digits: more digits than the limit has, or a value
    over it, is a :class:`FrameTooLarge` before any payload is buffered. A leading zero
    (``01:a,``), a non-digit, or a payload not followed by ``,`` is a
    :class:`MalformedFrame`.

    Args:
        max_frame_size: the largest payload.
    """

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE

    def __post_init__(self) -> None:
        m = self.max_frame_size
        if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= 10**18:
            raise InvalidFormat(f"max_frame_size must be an integer from 0 to 10**18, not {m!r}")

    def decoder(self) -> NetstringDecoder:
        """A new decoder for this format."""
        return NetstringDecoder(self)

    def encoder(self) -> NetstringEncoder:
        """A new encoder for this format."""
        return NetstringEncoder(self)


@final
class NetstringEncoder(HeadTailEncoder):
    """Writes each payload as a netstring.

    Raises:
        FrameTooLarge: (from every method) a payload is over ``max_frame_size``.
        TypeError: (from every method) a payload is not bytes-like.
    """

    __slots__ = ("format",)
    _tail = b","

    def __init__(self, format: NetstringFormat) -> None:
        super().__init__(format.max_frame_size)
        self.format = format

    def _head(self, n: int) -> bytes:
        return b"%d:" % n


@final
class NetstringDecoder(BufferedDecoder):
    """Turns netstrings, fed in any chunking, back into payloads."""

    __slots__ = ("_lengths", "_limit", "_max_digits", "format")

    def __init__(self, format: NetstringFormat) -> None:
        super().__init__()
        self.format = format
        self._lengths: dict[bytes, int] = {}  # valid digit strings seen, parsed once
        self._limit = format.max_frame_size
        self._max_digits = len(str(format.max_frame_size))

    def _decode_batch(self) -> list[bytes]:
        buf, start = self._buf, self._start
        end = len(buf)
        reach = self._max_digits + 1
        colon = buf.find(b":", start, min(end, start + reach))
        if colon <= start or not buf[start:colon].isdigit():
            return []
        if colon + 1 + int(buf[start:colon]) >= end:
            return []  # the first netstring is incomplete: no copy
        chunk = self._complete(end)
        out: list[bytes] = []
        find, startswith = chunk.find, chunk.startswith
        limit, n, pos = self._limit, len(chunk), 0
        lengths = self._lengths
        append = out.append
        # The last "digits:" seen (a byte no netstring starts with, at first), its length,
        # and the bytes from it to the comma: lengths repeat, so most frames skip parsing.
        head, head_size, skip = b"\xff", 1, 0
        while True:
            if startswith(head, pos):
                comma = pos + skip
            else:
                colon = find(b":", pos, pos + reach)
                if colon <= pos:
                    break
                digits = chunk[pos:colon]
                length = lengths.get(digits)
                if length is None:
                    if not digits.isdigit() or (digits[0] == 48 and colon - pos > 1):  # '0'
                        break  # _decode_one names the problem
                    length = int(digits)
                    if len(lengths) < _LENGTH_CACHE:
                        lengths[digits] = length
                if length > limit:
                    break
                head_size = colon + 1 - pos
                head, skip = chunk[pos : colon + 1], head_size + length
                comma = pos + skip
            if comma >= n or chunk[comma] != 44:  # ','
                break
            append(chunk[pos + head_size : comma])
            pos = comma + 1
        self._start = start + pos
        return out

    def _decode_one(self) -> bytes | None:
        buf, start = self._buf, self._start
        end = len(buf)
        if start >= end:
            return None
        colon = buf.find(b":", start, min(end, start + self._max_digits + 1))
        if colon == -1:
            digits = bytes(buf[start : min(end, start + self._max_digits + 1)])
            self._check_digits(digits, complete=False)
            if end - start > self._max_digits:
                raise self._too_large(digits)
            return None
        digits = bytes(buf[start:colon])
        self._check_digits(digits, complete=True)
        length = int(digits)
        if length > self._limit:
            raise self._too_large(digits)
        comma = colon + 1 + length
        if comma >= end:
            return None
        if buf[comma] != 44:  # ','
            raise MalformedFrame(
                f"netstring of {length} bytes is followed by {bytes(buf[comma : comma + 1])!r}, "
                "not ','; the stream is corrupt"
            )
        self._start = comma + 1
        return bytes(buf[colon + 1 : comma])

    def _check_digits(self, digits: bytes, *, complete: bool) -> None:
        if (complete and not digits) or (not digits.isdigit() and digits):
            shown = digits[:20]
            raise MalformedFrame(
                f"netstring length must be decimal digits then ':', got {shown!r}; "
                "the stream is corrupt"
            )
        if len(digits) > 1 and digits[0] == 48:  # '0'
            raise MalformedFrame(f"netstring length {digits!r} has a leading zero")

    def _too_large(self, digits: bytes) -> FrameTooLarge:
        length = int(digits) if digits.isdigit() else -1
        return FrameTooLarge(
            f"peer declared a netstring of {digits[:24].decode('ascii', 'replace')}"
            f"{'...' if len(digits) > 24 else ''} bytes, over max_frame_size "
            f"({self._limit} bytes); raise max_frame_size if this is expected",
            length=length,
            limit=self._limit,
        )
