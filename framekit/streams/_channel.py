"""The coalescing framed channel: sends are queued and a writer task batches them.

:class:`FramedChannel` (opened with :func:`open_framed_channel`) queues frames and lets a
writer task send them in few large writes, which is what makes small frames fast. It
receives through a :class:`~framekit.FramedStream` and shares that stream's
:class:`~framekit.streams._state.StreamState`, so closed / broken / busy mean the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from itertools import islice
from typing import Final, final

import trio
from trio.lowlevel import ParkingLot, checkpoint, checkpoint_if_cancelled

from .._types import BytesLike, flat_bytes
from ..codec import DEFAULT_FORMAT, FrameFormat, Framing
from ..codec._spec import AnyEncoder
from . import _framed
from ._direct import DIRECT_WRITE, plain_socket, stream_error, write_now
from ._framed import CANCEL_CHECK_INTERVAL, SEPARATE_SEND_THRESHOLD, FramedStream
from ._groups import raise_single
from ._read_size import DEFAULT_RECEIVE_SIZE

__all__ = ["DEFAULT_MAX_BUFFER_SIZE", "FramedChannel", "open_framed_channel"]

#: Default bound on bytes queued in a FramedChannel before ``send`` waits (backpressure).
DEFAULT_MAX_BUFFER_SIZE: Final = 1024 * 1024
#: Buffers handed to one ``sendmsg`` by the writer at most: Linux, macOS and the BSDs
#: take up to 1024 (``IOV_MAX``).
_SENDMSG_BUFFERS: Final = 512
#: The writer stops adding buffers to a ``sendmsg`` once they hold this much (one big
#: buffer still goes whole). Measured at 64 KiB frames: everything queued in one call
#: made 38-41k frames/s, about a frame per call 56-66k (see docs/performance.md).
_SENDMSG_BYTES: Final = 64 * 1024


@final
class FramedChannel(trio.abc.Channel[bytes]):
    """A coalescing framed channel: sends are queued and written in batches.

    Open it with :func:`open_framed_channel`, which runs its writer task. :meth:`send`
    and :meth:`send_nowait` queue the frame and return; the writer sends what is queued
    in few large writes (on plain TCP, ``sendmsg`` of about 64 KiB at a time, big
    payloads beside their prefixes rather than copied behind them; elsewhere
    ``send_all``). Semantics, like a trio memory channel:

    * a returned ``send`` means *queued*, not delivered; :meth:`flush` waits until
      everything queued has been handed to the transport (on plain TCP, a small frame
      sent while the writer is idle is written to the socket at once, so a request
      does not wait for the writer task; the frames after it are batched);
    * ``send`` waits only when ``max_buffer_size`` bytes are queued (backpressure), and
      otherwise only checks for cancellation; a cancelled ``send`` queued nothing;
    * frames go out in the order the ``send`` calls returned (many tasks may send);
    * if the transport fails, the next ``send``/``flush`` raises
      :class:`trio.BrokenResourceError` and queued frames are dropped;
    * ``send`` copies a ``bytearray`` or ``memoryview`` payload (small ones behind their
      prefix, big ones whole), so changing the buffer after ``send`` returns never
      changes what is sent; a big ``bytes`` payload is queued as it is.

    Receiving works as in :class:`FramedStream`.
    """

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        *,
        format: Framing = DEFAULT_FORMAT,
        receive_size: int = DEFAULT_RECEIVE_SIZE,
        max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
    ) -> None:
        if max_buffer_size < 1:
            raise ValueError(f"max_buffer_size must be at least 1, not {max_buffer_size}")
        self.transport_stream = transport_stream
        self._framed = FramedStream(transport_stream, format=format, receive_size=receive_size)
        self._state = state = self._framed._state  # one state for both directions
        state.name = "FramedChannel"
        self._encoder: AnyEncoder = format.encoder()
        self._max_buffer = max_buffer_size
        self._tail = bytearray()  # small frames are appended here
        self._segments: deque[BytesLike] = deque()  # earlier tails and big payloads, in order
        self._queued = 0  # bytes in _tail + _segments + the batch being sent
        self._writer_lot = ParkingLot()  # the writer waits here for data
        self._writer_idle = True  # nothing queued, and no writer to wake (yet)
        self._space_lot = ParkingLot()  # senders and flushers wait here
        self._fast_calls = 0
        # Only a plain length prefix takes the inlined paths (the prefix packed here);
        # other framings are encoded whole by their encoder.
        plain = format if isinstance(format, FrameFormat) and format.plain else None
        self._plain = plain is not None
        self._width = (plain or DEFAULT_FORMAT).width
        self._pack = (plain or DEFAULT_FORMAT).prefix_struct.pack
        # the last small frame's length and packed prefix: a stream of same-size frames
        # skips the struct call (~35 ns of ~285 per 64 B send, measured)
        self._last_length = -1
        self._last_prefix = b""
        # A plain TCP socket, which the writer sends the queue to with sendmsg (scatter/
        # gather): payloads from _framed._GATHER_THRESHOLD on are then queued as they
        # are, not copied behind their prefix. Other transports get send_all.
        self._gather_socket = plain_socket(transport_stream, _framed._CAN_GATHER)
        # A plain TCP socket (POSIX) a small frame sent while the writer is idle is
        # written to at once (see _wake_writer): request/response then waits for no
        # writer task.
        self._direct_socket = plain_socket(transport_stream, DIRECT_WRITE)
        self._separate = (
            _framed._GATHER_THRESHOLD
            if self._gather_socket is not None
            else SEPARATE_SEND_THRESHOLD
        )
        # payloads up to this size take send()'s inlined path (copied behind the prefix)
        self._small_limit = min(plain.limit, self._separate - 1) if plain else -1

    # -- sending -----------------------------------------------------------------------

    def _enqueue(self, value: BytesLike) -> None:
        value = flat_bytes(value)
        n = len(value)
        if not self._plain:
            before = len(self._tail)
            self._encoder.encode_into(self._tail, value)
            self._queued += len(self._tail) - before
        elif n >= self._separate:
            self._tail += self._encoder.prefix(n)  # type: ignore[union-attr]
            self._segments.append(self._tail)
            # Queued, not sent: a mutable buffer is copied so the caller may reuse it.
            self._segments.append(value if type(value) is bytes else bytes(value))
            self._tail = bytearray()
            self._queued += n + self._width
        else:
            self._encoder.encode_into(self._tail, value)
            self._queued += n + self._width
        if self._writer_idle:
            self._writer_idle = False
            self._writer_lot.unpark()

    def _append_small(self, value: bytes, n: int) -> None:
        # A small bytes payload behind its prefix (send() inlines this: a call is ~30 ns).
        tail = self._tail
        if n == self._last_length:
            tail += self._last_prefix
        else:
            self._last_prefix = prefix = self._pack(n)
            self._last_length = n
            tail += prefix
        tail += value
        self._queued += n + self._width
        if self._writer_idle:
            self._wake_writer()

    def _wake_writer(self) -> None:
        """Wake the idle writer for the small frame just queued, and first write that
        frame (alone in the tail) straight to a plain TCP socket, as far as the kernel
        takes it; the writer sends any rest. Until the writer has run again, later
        frames are queued behind it and go out together: only a frame after a pause is
        written at once, so a request does not wait for the writer task."""
        self._writer_idle = False
        self._writer_lot.unpark()  # first: it must run even if the write fails
        if self._direct_socket is not None:
            tail = self._tail
            sent = write_now(self._direct_socket, tail, self._state)
            if sent:
                del tail[:sent]
                self._queued -= sent

    def send_nowait(self, value: BytesLike) -> None:
        """Queue one frame if the buffer has room.

        Raises:
            trio.WouldBlock: ``max_buffer_size`` bytes are already queued.
            FrameTooLarge: the payload is over ``max_frame_size``; nothing was queued.
            trio.ClosedResourceError: the channel was closed.
            trio.BrokenResourceError: the writer failed.
        """
        state = self._state
        if (
            state.send_error is None
            and not state.closed
            and self._queued < self._max_buffer
            and type(value) is bytes
            and (n := len(value)) <= self._small_limit
        ):
            self._append_small(value, n)
            return
        state.check_send_open()
        if self._queued >= self._max_buffer:
            raise trio.WouldBlock
        self._enqueue(value)

    async def send(self, value: BytesLike) -> None:
        """Queue one frame, waiting while the buffer is full.

        Raises:
            TypeError: ``value`` is not bytes-like; nothing was queued.
            FrameTooLarge: the payload is over ``max_frame_size``; nothing was queued.
            trio.ClosedResourceError: the channel was closed.
            trio.BrokenResourceError: the writer failed.
        """
        state = self._state
        if state.send_error is None and not state.closed and self._queued < self._max_buffer:
            # Hot path, inlined: a cancellation check every CANCEL_CHECK_INTERVAL calls
            # (it never suspends unless it raises, so nothing can change under us), then
            # the frame is appended to the tail (_append_small, inlined).
            self._fast_calls += 1
            if self._fast_calls >= CANCEL_CHECK_INTERVAL:
                self._fast_calls = 0
                await checkpoint_if_cancelled()
            if type(value) is bytes and (n := len(value)) <= self._small_limit:
                tail = self._tail
                if n == self._last_length:
                    tail += self._last_prefix
                else:
                    self._last_prefix = prefix = self._pack(n)
                    self._last_length = n
                    tail += prefix
                tail += value
                self._queued += n + self._width
                if self._writer_idle:
                    self._wake_writer()
                return
        else:
            state.check_send_open()
            while self._queued >= self._max_buffer:
                await self._space_lot.park()
                state.check_send_open()
        self._enqueue(value)

    async def send_many(self, values: Iterable[BytesLike]) -> None:
        """Queue many frames at once (waiting first while the buffer is full).

        Raises:
            TypeError: a value is not bytes-like; nothing was queued.
            FrameTooLarge: a payload is over ``max_frame_size``; nothing was queued.
            trio.ClosedResourceError: the channel was closed.
            trio.BrokenResourceError: the writer failed.
        """
        state = self._state
        state.check_send_open()
        data = self._encoder.encode_many(values)
        if self._queued < self._max_buffer:
            await checkpoint_if_cancelled()
        while self._queued >= self._max_buffer:
            await self._space_lot.park()
            state.check_send_open()
        if data:
            self._tail += data
            self._queued += len(data)
            if self._writer_idle:
                self._writer_idle = False
                self._writer_lot.unpark()

    async def flush(self) -> None:
        """Wait until every queued frame has been handed to the transport.

        Raises:
            trio.ClosedResourceError: the channel was closed.
            trio.BrokenResourceError: the writer failed.
        """
        state = self._state
        state.check_send_open()
        if not self._queued:
            await checkpoint()
            return
        while self._queued:
            await self._space_lot.park()
            state.check_send_open()

    async def _run_writer(self) -> None:
        state = self._state
        send_all = self.transport_stream.send_all
        sock = self._gather_socket
        segments = self._segments
        try:
            while not state.closed:
                if not self._queued:
                    self._writer_idle = True
                    await self._writer_lot.park()
                    continue
                if self._tail:
                    segments.append(self._tail)
                    self._tail = bytearray()
                while segments:
                    with state.sending:  # a failure here breaks the channel for sending
                        if sock is not None:
                            sent = await self._send_some(sock)
                        else:
                            segment = segments.popleft()
                            await send_all(segment)
                            sent = len(segment)
                    self._queued -= sent
                    if self._queued < self._max_buffer:  # else no sender could go on
                        self._space_lot.unpark_all()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._segments.clear()
            self._tail = bytearray()
            self._queued = 0
            self._space_lot.unpark_all()

    async def _send_some(self, sock: trio.socket.SocketType) -> int:
        """One ``sendmsg`` of the queued segments (waiting until the socket takes some);
        drops what it took from the queue and returns its size."""
        segments = self._segments
        batch: list[BytesLike] = []
        size = 0
        for segment in islice(segments, _SENDMSG_BUFFERS):
            batch.append(segment)
            size += len(segment)
            if size >= _SENDMSG_BYTES:
                break
        try:
            sent = await sock.sendmsg(batch)
        except OSError as exc:
            raise stream_error(exc) from exc
        left = sent
        while left:
            size = len(segments[0])
            if left < size:
                segments[0] = memoryview(segments[0])[left:]  # the rest goes next time
                break
            segments.popleft()
            left -= size
        return sent

    # -- receiving ---------------------------------------------------------------------

    async def receive(self) -> bytes:
        """Receive one whole frame's payload (see :meth:`FramedStream.receive`)."""
        return await self._framed.receive()

    async def __anext__(self) -> bytes:
        """The next frame for ``async for`` (see :meth:`FramedStream.__anext__`)."""
        return await self._framed.__anext__()

    def receive_nowait(self) -> bytes:
        """Return an already decoded frame (see :meth:`FramedStream.receive_nowait`)."""
        return self._framed.receive_nowait()

    async def receive_many(self) -> list[bytes]:
        """Receive every frame ready now (see :meth:`FramedStream.receive_many`)."""
        return await self._framed.receive_many()

    # -- closing -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close now, dropping frames still queued (leave the ``async with`` to flush)."""
        self._state.close()
        self._writer_lot.unpark_all()
        self._space_lot.unpark_all()
        await self._framed.aclose()


@asynccontextmanager
async def open_framed_channel(
    transport_stream: trio.abc.Stream,
    *,
    format: Framing = DEFAULT_FORMAT,
    receive_size: int = DEFAULT_RECEIVE_SIZE,
    max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
) -> AsyncIterator[FramedChannel]:
    """Open a coalescing :class:`FramedChannel` whose writer runs while the block runs.

    Leaving the block normally flushes what is queued, then closes the stream; leaving
    it with an exception closes it at once.

    The guide's "coalescing channel" section has a complete, tested example.
    """
    channel = FramedChannel(
        transport_stream,
        format=format,
        receive_size=receive_size,
        max_buffer_size=max_buffer_size,
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(channel._run_writer)
            try:
                yield channel
                if not channel._state.closed:
                    await channel.flush()
            finally:
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    if channel._state.closed:
                        await checkpoint()
                    else:
                        await channel.aclose()
    except BaseExceptionGroup as group:
        # The writer task never raises, so a group holds only the block's own exception:
        # hand it back unwrapped, as if there were no nursery.
        raise_single(group)
