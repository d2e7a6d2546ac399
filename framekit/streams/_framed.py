"""A Trio channel of whole frames over any byte stream: every ``send`` is one frame.

:class:`FramedStream` decodes with :class:`~framekit.FrameDecoder` and encodes with
:class:`~framekit.FrameEncoder`; it only moves bytes. Closed, broken and busy are decided
by its :class:`~framekit.streams._state.StreamState`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, NamedTuple, TypeVar, final

import trio
from trio.lowlevel import checkpoint, checkpoint_if_cancelled

from .._errors import BufferTooSmall
from .._types import BytesLike, flat_bytes
from ..codec import DEFAULT_FORMAT, END_OF_STREAM, NEED_DATA, FrameDecoder, FrameFormat, Framing
from ..codec._frames import too_small, writable_bytes
from ..codec._spec import AnyDecoder, AnyEncoder
from ._direct import DIRECT_READ, DIRECT_WRITE, plain_socket, stream_error, write_now
from ._read_size import DEFAULT_RECEIVE_SIZE, ReadSize
from ._state import StreamState

if TYPE_CHECKING:
    # Any buffer: ``collections.abc.Buffer`` from 3.12 on; type checkers only.
    from typing_extensions import Buffer

__all__ = ["CANCEL_CHECK_INTERVAL", "Detached", "FramedStream"]

_A = TypeVar("_A")
_R = TypeVar("_R")

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
#: The fast paths (a frame already decoded, room in the send buffer) check for
#: cancellation on every this-many calls rather than on each: the check is ~0.5 us of a
#: ~1.5 us budget per frame. Whenever a call has to wait, it is a full checkpoint.
CANCEL_CHECK_INTERVAL: Final = 16
#: ``receive_into`` on a plain TCP connection reads the payload of a frame at least this
#: long straight from the socket into the caller's buffer; shorter frames are read, many
#: at a time, into the decoder and copied out. With a receiver that keeps up, a read per
#: 64 KiB frame beats the copy (15.9 vs 22.4 us of CPU per frame); in the benchmark, where
#: the receiver waits on the sender, one read per frame made 0.73x raw Trio at 64 KiB and
#: the batched copy 0.99x (5 rounds each): so only frames from 128 KiB go direct.
_DIRECT_RECEIVE_MIN: Final = 128 * 1024
#: What each direct read takes past the frame, into the stream's own small buffer: the
#: next frame's header (and a little of its payload, copied twice).
_SCATTER_SIZE: Final = 1024
#: Reads straight from the socket that found bytes waiting take a checkpoint first once
#: this many bytes were read without one (or ``CANCEL_CHECK_INTERVAL`` reads): a reader
#: the network keeps busy lets other tasks run at least once per MiB, as often as
#: Trio's ``receive_some`` (a checkpoint per read, of up to ``DEFAULT_RECEIVE_SIZE``).
_YIELD_BYTES: Final = 1024 * 1024


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
    however the bytes were split or merged on the way; :meth:`receive_into` writes it
    into a buffer you own instead (zero-copy on plain TCP). The framing is any
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
        self._direct = plain_socket(transport_stream, DIRECT_WRITE)
        # A plain TCP connection's socket, read directly (POSIX): bytes already in the
        # kernel are taken without a trip through the scheduler (TLS, in-memory and
        # wrapped streams always go through receive_some).
        self._read_socket = plain_socket(transport_stream, DIRECT_READ)
        # receive_into() reads the rest of a large frame straight from this socket into
        # the caller's buffer (a plain length prefix over plain TCP only).
        self._recv_socket = plain_socket(transport_stream, self._plain)
        self._after: bytearray | None = None  # allocated by the first direct read
        self._large = False  # the last frame receive_into took was read direct
        self._fast_reads = 0  # direct reads since the last checkpoint
        self._read_bytes = 0  # bytes they returned
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
            # when the kernel takes less does the call wait, in send_all. (MessageStream.
            # _send_small does the same; calling a shared coroutine here cost ~3 %.)
            self._fast_sends += 1
            if self._fast_sends >= CANCEL_CHECK_INTERVAL:
                self._fast_sends = 0
                await checkpoint()
            sent = write_now(sock, data, state)
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
        except OSError as exc:
            raise stream_error(exc) from exc
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
                data = await self._receive_some(read_size.size)
                read_size.update(len(data))
                if state.closed:
                    raise trio.ClosedResourceError("this FramedStream was closed")
                decoder.receive_data(data)

    async def _receive_some(self, size: int) -> bytes | bytearray:
        """Up to ``size`` bytes from the transport (``b""`` at its end).

        On plain TCP (POSIX) a non-blocking ``os.read`` of the descriptor (see
        :meth:`_read_direct` for its checkpoints): what ``receive_some`` does, minus its
        scheduling pass after every read that did not wait. Elsewhere the transport's
        ``receive_some``.
        """
        sock = self._read_socket
        if sock is None:
            return await self.transport_stream.receive_some(size)
        data = await self._read_direct(sock, os.read, size)
        self._read_bytes += len(data)
        return data

    async def _read_direct(
        self, sock: trio.socket.SocketType, read: Callable[[int, _A], _R], arg: _A
    ) -> _R:
        """``read(fd, arg)`` on the socket's descriptor once it has bytes (or its end).

        A read that finds bytes waiting is no checkpoint; so that a reader the network
        always keeps busy still lets other tasks run, one is taken first whenever
        ``CANCEL_CHECK_INTERVAL`` reads or ``_YIELD_BYTES`` (the caller counts them in
        ``_read_bytes``) went by without one. A read that waits is a checkpoint.
        """
        self._fast_reads += 1
        if self._fast_reads >= CANCEL_CHECK_INTERVAL or self._read_bytes >= _YIELD_BYTES:
            self._fast_reads = self._read_bytes = 0
            await checkpoint()
        try:
            while True:
                fd = sock.fileno()  # -1 once the socket is closed: never a reused one
                if fd < 0:
                    raise trio.ClosedResourceError("this socket was already closed")
                try:
                    return read(fd, arg)
                except BlockingIOError:
                    pass
                await trio.lowlevel.wait_readable(sock)
                self._fast_reads = self._read_bytes = 0  # that was a checkpoint
        except OSError as exc:
            raise stream_error(exc) from exc

    async def receive(self) -> bytes:
        """Receive one whole frame's payload.

        A frame already decoded is returned at once (cancellation is checked on every
        ``CANCEL_CHECK_INTERVAL``-th such call); when none is ready the stream is read.
        On a plain TCP connection (POSIX) bytes already in the kernel are read at once,
        with a full checkpoint on every ``CANCEL_CHECK_INTERVAL``-th read (and once a
        MiB was read without one); elsewhere each read is a ``receive_some``, a full
        checkpoint. A read that has to wait for the network is always a full
        checkpoint. Either way no frame is ever lost to cancellation.

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

    async def __anext__(self) -> bytes:
        """The next frame for ``async for``: :meth:`receive`, the loop ending at a clean end.

        Inlines :meth:`receive`'s fast path (the same cancellation checks), so a loop
        pays no extra call per frame over ``await stream.receive()``.
        """
        ready = self._ready
        if ready and not self._state.closed:
            # receive()'s fast path, repeated on purpose: calling receive() here costs a
            # coroutine per frame (async for took 1.35x the time per 64 B frame with it).
            self._fast_calls += 1
            if self._fast_calls >= CANCEL_CHECK_INTERVAL:
                self._fast_calls = 0
                await checkpoint_if_cancelled()
            return ready.popleft()
        try:
            await self._fill()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        return ready.popleft()

    async def receive_into(self, buffer: Buffer) -> int:
        """Receive the next frame's payload into the start of ``buffer``; return its length.

        For large frames: the payload is written into memory you own instead of a new
        ``bytes``. On a plain TCP connection with a plain length prefix, once the header
        of a frame of at least 128 KiB is read, whatever of its payload was already read
        is copied into ``buffer`` and the rest is read from the socket straight into it
        (``os.readv`` on POSIX, the socket's ``recv_into`` elsewhere): the payload is
        copied once, by the kernel. Smaller frames are read many at a time and copied
        in. Over other transports (TLS, in-memory) a length field's frame is copied in
        from the chunks it arrived in; other framings (lines, varints, netstrings)
        receive the frame, then copy it in.

        ``buffer`` is any writable C-contiguous buffer (a ``bytearray``, a ``memoryview``
        of one, an ``array``); its size counts in bytes, not items. The caller owns it:
        this call writes only ``buffer[:n]`` (``n`` the length returned) and keeps no
        reference to it once it returns, so a ``bytearray`` may be resized again and the
        buffer reused for the next frame.

        Frames and errors come in the same order as from :meth:`receive`, and the two may
        be interleaved freely. Like :meth:`receive`, this is not a checkpoint on every
        call: a frame already read is copied in at once (cancellation is checked on
        every ``CANCEL_CHECK_INTERVAL``-th call), and bytes already in the kernel are
        read straight in (a full checkpoint every ``CANCEL_CHECK_INTERVAL``-th read, and
        once a MiB was read without one).
        Whenever it has to wait for the network, it is a full checkpoint.

        Cancellation: nothing is lost. A cancelled call may already have written the
        start of the frame's payload into ``buffer`` (never past the frame's length), but
        it consumed nothing: the bytes it read are kept, and the next :meth:`receive` or
        :meth:`receive_into` gets the whole frame.

        Raises:
            TypeError: ``buffer`` is read-only (``bytes``) or not contiguous; nothing was
                consumed.
            BufferTooSmall: the next frame is longer than ``buffer`` (its ``needed``
                says how long). Nothing was consumed and the stream is still usable:
                call again with a buffer of at least ``needed`` bytes, or
                :meth:`receive`. Raised as soon as the frame's length is known.
            trio.EndOfChannel: the peer closed the stream cleanly between frames.
            IncompleteFrame: the stream ended in the middle of a frame.
            FrameTooLarge: the peer declared a frame over ``max_frame_size``.
            trio.BusyResourceError: another task is receiving.
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: the transport failed.
        """
        view = writable_bytes(buffer)
        try:
            # A frame already read is taken without a checkpoint (from the queue or the
            # decoder), so check for cancellation every CANCEL_CHECK_INTERVAL calls.
            self._fast_calls += 1
            if self._fast_calls >= CANCEL_CHECK_INTERVAL:
                self._fast_calls = 0
                await checkpoint_if_cancelled()
            if self._ready and not self._state.closed:
                return self._copy_ready(view)
            if isinstance(self._decoder, FrameDecoder):
                return await self._receive_frame_into(self._decoder, view)
            # Other framings: one whole frame (kept queued if it does not fit), copied in.
            await self._fill()
            return self._copy_ready(view)
        finally:
            view.release()

    def _copy_ready(self, view: memoryview) -> int:
        """Copy the first queued frame into ``view`` and dequeue it, if it fits."""
        frame = self._ready[0]
        n = len(frame)
        if n > view.nbytes:
            raise _too_small(n, view.nbytes)
        view[:n] = frame
        self._ready.popleft()
        return n

    async def _receive_frame_into(self, decoder: FrameDecoder, view: memoryview) -> int:
        """``receive_into`` for a length field: the frame goes from the decoder's chunks
        (and, on TCP, the socket) into ``view``, never through a ``bytes`` of its own."""
        state = self._state
        sock = self._recv_socket
        with state.receiving:
            while True:
                length = decoder.next_length()
                if length is END_OF_STREAM:
                    raise trio.EndOfChannel
                if length is not NEED_DATA:
                    if length > view.nbytes:
                        raise _too_small(length, view.nbytes)
                    if sock is not None and length >= _DIRECT_RECEIVE_MIN:
                        # A large frame on TCP: its payload goes straight in.
                        self._large = True
                        return await self._receive_rest(sock, decoder, view, length)
                    self._large = False
                    taken = decoder.take_into(view)
                    if taken is not NEED_DATA and taken is not END_OF_STREAM:
                        return taken  # the frame was whole
                elif sock is not None and self._large:
                    # No header yet, and large frames come: read little, not a chunk of
                    # frames that would all be copied twice (their payloads go straight
                    # in); usually a direct read has read this header already.
                    after = self._scatter()
                    n = await self._read_into(sock, None, after)
                    if state.closed:
                        raise trio.ClosedResourceError("this FramedStream was closed")
                    decoder.receive_data(bytes(after[:n]))  # b"": the end of the stream
                    continue
                read_size = self._read_size
                data = await self._receive_some(read_size.size)
                read_size.update(len(data))
                if state.closed:
                    raise trio.ClosedResourceError("this FramedStream was closed")
                decoder.receive_data(data)

    async def _receive_rest(
        self, sock: trio.socket.SocketType, decoder: FrameDecoder, view: memoryview, length: int
    ) -> int:
        """Copy the buffered start of the pending frame into ``view``, read the rest
        straight from the socket into it, then consume the frame in the decoder.

        Each read also takes up to ``_SCATTER_SIZE`` bytes past the frame into a small
        buffer of the stream's own: the next frame's header, so the next call reads its
        payload straight in too, with no read of its own for the header.

        Until the frame is whole nothing is consumed: if the call ends early (cancelled,
        closed, the transport failed, the end of the stream) the bytes read so far are
        fed back to the decoder, which then holds them as if read the usual way.
        """
        have = got = decoder.peek_into(view)
        after = self._scatter()
        extra = 0  # bytes of what follows the frame, read into ``after``
        try:
            while got < length:
                with view[got:length] as part:
                    n = await self._read_into(sock, part, after)
                if n > length - got:
                    extra = n - (length - got)
                    n = length - got
                got += n
                if self._state.closed:
                    raise trio.ClosedResourceError("this FramedStream was closed")
                if not n:  # the end of the stream, inside this frame
                    break
        except BaseException:
            self._give_back(decoder, view, have, got)
            if extra:
                decoder.receive_data(bytes(after[:extra]))
            raise
        if got < length:
            self._give_back(decoder, view, have, got)
            decoder.receive_data(b"")
            decoder.next_length()  # raises IncompleteFrame, as receive() would
            raise AssertionError("unreachable: the frame was incomplete")  # pragma: no cover
        decoder.finish_frame()
        if extra:
            decoder.receive_data(bytes(after[:extra]))
        return length

    def _scatter(self) -> bytearray:
        """The small buffer direct reads take what follows a frame into."""
        after = self._after
        if after is None:
            after = self._after = bytearray(_SCATTER_SIZE)
        return after

    async def _read_into(
        self, sock: trio.socket.SocketType, part: memoryview | None, after: bytearray
    ) -> int:
        """One read from the socket into ``part``, then ``after``: how many bytes.

        POSIX: a non-blocking ``readv`` on the descriptor (its checkpoints as in
        :meth:`_read_direct`). Elsewhere: the socket's ``recv_into`` (a checkpoint
        each), into ``part`` alone if given.
        """
        buffers = (after,) if part is None else (part, after)
        if DIRECT_READ:
            n = await self._read_direct(sock, os.readv, buffers)
            self._read_bytes += n
            return n
        try:
            return await sock.recv_into(buffers[0])
        except OSError as exc:
            raise stream_error(exc) from exc

    @staticmethod
    def _give_back(decoder: FrameDecoder, view: memoryview, start: int, end: int) -> None:
        """Feed ``view[start:end]`` (read from the socket past the decoder) back to it."""
        if end > start:
            with view[start:end] as part:
                decoder.receive_data(bytes(part))

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


def _too_small(needed: int, size: int) -> BufferTooSmall:
    return too_small(
        needed, size, f"call receive_into() with a buffer of at least {needed} bytes, or receive()"
    )
