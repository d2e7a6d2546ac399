"""The receive buffer and error state shared by the delimiter, varint and netstring
decoders: bytes in, whole frames out, and one rule for the end of the stream and for
errors (terminal, raised again on every later call)."""

from __future__ import annotations

from typing import Literal

from .._errors import IncompleteFrame, LocalProtocolError, ProtocolError
from .._types import BytesLike
from ._frames import END_OF_STREAM, NEED_DATA, Sentinel

__all__ = ["BufferedDecoder"]

#: Consumed bytes at the front of the buffer are cut off once there are this many (and
#: they are at least half of it): amortised O(1) per byte, memory at most twice the data.
_COMPACT_AT = 64 * 1024


class BufferedDecoder:
    """Base of the scanning decoders: :meth:`receive_data`, :meth:`frames`,
    :meth:`next_frame`, :attr:`buffered` and :attr:`at_eof` like
    :class:`~framekit.FrameDecoder`; a subclass implements :meth:`_decode_one`.

    Attributes:
        skipped_frames: oversized frames skipped (``oversize="discard"`` only).
        skipped_bytes: bytes of them skipped.
    """

    __slots__ = ("_buf", "_eof", "_error", "_start", "skipped_bytes", "skipped_frames")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._start = 0  # bytes before this are consumed
        self._eof = False
        self._error: ProtocolError | None = None
        self.skipped_frames = 0
        self.skipped_bytes = 0

    def receive_data(self, data: BytesLike) -> None:
        """Store received bytes; ``b""`` marks the end of the stream.

        Raises:
            LocalProtocolError: data arrived after the end of the stream was signalled.
        """
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("receive_data() called after the end of the stream")
        start = self._start
        if start and (
            start == len(self._buf) or (start >= _COMPACT_AT and start * 2 >= len(self._buf))
        ):
            del self._buf[:start]
            self._start = 0
            self._rebase(start)
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._start

    @property
    def at_eof(self) -> bool:
        """Whether the end of the stream has been received."""
        return self._eof

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """The bytes received but not yet returned as frames, and whether the end of the
        stream came after them."""
        return bytes(self._buf[self._start :]), self._eof

    def frames(self) -> list[bytes]:
        """Every complete frame buffered now, in order (possibly none).

        Frames decoded before an error are returned first; the error is raised by the
        next call.
        """
        if self._error is not None:
            raise self._error
        out: list[bytes] = []
        try:
            out = self._decode_batch()
            while (frame := self._decode_one()) is not None:
                out.append(frame)
            if not out and self._eof:
                last = self._at_end()
                if last is not None:
                    out.append(last)
        except ProtocolError as exc:
            if not out:
                raise self._fail(exc) from None
            self._error = exc
        return out

    def next_frame(self) -> bytes | Literal[Sentinel.NEED_DATA, Sentinel.END_OF_STREAM]:
        """Decode one frame and stop.

        Returns:
            The frame, :data:`NEED_DATA`, or :data:`END_OF_STREAM` after a clean end.
        """
        if self._error is not None:
            raise self._error
        try:
            frame = self._decode_one()
            if frame is None and self._eof:
                frame = self._at_end()
                if frame is None:
                    return END_OF_STREAM
        except ProtocolError as exc:
            raise self._fail(exc) from None
        return NEED_DATA if frame is None else frame

    # -- for subclasses ----------------------------------------------------------------

    def _decode_batch(self) -> list[bytes]:
        """The frames the fast path can decode (from one ``bytes`` copy of the complete
        ones), as a new list; whatever it leaves - errors, oversize, a partial frame - is
        :meth:`_decode_one`'s. Default: none."""
        return []

    def _complete(self, end: int) -> bytes:
        """The unconsumed buffer up to ``end`` as ``bytes``, copied once."""
        view = memoryview(self._buf)
        try:
            return bytes(view[self._start : end])
        finally:
            view.release()  # the buffer may grow again

    def _decode_one(self) -> bytes | None:
        """The next whole frame, or None if more bytes are needed."""
        raise NotImplementedError

    def _at_end(self) -> bytes | None:
        """Called at the end of the stream with no whole frame left: None for a clean
        end, a last frame, or raise :class:`IncompleteFrame`."""
        if self.buffered:
            raise IncompleteFrame(
                f"stream ended in the middle of a frame: {self.buffered} bytes of it arrived",
                expected=self.buffered + 1,
                received=self.buffered,
            )
        return None

    def _rebase(self, removed: int) -> None:
        """The first ``removed`` bytes were cut from the buffer: shift saved positions."""

    def _fail(self, error: ProtocolError) -> ProtocolError:
        self._error = error
        return error
