"""Every framing through the Trio wrappers: FramedStream, FramedChannel, serve_framed and
open_framed_stream take any Framing value, on memory streams and loopback TCP."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from trio.testing import memory_stream_pair

from framekit import (
    BufferedByteStream,
    FramedStream,
    FrameTooLarge,
    Framing,
    LocalProtocolError,
    open_framed_channel,
    open_framed_stream,
    parse_framing,
    serve_framed,
)

from .test_framed import send_in_random_chunks

SPECS = [
    "u32be",
    "u16le",
    "u24be",
    "i32le",
    "u16be:offset=1,adjust=1,strip=3,fill=0xca",
    "lines",
    "crlf",
    "delim:0x00",
    "varint",
    "netstring",
]


def sample(framing: Framing, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(100):
        data = rng.randbytes(rng.choice([0, 1, 10, 300]))
        if not (framing.spec.startswith(("lines", "crlf", "delim"))):
            out.append(data)
            continue
        out.append(data.replace(b"\n", b"").replace(b"\r", b"").replace(b"\x00", b""))
    if framing.spec.startswith("u16be:offset"):  # each decoded frame keeps its 1-byte header
        out = [b"\xfe" + p for p in out]
    return out


@pytest.mark.parametrize("spec", SPECS)
async def test_framed_stream_round_trips_every_framing(spec: str) -> None:
    framing = parse_framing(spec)
    a, b = memory_stream_pair()
    sender, receiver = FramedStream(a, format=framing), FramedStream(b, format=framing)
    expected = sample(framing, 1)
    got: list[bytes] = []

    async def receive_all() -> None:
        async for frame in receiver:
            got.append(frame)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive_all)
        for payload in expected[:50]:
            await sender.send(payload)
        await sender.send_many(expected[50:])
        await sender.aclose()
    assert got == expected


@pytest.mark.parametrize("spec", SPECS)
async def test_any_chunking_through_the_stream(spec: str) -> None:
    framing = parse_framing(spec)
    raw, other = memory_stream_pair()
    expected = sample(framing, 2)
    wire = framing.encoder().encode_many(expected)
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_in_random_chunks, raw, wire, 2)
        async for frame in FramedStream(other, format=framing):
            got.append(frame)
    assert got == expected


@pytest.mark.parametrize("spec", SPECS)
async def test_channel_and_tcp_server_take_every_framing(spec: str, nursery: trio.Nursery) -> None:
    framing = parse_framing(spec)

    async def echo(stream: FramedStream) -> None:
        async for frame in stream:
            await stream.send(frame)

    [(host, port)] = await nursery.start(
        lambda task_status: serve_framed(echo, 0, format=framing, task_status=task_status)
    )
    expected = sample(framing, 3)
    async with open_framed_channel(
        (await open_framed_stream(host, port, format=framing)).transport_stream, format=framing
    ) as channel:
        for payload in expected:
            await channel.send(payload)
        got = [await channel.receive() for _ in expected]
    assert got == expected


async def test_a_payload_holding_the_delimiter_is_refused_and_the_stream_stays_usable() -> None:
    a, b = memory_stream_pair()
    sender = FramedStream(a, format=parse_framing("lines"))
    with pytest.raises(LocalProtocolError):
        await sender.send(b"two\nlines")
    await sender.send(b"one line")
    assert await FramedStream(b, format=parse_framing("lines")).receive() == b"one line"


async def test_a_peer_that_never_ends_its_line_is_cut_off_at_the_limit() -> None:
    a, b = memory_stream_pair()
    receiver = FramedStream(b, format=parse_framing("lines:max=1K"))
    async with trio.open_nursery() as nursery:

        async def flood() -> None:
            with trio.move_on_after(5):
                for _ in range(1000):
                    await a.send_all(b"x" * 1000)

        nursery.start_soon(flood)
        with pytest.raises(FrameTooLarge):
            await receiver.receive()
        nursery.cancel_scope.cancel()
    assert receiver._decoder.buffered <= 1024 + 1 + 65536


async def test_detach_hands_over_decoded_frames_and_trailing_bytes() -> None:
    """A line protocol that switches to raw bytes mid-connection loses nothing."""
    a, b = memory_stream_pair()
    await a.send_all(b"HELLO\nUPGRADE\nqueued\nraw bytes, no newline")
    lines = FramedStream(b, format=parse_framing("lines"))
    assert await lines.receive() == b"HELLO"
    assert await lines.receive() == b"UPGRADE"
    handed = lines.detach()
    assert handed.frames == [b"queued"]
    assert handed.trailing == b"raw bytes, no newline"
    raw = BufferedByteStream(handed.transport_stream, initial=handed.trailing)
    await a.send_all(b"!")
    assert await raw.receive_exactly(22) == b"raw bytes, no newline!"
    async with lines:  # leaving it does not close the handed-over transport
        pass
    await handed.transport_stream.send_all(b"still open")
    with pytest.raises(trio.ClosedResourceError):
        await lines.receive()
    with pytest.raises(trio.ClosedResourceError):
        lines.detach()


async def test_detach_refuses_while_busy() -> None:
    _, b = memory_stream_pair()
    stream = FramedStream(b)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            stream.detach()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("spec", SPECS)
def test_every_decoder_reports_its_trailing_data(spec: str) -> None:
    framing = parse_framing(spec)
    decoder = framing.decoder()
    whole = framing.encoder().encode(sample(framing, 4)[1] if "offset" in spec else b"abc")
    decoder.receive_data(whole + whole[:2])
    assert len(decoder.frames()) == 1
    assert decoder.trailing_data == (whole[:2], False)
