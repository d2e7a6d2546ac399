"""Trio channels of whole frames over any byte stream.

:class:`FramedStream` is the plain wrapper: every ``send`` is one ``send_all``. The
coalescing :class:`FramedChannel` (opened with :func:`open_framed_channel`) queues frames
and lets a writer task send everything queued in one ``send_all``, which is what makes
small frames fast. Both decode with :class:`~framekit.FrameDecoder`; they only move bytes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Final, final

import trio
from trio.lowlevel import ParkingLot, checkpoint, checkpoint_if_cancelled

from ._codec import FrameDecoder, FrameEncoder
from ._format import DEFAULT_FORMAT, FrameFormat
from ._types import BytesLike
from ._util import ReadSize, raise_single

__all__ = ["DEFAULT_RECEIVE_SIZE", "FramedChannel", "FramedStream", "open_framed_channel"]

#: Most bytes asked of the transport per read. trio's own default is 64 KiB; each read
#: has a fixed cost (~25 us here), so a bigger read carries more small frames per cost:
#: 1 MiB took 1 KiB frames from ~750k to ~965k frames/s in bench/framing.py. Reads grow
#: to it only while they come back full (see ``ReadSize``): asking for 1 MiB when a
#: small message arrives costs an allocation of 1 MiB.
DEFAULT_RECEIVE_SIZE: Final = 1024 * 1024
#: Payloads at least this big are sent apart from their prefix instead of being copied
#: behind it. A send_all costs ~25-30 us here, more than copying 64 KiB (measured:
#: joining them took 64 KiB frames from 14.5k to 23.5k/s), so only big ones go apart.
_SEPARATE_SEND_THRESHOLD: Final = 1024 * 1024
#: From this size on, a frame going to a socket is sent with sendmsg([prefix, payload])
#: instead of copying the payload behind its prefix first.
_GATHER_THRESHOLD: Final = 16 * 1024
#: The fast paths (a frame already decoded, room in the send buffer) check for
#: cancellation on every this-many calls rather than on each: the check is ~0.5 us of a
#: ~1.5 us budget per frame. Whenever a call has to wait, it is a full checkpoint.
CANCEL_CHECK_INTERVAL: Final = 16
#: Default bound on bytes queued in a FramedChannel before ``send`` waits (backpressure).
DEFAULT_MAX_BUFFER_SIZE: Final = 1024 * 1024


@final
class FramedStream(trio.abc.Channel[bytes]):
    """A :class:`trio.abc.Channel` of whole messages over a :class:`trio.abc.Stream`.

    Each :meth:`send` writes one length-prefixed frame; each :meth:`receive` returns one
    whole payload, however the bytes were split or merged on the way. Use it with
    ``async with`` (closes the stream) and ``async for`` (receives until a clean end).

    Cancellation: a cancelled :meth:`receive` loses nothing - bytes already read stay in
    the decoder and the next call returns the whole frame. A cancelled :meth:`send` may
    have written part of a frame (that is what ``send_all`` guarantees), so the stream is
    then unusable for sending and should be closed; framekit marks it broken.

    Args:
        transport_stream: the byte stream to wrap (TCP, TLS, in-memory, ...).
        format: the frame format (default: 4-byte unsigned big-endian, 16 MiB limit).
        receive_size: most bytes asked for per read of the transport (reads start at
            64 KiB and grow while they come back full).

    Attributes:
        transport_stream: the wrapped stream.
    """

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        *,
        format: FrameFormat = DEFAULT_FORMAT,
        receive_size: int = DEFAULT_RECEIVE_SIZE,
    ) -> None:
        if receive_size < 1:
            raise ValueError(f"receive_size must be at least 1, not {receive_size}")
        self.transport_stream = transport_stream
        self.format = format
        self._encoder = FrameEncoder(format)
        self._decoder = FrameDecoder(format)
        self._read_size = ReadSize(receive_size)
        self._ready: deque[bytes] = deque()
        self._closed = False
        self._send_broken = False
        self._sending = False  # a task is in send_all (the only place sending suspends)
        self._pack = format.prefix_struct.pack
        # payloads below this take send()'s hot path (within the limit, sent in one piece)
        self._small_send = min(format.limit + 1, _SEPARATE_SEND_THRESHOLD)
        self._receiving = False  # a task is suspended in _fill()
        self._fast_calls = 0  # fast-path calls since the last cancellation check

    # -- sending -----------------------------------------------------------------------

    def _check_send(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        if self._closed:
            raise trio.ClosedResourceError("this FramedStream was closed")
        if self._send_broken:
            raise trio.BrokenResourceError(
                "an earlier send was cancelled or failed mid-frame; close this stream"
            )

    async def _send_bytes(self, *parts: BytesLike) -> None:
        self._check_send()
        self._sending = True
        try:
            for part in parts:
                await self.transport_stream.send_all(part)
        except BaseException:
            self._send_broken = True
            raise
        finally:
            self._sending = False

    async def _send_gathered(self, prefix: bytes, value: BytesLike) -> None:
        """Prefix and payload in one ``sendmsg`` (scatter/gather), without copying them
        together; whatever the kernel did not take goes out with ``send_all``."""
        stream = self.transport_stream
        assert isinstance(stream, trio.SocketStream)
        self._sending = True
        try:
            try:
                sent = await stream.socket.sendmsg([prefix, value])
            except OSError as exc:  # what SocketStream.send_all would report
                raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc
            width = len(prefix)
            if sent < width:
                await stream.send_all(prefix[sent:])
                await stream.send_all(value)
            elif sent < width + len(value):
                await stream.send_all(memoryview(value)[sent - width :])
        except BaseException:
            self._send_broken = True
            raise
        finally:
            self._sending = False

    async def send(self, value: BytesLike) -> None:
        """Send one frame (one ``send_all`` of prefix + payload).

        Raises:
            FrameTooLarge: the payload is over ``max_frame_size``; nothing was sent.
            trio.BusyResourceError: another task is sending.
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: the transport failed (or an earlier send broke off).
        """
        n = len(value)
        if n >= self._small_send or self._sending or self._closed or self._send_broken:
            prefix = self._encoder.prefix(n)  # checks the limit
            if n >= _SEPARATE_SEND_THRESHOLD:
                await self._send_bytes(prefix, value)
            else:
                await self._send_bytes(prefix + value)
            return
        if n >= _GATHER_THRESHOLD and isinstance(self.transport_stream, trio.SocketStream):
            await self._send_gathered(self._pack(n), value)
            return
        # Hot path (request/response): one send_all, no extra coroutine layer.
        self._sending = True
        try:
            await self.transport_stream.send_all(self._pack(n) + value)
        except BaseException:
            self._send_broken = True
            raise
        finally:
            self._sending = False

    async def send_many(self, values: Iterable[BytesLike]) -> None:
        """Send many frames with one ``send_all`` (the batch form of :meth:`send`).

        Raises:
            FrameTooLarge: a payload is over ``max_frame_size``; nothing was sent.
            trio.BusyResourceError: another task is sending.
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: the transport failed (or an earlier send broke off).
        """
        data = self._encoder.encode_many(values)
        if data:
            await self._send_bytes(data)
        else:
            self._check_send()
            await checkpoint()

    # -- receiving ---------------------------------------------------------------------

    def _check_receive(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this FramedStream was closed")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")

    async def _fill(self) -> None:
        """Read until at least one frame is ready: the only place receiving can suspend.

        So it alone marks the stream busy; the fast paths never suspend (a cancellation
        check only raises), so they cannot interleave with another receiver.
        """
        self._check_receive()
        self._receiving = True
        try:
            decoder = self._decoder
            while True:
                frames = decoder.frames()
                if frames:
                    self._ready.extend(frames)
                    return
                if decoder.at_eof:
                    raise trio.EndOfChannel
                read_size = self._read_size
                data = await self.transport_stream.receive_some(read_size.size)
                read_size.update(len(data))
                if self._closed:
                    raise trio.ClosedResourceError("this FramedStream was closed")
                decoder.receive_data(data)
        finally:
            self._receiving = False

    async def receive(self) -> bytes:
        """Receive one whole frame's payload.

        A frame already decoded is returned at once (cancellation is checked on every
        ``CANCEL_CHECK_INTERVAL``-th such call); when none is ready the stream is read,
        which is a full checkpoint. Either way no frame is ever lost to cancellation.

        Raises:
            trio.EndOfChannel: the peer closed the stream cleanly between frames.
            IncompleteFrame: the stream ended in the middle of a frame.
            FrameTooLarge: the peer declared a frame over ``max_frame_size``.
            trio.BusyResourceError: another task is receiving.
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: the transport failed.
        """
        ready = self._ready
        if ready and not self._closed:
            self._fast_calls += 1
            if self._fast_calls >= CANCEL_CHECK_INTERVAL:
                self._fast_calls = 0
                await checkpoint_if_cancelled()
            return ready.popleft()
        await self._fill()
        return ready.popleft()

    def receive_nowait(self) -> bytes:
        """Return a frame that is already decoded, without waiting.

        Raises:
            trio.WouldBlock: no whole frame is buffered.
            trio.EndOfChannel: the peer closed cleanly and every frame was returned.
            IncompleteFrame: the stream ended in the middle of a frame.
            trio.BusyResourceError: another task is waiting in a receive.
            trio.ClosedResourceError: the stream was closed.
        """
        self._check_receive()
        if not self._ready:
            frames = self._decoder.frames()
            if not frames:
                if self._decoder.at_eof:
                    raise trio.EndOfChannel
                raise trio.WouldBlock
            self._ready.extend(frames)
        return self._ready.popleft()

    async def receive_many(self) -> list[bytes]:
        """Receive every frame ready now (at least one, waiting if need be).

        Raises:
            trio.EndOfChannel: the peer closed the stream cleanly between frames.
            IncompleteFrame: the stream ended in the middle of a frame.
            FrameTooLarge: the peer declared a frame over ``max_frame_size``.
            trio.BusyResourceError: another task is receiving.
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: the transport failed.
        """
        if self._ready and not self._closed:
            await checkpoint_if_cancelled()
        else:
            await self._fill()
        out = list(self._ready)
        self._ready.clear()
        return out

    # -- closing -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the transport stream. Idempotent; always a checkpoint."""
        self._closed = True
        await self.transport_stream.aclose()


