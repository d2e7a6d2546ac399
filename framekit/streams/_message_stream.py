"""Trio wrapper for header + body messages, with whole or streamed bodies.

Closed, broken and busy are decided by its :class:`~framekit.streams._state.StreamState`:
a message whose body source fails part-way (an iterator or a progress callback that
raises, a file that cannot be read) leaves the stream broken for sending, so the peer
never reads the next message's header as the rest of this body.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Final, final

import trio
from trio.lowlevel import checkpoint

from .._errors import ChecksumMismatch, FrameTooLarge, LocalProtocolError
from .._types import BytesLike, flat_bytes
from ..codec import (
    DEFAULT_FORMAT,
    DEFAULT_MAX_HEADER_SIZE,
    END_OF_STREAM,
    NEED_DATA,
    BodyChunk,
    EndOfMessage,
    FrameFormat,
    Header,
    MessageDecoder,
    MessageEncoder,
)
from ._direct import DIRECT_WRITE, plain_socket, write_now
from ._framed import CANCEL_CHECK_INTERVAL
from ._read_size import DEFAULT_RECEIVE_SIZE, ReadSize
from ._state import StreamState

__all__ = [
    "DEFAULT_MAX_MESSAGE_BODY",
    "IncomingMessage",
    "Message",
    "MessageStream",
    "ProgressCallback",
]

#: Default memory cap for :meth:`MessageStream.receive_message` (whole bodies in memory).
DEFAULT_MAX_MESSAGE_BODY: Final = 16 * 1024 * 1024
#: Chunk size when reading a file to send it: big enough to amortise a thread hop.
_FILE_CHUNK: Final = 256 * 1024
#: Bodies up to this size are sent in the same ``send_all`` as their header.
_COALESCE_BODY: Final = 64 * 1024

#: Called with (bytes done, bytes total) as a body is sent or received.
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Message:
    """A whole message: its header and its body in memory.

    Attributes:
        header: the decoded header (``header.fields`` is the JSON object).
        body: the body bytes.
    """

    header: Header
    body: bytes = b""

    @classmethod
    def create(cls, fields: Mapping[str, Any] | None = None, body: bytes = b"") -> Message:
        """Build a message to send; ``size`` is filled in from ``body``."""
        merged = dict(fields or {})
        merged["size"] = len(body)
        return cls(Header(merged), body)


@final
class IncomingMessage:
    """A received message whose body is read chunk by chunk.

    Returned by :meth:`MessageStream.receive_message_stream`.

    Iterate it (``async for chunk in message``) or call :meth:`read_all`. The body's
    ``size`` is enforced and its ``sha256`` (if announced) is checked after the last chunk:
    a mismatch raises :class:`ChecksumMismatch` from the iteration. A body left unread is
    skipped when the next message is received.

    Attributes:
        header: the message header.
        received: body bytes read so far.
        sha256: the body's SHA-256 (hex) once the whole body was read and verified, if
            the header announced one.
    """

    def __init__(self, stream: MessageStream, header: Header) -> None:
        self._stream = stream
        self.header = header
        self.received = 0
        self.sha256: str | None = None

    @property
    def size(self) -> int:
        """The body's announced length."""
        return self.header.size

    def __aiter__(self) -> IncomingMessage:
        return self

    async def __anext__(self) -> bytes:
        # A plain iterator, not an async generator: stopping early leaves nothing to
        # finalise, and the next receive skips whatever was left unread.
        chunk = await self._stream._next_body_chunk(self)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def read_all(self, max_size: int = DEFAULT_MAX_MESSAGE_BODY) -> bytes:
        """Read the rest of the body into memory (at most ``max_size`` bytes).

        Raises:
            FrameTooLarge: the unread rest of the body is over ``max_size``; nothing was
                read.
        """
        rest = self.size - self.received
        if rest > max_size:
            raise FrameTooLarge(
                f"the rest of this message body, {rest} bytes, is over max_size "
                f"({max_size}); iterate the message to stream it instead",
                length=rest,
                limit=max_size,
            )
        return b"".join([chunk async for chunk in self])

    async def discard(self) -> None:
        """Read and drop the rest of the body (its checksum is still verified)."""
        async for _ in self:
            pass


