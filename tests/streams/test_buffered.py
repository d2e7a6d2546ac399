"""BufferedByteStream: lines, exact lengths and raw reads on one connection, nothing lost."""

from __future__ import annotations

import random
from typing import SupportsIndex

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import lockstep_stream_pair, memory_stream_pair

from framekit import FrameTooLarge, IncompleteFrame
from framekit.streams._buffered import BufferedByteStream

from ..helpers import CancelOnNthRead, PassThroughStream, split_at

# -- helpers ---------------------------------------------------------------------------


async def send_chunks(stream: trio.abc.SendStream, chunks: list[bytes]) -> None:
    """Send each chunk with its own send_all (a checkpoint between them), then close."""
    for chunk in chunks:
        await stream.send_all(chunk)
        await trio.lowlevel.checkpoint()
    await stream.aclose()


class Firehose(trio.abc.Stream):
    """A hostile peer: every read returns as many bytes as asked, and never a delimiter."""

    def __init__(self, byte: bytes = b"x") -> None:
        self.byte = byte
        self.delivered = 0
        self.asked: list[int | None] = []

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        self.asked.append(max_bytes)
        n = 65536 if max_bytes is None else max_bytes
        self.delivered += n
        return self.byte * n

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class Trickle(trio.abc.Stream):
    """Returns ``data`` one byte per read, then end of stream; optionally cancels a scope
    on the read after each byte (so every receive gets one byte and is then cancelled)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.reads = 0
        self.scope: trio.CancelScope | None = None
        self._served = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._served and self.scope is not None:
            self._served = False
            self.scope.cancel()
        await trio.lowlevel.checkpoint()
        self.reads += 1
        self._served = True
        chunk = self.data[self.pos : self.pos + 1]
        self.pos += len(chunk)
        return chunk

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class CountingBuffer(bytearray):
    """A bytearray that adds up how many bytes each ``find`` is asked to search."""

    scanned = 0
    calls = 0

    def find(  # type: ignore[override]
        self,
        sub: bytes,
        start: SupportsIndex | None = None,
        end: SupportsIndex | None = None,
        /,
    ) -> int:
        lo = 0 if start is None else int(start)
        hi = len(self) if end is None else min(int(end), len(self))
        self.scanned += max(0, hi - lo)
        self.calls += 1
        return super().find(sub, start, end)


class RecordingStream(PassThroughStream):
    """Records the ``max_bytes`` of every read."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        super().__init__(inner)
        self.asked: list[int | None] = []

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        self.asked.append(max_bytes)
        return await self.inner.receive_some(max_bytes)


async def pair_with_peer(
    data: bytes = b"", *, close: bool = False
) -> tuple[trio.abc.Stream, BufferedByteStream]:
    """A memory stream pair: the raw peer end (``data`` already sent) and a buffered end."""
    raw, other = memory_stream_pair()
    if data:
        await raw.send_all(data)
    if close:
        await raw.send_eof()
    return raw, BufferedByteStream(other)


# -- the trio.abc.Stream contract ------------------------------------------------------


async def test_meets_trio_two_way_stream_contract() -> None:
    async def maker() -> tuple[BufferedByteStream, BufferedByteStream]:
        a, b = memory_stream_pair()
        return BufferedByteStream(a), BufferedByteStream(b)

    async def clogged() -> tuple[BufferedByteStream, BufferedByteStream]:
        a, b = lockstep_stream_pair()
        return BufferedByteStream(a), BufferedByteStream(b)

    await trio.testing.check_two_way_stream(maker, clogged)


def test_arguments_validated() -> None:
    _, other = memory_stream_pair()
    with pytest.raises(ValueError, match="receive_size must be at least 1"):
        BufferedByteStream(other, receive_size=0)


async def test_bad_arguments_to_receives() -> None:
    _, stream = await pair_with_peer(b"abc")
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        await stream.receive_some(0)
    with pytest.raises(ValueError, match="n must be at least 0"):
        await stream.receive_exactly(-1)
    with pytest.raises(ValueError, match="delimiter must not be empty"):
        await stream.receive_until(b"", 10)
    with pytest.raises(ValueError, match="max_bytes must be at least 0"):
        await stream.receive_until(b"\n", -1)
    assert await stream.receive_some() == b"abc"  # nothing was consumed or broken


