"""A buffered byte stream: lines, exact lengths and raw reads mixed on one connection.

:class:`BufferedByteStream` is Trio's counterpart of anyio's
``BufferedByteReceiveStream``: a protocol that reads an HTTP/1-like line header, then a
raw body of known length (Twisted's ``LineReceiver.setRawMode``), switches framing on one
connection without losing bytes it has read ahead, and can hand the connection on to
another framing with :meth:`BufferedByteStream.detach`. Built for hostile peers: a line
is bounded by ``max_bytes``, scanning for a delimiter is linear however the bytes arrive,
and the buffer never holds more than the caller asked for plus one read.
"""

from __future__ import annotations

from typing import final

import trio
from trio.lowlevel import checkpoint, checkpoint_if_cancelled

from .._errors import FrameTooLarge, IncompleteFrame
from .._types import BytesLike
from ._state import StreamState

__all__ = ["BufferedByteStream"]


@final
class BufferedByteStream(trio.abc.Stream):
    """A :class:`trio.abc.Stream` with a receive buffer, for protocols that mix framings.

    :meth:`receive_until` (a line), :meth:`receive_exactly` (a body of known length) and
    :meth:`receive_some` (raw bytes) may be mixed freely; bytes read ahead by one are
    returned by the next. :meth:`detach` hands the transport and the unread bytes to
    another layer. Sends go straight to the transport.

    Cancellation: a cancelled receive loses nothing - whatever was read stays buffered
    and the next call sees it. A receive the buffer alone can answer does not wait; it
    checks for cancellation but is not a schedule point (each read of the transport is).
    End of stream inside :meth:`receive_exactly` or :meth:`receive_until` raises
    :class:`~framekit.IncompleteFrame`, and an over-long line
    :class:`~framekit.FrameTooLarge`; either leaves the bytes buffered and the stream
    usable. Closed, broken (the transport failed) and busy (two tasks receiving, or two
    sending) are decided by a :class:`~framekit.streams._state.StreamState`.

    Args:
        transport_stream: the byte stream to wrap (TCP, TLS, in-memory, ...).
        initial: bytes an earlier layer already read from the transport; they are
            returned first.
        receive_size: most bytes asked for per read of the transport.

    Attributes:
        transport_stream: the wrapped stream.

    Raises:
        ValueError: ``receive_size`` is below 1.
    """

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        *,
        initial: BytesLike = b"",
        receive_size: int = 65536,
    ) -> None:
        if receive_size < 1:
            raise ValueError(f"receive_size must be at least 1, not {receive_size}")
        self.transport_stream = transport_stream
        self._receive_size = receive_size
        self._buffer = bytearray(initial)
        self._state = StreamState("BufferedByteStream")
        self._eof = False  # the transport returned b""; it is not read again
        self._detached = False
        # No occurrence of _scan_delimiter starts before _scanned in the buffer; reset
        # whenever bytes leave the front, so a line fed a byte at a time is scanned once.
        self._scan_delimiter = b""
        self._scanned = 0

    # -- the buffer --------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """How many bytes are buffered (read from the transport, not yet returned)."""
        return len(self._buffer)

    @property
    def buffer(self) -> bytes:
        """A copy of the buffered bytes."""
        return bytes(self._buffer)

    def _take(self, n: int, skip: int = 0) -> bytes:
        """Remove and return the first ``n`` buffered bytes, dropping ``skip`` more."""
        buf = self._buffer
        if n >= len(buf):
            out = bytes(buf)
            buf.clear()
        else:
            with memoryview(buf) as view, view[:n] as part:
                out = bytes(part)  # one copy; the views are released before the del
            if n + skip >= len(buf):
                buf.clear()
            else:
                del buf[: n + skip]
        self._scanned = 0
        return out

    def _find(self, delimiter: bytes, limit: int) -> int:
        """Index of ``delimiter`` ending within the first ``limit`` buffered bytes, or -1.

        Only bytes not yet searched are searched (less ``len(delimiter) - 1``, for a
        delimiter split across reads).
        """
        buf = self._buffer
        if delimiter != self._scan_delimiter:
            self._scan_delimiter = delimiter
            self._scanned = 0
        end = min(len(buf), limit)
        start = self._scanned
        width = len(delimiter)
        if end - start < width:
            return -1
        index = buf.find(delimiter, start, end)
        if index < 0:
            self._scanned = end - width + 1
        return index

    def _check_open(self) -> None:
        # The stream may have been closed by another task while a read was waiting.
        if self._state.closed:
            raise trio.ClosedResourceError("this BufferedByteStream was closed")

    # -- receiving ---------------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Return buffered bytes if there are any, else the result of one read.

        Args:
            max_bytes: most bytes to return (default: all that are buffered, or
                ``receive_size`` when reading).

        Returns:
            At least one byte, or ``b""`` once the stream has ended and the buffer is
            empty.

        Raises:
            ValueError: ``max_bytes`` is below 1.
            trio.BusyResourceError: another task is receiving.
            trio.ClosedResourceError: the stream was closed or detached.
            trio.BrokenResourceError: the transport failed.
        """
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        state = self._state
        state.check_receive()
        buf = self._buffer
        if buf:
            await checkpoint_if_cancelled()
            return self._take(len(buf) if max_bytes is None else max_bytes)
        if self._eof:
            await checkpoint()
            return b""
        with state.receiving:
            data = await self.transport_stream.receive_some(
                self._receive_size if max_bytes is None else max_bytes
            )
            self._check_open()
        if not data:
            self._eof = True
        return bytes(data)

    async def receive_exactly(self, n: int) -> bytes:
        """Return exactly ``n`` bytes, reading as often as it takes.

        Reads ask for no more than is still missing, so the buffer never grows past
        ``n`` bytes (or what it already held). Bound ``n`` before calling when it comes
        from the peer.

        Args:
            n: how many bytes to return.

        Raises:
            ValueError: ``n`` is negative.
            IncompleteFrame: the stream ended first; the bytes that did arrive stay
                buffered (``received`` of ``expected``; 0 received is a clean end).
            trio.BusyResourceError: another task is receiving.
            trio.ClosedResourceError: the stream was closed or detached.
            trio.BrokenResourceError: the transport failed.
        """
        if n < 0:
            raise ValueError(f"n must be at least 0, not {n}")
        state = self._state
        state.check_receive()
        buf = self._buffer
        if len(buf) >= n:
            await checkpoint_if_cancelled()
            return self._take(n)
        if self._eof:
            await checkpoint()
        else:
            transport, size = self.transport_stream, self._receive_size
            with state.receiving:
                while len(buf) < n:
                    data = await transport.receive_some(min(size, n - len(buf)))
                    self._check_open()
                    if not data:
                        self._eof = True
                        break
                    buf += data
        if len(buf) < n:
            raise IncompleteFrame(
                f"stream ended after {len(buf)} of {n} bytes",
                expected=n,
                received=len(buf),
            )
        return self._take(n)

    async def receive_until(self, delimiter: bytes, max_bytes: int) -> bytes:
        """Return the bytes before the next ``delimiter``, which is consumed too.

        The line may be at most ``max_bytes`` long (the delimiter not counted), however
        the bytes arrive: once ``max_bytes + len(delimiter)`` bytes are buffered without
        one, :class:`~framekit.FrameTooLarge` is raised, so the buffer never holds more
        than that plus one read. Each byte is searched about once, even when a long
        line arrives a byte at a time.

        Args:
            delimiter: the bytes that end a line (``b"\\r\\n"``, ``b"\\0"``, ...).
            max_bytes: longest line allowed, without its delimiter.

        Raises:
            ValueError: ``delimiter`` is empty or ``max_bytes`` is negative.
            FrameTooLarge: no delimiter within ``max_bytes + len(delimiter)`` bytes
                (``length`` is ``max_bytes + 1``: the line is at least that long). The
                bytes stay buffered.
            IncompleteFrame: the stream ended before a delimiter; the bytes stay
                buffered (``received`` is how many; 0 is a clean end between lines).
            trio.BusyResourceError: another task is receiving.
            trio.ClosedResourceError: the stream was closed or detached.
            trio.BrokenResourceError: the transport failed.
        """
        if not delimiter:
            raise ValueError("delimiter must not be empty")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be at least 0, not {max_bytes}")
        state = self._state
        state.check_receive()
        buf = self._buffer
        limit = max_bytes + len(delimiter)
        index = self._find(delimiter, limit)
        if index >= 0:
            await checkpoint_if_cancelled()
            return self._take(index, len(delimiter))
        if len(buf) >= limit:
            await checkpoint_if_cancelled()
        elif self._eof:
            await checkpoint()
        else:
            transport, size = self.transport_stream, self._receive_size
            with state.receiving:
                while True:
                    data = await transport.receive_some(size)
                    self._check_open()
                    if not data:
                        self._eof = True
                        break
                    buf += data
                    index = self._find(delimiter, limit)
                    if index >= 0:
                        return self._take(index, len(delimiter))
                    if len(buf) >= limit:
                        break
        if len(buf) >= limit:
            raise FrameTooLarge(
                f"no {delimiter!r} within {limit} bytes: the line is over max_bytes "
                f"({max_bytes} bytes)",
                length=max_bytes + 1,
                limit=max_bytes,
            )
        raise IncompleteFrame(
            f"stream ended after {len(buf)} bytes without {delimiter!r}",
            expected=len(buf) + len(delimiter),
            received=len(buf),
        )

    # -- sending -----------------------------------------------------------------------

    async def send_all(self, data: BytesLike) -> None:
        """``transport_stream.send_all``.

        Raises:
            trio.BusyResourceError: another task is sending.
            trio.ClosedResourceError: the stream was closed or detached.
            trio.BrokenResourceError: the transport failed, or an earlier send was cut
                off part-way (a cancelled send may have written some of its bytes).
        """
        with self._state.sending:
            await self.transport_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """``transport_stream.wait_send_all_might_not_block``.

        Raises:
            trio.BusyResourceError: another task is sending.
            trio.ClosedResourceError: the stream was closed or detached.
            trio.BrokenResourceError: an earlier send was cut off part-way.
        """
        state = self._state
        state.check_send()
        state.busy_sending = True  # not state.sending: waiting sends nothing to break
        try:
            await self.transport_stream.wait_send_all_might_not_block()
        finally:
            state.busy_sending = False

    async def send_eof(self) -> None:
        """Close the sending half, if the transport is a :class:`trio.abc.HalfCloseableStream`.

        Receiving goes on until the peer closes its side.

        Raises:
            trio.BrokenResourceError: the transport cannot half-close (TLS, for one);
                nothing was done, and the stream can still send.
            trio.BusyResourceError: another task is sending.
            trio.ClosedResourceError: the stream was closed or detached.
        """
        transport = self.transport_stream
        if not isinstance(transport, trio.abc.HalfCloseableStream):
            self._state.check_send()
            raise trio.BrokenResourceError(
                f"this BufferedByteStream cannot half-close: its transport "
                f"({type(transport).__name__}) has no send_eof"
            )
        with self._state.sending:
            await transport.send_eof()

    # -- closing and handing over ------------------------------------------------------

    def detach(self) -> tuple[trio.abc.Stream, bytes]:
        """Hand the transport and the unread bytes to another layer, and close this one.

        The transport is not closed; every later call here raises
        :class:`trio.ClosedResourceError` (but :meth:`aclose` is a no-op, so ``async
        with`` around a detached stream is fine). Wrap the pair in the next framing,
        e.g. ``BufferedByteStream(transport, initial=rest)``.

        Returns:
            The transport stream, and the bytes read from it but not yet returned.

        Raises:
            trio.BusyResourceError: a task is receiving or sending.
            trio.ClosedResourceError: the stream was already closed or detached.
        """
        state = self._state
        if state.closed:
            raise trio.ClosedResourceError("this BufferedByteStream was closed")
        if state.busy_receiving or state.busy_sending:
            raise trio.BusyResourceError(
                "cannot detach this BufferedByteStream while a task is using it"
            )
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        self._detached = True
        state.close()
        return self.transport_stream, rest

    async def aclose(self) -> None:
        """Close the transport stream (unless detached) and drop the buffer.

        Idempotent; always a checkpoint.
        """
        self._state.close()
        self._buffer.clear()
        self._scanned = 0
        if self._detached:
            await checkpoint()
        else:
            await self.transport_stream.aclose()
