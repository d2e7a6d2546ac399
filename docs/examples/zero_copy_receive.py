"""receive_into: large frames straight into a buffer you own, reused frame after frame."""

from __future__ import annotations

import hashlib

import trio

import framekit

SIZES = [4 * 1024 * 1024, 64 * 1024, 6 * 1024 * 1024, 0]


async def sender(stream: trio.SocketStream) -> None:
    async with framekit.FramedStream(stream) as framed:
        for i, size in enumerate(SIZES):
            await framed.send(bytes([i]) * size)


async def main() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender, await trio.open_tcp_stream("127.0.0.1", port))
        receiver = framekit.FramedStream(await listener.accept())
        await listener.aclose()

        buffer = bytearray(4 * 1024 * 1024)  # yours: framekit writes buffer[:n] only
        digests = []
        while True:
            try:
                n = await receiver.receive_into(buffer)
            except framekit.BufferTooSmall as exc:
                # Nothing was consumed: grow the buffer and ask again for the same frame.
                print(f"growing the buffer to {exc.needed} bytes")
                buffer = bytearray(exc.needed)
                continue
            except trio.EndOfChannel:
                break
            with memoryview(buffer)[:n] as payload:  # a view: no copy of the payload
                digests.append(hashlib.sha256(payload).hexdigest())
        await receiver.aclose()

    expected = [hashlib.sha256(bytes([i]) * size).hexdigest() for i, size in enumerate(SIZES)]
    assert digests == expected
    print(f"received {len(digests)} frames into one buffer of {len(buffer)} bytes")


trio.run(main)
