"""The small sticky-packet demonstration behind ``framekit demo``.

It sends the same messages over real loopback TCP twice - once raw, the receiver reading
1024-byte chunks, and once framed - and reports what the receiver saw. No printing here:
the CLI renders the :class:`DemoResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import trio

from ._connect import open_framed_connection, serve_framed
from ._framed import FramedStream

__all__ = ["DEFAULT_DEMO_SIZES", "DemoResult", "run_demo"]

#: Mixed sizes, one bigger than the tutorials' 1024-byte ``recv``.
DEFAULT_DEMO_SIZES: tuple[int, ...] = (5, 12, 3000, 7, 40)
#: The read size every tutorial uses: ``conn.recv(1024)``.
TUTORIAL_READ_SIZE = 1024


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the receiver saw.

    Attributes:
        sent: the sizes of the messages sent, in order.
        raw_reads: sizes of what each ``recv(1024)`` returned on the raw connection.
        framed: sizes of the payloads the framed receiver returned.
        framed_exact: whether every framed payload equals the message sent.
    """

    sent: tuple[int, ...]
    raw_reads: tuple[int, ...]
    framed: tuple[int, ...]
    framed_exact: bool

    @property
    def raw_boundaries_kept(self) -> bool:
        """Whether the raw reads happened to line up with the messages."""
        return self.raw_reads == self.sent


def _messages(sizes: Sequence[int]) -> list[bytes]:
    return [bytes([ord("a") + i % 26]) * size for i, size in enumerate(sizes)]


async def run_demo(sizes: Sequence[int] = DEFAULT_DEMO_SIZES) -> DemoResult:
    """Run the demonstration on embedded loopback servers."""
    messages = _messages(sizes)
    async with trio.open_nursery() as nursery:
        # Raw TCP: all sends first, then the receiver reads 1024-byte chunks.
        raw_reads: list[int] = []
        done = trio.Event()
        raw_in = trio.Event()

        async def raw_receiver(stream: trio.SocketStream) -> None:
            await done.wait()
            while chunk := await stream.receive_some(TUTORIAL_READ_SIZE):
                raw_reads.append(len(chunk))
            raw_in.set()

        listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), raw_receiver, 0)
        port = listeners[0].socket.getsockname()[1]
        async with await trio.open_tcp_stream("127.0.0.1", port) as raw:
            for message in messages:
                await raw.send_all(message)
            done.set()
        # Framed: same messages, the receiver echoes back the payload sizes it got.
        received: list[bytes] = []
        all_in = trio.Event()

        async def framed_receiver(channel: FramedStream) -> None:
            async for payload in channel:
                received.append(payload)
            all_in.set()

        [(host, fport)] = await nursery.start(serve_framed, framed_receiver, 0)
        async with await open_framed_connection(host, fport) as framed:
            for message in messages:
                await framed.send(message)
        await all_in.wait()
        await raw_in.wait()
        nursery.cancel_scope.cancel()
    return DemoResult(
        sent=tuple(sizes),
        raw_reads=tuple(raw_reads),
        framed=tuple(len(p) for p in received),
        framed_exact=received == messages,
    )
