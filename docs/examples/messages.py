"""MessageStream: a JSON header plus a raw body, whole in memory or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
import trio.testing

import framekit


async def numbers() -> AsyncIterator[bytes]:
    for i in range(3):
        yield b"%d," % i  # a body produced piece by piece


async def main() -> None:
    left, right = trio.testing.memory_stream_pair()
    sender = framekit.MessageStream(left)
    receiver = framekit.MessageStream(right)

    # A body in memory. "size" is filled in; checksum=True adds the body's "sha256".
    await sender.send_message({"type": "note"}, b"hello", checksum=True)
    message = await receiver.receive_message()
    assert message.header["type"] == "note" and message.body == b"hello"
    assert message.header.size == 5 and message.header.sha256 is not None

    # A streamed body: say how long it will be, then send it in pieces.
    await sender.send_message({"type": "numbers"}, numbers(), size=6)
    incoming = await receiver.receive_message_stream()  # returns once the header is in
    assert incoming.header["type"] == "numbers" and incoming.size == 6
    assert b"".join([chunk async for chunk in incoming]) == b"0,1,2,"

    # A body you do not want: discard() it, or just receive the next message.
    await sender.send_message({"n": 1}, b"x" * 100_000)
    await sender.send_message({"n": 2}, b"y")
    unwanted = await receiver.receive_message_stream()
    assert unwanted.header["n"] == 1
    wanted = await receiver.receive_message_stream()  # skips the rest of message 1
    assert await wanted.read_all() == b"y"

    # A body that does not match its header's sha256 raises ChecksumMismatch once it has
    # been read. The framing is intact, so the stream goes on with the next message.
    bad_header = framekit.MessageEncoder().header({"sha256": "00" * 32}, size=3)
    await left.send_all(bad_header + b"abc")  # raw bytes, as a faulty peer might send
    await sender.send_message({"n": 2}, b"ok")
    try:
        await receiver.receive_message()
    except framekit.ChecksumMismatch:
        pass  # never use that body
    else:
        raise AssertionError("a corrupted body must be reported")
    assert (await receiver.receive_message()).body == b"ok"

    # As a trio Channel of Message objects.
    await sender.send(framekit.Message.create({"n": 3}, b"z"))
    await sender.aclose()
    assert [(m.header["n"], m.body) async for m in receiver] == [(3, b"z")]

    # receive_message() keeps bodies in memory, so it caps them (16 MiB by default).
    left, right = trio.testing.memory_stream_pair()
    await framekit.MessageStream(left).send_message({}, b"z" * 2000)
    try:
        await framekit.MessageStream(right).receive_message(max_body_size=1000)
    except framekit.FrameTooLarge as exc:
        print(exc)  # message body of 2000 bytes is over max_body_size (1000); ...
    else:
        raise AssertionError("a body over max_body_size must be refused")


trio.run(main)
