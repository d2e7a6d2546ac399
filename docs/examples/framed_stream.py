"""FramedStream: a trio Channel of whole messages over any byte stream."""

from __future__ import annotations

import trio
import trio.testing

import framekit


async def main() -> None:
    # Any trio Stream works: TCP, TLS, or (here) an in-memory pair.
    left, right = trio.testing.memory_stream_pair()
    client = framekit.FramedStream(left)
    server = framekit.FramedStream(right)

    await client.send(b"one")
    await client.send_many([b"two", b"three"])  # both frames in one send_all
    assert await server.receive() == b"one"  # one read decoded all three frames...
    assert server.receive_nowait() == b"two"  # ...so this one is ready without waiting
    assert await server.receive_many() == [b"three"]  # everything ready (at least one)
    try:
        server.receive_nowait()
    except trio.WouldBlock:
        pass  # nothing decoded yet: call receive() to wait for the transport

    # Two tasks receiving from one stream would each get arbitrary frames: refused.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.receive)  # waits for a frame
        await trio.testing.wait_all_tasks_blocked()
        try:
            await server.receive()
        except trio.BusyResourceError:
            pass
        else:
            raise AssertionError("two receivers at once must be refused")
        await client.send(b"for the first receiver")

    # A clean close between frames ends `async for` (receive() raises EndOfChannel).
    await client.send(b"last")
    await client.aclose()
    assert [m async for m in server] == [b"last"]
    try:
        await server.receive()
    except trio.EndOfChannel:
        pass

    # Closed by us: ClosedResourceError, as for every trio resource.
    await server.aclose()
    try:
        await server.send(b"too late")
    except trio.ClosedResourceError:
        pass
    else:
        raise AssertionError("sending on a closed stream must fail")

    # The peer vanishing in the middle of a frame is not a clean end: IncompleteFrame.
    left, right = trio.testing.memory_stream_pair()
    await left.send_all(b"\x00\x00\x00\x0ahalf")  # announces 10 bytes, sends 4
    await left.aclose()
    try:
        await framekit.FramedStream(right).receive()
    except framekit.IncompleteFrame as exc:
        print(exc)  # stream ended in the middle of a frame: expected 14 bytes ...
    else:
        raise AssertionError("expected IncompleteFrame")


trio.run(main)
