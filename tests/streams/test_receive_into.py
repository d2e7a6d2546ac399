"""FramedStream.receive_into: a frame's payload into the caller's buffer.

On plain TCP with a plain length prefix the rest of a large payload is read straight
from the socket (``os.readv``, or ``recv_into`` without it); everywhere else the frame
is copied in from what the decoder buffered.
Either way: the frames and errors receive() gives, in the same order, however the bytes
are split; nothing lost to a buffer too small or to cancellation at any point; only
``buffer[:n]`` written, and no reference to the buffer kept.
"""

from __future__ import annotations

import array
import random
import socket
import struct

import pytest
import trio
import trio.testing
from trio.testing import memory_stream_pair

import framekit
from framekit import (
    BufferTooSmall,
    DelimitedFormat,
    FramedStream,
    FrameEncoder,
    FrameFormat,
    FrameTooLarge,
    IncompleteFrame,
    NetstringFormat,
    VarintFormat,
)
from framekit.streams import _framed

from ..helpers import CancelOnNthRead, TcpPair, TlsPair, send_frames

DIRECT = _framed._DIRECT_RECEIVE_MIN
#: Sizes around every boundary that matters: empty, tiny, the direct threshold, big.
SIZES = [0, 1, 3, 4, 5, 100, DIRECT - 1, DIRECT, DIRECT + 5, 70_000, 300_001]


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(size * 31 + seed).randbytes(size)


class Chunks(trio.abc.Stream):
    """Hands out exactly the chunks it is given (split further if asked for less), then
    the end of the stream: a transport that splits bytes where the test says."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = [c for c in chunks if c]
        self.offset = 0  # into chunks[0]

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self.chunks:
            return b""
        chunk, start = self.chunks[0], self.offset
        end = len(chunk) if max_bytes is None else min(len(chunk), start + max_bytes)
        if end == len(chunk):
            self.chunks.pop(0)
            self.offset = 0
        else:
            self.offset = end
        return chunk[start:end]

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        raise AssertionError("not used")

    async def wait_send_all_might_not_block(self) -> None:
        raise AssertionError("not used")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def receive_all_into(framed: FramedStream, size: int) -> list[bytes]:
    buffer = bytearray(size)
    out = []
    while True:
        try:
            n = await framed.receive_into(buffer)
        except trio.EndOfChannel:
            return out
        out.append(bytes(buffer[:n]))


@pytest.fixture
def direct_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every frame whose rest was read straight from the socket."""
    seen: list[int] = []
    real = FramedStream._receive_rest

    async def spy(self: FramedStream, *args: object) -> int:
        n = await real(self, *args)  # type: ignore[arg-type]
        seen.append(n)
        return n

    monkeypatch.setattr(FramedStream, "_receive_rest", spy)
    return seen


# -- every split, in memory ------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES[:6])
async def test_small_frames_split_at_every_point(size: int) -> None:
    frames = [payload(size), b"", payload(size, 1)]
    data = FrameEncoder().encode_many(frames)
    for cut in range(len(data) + 1):
        framed = FramedStream(Chunks([data[:cut], data[cut:]]))
        assert await receive_all_into(framed, max(size, 1)) == frames, cut
    byte_by_byte = FramedStream(Chunks([data[i : i + 1] for i in range(len(data))]))
    assert await receive_all_into(byte_by_byte, size) == frames


@pytest.mark.parametrize("size", SIZES[6:])
async def test_large_frames_split_anywhere(size: int) -> None:
    frames = [payload(size), payload(7), payload(size, 1)]
    data = FrameEncoder().encode_many(frames)
    rng = random.Random(size)
    cuts = [*range(10), size - 1, size + 4, size + 5, len(data) - 1]
    cuts += [rng.randrange(len(data)) for _ in range(20)]
    for cut in cuts:
        framed = FramedStream(
            Chunks([data[:cut], data[cut:]]), receive_size=rng.choice([999, 65536])
        )
        assert await receive_all_into(framed, size) == frames, cut


@pytest.mark.parametrize("seed", range(4))
async def test_random_chunks_over_a_memory_stream(seed: int) -> None:
    rng = random.Random(seed)
    frames = [payload(rng.choice(SIZES), i) for i in range(12)]
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    data = FrameEncoder().encode_many(frames)

    async def send() -> None:
        i = 0
        while i < len(data):
            n = rng.randint(1, 2 ** rng.randint(0, 17))
            await raw.send_all(data[i : i + n])
            i += n
        await raw.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        assert await receive_all_into(framed, max(SIZES)) == frames


