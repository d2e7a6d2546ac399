from __future__ import annotations

import os
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import memory_stream_pair

import framekit
from framekit import FrameDecoder, FramedStream, FrameFormat, FrameTooLarge, open_framed_channel
from framekit.streams import _direct

from ..helpers import PassThroughStream, TcpPair, note_writes, reset


class CountingStream(PassThroughStream):
    """Records each send_all; optionally blocks sends until released."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        super().__init__(inner)
        self.sends: list[int] = []
        self.gate: trio.Event | None = None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.sends.append(len(data))
        await self.inner.send_all(data)


def decode(data: bytes | bytearray) -> list[bytes]:
    dec = FrameDecoder()
    dec.receive_data(data)
    return dec.frames()


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    out = bytearray()
    while chunk := await stream.receive_some():
        out += chunk
    return bytes(out)


def read_into(nursery: trio.Nursery, stream: trio.abc.ReceiveStream) -> list[bytes]:
    """Read ``stream`` to its end in a task in ``nursery``; the list then holds the bytes."""
    received: list[bytes] = []

    async def reader() -> None:
        received.append(await read_all(stream))

    nursery.start_soon(reader)
    return received


async def test_sends_coalesce_into_few_send_alls_in_order() -> None:
    raw, other = memory_stream_pair()
    counting = CountingStream(other)
    payloads = [str(i).encode() * (i % 5) for i in range(1000)]
    async with open_framed_channel(counting) as channel:
        for p in payloads:
            await channel.send(p)
    # leaving the block flushed everything and closed the stream
    assert decode(await read_all(raw)) == payloads
    assert len(counting.sends) < 10


async def test_big_payloads_are_not_copied_into_the_buffer() -> None:
    raw, other = memory_stream_pair()
    counting = CountingStream(other)
    big = b"B" * (2 * 1024 * 1024)
    async with trio.open_nursery() as nursery:
        received = read_into(nursery, raw)
        async with open_framed_channel(counting) as channel:
            channel.send_nowait(b"small")
            await channel.send(big)
            await channel.send(b"after")  # the big one filled the buffer: wait for room
    assert decode(received[0]) == [b"small", big, b"after"]
    assert len(big) in counting.sends  # the payload went out as its own segment


async def test_flush_waits_until_handed_to_transport() -> None:
    raw, other = memory_stream_pair()
    counting = CountingStream(other)
    counting.gate = trio.Event()
    async with open_framed_channel(counting) as channel:
        await channel.send(b"x")
        with trio.move_on_after(0.05) as scope:
            await channel.flush()
        assert scope.cancelled_caught  # the transport is held
        counting.gate.set()
        await channel.flush()
        assert decode(await raw.receive_some()) == [b"x"]


async def test_backpressure_send_nowait_would_block_and_send_waits() -> None:
    raw, other = memory_stream_pair()
    counting = CountingStream(other)
    counting.gate = trio.Event()
    async with open_framed_channel(counting, max_buffer_size=10) as channel:
        channel.send_nowait(b"0123456789")  # 14 bytes queued: over the bound
        with pytest.raises(trio.WouldBlock):
            channel.send_nowait(b"a")
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def blocked_sender() -> None:
                await channel.send(b"late")
                done.set()

            nursery.start_soon(blocked_sender)
            await trio.testing.wait_all_tasks_blocked()
            assert not done.is_set()
            counting.gate.set()
        assert done.is_set()
    assert decode(await read_all(raw)) == [b"0123456789", b"late"]


async def test_cancelled_send_queues_nothing() -> None:
    # send() checks for cancellation every CANCEL_CHECK_INTERVAL calls on its fast path;
    # the call that raises Cancelled has queued nothing, the ones before it are sent.
    raw, other = memory_stream_pair()
    sent: list[bytes] = []
    async with open_framed_channel(other) as channel:
        with trio.CancelScope() as scope:
            scope.cancel()
            for i in range(100):
                await channel.send(b"%d" % i)
                sent.append(b"%d" % i)
        assert scope.cancelled_caught and len(sent) < framekit.CANCEL_CHECK_INTERVAL
        await channel.send(b"after")
    assert decode(await read_all(raw)) == [*sent, b"after"]


async def test_too_large_queues_nothing() -> None:
    raw, other = memory_stream_pair()
    async with open_framed_channel(other, format=FrameFormat(max_frame_size=3)) as channel:
        with pytest.raises(FrameTooLarge):
            await channel.send(b"abcd")
        with pytest.raises(FrameTooLarge):
            await channel.send_many([b"a", b"abcd"])
        await channel.send_many([b"a", b"b"])
    assert decode(await read_all(raw)) == [b"a", b"b"]


async def test_writer_failure_surfaces_on_next_send() -> None:
    raw, other = memory_stream_pair()
    await raw.aclose()  # the peer is gone: the writer's send_all will fail
    with pytest.raises(trio.BrokenResourceError, match="earlier send failed or was cancelled"):  # noqa: PT012
        async with open_framed_channel(other) as channel:
            await channel.send(b"x")
            await trio.testing.wait_all_tasks_blocked()
            await channel.send(b"y")


async def test_exception_in_block_closes_without_flush() -> None:
    raw, other = memory_stream_pair()
    counting = CountingStream(other)
    with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012
        async with open_framed_channel(counting) as channel:
            channel.send_nowait(b"queued")
            raise RuntimeError("boom")
    assert await read_all(raw) == b""
    with pytest.raises(trio.ClosedResourceError):
        await channel.send(b"x")


async def test_receive_side_and_closed_errors() -> None:
    a, b = memory_stream_pair()
    async with open_framed_channel(a) as left, open_framed_channel(b) as right:
        await left.send_many([b"1", b"2", b"3"])
        await left.flush()
        assert await right.receive() == b"1"
        assert right.receive_nowait() == b"2"
        assert await right.receive_many() == [b"3"]
        await left.aclose()
        with pytest.raises(trio.EndOfChannel):
            await right.receive()
        with pytest.raises(trio.ClosedResourceError):
            left.send_nowait(b"x")
        with pytest.raises(trio.ClosedResourceError):
            await left.flush()


async def test_many_senders_keep_frame_integrity() -> None:
    raw, other = memory_stream_pair()
    async with trio.open_nursery() as nursery:
        received = read_into(nursery, raw)
        async with (
            open_framed_channel(other, max_buffer_size=64) as channel,
            trio.open_nursery() as senders,
        ):
            for t in range(5):

                async def sender(tag: int = t) -> None:
                    for i in range(100):
                        await channel.send(f"{tag}:{i}".encode())

                senders.start_soon(sender)
    frames = decode(received[0])
    assert len(frames) == 500
    for tag in range(5):
        mine = [f for f in frames if f.startswith(f"{tag}:".encode())]
        assert mine == [f"{tag}:{i}".encode() for i in range(100)]


def test_max_buffer_size_validated() -> None:
    from framekit import FramedChannel

    _, other = memory_stream_pair()
    with pytest.raises(ValueError, match="max_buffer_size must be at least 1"):
        FramedChannel(other, max_buffer_size=0)


@pytest.mark.parametrize("size", [100, 2 * 1024 * 1024])
async def test_changing_a_buffer_after_send_returns_never_changes_what_is_sent(
    size: int,
) -> None:
    raw, other = memory_stream_pair()
    counting = CountingStream(other)
    counting.gate = trio.Event()  # nothing reaches the transport until the buffer changed
    buffer = bytearray(b"A" * size)
    async with trio.open_nursery() as nursery:
        received = read_into(nursery, raw)
        async with open_framed_channel(counting, max_buffer_size=8 * 1024 * 1024) as channel:
            await channel.send(buffer)  # queued, not sent
            buffer[:] = b"Z" * size  # the caller reuses its buffer at once
            channel.send_nowait(memoryview(buffer)[:10])
            buffer[:10] = b"Q" * 10
            counting.gate.set()
    assert decode(received[0]) == [b"A" * size, b"Z" * 10]


async def test_a_channel_receives_with_async_for() -> None:
    left, right = memory_stream_pair()
    async with trio.open_nursery() as nursery:

        async def peer() -> None:
            async with open_framed_channel(right) as channel:
                for payload in (b"one", b"two"):
                    await channel.send(payload)

        nursery.start_soon(peer)
        async with open_framed_channel(left) as channel:
            assert [p async for p in channel] == [b"one", b"two"]


@settings(max_examples=100)
@given(
    frames=st.lists(
        st.tuples(st.sampled_from([0, 1, 2, 64, 255, 256, 300, 1024]), st.booleans()),
        max_size=40,
    ),
    fmt=st.sampled_from([FrameFormat(), FrameFormat(2, "little"), FrameFormat(8, signed=True)]),
)
async def test_every_frame_gets_its_own_length_whatever_the_sizes_before_it(
    frames: list[tuple[int, bool]], fmt: FrameFormat
) -> None:
    # send() and send_nowait() keep the last length's packed prefix: runs of equal
    # sizes, sizes that come back, either call after the other, and every framing's
    # width and order must still encode each frame alone
    sizes = [n for n, _ in frames]
    payloads = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    raw, other = memory_stream_pair()
    async with trio.open_nursery() as nursery:
        received = read_into(nursery, raw)
        async with open_framed_channel(other, format=fmt) as channel:
            for p, (_, nowait) in zip(payloads, frames, strict=True):
                if nowait:
                    channel.send_nowait(p)
                else:
                    await channel.send(p)
    expected = bytearray()
    encoder = fmt.encoder()
    for p in payloads:
        encoder.encode_into(expected, p)
    assert received[0] == expected


# -- over plain TCP: the writer's sendmsg ------------------------------------------------

needs_sendmsg = pytest.mark.skipif(
    not hasattr(trio.socket.SocketType, "sendmsg"), reason="no sendmsg here"
)


async def receive_frames(stream: trio.abc.Stream, into: list[bytes]) -> None:
    async with FramedStream(stream) as framed:
        into.extend([frame async for frame in framed])


def watch_sendmsg(
    monkeypatch: pytest.MonkeyPatch, stream: trio.SocketStream, limit: int | None = None
) -> list[list[Any]]:
    """The buffers of every ``sendmsg`` on sockets like ``stream``'s from now on; with
    ``limit``, the kernel takes at most that many bytes a call (cutting anywhere)."""
    real_sendmsg = type(stream.socket).sendmsg
    calls: list[list[Any]] = []

    async def sendmsg(sock: Any, buffers: list[Any], *args: Any) -> int:
        calls.append(list(buffers))
        if limit is not None:
            room, taken = limit, []
            for buffer in buffers:
                piece = memoryview(buffer)[:room]
                taken.append(piece)
                room -= len(piece)
                if not room:
                    break
            buffers = taken
        return await real_sendmsg(sock, buffers, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(type(stream.socket), "sendmsg", sendmsg)
    return calls


@needs_sendmsg
async def test_frames_of_every_size_arrive_whole_when_sendmsg_takes_a_little_at_a_time(
    tcp_pair: TcpPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, server = await tcp_pair()
    calls = watch_sendmsg(monkeypatch, client, limit=3000)
    sizes = [0, 5, 16 * 1024 - 1, 16 * 1024, 70_000, 64, 1_100_000, 3, 200_000]
    payloads = [bytes([i + 1]) * n for i, n in enumerate(sizes)]
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive_frames, server, got)
        async with open_framed_channel(client) as channel:
            for p in payloads:
                await channel.send(bytearray(p) if len(p) == 70_000 else p)
    assert got == payloads
    assert max(len(buffers) for buffers in calls) > 1  # prefixes beside their payloads


@needs_sendmsg
async def test_a_queue_of_more_buffers_than_one_sendmsg_takes_goes_out_in_order(
    tcp_pair: TcpPair,
) -> None:
    client, server = await tcp_pair()
    payloads = [i.to_bytes(4, "big") * 4096 for i in range(700)]  # 16 KiB each: 1,400 buffers
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive_frames, server, got)
        async with open_framed_channel(client, max_buffer_size=64 * 1024 * 1024) as channel:
            for p in payloads:
                channel.send_nowait(p)  # all queued before the writer runs
    assert got == payloads


@needs_sendmsg
async def test_big_payloads_reach_sendmsg_as_they_are(
    tcp_pair: TcpPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, server = await tcp_pair()
    calls = watch_sendmsg(monkeypatch, client)
    big = b"G" * 65536
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive_frames, server, got)
        async with open_framed_channel(client) as channel:
            await channel.send(b"small")
            await channel.send(big)
    assert got == [b"small", big]
    assert any(buffer is big for buffers in calls for buffer in buffers)  # not copied


@pytest.mark.parametrize("size", [10, 20_000])
async def test_a_peer_that_reset_breaks_the_channel_for_sending(
    tcp_pair: TcpPair, size: int
) -> None:
    client, server = await tcp_pair()
    await reset(server)
    async with open_framed_channel(client) as channel:
        with pytest.raises(trio.BrokenResourceError):  # noqa: PT012 - the RST comes back later
            for _ in range(200):
                await channel.send(b"x" * size)
                await trio.sleep(0.001)
        with pytest.raises(trio.BrokenResourceError):
            await channel.send(b"again")
        await channel.aclose()  # leave without the flush, which would raise it again


# -- over plain TCP: a frame after a pause is written at once ---------------------------

needs_direct_write = pytest.mark.skipif(not _direct.DIRECT_WRITE, reason="no direct writes")


@needs_direct_write
@pytest.mark.parametrize("call", ["send", "send_nowait"])
async def test_a_frame_after_a_pause_is_written_before_send_returns(
    tcp_pair: TcpPair, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """Request/response does not wait for the writer task: the frame is in the kernel
    before any other task runs."""
    client, server = await tcp_pair()
    writes = note_writes(monkeypatch, client)
    events: list[str] = []
    async with open_framed_channel(client) as channel, FramedStream(server) as peer:
        for request in [b"one", b"two", b"three"]:
            async with trio.open_nursery() as nursery:

                async def other_task() -> None:
                    events.append(f"other ran, {len(writes)} written")

                nursery.start_soon(other_task)  # runs at the first yield
                if call == "send":
                    await channel.send(request)
                else:
                    channel.send_nowait(request)
                events.append(f"sent, {len(writes)} written")
            assert await peer.receive() == request
    assert events == [
        "sent, 1 written",
        "other ran, 1 written",
        "sent, 2 written",
        "other ran, 2 written",
        "sent, 3 written",
        "other ran, 3 written",
    ]


@needs_direct_write
async def test_frames_sent_before_the_writer_runs_again_go_out_together(
    tcp_pair: TcpPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, server = await tcp_pair()
    writes = note_writes(monkeypatch, client)
    payloads = [b"%d" % i for i in range(100)]
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive_frames, server, got)
        async with open_framed_channel(client) as channel:
            for p in payloads:  # no yield in between: the writer does not run
                await channel.send(p)
    assert got == payloads
    assert writes == [4 + 1]  # only the first frame was written at once


@needs_direct_write
async def test_what_the_kernel_does_not_take_at_once_follows_in_order(
    tcp_pair: TcpPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, server = await tcp_pair()
    real_write = os.write
    monkeypatch.setattr(_direct.os, "write", lambda fd, data: real_write(fd, data[:3]))
    payloads = [b"hello", b"", b"x" * 1000, b"after"]
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive_frames, server, got)
        async with open_framed_channel(client) as channel:
            for p in payloads:
                await channel.send(p)
                await trio.lowlevel.checkpoint()  # the writer runs: each frame comes after a pause
    assert got == payloads