@final
class MessageStream(trio.abc.Channel[Message]):
    """Header + body messages over a :class:`trio.abc.Stream`.

    Send with :meth:`send_message` (body as bytes or an async iterable of chunks) or
    :meth:`send_file`; receive whole messages with :meth:`receive_message` (body capped in
    memory) or streamed ones with :meth:`receive_message_stream`. As a
    ``trio.abc.Channel[Message]`` it also supports ``send``/``receive``/``async for``.

    Cancellation: a cancelled :meth:`receive_message` loses nothing, the next call goes on
    where it stopped. A send that is cancelled or fails once bytes of the message may
    have been written (the transport, a body iterator or a progress callback raised, a
    file could not be read) leaves the stream broken for sending: later sends raise
    :class:`trio.BrokenResourceError`. Errors found before anything is written (a bad
    header, a body of the wrong type) leave it usable.

    Args:
        transport_stream: the byte stream to wrap.
        format: frame format of header frames.
        max_header_size: largest header accepted or sent (default 64 KiB).
        receive_size: most bytes asked for per read of the transport (reads start at
            64 KiB and grow while they come back full).
    """

    __slots__ = (
        "_current",
        "_decoder",
        "_direct",
        "_encoder",
        "_fast_sends",
        "_partial",
        "_read_size",
        "_state",
        "transport_stream",
    )

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        *,
        format: FrameFormat = DEFAULT_FORMAT,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        receive_size: int = DEFAULT_RECEIVE_SIZE,
    ) -> None:
        self._read_size = ReadSize(receive_size)
        self.transport_stream = transport_stream
        self._state = StreamState("MessageStream")
        self._encoder = _shared_encoder(format, max_header_size)
        self._decoder = MessageDecoder(format, max_header_size=max_header_size)
        self._current: IncomingMessage | None = None  # message whose body is being read
        # body chunks gathered by receive_message so far (made when first needed)
        self._partial: list[bytes] | None = None
        # A plain TCP connection's socket: a small message is written to it at once when
        # the kernel has room, as FramedStream.send does (a full checkpoint every
        # CANCEL_CHECK_INTERVAL such sends); other transports always use send_all.
        self._direct = plain_socket(transport_stream, DIRECT_WRITE)
        self._fast_sends = 0  # direct writes since the last checkpoint

    # -- sending -----------------------------------------------------------------------

    async def _send_small(self, data: bytes) -> None:
        """One message of header and body, whole: written at once on plain TCP if the
        kernel has room (a full checkpoint every ``CANCEL_CHECK_INTERVAL`` calls), else,
        and for what the kernel did not take, one ``send_all``.

        The same steps as :meth:`FramedStream.send`'s hot path, which keeps its own copy
        inline: a shared coroutine cost that path ~3 % per 64 B frame (measured).
        """
        state = self._state
        sock = self._direct
        if sock is not None:
            self._fast_sends += 1
            if self._fast_sends >= CANCEL_CHECK_INTERVAL:
                self._fast_sends = 0
                await checkpoint()
            sent = write_now(sock, data, state)
            if sent == len(data):
                return
            if sent:
                data = data[sent:]  # the rest, as send_all would send it
        with state.sending:
            await self.transport_stream.send_all(data)

    async def send_message(
        self,
        header: Mapping[str, Any],
        body: BytesLike | AsyncIterable[BytesLike] = b"",
        *,
        size: int | None = None,
        checksum: bool = False,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Send a header and its body.

        On a plain TCP connection (POSIX) a message whose body is bytes of up to 64 KiB
        is written straight to the socket when the kernel has room for all of it, with
        a full checkpoint on every ``CANCEL_CHECK_INTERVAL``-th such call, as
        :meth:`FramedStream.send <framekit.FramedStream.send>` does; otherwise, and for
        whatever the kernel did not take, ``send_all``, a checkpoint that waits for
        room. Either way a message is sent whole, or the stream is broken for sending.

        Args:
            header: JSON-serialisable fields; ``size`` is filled in.
            body: the body as bytes, or an async iterable of chunks (then ``size`` is
                required, from the argument or ``header["size"]``).
            size: the body length, for an iterable body.
            checksum: add the body's ``sha256`` (bytes bodies only; for an iterable,
                put a precomputed ``sha256`` in the header).
            progress: called with (bytes sent, total) after each chunk.

        Raises:
            TypeError: the body is neither bytes-like nor an async iterable; nothing was
                sent.
            LocalProtocolError: bad header or missing ``size`` (nothing was sent), or an
                iterable body that yields more or fewer bytes than ``size`` (the stream
                is then broken for sending).
            HeaderTooLarge: the header is over ``max_header_size``; nothing was sent.
            trio.BusyResourceError: another task is sending.
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: the transport failed, or an earlier send broke off.
            Exception: whatever the body iterator or ``progress`` raised part-way; the
                stream is then broken for sending.
        """
        state = self._state
        if not hasattr(body, "__aiter__"):
            data = flat_bytes(body, "body")
            n = len(data)
            fields = dict(header)
            if checksum:
                fields["sha256"] = hashlib.sha256(data).hexdigest()
            head = self._encoder.header(fields, size=n)
            if n <= _COALESCE_BODY:
                await self._send_small(head + data)
            else:
                with state.sending:
                    await self.transport_stream.send_all(head)
                    await self.transport_stream.send_all(data)
            if progress is not None:
                progress(n, n)
            return
        if checksum:
            raise LocalProtocolError(
                "checksum=True needs the whole body first; for a streamed body put a "
                "precomputed 'sha256' in the header (send_file does this for files)"
            )
        total = size if size is not None else header.get("size")
        if not isinstance(total, int) or isinstance(total, bool):
            raise LocalProtocolError(
                "a streamed body needs its length: pass size= or put 'size' in the header"
            )
        head = self._encoder.header(header, size=total)
        chunks = aiter(body)
        try:
            with state.sending:  # from here on, a failure leaves a partial message
                await self.transport_stream.send_all(head)
                sent = 0
                async for chunk in chunks:
                    data = flat_bytes(chunk, "body chunk")
                    sent += len(data)
                    if sent > total:
                        raise LocalProtocolError(
                            f"body yielded more than its declared size ({total} bytes); "
                            "the stream is broken"
                        )
                    await self.transport_stream.send_all(data)
                    if progress is not None:
                        progress(sent, total)
                if sent != total:
                    raise LocalProtocolError(
                        f"body ended after {sent} of its declared {total} bytes; "
                        "the stream is broken"
                    )
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if total == 0 and progress is not None:
            progress(0, 0)

    async def send_file(
        self,
        header: Mapping[str, Any],
        path: str | os.PathLike[str],
        *,
        checksum: bool = True,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Send a file as a message body, streaming it in bounded memory.

        The file is opened (and, with ``checksum``, hashed) before anything is sent, so a
        file that cannot be opened leaves the stream usable. With ``checksum`` (the
        default) it is read twice: once for the header's ``sha256``, once to send it.

        Raises:
            OSError: the file could not be opened or read (if it failed part-way, the
                stream is broken for sending).
            LocalProtocolError: the file changed size while it was being sent.
            The other errors of :meth:`send_message`.
        """
        fields = dict(header)
        async with await trio.open_file(path, "rb") as f:
            file_size = (await trio.to_thread.run_sync(os.fstat, f.fileno())).st_size
            if checksum:
                fields["sha256"] = await trio.to_thread.run_sync(_sha256_of, f.wrapped)
                await f.seek(0)

            async def chunks() -> AsyncIterator[bytes]:
                while chunk := await f.read(_FILE_CHUNK):
                    yield chunk

            await self.send_message(fields, chunks(), size=file_size, progress=progress)

    async def send(self, value: Message) -> None:
        """Send a :class:`Message` (the Channel interface)."""
        await self.send_message(value.header.fields, value.body)

    # -- receiving ---------------------------------------------------------------------

    def _decoded(self) -> Header | BodyChunk | EndOfMessage | None:
        """The next event if the bytes read so far hold one, else ``None``."""
        if self._state.closed:
            raise trio.ClosedResourceError("this MessageStream was closed")
        event = self._decoder.next_event()
        if event is NEED_DATA:
            return None
        if event is END_OF_STREAM:
            raise trio.EndOfChannel
        return event

    def _feed(self, data: bytes | bytearray) -> None:
        self._read_size.update(len(data))
        self._decoder.receive_data(data)

    async def _next_event(self) -> Header | BodyChunk | EndOfMessage:
        while (event := self._decoded()) is None:
            self._feed(await self.transport_stream.receive_some(self._read_size.size))
        return event

    async def _skip_current(self) -> None:
        if self._current is not None:
            async for _ in self._current:
                pass

    async def _next_body_chunk(self, message: IncomingMessage) -> bytes | None:
        if message is not self._current:
            return None
        with self._state.receiving:
            try:
                event = await self._next_event()
            except ChecksumMismatch:
                self._current = None  # the message is over (and bad); the stream goes on
                raise
            if isinstance(event, BodyChunk):
                message.received += len(event.data)
                return event.data
            assert isinstance(event, EndOfMessage)
            self._current = None
            message.sha256 = event.sha256
            return None

    async def receive_message_stream(self) -> IncomingMessage:
        """Receive a header; the body is read from the returned :class:`IncomingMessage`.

        An unread body of the previous message is skipped first.

        Raises:
            trio.EndOfChannel: the peer closed cleanly between messages.
            HeaderTooLarge, BadHeader, IncompleteFrame, ChecksumMismatch: bad input.
            trio.BusyResourceError: another task is receiving.
        """
        if self._current is not None:
            await self._skip_current()
        with self._state.receiving:
            if self._decoder.in_body:
                raise trio.BusyResourceError("receive_message() is part-way through a body")
            # _next_event(), inlined: a server's idle connections all wait here, and each
            # coroutine frame less is ~250 bytes less per connection.
            while (event := self._decoded()) is None:
                self._feed(await self.transport_stream.receive_some(self._read_size.size))
            assert isinstance(event, Header)
            self._current = IncomingMessage(self, event)
            return self._current

    async def receive_message(self, *, max_body_size: int = DEFAULT_MAX_MESSAGE_BODY) -> Message:
        """Receive a whole message, its body in memory.

        Raises:
            FrameTooLarge: the announced body is over ``max_body_size``. The stream is
                then unusable (the body is still on the wire); use
                :meth:`receive_message_stream` for big bodies.
            trio.EndOfChannel: the peer closed cleanly between messages.
            HeaderTooLarge, BadHeader, IncompleteFrame, ChecksumMismatch: bad input.
            trio.BusyResourceError: another task is receiving.
        """
        await self._skip_current()
        with self._state.receiving:
            partial = self._partial
            if partial is None:
                partial = self._partial = []
            while True:
                try:
                    event = await self._next_event()
                except ChecksumMismatch:
                    partial.clear()  # the stream goes on; this body must not leak into the next
                    raise
                if isinstance(event, Header):
                    if event.size > max_body_size:
                        raise self._decoder.fail(
                            FrameTooLarge(
                                f"message body of {event.size} bytes is over max_body_size "
                                f"({max_body_size}); use receive_message_stream() for big bodies",
                                length=event.size,
                                limit=max_body_size,
                            )
                        )
                elif isinstance(event, BodyChunk):
                    partial.append(event.data)
                else:
                    body = b"".join(partial)
                    partial.clear()
                    return Message(event.header, body)

    async def receive(self) -> Message:
        """Receive a whole :class:`Message` (the Channel interface; default memory cap)."""
        return await self.receive_message()

    # -- closing -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the transport stream. Idempotent; always a checkpoint."""
        self._state.close()
        self._current = None
        await self.transport_stream.aclose()


@functools.lru_cache(maxsize=32)
def _shared_encoder(format: FrameFormat, max_header_size: int) -> MessageEncoder:
    """Encoders keep no state: streams with the same settings share one (a server's
    thousands of connections, one)."""
    return MessageEncoder(format, max_header_size=max_header_size)


def _sha256_of(f: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := f.read(1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()
