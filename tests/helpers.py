"""Shared test helpers: feeding decoders in many chunkings, wrapping streams, processes."""

from __future__ import annotations

import os
import random
import socket
import struct
from collections.abc import Awaitable, Iterator
from typing import Any, Protocol

import pytest
import trio

import framekit


class TcpPair(Protocol):
    """The ``tcp_pair`` fixture (``tests/streams/conftest.py``): a connected loopback
    pair, client first; ``buffer`` shrinks the kernel's buffers."""

    def __call__(
        self, buffer: int | None = None
    ) -> Awaitable[tuple[trio.SocketStream, trio.SocketStream]]: ...


class TlsPair(Protocol):
    """The ``tls_pair`` fixture: ``tcp_pair``'s connection with TLS on both ends."""

    def __call__(
        self,
    ) -> Awaitable[tuple[trio.SSLStream[trio.SocketStream], trio.SSLStream[trio.SocketStream]]]: ...


async def send_frames(stream: trio.abc.Stream, frames: list[bytes]) -> None:
    """Send ``frames`` on ``stream`` through a FramedStream, then close it."""
    async with framekit.FramedStream(stream) as sender:
        for frame in frames:
            await sender.send(frame)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (sorted, deduplicated, clipped)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return [c for c in out if c] or [data]


def chunkings(data: bytes, seed: int = 0) -> Iterator[list[bytes]]:
    """The three ways h11 feeds a decoder, plus a random split: whole, byte by byte, random."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(seed)
    yield split_at(data, [rng.randrange(len(data) + 1) for _ in range(len(data) // 7 + 1)])


def decode_all(decoder: framekit.FrameDecoder, chunks: list[bytes]) -> list[bytes]:
    """Feed every chunk, collect frames, then signal EOF and collect the rest."""
    out: list[bytes] = []
    for chunk in filter(None, chunks):  # b"" would mean end of stream
        decoder.receive_data(chunk)
        out += decoder.frames()
    decoder.receive_data(b"")
    out += decoder.frames()
    return out


def message_events(
    decoder: framekit.MessageDecoder, chunks: list[bytes]
) -> list[tuple[dict[str, object], bytes]]:
    """Feed chunks to a MessageDecoder; return (header fields, body) per message."""
    out: list[tuple[dict[str, object], bytes]] = []
    body: list[bytes] = []
    for chunk in [*filter(None, chunks), b""]:
        decoder.receive_data(chunk)
        while True:
            event = decoder.next_event()
            if event is framekit.NEED_DATA or event is framekit.END_OF_STREAM:
                break
            if isinstance(event, framekit.BodyChunk):
                body.append(event.data)
            elif isinstance(event, framekit.EndOfMessage):
                out.append((event.header.fields, b"".join(body)))
                body = []
    return out


def process_gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (absent, or a zombie nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


async def wait_gone(pids: list[int], limit: float = 10.0) -> None:
    """Wait (bounded) until every pid is gone; fail the test if one survives."""
    import trio

    with trio.fail_after(limit):
        while not all(process_gone(p) for p in pids):
            await trio.sleep(0.02)


class PassThroughStream(trio.abc.Stream):
    """Forwards every call to ``inner``; tests subclass it to watch or disturb one call."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class CancelOnNthRead(PassThroughStream):
    """Passes bytes through, but cancels ``scope`` at the ``countdown``-th receive_some
    (a checkpoint there), for tests that cancel at every read in turn."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        super().__init__(inner)
        self.scope: trio.CancelScope | None = None
        self.countdown = -1

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        self.countdown -= 1
        if self.countdown == 0 and self.scope is not None:
            self.scope.cancel()
            await trio.lowlevel.checkpoint()
        return await self.inner.receive_some(max_bytes)


async def reset(stream: trio.SocketStream) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER on, with a zero timeout)."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


def note_writes(monkeypatch: pytest.MonkeyPatch, stream: trio.SocketStream) -> list[int]:
    """The sizes of the ``os.write`` calls made on ``stream``'s descriptor from now on
    (the streams' direct writes; the server, if it runs in this process, writes too)."""
    fd = stream.socket.fileno()
    real_write = os.write
    writes: list[int] = []

    def noting_write(to: int, data: Any) -> int:
        if to == fd:
            writes.append(len(data))
        return real_write(to, data)

    monkeypatch.setattr(os, "write", noting_write)
    return writes
