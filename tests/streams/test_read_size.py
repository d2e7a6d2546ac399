"""ReadSize: how much the Trio wrappers ask the transport for on each read."""

from __future__ import annotations

import trio
from trio.testing import memory_stream_pair

from framekit import FramedStream, FrameEncoder, MessageStream
from framekit.streams._read_size import DEFAULT_RECEIVE_SIZE, FIRST_READ, ReadSize

from ..helpers import PassThroughStream


def test_reads_start_small_grow_while_full_and_shrink_when_mostly_empty() -> None:
    size = ReadSize(1024 * 1024)
    assert size.size == FIRST_READ == 64 * 1024
    seen = []
    for _ in range(6):
        size.update(size.size)  # every read came back full
        seen.append(size.size)
    assert seen == [128 * 1024, 256 * 1024, 512 * 1024, 1024 * 1024, 1024 * 1024, 1024 * 1024]
    size.update(300 * 1024)  # over a quarter full: keep the size
    assert size.size == 1024 * 1024
    for expected in (512 * 1024, 256 * 1024, 128 * 1024, 64 * 1024, 64 * 1024):
        size.update(100)
        assert size.size == expected


def test_a_limit_under_the_first_read_is_never_exceeded() -> None:
    size = ReadSize(100)
    assert size.size == 100
    size.update(100)
    size.update(1)
    assert size.size == 100


class RecordingStream(PassThroughStream):
    """Records the ``max_bytes`` of each ``receive_some``."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        super().__init__(inner)
        self.asked: list[int | None] = []

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        self.asked.append(max_bytes)
        return await self.inner.receive_some(max_bytes)


async def test_framed_stream_reads_grow_for_bulk_and_stay_small_for_small_frames() -> None:
    raw, other = memory_stream_pair()
    recorder = RecordingStream(other)
    framed = FramedStream(recorder)
    for _ in range(3):  # one small frame at a time: no read needs more than 64 KiB
        await raw.send_all(FrameEncoder().encode(b"ping"))
        assert await framed.receive() == b"ping"
    assert set(recorder.asked) == {FIRST_READ}
    recorder.asked.clear()
    payload = bytes(6 * 1024 * 1024)  # all buffered at once: every read comes back full
    await raw.send_all(FrameEncoder().encode(payload))
    assert await framed.receive() == payload
    assert recorder.asked[:5] == [64 * 1024, 128 * 1024, 256 * 1024, 512 * 1024, 1024 * 1024]
    assert max(n for n in recorder.asked if n is not None) == DEFAULT_RECEIVE_SIZE


async def test_message_stream_reads_small_messages_with_small_reads() -> None:
    raw, other = memory_stream_pair()
    recorder = RecordingStream(other)
    sender, receiver = MessageStream(raw), MessageStream(recorder)
    for n in range(3):
        await sender.send_message({"n": n}, b"body")
        message = await receiver.receive_message()
        assert message.header["n"] == n and message.body == b"body"
    assert set(recorder.asked) == {FIRST_READ}
