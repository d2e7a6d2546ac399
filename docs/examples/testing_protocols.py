"""Test a MessageStream protocol without sockets: both stream pairs, hostile bytes, time.

The test functions are what you would put in tests/: with pytest-trio's trio_mode they
run as they are (give test_idle_timeout the `autojump_clock` fixture). Here they also
run as a script, each in its own trio.run.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

import framekit

IDLE_TIMEOUT = 300.0  # the handler hangs up after this many silent seconds

StreamPair = Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]]


async def handle(stream: framekit.MessageStream) -> None:
    """The protocol under test: each body comes back upper-cased, with its length."""
    while True:
        with trio.move_on_after(IDLE_TIMEOUT) as idle:
            try:
                request = await stream.receive_message()
            except trio.EndOfChannel:
                return
        if idle.cancelled_caught:
            return
        await stream.send_message({"length": len(request.body)}, request.body.upper())


async def serve_one(transport: trio.abc.Stream) -> None:
    """What serve_messages does for each connection: wrap, handle, close."""
    async with framekit.MessageStream(transport) as stream:
        await handle(stream)


async def exchange(make_pair: StreamPair) -> None:
    client_side, server_side = make_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_one, server_side)
        async with framekit.MessageStream(client_side) as client:
            for body in [b"hello", b"", b"x" * 200_000]:
                await client.send_message({}, body)
                reply = await client.receive_message()
                assert reply.body == body.upper() and reply.header["length"] == len(body)


async def test_memory_streams() -> None:
    # memory_stream_pair: buffered, like a socket with an unlimited buffer.
    await exchange(trio.testing.memory_stream_pair)


async def test_lockstep_streams() -> None:
    # lockstep_stream_pair: no buffer at all, each send_all waits until the other side
    # has read every byte. A protocol that sends a big reply before reading the rest of
    # its request deadlocks here, as it would on a real socket once buffers fill up.
    await exchange(trio.testing.lockstep_stream_pair)


async def test_hostile_length_prefix() -> None:
    # Raw bytes on the other end of the pair: "a header of 4 GiB follows". The stream
    # refuses it at the prefix, before allocating anything.
    attacker, server_side = trio.testing.memory_stream_pair()
    stream = framekit.MessageStream(server_side)
    await attacker.send_all(b"\xff\xff\xff\xff")
    try:
        await stream.receive_message()
    except framekit.HeaderTooLarge as exc:
        print("refused:", exc)
    else:
        raise AssertionError("a 4 GiB header must be refused")


async def test_idle_timeout() -> None:
    # Run with trio.testing.MockClock(autojump_threshold=0): when every task is waiting,
    # virtual time jumps to the next deadline, so 300 s pass in no time at all.
    client_side, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_one, server_side)
        client = framekit.MessageStream(client_side)
        start = trio.current_time()
        try:
            await client.receive_message()  # say nothing; wait for the server to hang up
        except trio.EndOfChannel:
            pass
        assert trio.current_time() - start == IDLE_TIMEOUT


if __name__ == "__main__":
    trio.run(test_memory_streams)
    trio.run(test_lockstep_streams)
    trio.run(test_hostile_length_prefix)
    trio.run(test_idle_timeout, clock=trio.testing.MockClock(autojump_threshold=0))
    print("all four tests passed")
