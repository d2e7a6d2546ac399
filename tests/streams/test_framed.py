from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from trio.testing import memory_stream_pair

import framekit
from framekit import FramedStream, FrameEncoder, FrameFormat, FrameTooLarge, IncompleteFrame

from ..helpers import CancelOnNthRead


def payloads(seed: int, count: int = 200, max_size: int = 3000) -> list[bytes]:
    rng = random.Random(seed)
    return [
        rng.randbytes(rng.choice([0, 1, 7, 64, 1024, rng.randrange(max_size)]))
        for _ in range(count)
    ]


async def send_in_random_chunks(stream: trio.abc.SendStream, data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    i = 0
    while i < len(data):
        n = rng.randint(1, 2 ** rng.randint(0, 14))
        await stream.send_all(data[i : i + n])
        i += n
    await stream.aclose()


@pytest.mark.parametrize("seed", range(5))
async def test_receive_whole_frames_however_split(seed: int) -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    expected = payloads(seed)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_in_random_chunks, raw, FrameEncoder().encode_many(expected), seed)
        got = [p async for p in framed]
    assert got == expected


async def test_send_and_receive_over_lockstep_pair() -> None:
    a, b = trio.testing.lockstep_stream_pair()
    left, right = FramedStream(a), FramedStream(b)
    expected = payloads(1, count=30)

    async with trio.open_nursery() as nursery:

        async def sender() -> None:
            for p in expected[:10]:
                await left.send(p)
            await left.send_many(expected[10:])
            await left.aclose()

        nursery.start_soon(sender)
        got = [p async for p in right]
    assert got == expected


async def test_clean_eof_is_end_of_channel() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.send_all(b"\0\0\0\x01a")
    await raw.aclose()
    assert await framed.receive() == b"a"
    with pytest.raises(trio.EndOfChannel):
        await framed.receive()


async def test_eof_mid_frame_is_incomplete_frame() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.send_all(b"\0\0\0\x01a\0\0\0\x09abc")
    await raw.aclose()
    assert await framed.receive() == b"a"  # the complete frame is not lost
    with pytest.raises(IncompleteFrame, match=r"expected 13 bytes .* got 7") as info:
        await framed.receive()
    assert (info.value.expected, info.value.received) == (13, 7)


async def test_oversized_length_from_peer() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other, format=FrameFormat(max_frame_size=100))
    await raw.send_all(b"\xff\xff\xff\xff")
    with pytest.raises(FrameTooLarge, match="4294967295-byte frame"):
        await framed.receive()
    with pytest.raises(FrameTooLarge):
        await framed.receive()


async def test_send_too_large_sends_nothing() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other, format=FrameFormat(max_frame_size=3))
    with pytest.raises(FrameTooLarge):
        await framed.send(b"abcd")
    with pytest.raises(FrameTooLarge):
        await framed.send_many([b"a", b"abcd"])
    await framed.send(b"abc")  # still usable
    assert await raw.receive_some() == b"\0\0\0\x03abc"


async def test_two_receivers_is_busy() -> None:
    _, other = memory_stream_pair()
    framed = FramedStream(other)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(framed.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match="already receiving"):
            await framed.receive()
        with pytest.raises(trio.BusyResourceError):
            framed.receive_nowait()
        nursery.cancel_scope.cancel()


async def test_two_senders_is_busy() -> None:
    a, _ = trio.testing.lockstep_stream_pair()
    framed = FramedStream(a)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(framed.send, b"x")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match="already sending"):
            await framed.send(b"y")
        nursery.cancel_scope.cancel()


async def test_use_after_close() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.send_all(b"\0\0\0\x01a\0\0\0\x01b")
    assert await framed.receive() == b"a"  # 'b' is decoded and waiting
    await framed.aclose()
    await framed.aclose()  # idempotent
    for op in (
        framed.receive(),
        framed.send(b"x"),
        framed.send_many([b"x"]),
        framed.receive_many(),
    ):
        with pytest.raises(trio.ClosedResourceError):
            await op
    with pytest.raises(trio.ClosedResourceError):
        framed.receive_nowait()


async def test_receive_nowait_and_receive_many() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    with pytest.raises(trio.WouldBlock):
        framed.receive_nowait()
    await raw.send_all(FrameEncoder().encode_many([b"1", b"2", b"3"]) + b"\0\0")
    assert await framed.receive() == b"1"
    assert framed.receive_nowait() == b"2"
    assert await framed.receive_many() == [b"3"]
    with pytest.raises(trio.WouldBlock):
        framed.receive_nowait()
    await raw.send_all(b"\0\x01x" + FrameEncoder().encode(b"y"))
    assert await framed.receive_many() == [b"x", b"y"]