# -- receive_some, buffer, initial -----------------------------------------------------


async def test_receive_some_returns_buffered_bytes_before_reading() -> None:
    raw, stream = await pair_with_peer(b"world")
    stream = BufferedByteStream(stream.transport_stream, initial=b"hello")
    assert (stream.buffered, stream.buffer) == (5, b"hello")
    assert await stream.receive_some(2) == b"he"
    assert stream.buffer == b"llo"
    assert await stream.receive_some() == b"llo"  # all buffered bytes, no read
    assert stream.buffered == 0
    assert await stream.receive_some() == b"world"
    await raw.aclose()
    assert await stream.receive_some() == b""
    assert await stream.receive_some() == b""  # end of stream is remembered


async def test_receive_some_uses_receive_size_and_max_bytes() -> None:
    raw, other = memory_stream_pair()
    recording = RecordingStream(other)
    stream = BufferedByteStream(recording, receive_size=3)
    await raw.send_all(b"abcdefgh")
    assert await stream.receive_some() == b"abc"
    assert await stream.receive_some(2) == b"de"
    assert recording.asked == [3, 2]
    assert stream.buffered == 0  # receive_some never buffers what it read


async def test_receive_some_always_returns_bytes() -> None:
    class ByteArrayStream(PassThroughStream):
        async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
            return bytearray(await self.inner.receive_some(max_bytes))

    raw, other = memory_stream_pair()
    stream = BufferedByteStream(ByteArrayStream(other))
    await raw.send_all(b"xyz")
    data = await stream.receive_some()
    assert type(data) is bytes and data == b"xyz"


async def test_buffer_is_a_copy() -> None:
    _, stream = await pair_with_peer()
    stream = BufferedByteStream(stream.transport_stream, initial=bytearray(b"abc"))
    snapshot = stream.buffer
    assert type(snapshot) is bytes
    assert await stream.receive_exactly(1) == b"a"
    assert snapshot == b"abc" and stream.buffer == b"bc"


# -- receive_exactly ---------------------------------------------------------------------


async def test_receive_exactly_across_reads() -> None:
    raw, stream = await pair_with_peer(b"ab")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_chunks, raw, [b"c", b"defg", b"hij"])
        assert await stream.receive_exactly(0) == b""
        assert await stream.receive_exactly(5) == b"abcde"
        assert await stream.receive_exactly(5) == b"fghij"
    assert await stream.receive_some() == b""


async def test_receive_exactly_reads_no_more_than_is_missing() -> None:
    raw, other = memory_stream_pair()
    recording = RecordingStream(other)
    stream = BufferedByteStream(recording, initial=b"12", receive_size=4)
    await raw.send_all(b"x" * 100)
    assert await stream.receive_exactly(11) == b"12" + b"x" * 9
    assert recording.asked == [4, 4, 1]  # min(receive_size, what is still missing)
    assert stream.buffered == 0
    assert await stream.receive_some() == b"x" * 4  # the rest stayed in the transport


async def test_receive_exactly_at_end_of_stream_keeps_the_bytes() -> None:
    _, stream = await pair_with_peer(b"abc", close=True)
    with pytest.raises(IncompleteFrame, match="after 3 of 5 bytes") as info:
        await stream.receive_exactly(5)
    assert (info.value.expected, info.value.received) == (5, 3)
    assert stream.buffer == b"abc"
    with pytest.raises(IncompleteFrame):  # again, without reading
        await stream.receive_exactly(4)
    assert await stream.receive_exactly(3) == b"abc"  # the stream is still usable
    with pytest.raises(IncompleteFrame) as info:
        await stream.receive_exactly(1)
    assert info.value.received == 0  # a clean end
    await stream.send_all(b"still sending")


# -- receive_until -----------------------------------------------------------------------


