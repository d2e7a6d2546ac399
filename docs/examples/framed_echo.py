"""An echo server and client over loopback TCP: whole messages in, whole messages out."""

from __future__ import annotations

import trio

import framekit


async def echo(channel: framekit.FramedStream) -> None:
    # One task per connection; `async for` ends when the client closes cleanly.
    async for message in channel:
        await channel.send(message)


async def main() -> None:
    async with trio.open_nursery() as nursery:
        # Port 0 picks a free port; nursery.start returns once the server is listening.
        [(host, port)] = await nursery.start(framekit.serve_framed, echo, 0)

        async with await framekit.open_framed_stream(host, port) as channel:
            for message in [b"hello", b"", b"x" * 100_000]:
                await channel.send(message)
                assert await channel.receive() == message  # never merged, never split

        nursery.cancel_scope.cancel()  # stop the server


trio.run(main)
print("echoed three messages")
