"""Cancellation: a cancelled receive loses nothing; a cancelled send breaks the stream."""

from __future__ import annotations

import trio
import trio.testing

import framekit


async def cancelled_receive() -> None:
    left, right = trio.testing.memory_stream_pair()
    receiver = framekit.FramedStream(right)
    frame = framekit.FrameEncoder().encode(b"hello world")

    await left.send_all(frame[:7])  # half a frame arrives...
    with trio.move_on_after(0.1) as scope:
        await receiver.receive()  # ...and we give up waiting for the rest
    assert scope.cancelled_caught

    # The 7 bytes already read are kept in the decoder; the next receive completes them.
    await left.send_all(frame[7:])
    assert await receiver.receive() == b"hello world"


async def cancelled_send() -> None:
    # lockstep_stream_pair: send_all returns only once the peer has read every byte.
    left, right = trio.testing.lockstep_stream_pair()
    sender = framekit.FramedStream(left)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.send, b"hello world")
        partial = await right.receive_some(6)  # the peer has read part of the frame...
        nursery.cancel_scope.cancel()  # ...when the send is cancelled
    assert partial == b"\x00\x00\x00\x0bhe"  # the prefix and 2 of 11 payload bytes

    # Whatever is sent next would be read as the rest of that payload, so the stream
    # refuses to send again. Close it (receiving still works until then).
    try:
        await sender.send(b"next")
    except trio.BrokenResourceError:
        pass
    else:
        raise AssertionError("a stream with half a frame on the wire must refuse to send")
    await sender.aclose()


async def cancelled_receive_message() -> None:
    # MessageStream keeps what it has read too, header and body chunks alike.
    left, right = trio.testing.memory_stream_pair()
    receiver = framekit.MessageStream(right)
    message = framekit.MessageEncoder().message({"name": "a.txt"}, b"0123456789")

    await left.send_all(message[:-4])  # the header and 6 of 10 body bytes
    with trio.move_on_after(0.1):
        await receiver.receive_message()
    await left.send_all(message[-4:])
    received = await receiver.receive_message()
    assert received.header["name"] == "a.txt" and received.body == b"0123456789"


trio.run(cancelled_receive)
trio.run(cancelled_receive_message)
trio.run(cancelled_send)
print("cancellation is safe")
