"""A Trio channel of whole frames over any byte stream: every ``send`` is one frame.

:class:`FramedStream` decodes with :class:`~framekit.FrameDecoder` and encodes with
:class:`~framekit.FrameEncoder`; it only moves bytes. Closed, broken and busy are decided
by its :class:`~framekit.streams._state.StreamState`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from typing import Final, NamedTuple, final

import trio
from trio.lowlevel import checkpoint, checkpoint_if_cancelled

from .._types import BytesLike, flat_bytes
from ..codec import DEFAULT_FORMAT, FrameFormat, Framing
from ..codec._spec import AnyDecoder, AnyEncoder
from ._read_size import DEFAULT_RECEIVE_SIZE, ReadSize
from ._state import StreamState

__all__ = ["CANCEL_CHECK_INTERVAL", "Detached", "FramedStream"]

#: Payloads at least this big are sent apart from their prefix instead of being copied
#: behind it. A send_all costs ~25-30 us here, more than copying 64 KiB (measured:
#: joining them took 64 KiB frames from 14.5k to 23.5k/s), so only big ones go apart.
SEPARATE_SEND_THRESHOLD: Final = 1024 * 1024
#: From this size on, a frame going to a socket is sent with sendmsg([prefix, payload])
#: instead of copying the payload behind its prefix first.
_GATHER_THRESHOLD: Final = 16 * 1024
#: Whether Trio's sockets have ``sendmsg`` (scatter/gather): not on Windows, where frames
#: under ``SEPARATE_SEND_THRESHOLD`` are then all sent as one copied ``send_all``, the
#: way frames below ``_GATHER_THRESHOLD`` always are. Chosen once, here (tests patch it).
_CAN_GATHER: Final = hasattr(trio.socket.SocketType, "sendmsg")
#: Whether a frame may be written straight to a TCP socket's descriptor with
#: ``os.write`` (POSIX: a socket is a file descriptor there; not on Windows).
_DIRECT_WRITE: Final = os.name == "posix"
#: The fast paths (a frame already decoded, room in the send buffer) check for
#: cancellation on every this-many calls rather than on each: the check is ~0.5 us of a
#: ~1.5 us budget per frame. Whenever a call has to wait, it is a full checkpoint.
CANCEL_CHECK_INTERVAL: Final = 16


class Detached(NamedTuple):
    """What :meth:`FramedStream.detach` hands back, in the order the peer sent it."""

    #: The byte stream, still open, for the next layer.
    transport_stream: trio.abc.Stream
    #: Frames already decoded that were not received yet.
    frames: list[bytes]
    #: Bytes received after them, not yet a whole frame (give them to the next layer
    #: first, e.g. ``BufferedByteStream(transport_stream, initial=trailing)``).
    trailing: bytes


@final
class FramedStream(trio.abc.Channel[bytes]):
    """A :class:`trio.abc.Channel` of whole messages over a :class:`trio.abc.Stream`.

    Each :meth:`send` writes one frame; each :meth:`receive` returns one whole frame,
    however the bytes were split or merged on the way. The framing is any
    :data:`~framekit.Framing`: a length prefix (the default), lines or delimiters,
    varints, netstrings. Use it with
    ``async with`` (closes the stream) and ``async for`` (receives until a clean end).

    Cancellation: a cancelled :meth:`receive` loses nothing - bytes already read stay in
    the decoder and the next call returns the whole frame. A cancelled :meth:`send` may
    have written part of a frame (that is what ``send_all`` guarantees), so the stream is
    then broken for sending: later sends raise :class:`trio.BrokenResourceError`, while
    receiving goes on (the peer's last words can still be read).

    Args:
        transport_stream: the byte stream to wrap (TCP, TLS, in-memory, ...).
        format: the framing (default: 4-byte unsigned big-endian length, 16 MiB limit).
        receive_size: most bytes asked for per read of the transport (reads start at
            64 KiB and grow while they come back full).

    Attributes:
        transport_stream: the wrapped stream.
        format: the framing.
    """

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        *,
        format: Framing = DEFAULT_FORMAT,
        receive_size: int = DEFAULT_RECEIVE_SIZE,
    ) -> None:
        self._read_size = ReadSize(receive_size)
        self.transport_stream = transport_stream
        self.format = format
        self._state = StreamState("FramedStream")
        self._encoder: AnyEncoder = format.encoder()
        self._decoder: AnyDecoder = format.decoder()
        self._ready: deque[bytes] = deque()
        # A plain length prefix takes send()'s hot paths; other framings are encoded whole
        # (and never reach the code that packs a prefix).
        plain = format if isinstance(format, FrameFormat) and format.plain else None
        self._plain = plain is not None
        self._pack = (plain or DEFAULT_FORMAT).prefix_struct.pack
        # payloads below this take send()'s hot path (within the limit, sent in one piece)
        self._small_send = min(format.limit + 1, SEPARATE_SEND_THRESHOLD) if self._plain else 0
        self._fast_calls = 0  # fast-path calls since the last cancellation check
        self._fast_sends = 0  # direct writes since the last checkpoint
        # A plain TCP connection's socket, written to directly while the kernel takes
        # whole frames (TLS, in-memory and wrapped streams always go through send_all).
        self._direct = (
            transport_stream.socket
            if _DIRECT_WRITE and type(transport_stream) is trio.SocketStream
            else None
        )
        self._detached = False

    # -- sending -----------------------------------------------------------------------

    async def send(self, value: BytesLike) -> None:
        """Send one frame.

        On a plain TCP connection (POSIX) a small frame is written straight to the
        socket when the kernel has room for all of it; this is a full checkpoint on
        every ``CANCEL_CHECK_INTERVAL``-th call rather than on each (as receiving is).
        Otherwise, and for whatever the kernel did not take, it is one ``send_all`` of
        prefix + payload, a checkpoint that waits for room. Either way a frame is sent
        whole, or the stream is broken for sending.

        Raises:
            TypeError: ``value`` is not bytes-like; nothing was sent.
            FrameTooLarge: the payload is over ``max_frame_size``; nothing was sent.
            LocalProtocolError: the framing cannot carry it (a payload containing its
                delimiter); nothing was sent.
            trio.BusyResourceError: another task is sending.
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: the transport failed (or an earlier send broke off).
        """
        if type(value) is not bytes:
            value = flat_bytes(value)
        n = len(value)
        state = self._state
        if n >= self._small_send:
            if not self._plain:
                data = self._encoder.encode(value)  # checks the limit and the payload
                with state.sending:
                    await self.transport_stream.send_all(data)
                return
            prefix = self._encoder.prefix(n)  # type: ignore[union-attr]  # checks the limit
            with state.sending:
                if n >= SEPARATE_SEND_THRESHOLD:
                    await self.transport_stream.send_all(prefix)
                    await self.transport_stream.send_all(value)
                else:
                    await self.transport_stream.send_all(prefix + value)
            return
        if (
            n >= _GATHER_THRESHOLD
            and _CAN_GATHER
            and isinstance(self.transport_stream, trio.SocketStream)
        ):
            with state.sending:
                await self._send_gathered(self.transport_stream, self._pack(n), value)
            return
        data = self._pack(n) + value
        sock = self._direct
        if sock is not None:
            # Hot path on TCP: the frame goes to the kernel at once if it has room, with a
            # full checkpoint every CANCEL_CHECK_INTERVAL calls instead of on each; only
            # when the kernel takes less does the call wait, in send_all.
            self._fast_sends += 1
            if self._fast_sends >= CANCEL_CHECK_INTERVAL:
                self._fast_sends = 0
                await checkpoint()
            fd = sock.fileno()  # -1 once the socket is closed: never a reused descriptor
            if fd >= 0 and state.send_error is None and not state.busy_sending:
                if state.closed:
                    raise trio.ClosedResourceError("this FramedStream was closed")
                try:
                    sent = os.write(fd, data)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:  # what SocketStream.send_all would report
                    state.break_send(exc)
                    raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc
                if sent == len(data):
                    return
                if sent:
                    data = data[sent:]  # the rest, as send_all would send it
        # One send_all of prefix + payload (and the rest of a direct write).
        with state.sending:
            await self.transport_stream.send_all(data)

    @staticmethod
    async def _send_gathered(stream: trio.SocketStream, prefix: bytes, value: BytesLike) -> None:
        """Prefix and payload in one ``sendmsg`` (scatter/gather), without copying them
        together; whatever the kernel did not take goes out with ``send_all``."""
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

    async def send_many(self, values: Iterable[BytesLike]) -> None:
        """Send many frames with one ``send_all`` (the batch form of :meth:`send`).

        Raises:
            TypeError: a value is not bytes-like; nothing was sent.
            FrameTooLarge: a payload is over ``max_frame_size``; nothing was sent.
            trio.BusyResourceError: another task is sending.
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: the transport failed (or an earlier send broke off).
        """
        data = self._encoder.encode_many(values)
        with self._state.sending:
            if data:
                await self.transport_stream.send_all(data)
            else:
                await checkpoint()

    # -- receiving ---------------------------------------------------------------------

    async def _fill(self) -> None:
        """Read until at least one frame is ready, and queue them."""
        self._ready.extend(await self._read_frames())

    async def _read_frames(self) -> list[bytes]:
        """Read until at least one frame is decoded: the only place receiving can suspend.

        So it alone marks the stream busy; the fast paths never suspend (a cancellation
        check only raises), so they cannot interleave with another receiver.
        """
        state = self._state
        with state.receiving:
            decoder = self._decoder
            while True:
                frames = decoder.frames()
                if frames:
                    return frames
                if decoder.at_eof:
                    raise trio.EndOfChannel
                read_size = self._read_size
                data = await self.transport_stream.receive_some(read_size.size)
                read_size.update(len(data))
                if state.closed:
                    raise trio.ClosedResourceError("this FramedStream was closed")
                decoder.receive_data(data)

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
        if ready and not self._state.closed:
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
        ready = self._ready
        if not ready:
            with self._state.receiving:
                frames = self._decoder.frames()
                if not frames:
                    if self._decoder.at_eof:
                        raise trio.EndOfChannel
                    raise trio.WouldBlock
                ready.extend(frames)
        else:
            self._state.check_receive()
        return ready.popleft()

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
        ready = self._ready
        if not ready:
            return await self._read_frames()  # the decoder's own list, handed over
        if self._state.closed:
            raise trio.ClosedResourceError("this FramedStream was closed")
        await checkpoint_if_cancelled()
        out = list(ready)
        ready.clear()
        return out

    # -- handing over ------------------------------------------------------------------

    def detach(self) -> Detached:
        """Stop framing, and hand the connection and everything read but not yet
        received to the next layer: to switch framing mid-connection (a line header
        then a raw body, STARTTLS), nothing lost. This stream is closed afterwards;
        the transport is not.

        Raises:
            trio.BusyResourceError: a task is sending or receiving.
            trio.ClosedResourceError: the stream was closed (or detached) already.
        """
        state = self._state
        if state.busy_sending:
            raise trio.BusyResourceError("cannot detach while a task is sending")
        if state.busy_receiving:
            raise trio.BusyResourceError("cannot detach while a task is receiving")
        if state.closed:
            raise trio.ClosedResourceError("this FramedStream was closed")
        state.close()
        self._detached = True
        frames = list(self._ready)
        self._ready.clear()
        trailing, _ = self._decoder.trailing_data
        return Detached(self.transport_stream, frames, trailing)

    # -- closing -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the transport stream (not after :meth:`detach`: it was handed over).
        Idempotent; always a checkpoint."""
        self._state.close()
        if self._detached:
            await checkpoint()
            return
        await self.transport_stream.aclose()
