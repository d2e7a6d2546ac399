"""open_framed_channel: queue small frames, let a writer task send them in batches."""

from __future__ import annotations

import trio
import trio.testing

import framekit


async def main() -> None:
    left, right = trio.testing.memory_stream_pair()
    receiver = framekit.FramedStream(right)

    async with framekit.open_framed_channel(left, max_buffer_size=64) as channel:
        # send_nowait queues a frame (4 + 40 bytes) and returns; nothing is written yet.
        channel.send_nowait(b"a" * 40)
        channel.send_nowait(b"b" * 40)  # 44 bytes were queued, under 64: accepted
        try:
            channel.send_nowait(b"c")  # 88 bytes queued, 64 allowed: no room
        except trio.WouldBlock:
            pass
        else:
            raise AssertionError("a full buffer must refuse send_nowait")
        await channel.send(b"c")  # waits until the writer has drained the buffer

        for i in range(1000):
            await channel.send(b"%d" % i)  # returns as soon as the frame is queued
        await channel.flush()  # now every queued frame has been handed to the transport
        received = await receiver.receive_many()  # so all of them are ready here
        assert len(received) == 1003

        await channel.send(b"bye")  # leaving the block normally flushes, then closes

    received += [message async for message in receiver]  # the rest, until the close
    assert received == [b"a" * 40, b"b" * 40, b"c", *(b"%d" % i for i in range(1000)), b"bye"]

    # Leaving the block with an exception closes at once: queued frames are dropped.
    left, right = trio.testing.memory_stream_pair()
    try:
        async with framekit.open_framed_channel(left) as channel:
            await channel.send(b"queued, never written")
            raise KeyError("something went wrong")
    except KeyError:
        pass
    assert [m async for m in framekit.FramedStream(right)] == []


trio.run(main)
print("coalesced")
