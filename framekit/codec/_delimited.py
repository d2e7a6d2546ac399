"""Delimiter framing: lines (``\\n``, ``\\r\\n`` or either) and any delimiter byte strings,
with a maximum length checked while scanning, in linear time however the bytes arrive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, final

from .._errors import FrameTooLarge, IncompleteFrame, InvalidFormat, LocalProtocolError
from .._types import BytesLike, flat_bytes
from ._buffer import BufferedDecoder
from ._common import FormatCommon, too_large_to_send
from ._format import DEFAULT_MAX_FRAME_SIZE, Oversize

__all__ = ["DelimitedDecoder", "DelimitedEncoder", "DelimitedFormat"]

#: What a decoder does with bytes left after the last delimiter when the stream ends.
AtEof = Literal["error", "return"]

_DEFAULT_MAX_LINE = 64 * 1024


@dataclass(frozen=True, slots=True)
class DelimitedFormat(FormatCommon):
    """Frames that end with a delimiter (tokio's ``AnyDelimiterCodec``, Netty's
    ``DelimiterBasedFrameDecoder``); :meth:`lines` and :meth:`crlf` are the line presets.

    When several delimiters are given the frame ends at the earliest one (the longer if
    two end at the same place), as in Netty.

    Args:
        delimiters: one or more non-empty byte strings that end a frame.
        max_frame_size: the longest frame, delimiter excluded. Checked while scanning: a
            peer that never sends a delimiter is refused once this many bytes arrived.
        keep_delimiter: return frames with their delimiter (default: stripped).
        at_eof: bytes after the last delimiter when the stream ends are an
            :class:`IncompleteFrame` (``"error"``, default) or a last frame (``"return"``).
        oversize: ``"error"`` (terminal :class:`FrameTooLarge`) or ``"discard"`` (skip to
            the next delimiter and go on, counting what was skipped).
        send_delimiter: what the encoder appends (default: the first delimiter).
        strip_cr: strip a ``\\r`` before the delimiter too (the :meth:`lines` preset:
            ``\\n`` or ``\\r\\n``, like tokio's ``LinesCodec``).

    Raises:
        InvalidFormat: an option is out of range.
    """

    delimiters: tuple[bytes, ...] = (b"\n",)
    max_frame_size: int = _DEFAULT_MAX_LINE
    keep_delimiter: bool = False
    at_eof: AtEof = "error"
    oversize: Oversize = "error"
    send_delimiter: bytes | None = None
    strip_cr: bool = False
    _longest: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        given: object = self.delimiters
        if isinstance(given, (bytes, bytearray)):  # one delimiter, not in a tuple
            given = (bytes(given),)
        if (
            not isinstance(given, tuple)
            or not given
            or not all(isinstance(d, bytes) and d for d in given)
        ):
            raise InvalidFormat(f"delimiters must be non-empty byte strings, not {given!r}")
        delims: tuple[bytes, ...] = given
        object.__setattr__(self, "delimiters", delims)
        if len(set(delims)) != len(delims):
            raise InvalidFormat(f"delimiters must differ from each other: {delims!r}")
        m = self.max_frame_size
        if (
            isinstance(m, bool)
            or not isinstance(m, int)
            or not 0 <= m <= DEFAULT_MAX_FRAME_SIZE * 64
        ):
            raise InvalidFormat(f"max_frame_size must be an integer from 0 to 1 GiB, not {m!r}")
        for name in ("keep_delimiter", "strip_cr"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidFormat(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.at_eof not in ("error", "return"):
            raise InvalidFormat(f"at_eof must be 'error' or 'return', not {self.at_eof!r}")
        if self.oversize not in ("error", "discard"):
            raise InvalidFormat(f"oversize must be 'error' or 'discard', not {self.oversize!r}")
        if self.send_delimiter is None:
            object.__setattr__(self, "send_delimiter", delims[0])
        elif self.send_delimiter not in delims:
            raise InvalidFormat(
                f"send_delimiter {self.send_delimiter!r} is not one of the delimiters {delims!r}"
            )
        object.__setattr__(self, "_longest", max(len(d) for d in delims))

    @classmethod
    def lines(cls, max_frame_size: int = _DEFAULT_MAX_LINE, **options: object) -> DelimitedFormat:
        """Lines ending in ``\\n`` or ``\\r\\n`` (both stripped); the encoder writes ``\\n``."""
        return cls((b"\n",), max_frame_size, strip_cr=True, **options)  # type: ignore[arg-type]

    @classmethod
    def crlf(cls, max_frame_size: int = _DEFAULT_MAX_LINE, **options: object) -> DelimitedFormat:
        """Lines ending in ``\\r\\n`` only (SMTP, Redis, HTTP/1 headers)."""
        return cls((b"\r\n",), max_frame_size, **options)  # type: ignore[arg-type]

    def decoder(self) -> DelimitedDecoder:
        """A new decoder for this format."""
        return DelimitedDecoder(self)

    def encoder(self) -> DelimitedEncoder:
        """A new encoder for this format."""
        return DelimitedEncoder(self)


@final
class DelimitedEncoder:
    """Appends the delimiter to each payload.

    A payload that contains a delimiter would arrive as two frames, so it is refused.

    Raises:
        FrameTooLarge: (from every method) a payload is over ``max_frame_size``.
        LocalProtocolError: (from every method) a payload contains a delimiter.
        TypeError: (from every method) a payload is not bytes-like.
    """

    __slots__ = ("_delims", "_limit", "_tail", "format")

    def __init__(self, format: DelimitedFormat) -> None:
        self.format = format
        self._limit = format.max_frame_size
        assert format.send_delimiter is not None
        self._tail = format.send_delimiter
        self._delims = format.delimiters

    def _check(self, payload: BytesLike) -> BytesLike:
        payload = flat_bytes(payload)
        if len(payload) > self._limit:
            raise too_large_to_send(len(payload), self._limit)
        for delim in self._delims:
            if delim in payload:
                raise LocalProtocolError(
                    f"payload contains the delimiter {delim!r}; it would arrive as two frames"
                )
        if self.format.strip_cr and payload[-1:] == b"\r":
            raise LocalProtocolError(
                "payload ends with '\\r', which the receiver would strip as part of the line end"
            )
        return payload

    def encode(self, payload: BytesLike) -> bytes:
        """One frame: payload plus delimiter."""
        return bytes(self._check(payload)) + self._tail

    def encode_into(self, buffer: bytearray, payload: BytesLike) -> None:
        """Append one frame to ``buffer``."""
        buffer += self._check(payload)
        buffer += self._tail

    def encode_many(self, payloads: object) -> bytes:
        """Many frames in one buffer; nothing is returned if any payload is refused."""
        out = bytearray()
        for payload in payloads:  # type: ignore[attr-defined]
            self.encode_into(out, payload)
        return bytes(out)


@final
class DelimitedDecoder(BufferedDecoder):
    """Splits a byte stream at delimiters, fed in any chunking.

    Each byte is scanned once per delimiter however the stream is split (the scan resumes
    where it stopped), and at most ``max_frame_size`` + the longest delimiter bytes of an
    unfinished frame are kept: a longer one is refused (or skipped) before it grows.
    """

    __slots__ = ("_discarding", "_scanned", "format")

    def __init__(self, format: DelimitedFormat) -> None:
        super().__init__()
        self.format = format
        self._scanned = 0  # buffer index where the next scan starts (nothing before it matched)
        self._discarding = False

    def _rebase(self, removed: int) -> None:
        self._scanned = max(0, self._scanned - removed)

    def _decode_batch(self) -> list[bytes]:
        fmt = self.format
        if len(fmt.delimiters) != 1 or self._discarding:
            return []
        delim = fmt.delimiters[0]
        size = len(delim)
        buf, start = self._buf, self._start
        scan_from = max(self._scanned, start)
        last = buf.rfind(delim, scan_from)
        if last == -1:
            # No delimiter in the new bytes: the next scan starts where one split across
            # chunks could begin, so no byte is searched twice.
            self._scanned = max(start, len(buf) - size + 1)
            return []
        # One copy of every complete frame, split in C (as Twisted's LineOnlyReceiver
        # does); the rules (limit, '\r', keep) are checked on the whole batch at once.
        chunk = self._complete(last + size)
        frames = chunk.split(delim)
        frames.pop()  # the empty piece after the last delimiter
        limit = fmt.max_frame_size
        if fmt.strip_cr and b"\r" in chunk:
            frames = [f[:-1] if f[-1:] == b"\r" else f for f in frames]
        if not _all_within(chunk, delim, limit) and max(map(len, frames)) > limit:
            # Hand over the frames before the first long one; _decode_one refuses or
            # skips that one.
            good = 0
            for frame in frames:
                if len(frame) > limit:
                    break
                good += 1
            frames = frames[:good]
            pos = 0
            for _ in range(good):
                pos = chunk.index(delim, pos) + size
        else:
            pos = len(chunk)
        if fmt.keep_delimiter:
            ends = []
            at = 0
            for _ in frames:
                at = chunk.index(delim, at) + size
                ends.append(at)
            frames = [chunk[a:b] for a, b in zip([0, *ends], ends, strict=False)]
        self._start = self._scanned = start + pos
        return frames

    def _decode_one(self) -> bytes | None:
        fmt = self.format
        buf, start = self._buf, self._start
        end = len(buf)
        longest = fmt._longest
        while True:
            scan_from = max(self._scanned, start)
            found, delim = -1, b""
            for d in fmt.delimiters:
                i = buf.find(d, scan_from)
                if i != -1 and (found == -1 or i < found or (i == found and len(d) > len(delim))):
                    found, delim = i, d
            if found == -1:
                # Nothing ends a frame yet: the next scan may start where a delimiter
                # split across chunks could begin.
                self._scanned = max(start, end - longest + 1)
                pending = end - start
                if self._discarding:
                    keep = min(pending, longest - 1)
                    self.skipped_bytes += pending - keep
                    self._start = end - keep
                    return None
                # Room for a delimiter that has begun to arrive, and a '\r' lines strip.
                if pending - (longest - 1) - fmt.strip_cr > fmt.max_frame_size:
                    self._oversize(pending)
                    self._discarding = True
                    continue
                return None
            frame_end = found
            if fmt.strip_cr and frame_end > start and buf[frame_end - 1] == 13:  # '\r'
                frame_end -= 1
            after = found + len(delim)
            self._scanned = self._start = after
            if self._discarding:
                self._discarding = False
                self.skipped_bytes += after - start
                start = after
                continue
            if frame_end - start > fmt.max_frame_size:
                self._oversize(frame_end - start)
                self.skipped_bytes += after - start
                start = after
                continue
            return bytes(buf[start : after if fmt.keep_delimiter else frame_end])

    def _oversize(self, have: int) -> None:
        fmt = self.format
        if fmt.oversize == "error":
            raise FrameTooLarge(
                f"peer sent {have} bytes without a frame ending within max_frame_size "
                f"({fmt.max_frame_size} bytes); raise max_frame_size if this is expected",
                length=have,
                limit=fmt.max_frame_size,
            )
        self.skipped_frames += 1

    def _at_end(self) -> bytes | None:
        if self._discarding:
            self._discarding = False
            self.skipped_bytes += self.buffered
            self._start = len(self._buf)
            return None
        if not self.buffered:
            return None
        if self.format.at_eof == "return":
            frame = bytes(self._buf[self._start :])
            self._start = len(self._buf)
            return frame
        raise IncompleteFrame(
            f"stream ended in the middle of a frame: {self.buffered} bytes without a delimiter",
            expected=self.buffered + 1,
            received=self.buffered,
        )


def _all_within(chunk: bytes, delim: bytes, limit: int) -> bool:
    """Whether every frame of ``chunk`` (which ends with ``delim``) is at most ``limit``
    bytes, by hops of up to ``limit`` bytes: a few searches per read, not a length per
    frame. ``False`` means "maybe not": the caller then measures each frame."""
    size, n, pos = len(delim), len(chunk), 0
    while n - pos > limit + size:
        last = chunk.rfind(delim, pos, pos + limit + size)
        if last == -1:
            return False
        pos = last + size
    return True