async def test_receive_until_consumes_the_delimiter() -> None:
    _, stream = await pair_with_peer(b"one\r\ntwo\r\n\r\nrest", close=True)
    assert await stream.receive_until(b"\r\n", 100) == b"one"
    assert stream.buffer == b"two\r\n\r\nrest"  # read ahead, kept
    assert await stream.receive_until(b"\r\n", 100) == b"two"
    assert await stream.receive_until(b"\r\n", 100) == b""
    assert await stream.receive_some() == b"rest"


async def test_receive_until_delimiter_split_across_reads() -> None:
    raw, stream = await pair_with_peer()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_chunks, raw, [b"head", b"\r", b"\n\r", b"\nbody"])
        assert await stream.receive_until(b"\r\n\r\n", 100) == b"head"
        assert await stream.receive_exactly(4) == b"body"


@pytest.mark.parametrize("chunk", [1, 2, 3, 100])
async def test_line_of_exactly_max_bytes_is_accepted_however_it_arrives(chunk: int) -> None:
    # (anyio refuses this line when the first read brings exactly max_bytes bytes.)
    data = b"x" * 10 + b"\r\n" + b"x" * 11 + b"\r\n"
    raw, stream = await pair_with_peer()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_chunks, raw, [data[i : i + chunk] for i in range(0, 25, chunk)])
        assert await stream.receive_until(b"\r\n", 10) == b"x" * 10
        with pytest.raises(FrameTooLarge, match="over max_bytes") as info:
            await stream.receive_until(b"\r\n", 10)
        assert (info.value.length, info.value.limit) == (11, 10)
        assert await stream.receive_until(b"\r\n", 11) == b"x" * 11


async def test_receive_until_at_end_of_stream_keeps_the_bytes() -> None:
    _, stream = await pair_with_peer(b"partial line", close=True)
    with pytest.raises(IncompleteFrame, match="after 12 bytes without") as info:
        await stream.receive_until(b"\n", 100)
    assert (info.value.expected, info.value.received) == (13, 12)
    assert stream.buffer == b"partial line"
    assert await stream.receive_exactly(12) == b"partial line"
    with pytest.raises(IncompleteFrame) as info:
        await stream.receive_until(b"\n", 100)
    assert info.value.received == 0  # a clean end between lines


async def test_changing_delimiter_and_limit_between_calls() -> None:
    raw, stream = await pair_with_peer(b"ab;cdef")
    with pytest.raises(FrameTooLarge):
        await stream.receive_until(b"\n", 2)  # searched part of the buffer for b"\n"
    assert await stream.receive_until(b";", 10) == b"ab"
    with pytest.raises(FrameTooLarge):
        await stream.receive_until(b"\n", 3)
    await raw.send_all(b"\n")
    assert await stream.receive_until(b"\n", 4) == b"cdef"


@pytest.mark.parametrize("receive_size", [1, 7, 4096, 65536])
async def test_peer_that_never_sends_the_delimiter_is_bounded(receive_size: int) -> None:
    hose = Firehose()
    stream = BufferedByteStream(hose, receive_size=receive_size)
    max_bytes, delimiter = 10_000, b"\r\n"
    bound = max_bytes + len(delimiter) + receive_size
    for _ in range(3):  # asking again reads nothing more
        with pytest.raises(FrameTooLarge, match="over max_bytes"):
            await stream.receive_until(delimiter, max_bytes)
        assert max_bytes + len(delimiter) <= stream.buffered <= bound
        assert hose.delivered == stream.buffered
    assert set(hose.asked) == {receive_size}


async def test_receive_until_searches_each_byte_about_once() -> None:
    # A 20 kB line fed one byte per read: each find covers only the new byte and the
    # len(delimiter) - 1 before it, so the total searched is linear in the line length.
    line = bytes(random.Random(0).choice(b"ab\r") for _ in range(20_000)).replace(b"\r\n", b"")
    delimiter = b"\r\n"
    trickle = Trickle(line + delimiter + b"after")
    stream = BufferedByteStream(trickle)
    stream._buffer = counting = CountingBuffer()
    assert await stream.receive_until(delimiter, len(line)) == line
    assert trickle.reads == len(line) + 2
    assert counting.scanned <= len(delimiter) * (len(line) + len(delimiter))
    # without the remembered position it would be about len(line) ** 2 / 2
    assert await stream.receive_exactly(5) == b"after"