@final
class FramedChannel(trio.abc.Channel[bytes]):
    """A coalescing framed channel: sends are queued and written in batches.

    Open it with :func:`open_framed_channel`, which runs its writer task. :meth:`send`
    and :meth:`send_nowait` append the frame to a buffer and return; the writer sends all
    that is buffered with one ``send_all``. Semantics, like a trio memory channel:

    * a returned ``send`` means *queued*, not delivered; :meth:`flush` waits until
      everything queued has been handed to the transport;
    * ``send`` waits only when ``max_buffer_size`` bytes are queued (backpressure), and
      otherwise only checks for cancellation; a cancelled ``send`` queued nothing;
    * frames go out in the order the ``send`` calls returned (many tasks may send);
    * if the transport fails, the next ``send``/``flush`` raises
      :class:`trio.BrokenResourceError` and queued frames are dropped.

    Receiving works as in :class:`FramedStream`.
    """

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        *,
        format: FrameFormat = DEFAULT_FORMAT,
        receive_size: int = DEFAULT_RECEIVE_SIZE,
        max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
    ) -> None:
        if max_buffer_size < 1:
            raise ValueError(f"max_buffer_size must be at least 1, not {max_buffer_size}")
        self.transport_stream = transport_stream
        self._framed = FramedStream(transport_stream, format=format, receive_size=receive_size)
        self._encoder = FrameEncoder(format)
        self._max_buffer = max_buffer_size
        self._tail = bytearray()  # small frames are appended here
        self._segments: deque[BytesLike] = deque()  # earlier tails and big payloads, in order
        self._queued = 0  # bytes in _tail + _segments + the batch being sent
        self._writer_lot = ParkingLot()  # the writer waits here for data
        self._writer_idle = False
        self._space_lot = ParkingLot()  # senders and flushers wait here
        self._closed = False
        self._error: BaseException | None = None
        self._usable = True  # not closed and the writer has not failed
        self._fast_calls = 0
        self._width = format.width
        self._pack = format.prefix_struct.pack
        # payloads up to this size take send()'s inlined path (copied behind the prefix)
        self._small_limit = min(format.limit, _SEPARATE_SEND_THRESHOLD - 1)

    # -- sending -----------------------------------------------------------------------

    def _check_send(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this FramedChannel was closed")
        if self._error is not None:
            raise trio.BrokenResourceError(
                f"the writer failed: {self._error!r}; close this channel"
            ) from self._error

    def _enqueue(self, value: BytesLike) -> None:
        n = len(value)
        if n >= _SEPARATE_SEND_THRESHOLD:
            self._tail += self._encoder.prefix(n)
            self._segments.append(self._tail)
            self._segments.append(value)
            self._tail = bytearray()
        else:
            self._encoder.encode_into(self._tail, value)
        self._queued += n + self._width
        if self._writer_idle:
            self._writer_idle = False
            self._writer_lot.unpark()

    def send_nowait(self, value: BytesLike) -> None:
        """Queue one frame if the buffer has room.

        Raises:
            trio.WouldBlock: ``max_buffer_size`` bytes are already queued.
            FrameTooLarge: the payload is over ``max_frame_size``; nothing was queued.
            trio.ClosedResourceError: the channel was closed.
            trio.BrokenResourceError: the writer failed.
        """
        self._check_send()
        if self._queued >= self._max_buffer:
            raise trio.WouldBlock
        self._enqueue(value)

    async def send(self, value: BytesLike) -> None:
        """Queue one frame, waiting while the buffer is full.

        Raises:
            FrameTooLarge: the payload is over ``max_frame_size``; nothing was queued.
            trio.ClosedResourceError: the channel was closed.
            trio.BrokenResourceError: the writer failed.
        """
        if self._usable and self._queued < self._max_buffer:
            # Hot path, inlined: a cancellation check every CANCEL_CHECK_INTERVAL calls
            # (it never suspends unless it raises, so nothing can change under us), then
            # the frame is appended to the tail.
            self._fast_calls += 1
            if self._fast_calls >= CANCEL_CHECK_INTERVAL:
                self._fast_calls = 0
                await checkpoint_if_cancelled()
            n = len(value)
            if n <= self._small_limit:
                tail = self._tail
                tail += self._pack(n)
                tail += value
                self._queued += n + self._width
                if self._writer_idle:
                    self._writer_idle = False
                    self._writer_lot.unpark()
                return
        else:
            self._check_send()
            while self._queued >= self._max_buffer:
                await self._space_lot.park()
                self._check_send()
        self._enqueue(value)

    async def send_many(self, values: Iterable[BytesLike]) -> None:
        """Queue many frames at once (waiting first while the buffer is full).

        Raises:
            FrameTooLarge: a payload is over ``max_frame_size``; nothing was queued.
            trio.ClosedResourceError: the channel was closed.
            trio.BrokenResourceError: the writer failed.
        """
        self._check_send()
        data = self._encoder.encode_many(values)
        if self._queued < self._max_buffer:
            await checkpoint_if_cancelled()
        while self._queued >= self._max_buffer:
            await self._space_lot.park()
            self._check_send()
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
        self._check_send()
        if not self._queued:
            await checkpoint()
            return
        while self._queued:
            await self._space_lot.park()
            self._check_send()

    async def _run_writer(self) -> None:
        send_all = self.transport_stream.send_all
        segments = self._segments
        try:
            while not self._closed:
                if not self._queued:
                    self._writer_idle = True
                    await self._writer_lot.park()
                    continue
                if self._tail:
                    segments.append(self._tail)
                    self._tail = bytearray()
                while segments:
                    segment = segments.popleft()
                    await send_all(segment)
                    self._queued -= len(segment)
                    self._space_lot.unpark_all()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._error = exc
            self._usable = False
            self._segments.clear()
            self._tail = bytearray()
            self._queued = 0
            self._space_lot.unpark_all()

    # -- receiving ---------------------------------------------------------------------

    async def receive(self) -> bytes:
        """Receive one whole frame's payload (see :meth:`FramedStream.receive`)."""
        return await self._framed.receive()

    def receive_nowait(self) -> bytes:
        """Return an already decoded frame (see :meth:`FramedStream.receive_nowait`)."""
        return self._framed.receive_nowait()

    async def receive_many(self) -> list[bytes]:
        """Receive every frame ready now (see :meth:`FramedStream.receive_many`)."""
        return await self._framed.receive_many()

    # -- closing -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close now, dropping frames still queued (leave the ``async with`` to flush)."""
        self._closed = True
        self._usable = False
        self._writer_lot.unpark_all()
        self._space_lot.unpark_all()
        await self._framed.aclose()


@asynccontextmanager
async def open_framed_channel(
    transport_stream: trio.abc.Stream,
    *,
    format: FrameFormat = DEFAULT_FORMAT,
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
                if not channel._closed:
                    await channel.flush()
            finally:
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    if channel._closed:
                        await checkpoint()
                    else:
                        await channel.aclose()
    except BaseExceptionGroup as group:
        # The writer task never raises, so a group holds only the block's own exception:
        # hand it back unwrapped, as if there were no nursery.
        raise_single(group)