# -- the direct path over TCP ----------------------------------------------------------


async def send_in_pieces(stream: trio.SocketStream, data: bytes, cuts: list[int]) -> None:
    """Send ``data`` cut at ``cuts``, letting the receiver read each piece before the next."""
    prev = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut > prev:
            await stream.send_all(data[prev:cut])
            prev = cut
            await trio.testing.wait_all_tasks_blocked()


@pytest.mark.parametrize("size", SIZES)
async def test_tcp_frames_of_every_size_split_around_every_boundary(
    size: int, tcp_pair: TcpPair, direct_reads: list[int]
) -> None:
    frames = [payload(size), payload(size // 2, 1), payload(size, 2)]
    data = FrameEncoder().encode_many(frames)
    first = 4 + size
    cuts = [0, 1, 3, 4, 5, first - 1, first, first + 3, first + 4, len(data) - 1]
    if size > DIRECT:
        cuts += [4 + size - DIRECT, 4 + size - DIRECT + 1, 4 + size // 3]
    for cut in cuts:
        client, server = await tcp_pair()
        framed = FramedStream(server)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_in_pieces, client, data, [cut, cut + 70_000])
            buffer = bytearray(size + 10)
            for expected in frames:
                n = await framed.receive_into(buffer)
                assert buffer[:n] == expected, cut
    if size >= DIRECT + 5:
        assert size in direct_reads  # the fast path was taken


async def test_tcp_stream_of_mixed_frames_in_random_pieces(
    tcp_pair: TcpPair, direct_reads: list[int]
) -> None:
    rng = random.Random(5)
    frames = [payload(rng.choice([*SIZES, 1 << 20]), i) for i in range(40)]
    data = FrameEncoder().encode_many(frames)
    client, server = await tcp_pair()
    framed = FramedStream(server)

    async def send() -> None:
        i = 0
        while i < len(data):
            n = rng.randint(1, 2 ** rng.randint(0, 20))
            await client.send_all(data[i : i + n])
            i += n
        await client.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        assert await receive_all_into(framed, 1 << 20) == frames
    assert direct_reads


async def test_the_direct_path_writes_only_the_payload(tcp_pair: TcpPair) -> None:
    client, server = await tcp_pair()
    framed = FramedStream(server)
    body = payload(100_000)
    buffer = bytearray(b"\xee" * 150_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_in_pieces, client, FrameEncoder().encode(body), [10])
        assert await framed.receive_into(buffer) == 100_000
    assert buffer[:100_000] == body
    assert buffer[100_000:] == b"\xee" * 50_000


# -- interleaving with receive() --------------------------------------------------------


@pytest.mark.parametrize("transport", ["memory", "tcp"])
async def test_receive_and_receive_into_interleave(transport: str, tcp_pair: TcpPair) -> None:
    rng = random.Random(3)
    frames = [payload(rng.choice(SIZES), i) for i in range(60)]
    if transport == "tcp":
        client, server = await tcp_pair()
        sender: trio.abc.SendStream = client
        framed = FramedStream(server)
    else:
        sender, other = memory_stream_pair()
        framed = FramedStream(other)
    buffer = bytearray(max(SIZES))
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(FramedStream(sender).send_many, frames)  # type: ignore[arg-type]
        while len(got) < len(frames):
            way = rng.randrange(4)
            if way == 0:
                got.append(await framed.receive())
            elif way == 1:
                got.extend(await framed.receive_many())
            elif way == 2:
                try:
                    got.append(framed.receive_nowait())
                except trio.WouldBlock:
                    pass
            else:
                n = await framed.receive_into(buffer)
                got.append(bytes(buffer[:n]))
    assert got == frames


async def test_frames_already_decoded_come_first() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.send_all(FrameEncoder().encode_many([b"one", b"two", b"three"]))
    assert await framed.receive() == b"one"  # decodes all three; two are queued
    buffer = bytearray(5)
    assert await framed.receive_into(buffer) == 3
    assert buffer[:3] == b"two"
    with pytest.raises(BufferTooSmall):
        await framed.receive_into(bytearray(2))
    assert await framed.receive_into(buffer) == 5
    assert buffer == b"three"


# -- a buffer too small ------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["memory", "tcp"])
async def test_a_buffer_too_small_keeps_the_frame(transport: str, tcp_pair: TcpPair) -> None:
    body = payload(200_000)
    data = FrameEncoder().encode_many([body, b"after"])
    if transport == "tcp":
        client, server = await tcp_pair()
        sender: trio.abc.SendStream = client
        framed = FramedStream(server)
    else:
        sender, other = memory_stream_pair()
        framed = FramedStream(other)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_in_pieces, sender, data, [4, 1000])
        small = bytearray(b"\xee" * 1000)
        with pytest.raises(BufferTooSmall, match=r"200000 bytes.*holds only 1000") as info:
            await framed.receive_into(small)
        assert (info.value.needed, info.value.size) == (200_000, 1000)
        assert isinstance(info.value, ValueError)
        assert small == b"\xee" * 1000  # raised before anything was written
        small.extend(b"resizable")  # no reference kept
        with pytest.raises(BufferTooSmall):
            await framed.receive_into(memoryview(bytearray(199_999)))
        big = bytearray(info.value.needed)
        assert await framed.receive_into(big) == 200_000
        assert big == body
        assert await framed.receive() == b"after"


async def test_too_small_then_receive_gets_the_whole_frame(tcp_pair: TcpPair) -> None:
    client, server = await tcp_pair()
    framed = FramedStream(server)
    body = payload(100_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_in_pieces, client, FrameEncoder().encode(body), [4])
        with pytest.raises(BufferTooSmall):
            await framed.receive_into(bytearray(10))
        assert await framed.receive() == body


async def test_an_array_buffer_counts_bytes_not_items() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.send_all(FrameEncoder().encode_many([bytes(range(16)), bytes(17)]))
    ints = array.array("i", [0] * 4)  # 4 items, 16 bytes
    assert await framed.receive_into(memoryview(ints)) == 16
    assert ints.tobytes() == bytes(range(16))
    with pytest.raises(BufferTooSmall) as info:
        await framed.receive_into(ints)
    assert (info.value.needed, info.value.size) == (17, 16)
    assert await framed.receive_into(array.array("d", [0.0] * 3)) == 17


async def test_an_array_buffer_on_the_direct_path(
    tcp_pair: TcpPair, direct_reads: list[int]
) -> None:
    client, server = await tcp_pair()
    framed = FramedStream(server)
    body = payload(DIRECT + 8_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_in_pieces, client, FrameEncoder().encode(body), [100])
        longs = array.array("q", [0] * (len(body) // 8))  # the frame's bytes exactly
        assert await framed.receive_into(memoryview(longs)) == len(body)
    assert longs.tobytes() == body
    assert direct_reads == [len(body)]


@pytest.mark.parametrize(
    "bad", [b"read-only", memoryview(b"read-only"), memoryview(bytearray(8))[::2], "text"]
)
async def test_an_unusable_buffer_is_a_type_error_and_consumes_nothing(bad: object) -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.send_all(FrameEncoder().encode(b"kept"))
    with pytest.raises(TypeError, match=r"writable|contiguous"):
        await framed.receive_into(bad)  # type: ignore[arg-type]
    assert await framed.receive() == b"kept"


# -- the end of the stream and broken framing --------------------------------------------


async def frames_then_error(
    framed: FramedStream, receive_into: bool = True, size: int = 70_000
) -> tuple[list[bytes], BaseException]:
    """Every frame received, and the exception that ended it."""
    buffer = bytearray(size)
    got = []
    while True:
        try:
            if receive_into:
                n = await framed.receive_into(buffer)
                got.append(bytes(buffer[:n]))
            else:
                got.append(await framed.receive())
        except Exception as exc:  # whichever it is, the caller compares it
            return got, exc


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\0\0",
        b"\0\0\0\x05hel",
        FrameEncoder().encode(b"ok") + b"\0\0\0\x09abc",
        b"\0\x01\x00\x00" + bytes(40_000),  # a 65,536-byte frame cut short
    ],
)
@pytest.mark.parametrize("transport", ["memory", "tcp"])
async def test_eof_gives_what_receive_gives(data: bytes, transport: str, tcp_pair: TcpPair) -> None:
    want_frames, want = await frames_then_error(FramedStream(Chunks([data])), receive_into=False)
    if transport == "tcp":
        client, server = await tcp_pair()
        framed = FramedStream(server)
        async with trio.open_nursery() as nursery:

            async def send() -> None:
                await send_in_pieces(client, data, [5])
                await client.send_eof()

            nursery.start_soon(send)
            got, error = await frames_then_error(framed)
    else:
        framed = FramedStream(Chunks([data[:5], data[5:]]))
        got, error = await frames_then_error(framed)
    assert got == want_frames
    assert type(error) is type(want)
    assert str(error) == str(want)
    if isinstance(want, IncompleteFrame):
        assert isinstance(error, IncompleteFrame)
        assert (error.expected, error.received) == (want.expected, want.received)
        with pytest.raises(IncompleteFrame):  # terminal, as for receive()
            await framed.receive_into(bytearray(10))
        with pytest.raises(IncompleteFrame):
            await framed.receive()
    else:
        assert isinstance(error, trio.EndOfChannel)


@pytest.mark.parametrize("transport", ["memory", "tcp"])
async def test_an_oversize_prefix_is_frame_too_large(transport: str, tcp_pair: TcpPair) -> None:
    fmt = FrameFormat(max_frame_size=100_000)
    if transport == "tcp":
        client, server = await tcp_pair()
        sender: trio.abc.SendStream = client
        framed = FramedStream(server, format=fmt)
    else:
        sender, other = memory_stream_pair()
        framed = FramedStream(other, format=fmt)
    await sender.send_all(struct.pack("!I", 100_001) + bytes(50_000))
    with pytest.raises(FrameTooLarge, match="100001-byte frame") as info:
        await framed.receive_into(bytearray(1 << 20))
    assert info.value.limit == 100_000
    with pytest.raises(FrameTooLarge):
        await framed.receive_into(bytearray(1 << 20))
    with pytest.raises(FrameTooLarge):
        await framed.receive()


@pytest.mark.parametrize("waiting_for", ["payload", "header"])
async def test_a_reset_connection_is_broken(waiting_for: str, tcp_pair: TcpPair) -> None:
    client, server = await tcp_pair()
    framed = FramedStream(server)
    big = FrameEncoder().encode(bytes(100_000))
    async with trio.open_nursery() as nursery:

        async def reset() -> None:
            if waiting_for == "payload":
                await client.send_all(big[:1000])
            else:  # a whole large frame, then nothing: the receiver waits for a header
                await client.send_all(big)
            await trio.testing.wait_all_tasks_blocked()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.socket.close()  # an RST, not a FIN

        nursery.start_soon(reset)
        buffer = bytearray(100_000)
        if waiting_for == "header":
            assert await framed.receive_into(buffer) == 100_000
        with pytest.raises(trio.BrokenResourceError, match="socket connection broken"):
            await framed.receive_into(buffer)
    with pytest.raises(trio.BrokenResourceError):
        await framed.receive()


@pytest.mark.parametrize("readv", [True, False], ids=["readv", "recv_into"])
async def test_without_readv_the_socket_reads_the_rest(
    readv: bool, monkeypatch: pytest.MonkeyPatch, tcp_pair: TcpPair, direct_reads: list[int]
) -> None:
    # Windows has no os.readv: the trio socket's recv_into reads the payload there.
    monkeypatch.setattr(_framed, "DIRECT_READ", readv)
    rng = random.Random(9)
    frames = [payload(rng.choice([*SIZES, 1 << 20]), i) for i in range(30)]
    data = FrameEncoder().encode_many(frames)
    client, server = await tcp_pair()
    framed = FramedStream(server)

    async def send() -> None:
        for cut in range(0, len(data), 50_000):
            await client.send_all(data[cut : cut + 50_000])
        await client.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        got, end = await frames_then_error(framed, size=1 << 20)
    assert isinstance(end, trio.EndOfChannel)
    assert got == frames
    assert sorted(direct_reads) == sorted(len(f) for f in frames if len(f) >= DIRECT)


# -- cancellation --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
async def test_cancel_at_every_read_loses_nothing(seed: int) -> None:
    rng = random.Random(seed)
    frames = [payload(rng.choice([0, 1, 5, 60, 300]), i) for i in range(25)]
    data = FrameEncoder().encode_many(frames)
    wrapper = CancelOnNthRead(Chunks([data[i : i + 7] for i in range(0, len(data), 7)]))
    framed = FramedStream(wrapper, receive_size=5)
    buffer = bytearray(300)
    got: list[bytes] = []
    cancels = 0
    nth = 1
    while True:
        with trio.CancelScope() as scope:
            wrapper.scope, wrapper.countdown = scope, nth
            try:
                n = await (framed.receive() if rng.random() < 0.2 else framed.receive_into(buffer))
            except trio.EndOfChannel:
                break
            got.append(n if isinstance(n, bytes) else bytes(buffer[:n]))
        if scope.cancelled_caught:
            cancels += 1
            nth += 1  # next time, cancel one read later
        else:
            nth = 1
    assert got == frames
    assert cancels > len(frames)


@pytest.mark.parametrize(
    "pieces",
    [
        [],  # waiting for the header
        [2],
        [4],  # the header, no payload
        [100],  # the header and some payload: waiting in recv_into
        [100, 30_000],  # and recv_into has read some of the rest into the buffer
        [100, 30_000, 200_000],
        [4, 299_000],
        [60_000, 300_003],  # all but the last byte
    ],
)
async def test_cancel_at_every_point_of_the_direct_path(
    pieces: list[int], tcp_pair: TcpPair, direct_reads: list[int]
) -> None:
    body = payload(300_000)
    data = FrameEncoder().encode_many([body, b"next"])
    for then_receive_into in (False, True):
        client, server = await tcp_pair()
        framed = FramedStream(server)
        buffer = bytearray(300_000)
        scope = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_in, scope, framed, buffer)
            await send_in_pieces(client, data[: max(pieces, default=0)], pieces)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
        assert scope.cancelled_caught
        if pieces and pieces[-1] > 4:
            # what arrived was written to the buffer (copied, then read straight in)...
            assert buffer[: pieces[-1] - 4] == body[: pieces[-1] - 4]
        buffer.extend(b"resizable")  # ...and no reference to the buffer is kept
        # yet nothing was consumed: the next call gets the whole frame
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, data[max(pieces, default=0) :])
            if then_receive_into:
                whole = bytearray(300_000)
                assert await framed.receive_into(whole) == 300_000
                assert whole == body
            else:
                assert await framed.receive() == body
            assert await framed.receive() == b"next"
    if pieces and 4 <= pieces[-1] <= 300_004 - DIRECT:
        assert direct_reads == [300_000]  # the retry read the rest straight in


