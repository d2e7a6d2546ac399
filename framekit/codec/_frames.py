"""Sans-IO length-field codec: a decoder you feed bytes, an encoder that returns bytes.

Nothing here touches a socket or Trio. The decoder keeps received chunks in a queue and
only joins the pieces of a frame that spans chunks, so decoding ``T`` bytes costs ``O(T)``
however the stream is split, and a large payload is copied once. A plain length prefix
(:attr:`FrameFormat.plain`) takes a fast path; headers, adjusted lengths, stripping and
discarding take a general one.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, Literal, final

from .._errors import (
    BufferTooSmall,
    FrameTooLarge,
    IncompleteFrame,
    InvalidFormat,
    LocalProtocolError,
    MalformedFrame,
    ProtocolError,
)
from .._types import BytesLike, flat_bytes
from ._common import too_large_to_send
from ._format import DEFAULT_FORMAT, FrameFormat

if TYPE_CHECKING:
    # Any buffer: ``collections.abc.Buffer`` from 3.12 on; type checkers only.
    from typing_extensions import Buffer

__all__ = [
    "END_OF_STREAM",
    "NEED_DATA",
    "FrameDecoder",
    "FrameEncoder",
    "Sentinel",
    "writable_bytes",
]


class Sentinel(enum.Enum):
    """Values a decoder returns instead of an event."""

    #: More bytes are needed before the next event can be decoded.
    NEED_DATA = "NEED_DATA"
    #: The stream ended cleanly, between frames or messages.
    END_OF_STREAM = "END_OF_STREAM"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = Sentinel.NEED_DATA
END_OF_STREAM: Final = Sentinel.END_OF_STREAM


def writable_bytes(buffer: Buffer) -> memoryview:
    """``buffer`` as a flat, writable byte view of the same memory (release it after use).

    A ``memoryview`` of wider items (an ``array('i')``) becomes a view of its bytes, so
    sizes are counted in bytes, not items.

    Raises:
        TypeError: ``buffer`` is not a buffer, is read-only (``bytes``), or is not
            C-contiguous.
    """
    try:
        view = memoryview(buffer)
    except TypeError:
        raise TypeError(
            "buffer must be a writable bytes-like object (bytearray, memoryview, array), "
            f"not {type(buffer).__name__}"
        ) from None
    if view.readonly:
        view.release()
        raise TypeError(
            f"buffer must be writable, and this {type(buffer).__name__} is read-only; "
            "receive into a bytearray (or a memoryview of one)"
        )
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    try:
        flat = view.cast("B")
    except TypeError:
        raise TypeError("buffer must be C-contiguous (this memoryview is not)") from None
    finally:
        view.release()
    return flat


def too_small(needed: int, size: int, remedy: str = "") -> BufferTooSmall:
    """The :class:`BufferTooSmall` for a frame of ``needed`` bytes and a buffer of
    ``size``; ``remedy`` says what to call instead (default: the decoder's words)."""
    remedy = remedy or f"receive it into a buffer of at least {needed} bytes, or as bytes"
    return BufferTooSmall(
        f"the next frame's payload is {needed} bytes, but the buffer holds only {size}; "
        f"nothing was consumed: {remedy}",
        needed=needed,
        size=size,
    )


@final
class FrameEncoder:
    """Encodes payloads as length-prefixed frames in a :class:`FrameFormat`.

    Payloads may be any contiguous buffer; a ``memoryview`` of wider items is framed with
    its size in bytes. What you encode is what the decoder returns: with a format that
    keeps (part of) its header in decoded frames (``strip`` below the header size), pass
    the frame with its header and the encoder writes the length field in place; bytes
    the decoder strips besides the length come from ``header_fill``.

    Raises:
        InvalidFormat: (at construction) the format strips header bytes besides the
            length field and has no ``header_fill`` to write back.
        FrameTooLarge: (from every method) a payload is over ``format.max_frame_size``.
        TypeError: (from every method) a payload is not a bytes-like buffer (a ``str``,
            say); nothing was encoded.
    """

    __slots__ = ("_limit", "_pack", "_plain", "format")

    def __init__(self, format: FrameFormat = DEFAULT_FORMAT) -> None:
        if format.stripped_header and not format.header_fill:
            raise InvalidFormat(
                f"this format's decoder strips {format.stripped_header} header byte(s) besides "
                "the length field; give header_fill=... so the encoder can write them back"
            )
        self.format = format
        self._pack = format.prefix_struct.pack
        self._limit = format.limit
        self._plain = format.plain

    def _too_large(self, length: int) -> FrameTooLarge:
        return too_large_to_send(length, self._limit)

    def prefix(self, length: int) -> bytes:
        """The length prefix alone, for sending a large payload without copying it.

        Raises:
            InvalidFormat: the format is not a plain length prefix (use :meth:`encode`).
        """
        if not self._plain:
            raise InvalidFormat("prefix() needs a plain length prefix; use encode()")
        if not 0 <= length <= self._limit:
            raise self._too_large(length)
        return self._pack(length)

    def encode(self, payload: BytesLike) -> bytes:
        """One frame, as a new ``bytes``."""
        payload = flat_bytes(payload)
        if not self._plain:
            return self._encode_general(payload)
        n = len(payload)
        if n > self._limit:
            raise self._too_large(n)
        return self._pack(n) + payload

    def encode_into(self, buffer: bytearray, payload: BytesLike) -> None:
        """Append one frame to ``buffer`` (the coalescing writers' hot path)."""
        payload = flat_bytes(payload)
        if not self._plain:
            buffer += self._encode_general(payload)
            return
        n = len(payload)
        if n > self._limit:
            raise self._too_large(n)
        buffer += self._pack(n)
        buffer += payload

    def _encode_general(self, frame: BytesLike) -> bytes:
        fmt = self.format
        strip, header, offset = fmt.strip_size, fmt.header_size, fmt.offset
        content = strip + len(frame) - header  # bytes after the header on the wire
        if content < 0:
            raise LocalProtocolError(
                f"a {len(frame)}-byte frame is shorter than the {header - strip} header "
                "bytes this format keeps in each frame"
            )
        if content > self._limit:
            raise self._too_large(content)
        length = content - fmt.adjust
        if not 0 <= length <= fmt.field_max:
            raise LocalProtocolError(
                f"a {content}-byte payload needs a length of {length}, which the "
                f"{fmt.width}-byte field cannot hold (adjust is {fmt.adjust})"
            )
        field = self._pack(length)
        fill = fmt.header_fill
        data = bytes(frame)
        if strip <= offset:  # the frame holds the length field: write it in place
            at = offset - strip
            return fill + data[:at] + field + data[at + fmt.width :]
        return fill[:offset] + field + fill[offset:] + data

    def encode_many(self, payloads: Iterable[BytesLike]) -> bytes:
        """Many frames in one buffer, for one ``send_all``.

        Nothing is returned if any payload is too large or not bytes-like.
        """
        if not self._plain:
            return b"".join([self._encode_general(flat_bytes(p)) for p in payloads])
        pack, limit = self._pack, self._limit
        parts: list[BytesLike] = []
        append = parts.append
        for payload in payloads:
            if type(payload) is not bytes:
                payload = flat_bytes(payload)
            n = len(payload)
            if n > limit:
                raise self._too_large(n)
            append(pack(n))
            append(payload)
        return b"".join(parts)


@final
class FrameDecoder:
    """Turns a byte stream, fed in any chunking, back into frame payloads.

    Shaped like h11's ``Connection``: :meth:`receive_data` only stores bytes (``b""`` means
    end of stream), :meth:`next_frame` and :meth:`frames` parse. A length over the limit
    raises :class:`FrameTooLarge` as soon as its prefix is seen (or, with
    ``oversize="discard"``, the frame is skipped as it arrives and counted in
    :attr:`skipped_frames` and :attr:`skipped_bytes`). After any error about what the
    peer sent (:class:`FrameTooLarge`, :class:`IncompleteFrame`, :class:`MalformedFrame`)
    the decoder stays broken and raises it again on every call; a
    :class:`LocalProtocolError` (data fed after the end of the stream) is the caller's
    mistake and leaves it as it was.

    Args:
        format: the frame format (default: 4-byte unsigned big-endian, 16 MiB limit).

    Attributes:
        skipped_frames: oversized frames skipped (``oversize="discard"`` only).
        skipped_bytes: bytes of them skipped, header included.
    """

    __slots__ = (
        "_buf",
        "_chunks",
        "_eof",
        "_error",
        "_limit",
        "_pending",
        "_plain",
        "_pos",
        "_skip",
        "_unpack",
        "_width",
        "format",
        "skipped_bytes",
        "skipped_frames",
    )

    def __init__(self, format: FrameFormat = DEFAULT_FORMAT) -> None:
        self.format = format
        self._width = format.width
        self._limit = format.limit
        self._unpack = format.prefix_struct.unpack_from
        self._buf = b""  # the chunk being parsed; bytes before _pos are consumed
        self._pos = 0
        # Chunks received after _buf, not yet parsed. A deque costs ~760 bytes even empty,
        # so a decoder gets one only once data arrives faster than it is parsed.
        self._chunks: deque[bytes] | tuple[()] = ()
        self._pending = 0  # total length of _chunks
        self._eof = False
        self._error: ProtocolError | None = None
        self._plain = format.plain
        self._skip = 0  # bytes of an oversized frame still to skip
        self.skipped_frames = 0
        self.skipped_bytes = 0

    # -- input -------------------------------------------------------------------------

    def receive_data(self, data: BytesLike) -> None:
        """Store received bytes; ``b""`` marks the end of the stream.

        Raises:
            LocalProtocolError: data arrived after the end of the stream was signalled.
        """
        if not isinstance(data, bytes):
            data = bytes(data)
        if not data:
            self._eof = True
        elif self._eof:
            raise LocalProtocolError("receive_data() called after the end of the stream")
        elif self._pos == len(self._buf) and not self._chunks:
            self._buf = data
            self._pos = 0
        else:
            chunks = self._chunks
            if not isinstance(chunks, deque):
                chunks = self._chunks = deque()
            chunks.append(data)
            self._pending += len(data)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos + self._pending

    @property
    def at_eof(self) -> bool:
        """Whether the end of the stream has been received."""
        return self._eof

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """The bytes received but not yet returned as frames, and whether the end of the
        stream came after them (h11's ``trailing_data``): what a layer that takes the
        connection over next must start from."""
        rest = self._buf[self._pos :]
        return (rest + b"".join(self._chunks) if self._chunks else bytes(rest)), self._eof

    # -- output ------------------------------------------------------------------------

    def frames(self) -> list[bytes]:
        """Every complete frame buffered now, in order (possibly none).

        Returns an empty list when more data is needed, or when the stream ended cleanly
        (check :attr:`at_eof`). Frames decoded before a bad prefix are returned first; the
        error is raised by the next call.

        Raises:
            FrameTooLarge: a length prefix is over the limit (or negative).
            IncompleteFrame: the stream ended inside a frame.
        """
        if self._error is not None:
            raise self._error
        if not self._plain:
            return self._frames_general()
        out: list[bytes] = []
        append = out.append
        unpack, width, limit = self._unpack, self._width, self._limit
        buf, pos = self._buf, self._pos
        n = len(buf)
        try:
            while True:
                # Fast path: every frame wholly inside the current chunk.
                while True:
                    start = pos + width
                    if start > n:
                        break
                    length = unpack(buf, pos)[0]
                    if length > limit or length < 0:
                        self._pos = pos
                        raise self._too_large(length)
                    end = start + length
                    if end > n:
                        break
                    append(buf[start:end])
                    pos = end
                self._pos = pos
                if not self._chunks:
                    break
                if pos == n:  # current chunk used up: move to the next one, no copy
                    buf = self._buf = self._chunks.popleft()
                    self._pending -= len(buf)
                    pos = self._pos = 0
                    n = len(buf)
                    continue
                payload = self._maybe_take_spanning()
                if payload is None:
                    break
                append(payload)
                buf, pos = self._buf, self._pos
                n = len(buf)
        except ProtocolError as exc:
            if not out:
                raise
            self._error = exc  # hand out the good frames now, the error next call
            return out
        if not out and self._eof and self.buffered:
            raise self._incomplete()
        return out

    def next_frame(self) -> bytes | Literal[Sentinel.NEED_DATA, Sentinel.END_OF_STREAM]:
        """Decode one frame and stop, leaving any following bytes untouched.

        Returns:
            The payload, :data:`NEED_DATA`, or :data:`END_OF_STREAM` after a clean end.

        Raises:
            FrameTooLarge: the length prefix is over the limit (or negative).
            IncompleteFrame: the stream ended inside a frame.
        """
        if self._error is not None:
            raise self._error
        if not self._plain:
            frame = self._one_general()
            if frame is not None:
                return frame
            if not self._eof:
                return NEED_DATA
            if self.buffered or self._skip:
                raise self._incomplete()
            return END_OF_STREAM
        buf, pos = self._buf, self._pos
        start = pos + self._width
        if start <= len(buf):
            length = self._unpack(buf, pos)[0]
            if length > self._limit or length < 0:
                raise self._too_large(length)
            end = start + length
            if end <= len(buf):
                self._pos = end
                return buf[start:end]
        payload = self._maybe_take_spanning()
        if payload is not None:
            return payload
        if not self._eof:
            return NEED_DATA
        if self.buffered:
            raise self._incomplete()
        return END_OF_STREAM

    def read_raw(self, max_bytes: int) -> bytes:
        """Take up to ``max_bytes`` raw buffered bytes (``b""`` if none), bypassing framing.

        Used by layers that put unframed bytes after a frame, like a message body after its
        header. A whole received chunk is returned without copying when it fits.
        """
        if self._error is not None:
            raise self._error
        if self._pos == len(self._buf):
            if not self._chunks:
                return b""
            self._buf = self._chunks.popleft()
            self._pending -= len(self._buf)
            self._pos = 0
        buf, pos = self._buf, self._pos
        end = min(len(buf), pos + max_bytes)
        self._pos = end
        return buf if pos == 0 and end == len(buf) else buf[pos:end]

    # -- receiving into a buffer (zero-copy) --------------------------------------------
    #
    # The frame stays pending - nothing consumed - until take_into() or finish_frame()
    # consumes it whole, so a caller that gives up half-way (a cancelled read, a buffer
    # too small) leaves the decoder exactly as it was.

    def next_length(self) -> int | Literal[Sentinel.NEED_DATA, Sentinel.END_OF_STREAM]:
        """The next frame's payload length, as soon as its header is buffered.

        Consumes nothing (with ``oversize="discard"``, frames over the limit are skipped
        as they arrive, as :meth:`next_frame` would): the frame stays pending, and
        :meth:`next_frame`, :meth:`take_into` or :meth:`finish_frame` take it next.
        This is the length :meth:`next_frame` would return a payload of.

        Returns:
            The length, :data:`NEED_DATA` (the header is not all buffered yet), or
            :data:`END_OF_STREAM` after a clean end.

        Raises:
            FrameTooLarge: the length is over the limit (or negative).
            IncompleteFrame: the stream ended inside the frame (its header or payload).
            MalformedFrame: the header breaks the format's rules.
        """
        if self._error is not None:
            raise self._error
        length = self._head()
        if length is None:
            if not self._eof:
                return NEED_DATA
            if self.buffered or self._skip:
                raise self._incomplete()
            return END_OF_STREAM
        if self._eof and self.buffered < self._strip + length:
            raise self._incomplete()
        return length

    def take_into(
        self, buffer: Buffer
    ) -> int | Literal[Sentinel.NEED_DATA, Sentinel.END_OF_STREAM]:
        """:meth:`next_frame`, into ``buffer``: copy the next frame's payload into the
        start of ``buffer`` once the whole frame is buffered, consume it, and return its
        length. ``buffer`` (any writable C-contiguous buffer; its size counts in bytes)
        is written only in ``buffer[:length]``, and only when the frame is complete.

        Returns:
            The payload length, :data:`NEED_DATA`, or :data:`END_OF_STREAM` after a
            clean end.

        Raises:
            TypeError: ``buffer`` is not writable (``bytes``) or not contiguous;
                nothing was consumed.
            BufferTooSmall: the frame is longer than ``buffer``, raised as soon as its
                header is buffered; nothing was consumed.
            FrameTooLarge, IncompleteFrame, MalformedFrame: as :meth:`next_length`.
        """
        view = writable_bytes(buffer)
        try:
            length = self.next_length()
            if length is NEED_DATA or length is END_OF_STREAM:
                return length
            if length > view.nbytes:
                raise too_small(length, view.nbytes)
            strip = self._strip
            if self.buffered < strip + length:
                return NEED_DATA
            self._copy_out(view, strip, length)
        finally:
            view.release()
        self._drop(strip + length)
        return length

    def peek_into(self, buffer: Buffer) -> int:
        """Copy the part of the next frame's payload that is buffered into the start of
        ``buffer`` (as much as fits) without consuming anything; return how many bytes.

        For a caller that reads the rest of a large payload straight from the transport
        into the same buffer, then calls :meth:`finish_frame`. Returns 0 when no frame
        header is buffered.

        Raises:
            TypeError: ``buffer`` is not writable or not contiguous.
            FrameTooLarge, MalformedFrame: as :meth:`next_length`.
        """
        view = writable_bytes(buffer)
        try:
            if self._error is not None:
                raise self._error
            length = self._head()
            if length is None:
                return 0
            strip = self._strip
            n = max(0, min(view.nbytes, length, self.buffered - strip))
            self._copy_out(view, strip, n)
            return n
        finally:
            view.release()

    def finish_frame(self) -> int:
        """Consume the next frame: its header and the part of its payload that is
        buffered. Return how many bytes of its payload were *not* buffered (0 when the
        frame was complete).

        Those bytes are the caller's to read from the transport itself, straight after
        what it fed in (as :meth:`peek_into`'s caller does); they must not be fed to this
        decoder, whose next byte is the header of the frame after.

        Raises:
            LocalProtocolError: no frame header is buffered (:meth:`next_length` did not
                return a length; with a format that strips more than its header, the
                stripped bytes are not all buffered yet); nothing was consumed.
            FrameTooLarge, MalformedFrame: as :meth:`next_length`.
        """
        if self._error is not None:
            raise self._error
        length = self._head()
        strip = self._strip
        if length is None or self.buffered < strip:
            raise LocalProtocolError(
                "finish_frame() needs a frame whose header (and any other bytes the "
                "format strips) is buffered; call it after next_length() returned a "
                "length, or peek_into() copied something"
            )
        have = min(self.buffered - strip, length)
        self._drop(strip + have)
        return length - have

    @property
    def _strip(self) -> int:
        """Header bytes before the payload that ``next_frame`` returns."""
        return self._width if self._plain else self.format.strip_size

    def _head(self) -> int | None:
        """The next frame's payload length once its header is buffered, checked against
        the limit; None before. Consumes nothing but oversized frames being skipped."""
        if not self._plain:
            total = self._head_general()
            return None if total is None else total - self.format.strip_size
        buf, pos, width = self._buf, self._pos, self._width
        if pos + width <= len(buf):
            length: int = self._unpack(buf, pos)[0]
        elif self.buffered >= width:
            length = self._unpack(self._peek(width), 0)[0]
        else:
            return None
        if length > self._limit or length < 0:
            raise self._too_large(length)
        return length

    def _copy_out(self, view: memoryview, skip: int, n: int) -> None:
        """Copy ``n`` buffered bytes, from ``skip`` bytes past the unconsumed start, into
        ``view[:n]`` (one copy; ``n`` of them must be buffered)."""
        start = self._pos + skip
        buf = self._buf
        if start + n <= len(buf):  # all in the current chunk (the usual case)
            with memoryview(buf) as source:
                view[:n] = source[start : start + n]
            return
        done = 0
        for chunk in (buf, *self._chunks):
            size = len(chunk)
            if start >= size:
                start -= size
                continue
            k = min(size - start, n - done)
            with memoryview(chunk) as source:
                view[done : done + k] = source[start : start + k]
            done += k
            if done == n:
                return
            start = 0

    def fail(self, error: ProtocolError) -> ProtocolError:
        """Put the decoder in its error state with ``error`` (for layers built on top)."""
        self._error = error
        return error

    # -- the general path: headers, adjusted lengths, stripping, discarding ------------

    def _frames_general(self) -> list[bytes]:
        out: list[bytes] = []
        try:
            while (frame := self._one_general()) is not None:
                out.append(frame)
        except ProtocolError as exc:
            if not out:
                raise
            self._error = exc
            return out
        if not out and self._eof and (self.buffered or self._skip):
            raise self._incomplete()
        return out

    def _one_general(self) -> bytes | None:
        """Decode the next frame if it is complete (skipping oversized ones), else None."""
        total = self._head_general()
        if total is None or self.buffered < total:
            return None
        strip = self.format.strip_size
        buf, pos = self._buf, self._pos
        if pos + total <= len(buf):
            self._pos = pos + total
            return buf[pos + strip : pos + total]
        self._drop(strip)
        return self._take(total - strip)

    def _head_general(self) -> int | None:
        """The next frame's size on the wire, header included, once its header is
        buffered (skipping oversized ones as they arrive), else None."""
        fmt = self.format
        header, strip, adjust, limit = fmt.header_size, fmt.strip_size, fmt.adjust, self._limit
        while True:
            if self._skip:
                self._skip -= self._drop(self._skip)
                if self._skip:
                    return None
            if self.buffered < header:
                return None
            buf, pos = self._buf, self._pos
            if pos + header <= len(buf):
                length = self._unpack(buf, pos + fmt.offset)[0]
            else:
                length = self._unpack(self._peek(header), fmt.offset)[0]
            if length < 0:
                raise self._too_large(length)
            content = length + adjust
            if content < 0:
                raise self.fail(
                    MalformedFrame(
                        f"peer declared a length of {length}, which with adjust={adjust} "
                        "is shorter than the frame's header; the stream is corrupt"
                    )
                )
            total = header + content
            if content > limit:
                if fmt.oversize == "error":
                    raise self._too_large(content)
                self._skip = total
                self.skipped_frames += 1
                self.skipped_bytes += total
                continue
            if strip > total:
                raise self.fail(
                    MalformedFrame(
                        f"peer sent a {total}-byte frame, shorter than the {strip} bytes "
                        "this format strips from each frame"
                    )
                )
            return total

    def _drop(self, n: int) -> int:
        """Consume up to ``n`` buffered bytes without copying them; how many were dropped."""
        dropped = 0
        while dropped < n:
            rest = len(self._buf) - self._pos
            if rest == 0:
                if not self._chunks:
                    break
                self._buf = self._chunks.popleft()
                self._pending -= len(self._buf)
                self._pos = 0
                continue
            k = min(rest, n - dropped)
            self._pos += k
            dropped += k
        return dropped

    # -- internals ---------------------------------------------------------------------

    def _too_large(self, length: int) -> ProtocolError:
        if length < 0:
            msg = f"peer declared a negative frame length ({length}); the stream is corrupt"
        else:
            msg = (
                f"peer declared a {length}-byte frame, over max_frame_size "
                f"({self._limit} bytes); raise max_frame_size if this is expected"
            )
        return self.fail(FrameTooLarge(msg, length=length, limit=self._limit))

    def _incomplete(self) -> ProtocolError:
        have = self.buffered
        fmt = self.format
        if self._skip:
            return self.fail(
                IncompleteFrame(
                    f"stream ended while skipping an oversized frame; {self._skip} bytes "
                    "of it never arrived",
                    expected=self._skip,
                    received=0,
                )
            )
        width, header = self._width, fmt.header_size
        if have >= header:
            length = self._unpack(self._peek(header), fmt.offset)[0]
            expected = header + length + fmt.adjust
            if self._plain:
                what = f"{width}-byte length + {length}-byte payload"
            else:
                what = f"{header}-byte header + {length + fmt.adjust} bytes after it"
        else:
            expected = header
            what = f"{width}-byte length prefix" if self._plain else f"{header}-byte header"
        return self.fail(
            IncompleteFrame(
                f"stream ended in the middle of a frame: expected {expected} bytes "
                f"({what}), got {have}",
                expected=expected,
                received=have,
            )
        )

    def _peek(self, n: int) -> bytes:
        """The next ``n`` bytes (at most a header's worth) without consuming them."""
        have = self._buf[self._pos : self._pos + n]
        for chunk in self._chunks:
            if len(have) >= n:
                break
            have += chunk[: n - len(have)]
        return have

    def _take(self, n: int) -> bytes:
        """Consume exactly ``n`` bytes (which must be buffered), joining chunks once."""
        buf, pos = self._buf, self._pos
        end = pos + n
        if end <= len(buf):
            self._pos = end
            return buf[pos:end]
        parts: list[BytesLike] = [memoryview(buf)[pos:]]
        got = len(buf) - pos
        chunks = self._chunks
        while True:
            chunk = chunks.popleft()  # type: ignore[union-attr]
            self._pending -= len(chunk)
            need = n - got
            if len(chunk) >= need:
                parts.append(memoryview(chunk)[:need])
                self._buf = chunk
                self._pos = need
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _maybe_take_spanning(self) -> bytes | None:
        """Take the frame at the head if it is complete across chunks, else ``None``."""
        width = self._width
        avail = self.buffered
        if avail < width:
            return None
        length = self._unpack(self._peek(width), 0)[0]
        if length > self._limit or length < 0:
            raise self._too_large(length)
        if avail < width + length:
            return None
        self._take(width)
        return self._take(length)
