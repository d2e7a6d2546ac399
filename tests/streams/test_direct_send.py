"""The direct write on TCP of FramedStream.send and MessageStream.send_message: frames
and messages go to the kernel whole or wait in send_all; partial writes, a full buffer,
cancellation at every point, a closed socket and concurrent senders all leave the byte
stream correct. Each test runs with both wrappers."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from framekit import (
    CANCEL_CHECK_INTERVAL,
    BodyChunk,
    EndOfMessage,
    FrameDecoder,
    FramedStream,
    Header,
    MessageDecoder,
    MessageStream,
)
from framekit.streams import _direct

from ..helpers import TcpPair, reset

pytestmark = pytest.mark.skipif(not _direct.DIRECT_WRITE, reason="no direct writes here")


@dataclass(frozen=True)
class Wrapper:
    """How to wrap a stream, send one payload, and decode what the peer received."""

    wrap: Callable[[trio.SocketStream], Any]
    send: Callable[[Any, bytes], Awaitable[None]]
    decoder: Callable[[], Callable[[bytes], list[bytes]]]


def frame_decoder() -> Callable[[bytes], list[bytes]]:
    decoder = FrameDecoder()

    def feed(data: bytes) -> list[bytes]:
        decoder.receive_data(data)
        return decoder.frames()

    return feed


def message_decoder() -> Callable[[bytes], list[bytes]]:
    decoder = MessageDecoder()
    body = bytearray()

    def feed(data: bytes) -> list[bytes]:
        decoder.receive_data(data)
        bodies = []
        while True:
            event = decoder.next_event()
            if isinstance(event, BodyChunk):
                body.extend(event.data)
            elif isinstance(event, EndOfMessage):
                bodies.append(bytes(body))
                body.clear()
            elif not isinstance(event, Header):  # NEED_DATA, or the end
                return bodies

    return feed


WRAPPERS = {
    "FramedStream": Wrapper(FramedStream, lambda s, p: s.send(p), frame_decoder),
    "MessageStream": Wrapper(
        MessageStream, lambda s, p: s.send_message({"type": "t"}, p), message_decoder
    ),
}


@pytest.fixture(params=list(WRAPPERS))
def wrapper(request: pytest.FixtureRequest) -> Wrapper:
    return WRAPPERS[request.param]


async def read_frames(wrapper: Wrapper, stream: trio.SocketStream) -> list[bytes]:
    feed = wrapper.decoder()
    frames: list[bytes] = []
    while data := await stream.receive_some(65536):
        frames.extend(feed(data))
    return frames


async def test_small_frames_take_the_direct_write(
    wrapper: Wrapper, monkeypatch: pytest.MonkeyPatch, tcp_pair: TcpPair
) -> None:
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(_direct.os, "write", counting_write)
    client, server = await tcp_pair()
    sender = wrapper.wrap(client)
    for i in range(40):
        await wrapper.send(sender, b"%d" % i)
    await client.send_eof()
    assert await read_frames(wrapper, server) == [b"%d" % i for i in range(40)]
    assert len(writes) == 40


async def test_a_full_buffer_falls_back_to_send_all_and_keeps_order(
    wrapper: Wrapper, tcp_pair: TcpPair
) -> None:
    client, server = await tcp_pair(buffer=4096)
    sender = wrapper.wrap(client)
    frames = [bytes([i % 256]) * (i % 5000) for i in range(600)]  # ~1.5 MB: many EAGAINs
    received: list[bytes] = []

    async def slow_reader() -> None:
        received.extend(await read_frames(wrapper, server))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_reader)
        for frame in frames:
            await wrapper.send(sender, frame)
        await client.send_eof()
    assert received == frames


async def test_a_partial_write_sends_the_rest(
    wrapper: Wrapper, monkeypatch: pytest.MonkeyPatch, tcp_pair: TcpPair
) -> None:
    """The kernel takes 3 bytes of a frame: the other bytes follow, in order."""
    real_write = os.write
    monkeypatch.setattr(_direct.os, "write", lambda fd, data: real_write(fd, data[:3]))
    client, server = await tcp_pair()
    sender = wrapper.wrap(client)
    for frame in [b"hello", b"", b"x" * 1000]:
        await wrapper.send(sender, frame)
    await client.send_eof()
    assert await read_frames(wrapper, server) == [b"hello", b"", b"x" * 1000]


async def test_cancellation_is_checked_every_interval_and_loses_nothing(
    wrapper: Wrapper, tcp_pair: TcpPair
) -> None:
    client, server = await tcp_pair()
    sender = wrapper.wrap(client)
    sent = 0
    with trio.CancelScope() as scope:
        scope.cancel()
        for _ in range(CANCEL_CHECK_INTERVAL * 2):
            await wrapper.send(sender, b"f%d" % sent)
            sent += 1
    assert 0 < sent < CANCEL_CHECK_INTERVAL  # cancelled at the first checkpoint
    await wrapper.send(sender, b"after")  # not broken: nothing was half sent
    await client.send_eof()
    assert await read_frames(wrapper, server) == [b"f%d" % i for i in range(sent)] + [b"after"]


async def test_cancel_at_every_point_of_a_blocked_send(wrapper: Wrapper, tcp_pair: TcpPair) -> None:
    """With the buffer full, cancel each send after a growing delay: every frame that
    arrives is whole, and after a cancelled partial frame the stream refuses to send."""
    for delay_steps in range(1, 6):
        client, server = await tcp_pair(buffer=4096)
        sender = wrapper.wrap(client)
        frames = [bytes([65 + i % 26]) * 3000 for i in range(200)]
        done = 0
        broken = False
        for frame in frames:
            with trio.move_on_after(0.0005 * delay_steps):
                try:
                    await wrapper.send(sender, frame)
                    done += 1
                    continue
                except trio.BrokenResourceError:
                    broken = True
                    break
            try:
                await wrapper.send(sender, b"probe")
            except trio.BrokenResourceError:
                broken = True  # a frame was half written: no more sending
            break
        await trio.aclose_forcefully(client)
        arrived = await read_frames_until_eof_or_error(wrapper, server)
        assert arrived[:done] == frames[:done]
        assert all(f in (frames[min(i, len(frames) - 1)], b"probe") for i, f in enumerate(arrived))
        assert broken or len(arrived) >= done


async def read_frames_until_eof_or_error(
    wrapper: Wrapper, stream: trio.SocketStream
) -> list[bytes]:
    feed = wrapper.decoder()
    frames: list[bytes] = []
    try:
        while data := await stream.receive_some(65536):
            frames.extend(feed(data))
    except trio.BrokenResourceError:
        pass
    return frames


async def test_another_task_sending_is_busy_even_on_the_direct_path(
    wrapper: Wrapper, tcp_pair: TcpPair
) -> None:
    client, _ = await tcp_pair(buffer=4096)
    sender = wrapper.wrap(client)
    async with trio.open_nursery() as nursery:

        async def stuck() -> None:
            await wrapper.send(sender, b"x" * 2_000_000)  # blocks: nobody reads

        nursery.start_soon(stuck)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):  # noqa: PT012 - within the interval
            for _ in range(CANCEL_CHECK_INTERVAL + 1):
                await wrapper.send(sender, b"small")
        nursery.cancel_scope.cancel()


async def test_a_transport_closed_underneath_is_never_written_through_a_stale_descriptor(
    wrapper: Wrapper, tcp_pair: TcpPair
) -> None:
    client, _ = await tcp_pair()
    sender = wrapper.wrap(client)
    await client.aclose()  # closed directly, not through the wrapper
    other = socket.socket()  # likely to get the same descriptor number
    try:
        with pytest.raises(trio.ClosedResourceError):
            await wrapper.send(sender, b"must not reach another socket")
    finally:
        other.close()


async def test_a_peer_that_reset_breaks_the_stream_with_trios_error(
    wrapper: Wrapper, tcp_pair: TcpPair
) -> None:
    client, server = await tcp_pair()
    await reset(server)
    sender = wrapper.wrap(client)
    with pytest.raises(trio.BrokenResourceError):  # noqa: PT012 - the RST comes back later
        for _ in range(100):
            await wrapper.send(sender, b"into the void")
            await trio.sleep(0.001)
    with pytest.raises(trio.BrokenResourceError):
        await wrapper.send(sender, b"again")


async def test_a_send_after_eof_is_closed_as_send_all_says(
    wrapper: Wrapper, tcp_pair: TcpPair
) -> None:
    client, _server = await tcp_pair()
    sender = wrapper.wrap(client)
    await client.send_eof()
    with pytest.raises(trio.ClosedResourceError, match="can't send data after sending EOF"):
        await wrapper.send(sender, b"x")  # not written to the descriptor: no EPIPE, no Broken