async def test_cancelled_receive_until_does_not_rescan() -> None:
    line = b"y" * 5000
    trickle = Trickle(line + b"\n")
    stream = BufferedByteStream(trickle)
    stream._buffer = counting = CountingBuffer()
    cancels = 0
    while True:
        with trio.CancelScope() as scope:
            trickle.scope = scope
            got = await stream.receive_until(b"\n", 10_000)
            break
        cancels += 1  # one byte read, then cancelled on the next read
    assert got == line
    assert cancels >= len(line)
    assert counting.scanned <= 2 * len(line)


# -- every chunking, property-based ---------------------------------------------------

DELIMITERS = [b"\n", b"\r\n", b"\r\n\r\n", b"aba"]

records = st.lists(
    st.one_of(
        st.tuples(st.just("line"), st.binary(max_size=40)),
        st.tuples(st.just("exact"), st.binary(max_size=40)),
        st.tuples(st.just("some"), st.binary(min_size=1, max_size=40)),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    delimiter=st.sampled_from(DELIMITERS),
    items=records,
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=30),
    receive_size=st.integers(min_value=1, max_value=64),
)
async def test_any_chunking_reassembles(
    delimiter: bytes, items: list[tuple[str, bytes]], cuts: list[int], receive_size: int
) -> None:
    # a line must not contain its delimiter, nor end so that the delimiter starts early
    items = [
        (kind, value)
        for kind, value in items
        if kind != "line" or (value + delimiter).find(delimiter) == len(value)
    ]
    data = b"".join(v + delimiter if kind == "line" else v for kind, v in items)
    raw, other = memory_stream_pair()
    stream = BufferedByteStream(other, receive_size=receive_size)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_chunks, raw, split_at(data, cuts) if data else [])
        for kind, value in items:
            if kind == "line":
                assert await stream.receive_until(delimiter, len(value)) == value
            elif kind == "exact":
                assert await stream.receive_exactly(len(value)) == value
            else:
                got = b""
                while len(got) < len(value):
                    piece = await stream.receive_some(len(value) - len(got))
                    assert 0 < len(piece) <= len(value) - len(got)
                    got += piece
                assert got == value
        assert await stream.receive_some() == b""


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(st.sampled_from(b"ab\r\n"), max_size=60).map(bytes),
    delimiter=st.sampled_from(DELIMITERS),
    max_bytes=st.integers(min_value=0, max_value=30),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=20),
    receive_size=st.integers(min_value=1, max_value=16),
)
async def test_receive_until_outcome_depends_only_on_the_bytes(
    data: bytes, delimiter: bytes, max_bytes: int, cuts: list[int], receive_size: int
) -> None:
    raw, other = memory_stream_pair()
    stream = BufferedByteStream(other, receive_size=receive_size)
    limit = max_bytes + len(delimiter)
    index = data.find(delimiter)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_chunks, raw, split_at(data, cuts) if data else [])
        if 0 <= index <= max_bytes:
            assert await stream.receive_until(delimiter, max_bytes) == data[:index]
            consumed = index + len(delimiter)
        elif index > max_bytes or len(data) >= limit:
            with pytest.raises(FrameTooLarge):
                await stream.receive_until(delimiter, max_bytes)
            assert limit <= stream.buffered <= limit - 1 + receive_size
            consumed = 0
        else:
            with pytest.raises(IncompleteFrame) as info:
                await stream.receive_until(delimiter, max_bytes)
            assert info.value.received == len(data) == stream.buffered
            consumed = 0
        rest = b""
        while piece := await stream.receive_some():
            rest += piece
    assert rest == data[consumed:]  # nothing lost, nothing repeated


# -- mode switching and detach -----------------------------------------------------------