async def receive_in(scope: trio.CancelScope, framed: FramedStream, buffer: bytearray) -> None:
    with scope:
        await framed.receive_into(buffer)


async def test_cancelled_fast_path_loses_nothing() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    frames = [str(i).encode() for i in range(100)]
    await raw.send_all(FrameEncoder().encode_many(frames))
    await raw.aclose()
    assert await framed.receive() == b"0"  # the rest are decoded and queued
    buffer = bytearray(4)
    got = []
    with trio.CancelScope() as scope:
        scope.cancel()
        while True:
            n = await framed.receive_into(buffer)
            got.append(bytes(buffer[:n]))
    assert scope.cancelled_caught
    assert len(got) < framekit.CANCEL_CHECK_INTERVAL
    rest, end = await frames_then_error(framed)
    assert isinstance(end, trio.EndOfChannel)
    assert [b"0", *got, *rest] == frames


# -- busy and closed -------------------------------------------------------------------------


async def test_two_receivers_is_busy(tcp_pair: TcpPair) -> None:
    client, server = await tcp_pair()
    framed = FramedStream(server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(framed.receive_into, bytearray(10))
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match="already receiving"):
            await framed.receive_into(bytearray(10))
        with pytest.raises(trio.BusyResourceError):
            await framed.receive()
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:  # and while waiting on the direct path
        nursery.start_soon(framed.receive_into, bytearray(100_000))
        await client.send_all(struct.pack("!I", 100_000) + bytes(10))
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await framed.receive_into(bytearray(10))
        nursery.cancel_scope.cancel()


