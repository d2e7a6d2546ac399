"""Every framing through one API: a spec string names it, the same wrappers carry it."""

from __future__ import annotations

import trio
from trio.testing import memory_stream_pair

import framekit


async def round_trip(spec: str, messages: list[bytes]) -> bytes:
    framing = framekit.parse_framing(spec)  # or DelimitedFormat.lines(), VarintFormat(), ...
    a, b = memory_stream_pair()
    sender = framekit.FramedStream(a, format=framing)
    receiver = framekit.FramedStream(b, format=framing)
    for message in messages:
        await sender.send(message)
    assert [await receiver.receive() for _ in messages] == messages
    return framing.encoder().encode(messages[0])  # what the first one looks like on the wire


async def http_like(stream: framekit.BufferedByteStream) -> tuple[bytes, bytes]:
    """Switch framing on one connection: a CRLF line header, then a raw body."""
    header = await stream.receive_until(b"\r\n", max_bytes=1024)
    size = int(header.removeprefix(b"LENGTH "))
    body = await stream.receive_exactly(size)
    return header, body


async def main() -> None:
    for spec in ["u32be", "i32le", "u24be", "lines", "crlf", "delim:0x00", "varint", "netstring"]:
        wire = await round_trip(spec, [b"hello", b"", b"world"])
        print(f"{spec:11} {wire!r}")

    # Netty's 4th example: a 2-byte header, then a 3-byte length; keep the header.
    netty = framekit.FrameFormat(3, offset=2, strip=0)
    decoder = netty.decoder()
    decoder.receive_data(b"\xca\xfe\x00\x00\x0cHELLO, WORLD")
    print("netty     ", decoder.frames())

    a, b = memory_stream_pair()
    await a.send_all(b"LENGTH 5\r\nhello")
    await a.send_all(framekit.FrameEncoder().encode(b"then frames"))
    stream = framekit.BufferedByteStream(b)
    print("header    ", await http_like(stream))
    # What follows is framed: wrap the buffered stream, nothing read so far is lost.
    print("framed    ", await framekit.FramedStream(stream).receive())


trio.run(main)
