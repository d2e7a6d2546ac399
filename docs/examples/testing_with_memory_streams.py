"""Test a framed protocol without sockets, using trio's in-memory streams.

The two test functions are what you would put in tests/ (with pytest-trio's
trio_mode = true they run as they are); here they also run as a script.
"""

from __future__ import annotations

import random

import trio
import trio.testing

import framekit


async def shout(channel: framekit.FramedStream) -> None:
    """The protocol under test: reply to each message with it upper-cased."""
    async for message in channel:
        await channel.send(message.upper())


async def serve_one(stream: trio.abc.Stream) -> None:
    """What serve_framed does for each connection: wrap, run the handler, close."""
    async with framekit.FramedStream(stream) as channel:
        await shout(channel)


async def test_shout_over_memory_streams() -> None:
    client_side, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_one, server_side)
        async with framekit.FramedStream(client_side) as client:
            await client.send(b"hello")
            assert await client.receive() == b"HELLO"


async def test_shout_whatever_the_chunking() -> None:
    # What TCP might do to your bytes, on purpose: deliver them in random pieces,
    # some a single byte, some spanning several frames.
    rng = random.Random(1234)  # seeded, so a failure can be replayed
    messages = [rng.randbytes(rng.randrange(0, 300)).hex().encode() for _ in range(50)]
    wire = framekit.FrameEncoder().encode_many(messages)

    client_side, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_one, server_side)
        replies = framekit.FramedStream(client_side)
        position = 0
        while position < len(wire):
            size = rng.choice([1, 2, 3, 7, 64, 1024])
            await client_side.send_all(wire[position : position + size])
            position += size
            await trio.testing.wait_all_tasks_blocked()  # let the server read each piece
        await client_side.send_eof()  # no more requests: the server replies, then closes
        assert [reply async for reply in replies] == [m.upper() for m in messages]


if __name__ == "__main__":
    trio.run(test_shout_over_memory_streams)
    trio.run(test_shout_whatever_the_chunking)
    print("both tests passed")
