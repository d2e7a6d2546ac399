"""Connecting with Retry: the tutorials' "sleep and reconnect" loop, with bounds."""

from __future__ import annotations

import trio

import framekit


async def main() -> None:
    # Waits between attempts grow from initial_delay by multiplier, up to max_delay,
    # each spread by +/- jitter (a fraction) so many clients do not retry in lock-step.
    retry = framekit.Retry(attempts=5, initial_delay=0.1, max_delay=0.3, jitter=0)
    assert list(retry.delays()) == [0.1, 0.2, 0.3, 0.3]  # 5 attempts, 4 waits

    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))  # reserve a free port, but do not listen yet
        port = sock.getsockname()[1]

        # Nobody listening: every attempt is refused, and the bound ends the waiting.
        try:
            await framekit.open_framed_stream(
                "127.0.0.1", port, retry=framekit.Retry(attempts=3, initial_delay=0.01)
            )
        except framekit.ConnectError as exc:  # also an OSError
            print(exc)  # could not connect to 127.0.0.1:... after 3 attempt(s) in 0.0 s: ...
        else:
            raise AssertionError("nothing is listening yet")

        # A server that comes up late: the client keeps trying for up to 5 seconds.
        async def late_server() -> None:
            await trio.sleep(0.3)
            sock.listen()
            stream = await trio.SocketListener(sock).accept()
            async with framekit.FramedStream(stream) as channel:
                await channel.send(b"welcome")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(late_server)
            channel = await framekit.open_framed_stream(
                "127.0.0.1", port, retry=framekit.Retry.for_seconds(5)
            )
            async with channel:
                assert await channel.receive() == b"welcome"


trio.run(main)