async def test_closed_while_waiting_on_the_direct_path(tcp_pair: TcpPair) -> None:
    client, server = await tcp_pair()
    framed = FramedStream(server)
    buffer = bytearray(100_000)
    async with trio.open_nursery() as nursery:

        async def close_it() -> None:
            await client.send_all(struct.pack("!I", 100_000) + bytes(10))
            await trio.testing.wait_all_tasks_blocked()
            await framed.aclose()

        nursery.start_soon(close_it)
        with pytest.raises(trio.ClosedResourceError):
            await framed.receive_into(buffer)
    buffer.extend(b"resizable")
    with pytest.raises(trio.ClosedResourceError):
        await framed.receive_into(buffer)


async def test_use_after_close() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.send_all(FrameEncoder().encode_many([b"a", b"b"]))
    assert await framed.receive() == b"a"
    await framed.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await framed.receive_into(bytearray(10))  # even with a frame queued


# -- other transports and framings ----------------------------------------------------------


async def test_tls_takes_the_general_path(tls_pair: TlsPair, direct_reads: list[int]) -> None:
    client, server = await tls_pair()
    frames = [payload(size, 4) for size in SIZES]
    framed = FramedStream(server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_frames, client, frames)
        assert await framed.receive_into(bytearray(0)) == 0  # the empty frame fits
        with pytest.raises(BufferTooSmall):
            await framed.receive_into(bytearray(0))  # the 1-byte one does not
        got, end = await frames_then_error(framed, size=max(SIZES))
        assert isinstance(end, trio.EndOfChannel)
    assert [b"", *got] == frames
    assert direct_reads == []