async def test_line_header_then_body_then_hand_over() -> None:
    raw, stream = await pair_with_peer()
    request = b"PUT /f HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    upgraded = b"\x00\x00\x00\x03abc"  # the next protocol's bytes, sent in the same burst
    await raw.send_all(request + upgraded[:4])
    assert await stream.receive_until(b"\r\n", 8192) == b"PUT /f HTTP/1.1"
    headers = []
    while line := await stream.receive_until(b"\r\n", 8192):
        headers.append(line)
    assert headers == [b"Content-Length: 5"]
    assert await stream.receive_exactly(5) == b"hello"
    assert stream.buffer == upgraded[:4]  # read ahead with the body
    transport, rest = stream.detach()
    assert transport is stream.transport_stream and rest == upgraded[:4]
    assert stream.buffered == 0

    after = BufferedByteStream(transport, initial=rest)
    await raw.send_all(upgraded[4:])
    length = int.from_bytes(await after.receive_exactly(4), "big")
    assert await after.receive_exactly(length) == b"abc"
    await after.send_all(b"ok")  # the transport still works both ways
    assert await raw.receive_some() == b"ok"


async def test_detach_closes_only_the_wrapper() -> None:
    raw, stream = await pair_with_peer(b"abc")
    assert await stream.receive_exactly(1) == b"a"
    async with stream:
        transport, rest = stream.detach()
    # aclose (from async with) did not close the transport the new owner holds
    assert rest == b""  # b"bc" was never read from the transport
    assert await transport.receive_some() == b"bc"
    await transport.send_all(b"z")
    assert await raw.receive_some() == b"z"
    for op in (
        stream.receive_some(),
        stream.receive_exactly(1),
        stream.receive_until(b"\n", 10),
        stream.send_all(b"x"),
        stream.wait_send_all_might_not_block(),
        stream.send_eof(),
    ):
        with pytest.raises(trio.ClosedResourceError):
            await op
    with pytest.raises(trio.ClosedResourceError):
        stream.detach()
    await stream.aclose()  # still a no-op


async def test_detach_refused_while_in_use() -> None:
    a, b = lockstep_stream_pair()
    stream = BufferedByteStream(a)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.receive_some)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match="cannot detach"):
            stream.detach()
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.send_all, b"x")  # lockstep: blocks until b reads
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match="cannot detach"):
            stream.detach()
        assert await b.receive_some() == b"x"
    transport, rest = stream.detach()
    assert transport is a and rest == b""


# -- concurrency, cancellation, closing, failures -----------------------------------------


async def test_two_receivers_is_busy() -> None:
    _raw, stream = await pair_with_peer(b"partial")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.receive_until, b"\n", 100)
        await trio.testing.wait_all_tasks_blocked()
        assert stream.buffer == b"partial"
        for op in (  # even the ones the buffer alone could answer
            stream.receive_some(),
            stream.receive_exactly(1),
            stream.receive_until(b"t", 100),
        ):
            with pytest.raises(trio.BusyResourceError, match="already receiving"):
                await op
        nursery.cancel_scope.cancel()
    assert await stream.receive_some() == b"partial"  # the cancelled line lost nothing


async def test_two_senders_is_busy() -> None:
    a, b = lockstep_stream_pair()
    stream = BufferedByteStream(a)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.send_all, b"x")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match="already sending"):
            await stream.send_all(b"y")
        with pytest.raises(trio.BusyResourceError, match="already sending"):
            await stream.wait_send_all_might_not_block()
        assert await b.receive_some() == b"x"