@pytest.mark.parametrize("seed", range(3))
async def test_cancel_at_every_receive_checkpoint_loses_nothing(seed: int) -> None:
    raw, other = memory_stream_pair()
    wrapper = CancelOnNthRead(other)
    framed = FramedStream(wrapper, receive_size=7)
    expected = payloads(seed, count=40, max_size=100)
    got: list[bytes] = []
    cancels = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_in_random_chunks, raw, FrameEncoder().encode_many(expected), seed)
        nth = 1
        while True:
            with trio.CancelScope() as scope:
                wrapper.scope, wrapper.countdown = scope, nth
                try:
                    got.append(await framed.receive())
                except trio.EndOfChannel:
                    break
            if scope.cancelled_caught:
                cancels += 1
                nth += 1  # next time, cancel one checkpoint later
            else:
                nth = 1
    assert got == expected
    assert cancels > len(expected)


@pytest.mark.parametrize("loop", ["receive", "async for"])
async def test_cancelled_fast_path_loses_nothing(loop: str) -> None:
    # Frames already decoded come back without a checkpoint each; cancellation is
    # noticed within CANCEL_CHECK_INTERVAL calls, and the frame of that call is kept.
    # `async for` inlines receive()'s fast path: the same contract.
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    payloads = [str(i).encode() for i in range(100)]
    await raw.send_all(FrameEncoder().encode_many(payloads))
    await raw.aclose()
    got = [await framed.receive()]
    with trio.CancelScope() as scope:
        scope.cancel()
        if loop == "receive":
            while True:
                got.append(await framed.receive())
        else:
            async for payload in framed:
                got.append(payload)
    assert scope.cancelled_caught
    assert len(got) <= framekit.CANCEL_CHECK_INTERVAL + 1
    got += [p async for p in framed]
    assert got == payloads


async def test_cancelled_send_marks_stream_broken_for_sending() -> None:
    a, b = trio.testing.lockstep_stream_pair()
    framed = FramedStream(a)
    with trio.move_on_after(0.01):  # nobody reads, so send_all blocks
        await framed.send(b"x" * 100)
    with pytest.raises(trio.BrokenResourceError, match="earlier send failed or was cancelled"):
        await framed.send(b"y")
    await b.aclose()


async def test_transport_failure_propagates() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.aclose()
    with pytest.raises(trio.BrokenResourceError, match="MemoryReceiveStream was closed"):
        await framed.send(b"x")
    with pytest.raises(trio.BrokenResourceError, match="earlier send failed or was cancelled"):
        await framed.send(b"x")
    with pytest.raises(trio.EndOfChannel):
        await framed.receive()


def test_receive_size_validated() -> None:
    _, other = memory_stream_pair()
    with pytest.raises(ValueError, match="receive_size must be at least 1"):
        FramedStream(other, receive_size=0)


async def test_tutorial_format_interoperates_with_struct_i() -> None:
    import struct

    raw, other = memory_stream_pair()
    framed = FramedStream(other, format=framekit.TUTORIAL_FORMAT)
    await raw.send_all(struct.pack("i", 5) + b"hello")
    assert await framed.receive() == b"hello"
    await framed.send(b"ok")
    assert await raw.receive_some() == struct.pack("i", 2) + b"ok"


async def test_receive_nowait_reports_end_of_stream() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.send_all(FrameEncoder().encode(b"last"))
    await raw.aclose()
    assert await framed.receive() == b"last"
    with pytest.raises(trio.WouldBlock):  # EOF not read yet
        framed.receive_nowait()
    with pytest.raises(trio.EndOfChannel):
        await framed.receive()
    with pytest.raises(trio.EndOfChannel):
        framed.receive_nowait()


async def test_async_for_ends_at_a_clean_end_and_raises_a_cut_frame() -> None:
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.send_all(FrameEncoder().encode_many([b"a", b"b"]))
    await raw.aclose()
    assert [p async for p in framed] == [b"a", b"b"]  # StopAsyncIteration, not EndOfChannel
    raw, other = memory_stream_pair()
    framed = FramedStream(other)
    await raw.send_all(FrameEncoder().encode(b"whole") + b"\0\0\0\x09cut")
    await raw.aclose()
    got: list[bytes] = []

    async def collect() -> None:
        async for payload in framed:
            got.append(payload)

    with pytest.raises(framekit.IncompleteFrame):
        await collect()
    assert got == [b"whole"]