@pytest.mark.parametrize(
    ("fmt", "frames"),
    [
        (DelimitedFormat.lines(), [b"one", b"", b"three" * 1000]),
        (VarintFormat(), [b"", b"x", bytes(70_000)]),
        (NetstringFormat(), [b"a", b"", bytes(20_000)]),
        (FrameFormat(2, offset=1, adjust=1, strip=3, header_fill=b"\xca"), [b"\xfe" + b"x" * 9]),
        (framekit.TUTORIAL_FORMAT, [b"tutorial", bytes(DIRECT + 8_000)]),
    ],
    ids=["lines", "varint", "netstring", "netty-header", "tutorial-i32"],
)
async def test_other_framings(
    fmt: framekit.Framing, frames: list[bytes], tcp_pair: TcpPair, direct_reads: list[int]
) -> None:
    data = b"".join(fmt.encoder().encode(f) for f in frames)
    client, server = await tcp_pair()
    framed = FramedStream(server, format=fmt)
    async with trio.open_nursery() as nursery:

        async def send() -> None:
            await send_in_pieces(client, data, [1, 2, 3, len(data) // 2])
            await client.send_eof()

        nursery.start_soon(send)
        buffer = bytearray(max(map(len, frames)))
        got = []
        for frame in frames:
            if frame:
                with pytest.raises(BufferTooSmall) as info:
                    await framed.receive_into(bytearray(len(frame) - 1))
                assert info.value.needed == len(frame)
            n = await framed.receive_into(buffer)
            got.append(bytes(buffer[:n]))
        with pytest.raises(trio.EndOfChannel):
            await framed.receive_into(buffer)
    assert got == frames
    plain = isinstance(fmt, FrameFormat) and fmt.plain
    assert direct_reads == ([DIRECT + 8_000] if plain else [])


async def test_frames_in_the_decoder_check_for_cancellation_too() -> None:
    # Never through receive(): every frame is taken from the decoder's buffer, and
    # cancellation is still noticed within CANCEL_CHECK_INTERVAL calls, losing nothing.
    frames = [str(i).encode() * 3 for i in range(100)]
    framed = FramedStream(Chunks([FrameEncoder().encode_many(frames)]))
    buffer = bytearray(8)
    n = await framed.receive_into(buffer)  # one read: all 100 frames are buffered
    got = [bytes(buffer[:n])]
    with trio.CancelScope() as scope:
        scope.cancel()
        while True:
            n = await framed.receive_into(buffer)
            got.append(bytes(buffer[:n]))
    assert scope.cancelled_caught
    assert len(got) <= framekit.CANCEL_CHECK_INTERVAL
    rest, end = await frames_then_error(framed)
    assert isinstance(end, trio.EndOfChannel)
    assert got + rest == frames


async def test_bytes_read_past_a_frame_are_kept_for_detach(tcp_pair: TcpPair) -> None:
    # A direct read takes a little of what follows the frame; it stays in the decoder.
    client, server = await tcp_pair()
    framed = FramedStream(server)
    body = payload(200_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, FrameEncoder().encode(body) + b"raw tail after")
        buffer = bytearray(200_000)
        assert await framed.receive_into(buffer) == 200_000
        assert buffer == body
        await trio.testing.wait_all_tasks_blocked()
    detached = framed.detach()
    rest = detached.trailing
    while not rest.endswith(b"raw tail after"):
        rest += await detached.transport_stream.receive_some()
    assert rest == b"raw tail after"