@pytest.mark.parametrize("seed", range(4))
async def test_cancel_at_every_read_loses_nothing(seed: int) -> None:
    rng = random.Random(seed)
    items = [
        (rng.choice(["line", "exact"]), rng.randbytes(rng.randrange(50)).replace(b"\n", b""))
        for _ in range(40)
    ]
    data = b"".join(v + b"\n" if kind == "line" else v for kind, v in items)
    raw, other = memory_stream_pair()
    wrapper = CancelOnNthRead(other)
    stream = BufferedByteStream(wrapper, receive_size=7)
    cuts = [rng.randrange(len(data)) for _ in range(len(data) // 5)]
    cancels = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_chunks, raw, split_at(data, cuts))
        for kind, value in items:
            nth = 1
            while True:
                with trio.CancelScope() as scope:
                    wrapper.scope, wrapper.countdown = scope, nth
                    if kind == "line":
                        got = await stream.receive_until(b"\n", 100)
                    else:
                        got = await stream.receive_exactly(len(value))
                    break
                cancels += 1
                nth += 1  # next time, cancel one read later
            assert got == value
        assert await stream.receive_some() == b""
    assert cancels > len(items) // 2


async def test_cancelled_receive_of_buffered_bytes_keeps_them() -> None:
    _, stream = await pair_with_peer()
    stream = BufferedByteStream(stream.transport_stream, initial=b"line\nbody")
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.receive_until(b"\n", 100)
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.receive_exactly(2)
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.receive_some()
    assert stream.buffer == b"line\nbody"
    assert await stream.receive_until(b"\n", 100) == b"line"
    assert await stream.receive_exactly(4) == b"body"


async def test_send_all_and_wait_send_all_might_not_block() -> None:
    raw, stream = await pair_with_peer()
    await stream.wait_send_all_might_not_block()
    await stream.send_all(b"abc")
    await stream.send_all(memoryview(b"def"))
    assert await raw.receive_some() == b"abcdef"


async def test_cancelled_send_breaks_sending_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = lockstep_stream_pair()
    stream = BufferedByteStream(a)
    with trio.move_on_after(1):  # nobody reads, so send_all blocks
        await stream.send_all(b"x" * 100)
    with pytest.raises(trio.BrokenResourceError, match="earlier send failed or was cancelled"):
        await stream.send_all(b"y")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(b.send_all, b"reply")
        assert await stream.receive_some() == b"reply"  # receiving goes on


async def test_send_eof_half_closes() -> None:
    raw, stream = await pair_with_peer()
    await stream.send_all(b"request")
    await stream.send_eof()
    assert await raw.receive_some() == b"request"
    assert await raw.receive_some() == b""
    await raw.send_all(b"reply\n")
    assert await stream.receive_until(b"\n", 100) == b"reply"


async def test_send_eof_without_half_close_says_so() -> None:
    raw, other = memory_stream_pair()
    stream = BufferedByteStream(PassThroughStream(other))
    with pytest.raises(trio.BrokenResourceError, match="cannot half-close"):
        await stream.send_eof()
    await stream.send_all(b"still fine")  # nothing was sent, nothing broken
    assert await raw.receive_some() == b"still fine"


async def test_aclose_closes_the_transport_and_drops_the_buffer() -> None:
    raw, stream = await pair_with_peer(b"abc\ndef")
    assert await stream.receive_until(b"\n", 10) == b"abc"
    await stream.aclose()
    await stream.aclose()  # idempotent
    assert stream.buffered == 0
    for op in (
        stream.receive_some(),
        stream.receive_exactly(0),
        stream.receive_until(b"\n", 10),
        stream.send_all(b"x"),
    ):
        with pytest.raises(trio.ClosedResourceError):
            await op
    with pytest.raises(trio.BrokenResourceError):
        await raw.send_all(b"x")  # the peer sees the close


async def test_aclose_while_another_task_receives() -> None:
    _, stream = await pair_with_peer(b"no newline")

    async def receiver() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await stream.receive_until(b"\n", 100)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        await stream.aclose()


async def test_transport_failure_breaks_receiving() -> None:
    class Failing(PassThroughStream):
        async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("connection reset")

    raw, other = memory_stream_pair()
    stream = BufferedByteStream(Failing(other), initial=b"head")
    with pytest.raises(trio.BrokenResourceError, match="connection reset"):
        await stream.receive_until(b"\n", 100)
    with pytest.raises(trio.BrokenResourceError, match="cannot receive"):
        await stream.receive_some()
    assert stream.buffer == b"head"  # still visible, and handed over by detach
    await stream.send_all(b"bye")  # sending is a separate direction
    assert await raw.receive_some() == b"bye"
    assert stream.detach()[1] == b"head"
