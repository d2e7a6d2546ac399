"""framekit's framings against Twisted's own implementations, over loopback, both ways.

Each test runs a Twisted peer (``twisted_peer.py``) in a subprocess, never the reactor
here: as a server (it prints its port) that answers every message reversed, or as a
client that sends a fixed list of messages at once (so they merge on the wire) and
prints the replies. A reversed reply proves the peer cut the frame exactly where
framekit meant it; framekit's side checks what it received from Twisted the same way.

| Twisted                          | framekit                                |
| :-- | :-- |
| ``Int16StringReceiver``          | ``u16be`` (``FrameFormat(2)``)          |
| ``Int32StringReceiver``          | ``u32be`` (``FrameFormat()``)           |
| ``LineReceiver``                 | ``crlf``                                |
| ``LineReceiver``, ``b"\\n"``     | ``lines``                               |
| ``NetstringReceiver``            | ``netstring``                           |
| ``LineReceiver.setRawMode``      | ``BufferedByteStream``                  |
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
import trio

from framekit import (
    BufferedByteStream,
    FramedStream,
    FrameFormat,
    FrameTooLarge,
    IncompleteFrame,
    open_framed_stream,
    parse_framing,
    serve_framed,
)

pytest.importorskip(
    "twisted", reason="the interop tests need Twisted as the independent peer (framekit[test])"
)

from .twisted_peer import decode, describe, parse_items  # imports Twisted

PEER = Path(__file__).with_name("twisted_peer.py")
#: Seconds any one test may take, peers' start-up included.
TIMEOUT = 20
#: Longest line the BufferedByteStream sides accept (raw bodies are not lines).
MAX_LINE = 1024


@dataclass(frozen=True)
class Case:
    """One Twisted receiver, the framekit framing that speaks its wire format, and the
    payloads to exchange (arguments of :func:`twisted_peer.decode`)."""

    mode: str
    spec: str
    items: tuple[str, ...]


def hexes(*payloads: bytes) -> tuple[str, ...]:
    return tuple(p.hex() for p in payloads)


# Empty, one byte (0x00 and 0xff), every byte value, a payload that looks like a
# length-prefixed frame itself, and 20,000 bytes (framekit gathers prefix and payload
# into one sendmsg from 16 KiB on).
BINARY = ("", *hexes(b"\x00", b"\xff", bytes(range(256)), b"\x00\x00\x00\x05hello"), "gen:20000")
# Lines: no delimiter inside; a lone "\r" or "\n" is part of a crlf line, even at its
# ends. Nothing reads as "\r\n" reversed, since replies are reversed.
LINES = ("", *hexes(b"x", b"hello world", b"\x00\x01\xfe\xff\t"), "text:60000")
#: Many small messages, every tenth empty, sent in one go so TCP merges them.
BATCH = tuple((b"msg %d " % i + b"-" * (i % 50)).hex() if i % 10 else "" for i in range(300))

CASES = [
    # 65,535 bytes: the most a 2-byte length holds.
    Case("int16", "u16be", (*BINARY, "gen:65535")),
    # 1 MiB: framekit sends prefix and payload apart from this size on.
    Case("int32", "u32be", (*BINARY, "gen:1048576")),
    Case(
        "crlf",
        "crlf",
        (*LINES, *hexes(b"a\rb\nc", b"ends with cr\r", b"\nstarts with lf", b"\r", b"\n")),
    ),
    # Twisted keeps a "\r" before b"\n" in the line, framekit's "lines" strips it: none
    # of these has one (test_lf_trailing_cr shows the difference).
    Case("lf", "lines", LINES),
    Case("netstring", "netstring", (*BINARY, *hexes(b"12:hello world!,", b",:,"), "gen:200000")),
]

# Raw mode: "SIZE n" lines each followed by n raw bytes, and plain lines. The bodies
# hold "\r\n" and a "SIZE" line that must not be parsed, and one is far over
# LineReceiver.MAX_LENGTH (16 KiB), which must not apply to raw bytes.
RAW_ITEMS = (
    "line:" + b"hello".hex(),
    "block:" + b"ab\r\nSIZE 3\r\nc".hex(),
    "block:",
    "line:",
    "block:gen:300000",
    "line:" + b"after the block".hex(),
    "block:ff",
    "block:" + b"\r\n".hex(),
    "line:" + b"SIZE?".hex(),
)


# -- running the Twisted peer --------------------------------------------------------


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some():
        data += chunk
    return bytes(data)


@dataclass
class Lines:
    """The lines of a process's output, as they come (``b""`` once it ends)."""

    stream: trio.abc.ReceiveStream
    pending: bytearray = field(default_factory=bytearray)

    async def next(self) -> bytes:
        while b"\n" not in self.pending and (chunk := await self.stream.receive_some()):
            self.pending += chunk
        line, _, rest = bytes(self.pending).partition(b"\n")
        self.pending[:] = rest
        return line


@dataclass(frozen=True)
class TwistedServer:
    port: int
    stdout: Lines

    async def connection_report(self) -> tuple[int, int]:
        """Wait for the report of a connection that ended: how many reads of the socket
        brought how many messages to Twisted."""
        words = (await self.stdout.next()).split()
        assert words[0::2] == [b"READS", b"FRAMES"], words
        return int(words[1]), int(words[3])


@asynccontextmanager
async def twisted_server(mode: str) -> AsyncIterator[TwistedServer]:
    """Run the Twisted peer as a server for ``mode`` until the block ends, then kill it.

    Whatever it logged (a warning, an exception in a callback) fails the test.
    """
    process = await trio.lowlevel.open_process(
        [sys.executable, str(PEER), mode, "server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    logged = b""
    try:
        stdout = Lines(process.stdout)
        first = await stdout.next()  # "PORT n": it is listening
        assert first.startswith(b"PORT "), f"the Twisted {mode} server did not start: {first!r}"
        yield TwistedServer(int(first.split()[1]), stdout)
    finally:
        process.kill()
        with trio.move_on_after(5, shield=True):
            await process.wait()
            logged = await read_all(process.stderr)
            await process.stdout.aclose()
            await process.stderr.aclose()
        if logged:
            print(logged.decode(errors="replace"), file=sys.stderr)  # shown if it fails
    assert not logged, f"the Twisted {mode} server logged errors (see stderr)"


@dataclass(frozen=True)
class ClientRun:
    returncode: int
    lines: list[str]
    stderr: str


async def _kill_now(process: trio.Process) -> None:
    process.kill()


async def run_twisted_client(mode: str, port: int, items: Sequence[str]) -> ClientRun:
    """Run the Twisted peer as a client for ``mode`` until it exits (killed if cancelled)."""
    result = await trio.run_process(
        [sys.executable, str(PEER), mode, "client", str(port), *items],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        deliver_cancel=_kill_now,
    )
    return ClientRun(result.returncode, result.stdout.decode().splitlines(), result.stderr.decode())


def reversed_replies(kind: str, items: Sequence[str]) -> list[str]:
    """What the Twisted client prints when every item comes back reversed."""
    return [*(f"RECV {kind} {describe(decode(item)[::-1])}" for item in items), "DONE"]


@dataclass
class ReversingServer:
    """A framekit ``serve_framed`` server answering each frame reversed."""

    port: int = 0
    received: list[bytes] = field(default_factory=list)
    #: receive_many calls (each returns every frame decoded so far)
    batches: int = 0
    errors: list[Exception] = field(default_factory=list)

    async def handle(self, channel: FramedStream) -> None:
        try:
            while True:
                try:
                    payloads = await channel.receive_many()
                except trio.EndOfChannel:
                    return
                self.batches += 1
                for payload in payloads:
                    self.received.append(payload)
                    await channel.send(payload[::-1])
        except Exception as exc:
            self.errors.append(exc)
            raise


async def start_reversing_server(nursery: trio.Nursery, spec: str) -> ReversingServer:
    server = ReversingServer()
    serve = partial(serve_framed, server.handle, 0, format=parse_framing(spec))
    [(_, server.port)] = await nursery.start(serve)
    return server


# -- BufferedByteStream's side of the raw-mode protocol ------------------------------


def raw_encode(kind: str, payload: bytes) -> bytes:
    if kind == "line":
        return payload + b"\r\n"
    return b"SIZE %d\r\n" % len(payload) + payload


async def raw_receive_after(stream: BufferedByteStream, line: bytes) -> tuple[str, bytes]:
    """The item a line starts: itself, or the ``SIZE n`` header of n raw bytes."""
    if line.startswith(b"SIZE "):
        return "block", await stream.receive_exactly(int(line[5:]))
    return "line", line


async def raw_receive(stream: BufferedByteStream) -> tuple[str, bytes]:
    return await raw_receive_after(stream, await stream.receive_until(b"\r\n", MAX_LINE))


def described(items: Sequence[tuple[str, bytes]]) -> list[tuple[str, str]]:
    return [(kind, describe(payload)) for kind, payload in items]


# -- length prefixes, lines, netstrings ----------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.mode)
async def test_framekit_client_twisted_server(case: Case) -> None:
    payloads = [decode(item) for item in case.items]
    batch = [decode(item) for item in BATCH] + payloads
    with trio.fail_after(TIMEOUT):
        async with twisted_server(case.mode) as server:
            framing = parse_framing(case.spec)
            async with await open_framed_stream("127.0.0.1", server.port, format=framing) as conn:
                for payload in payloads:  # one at a time
                    await conn.send(payload)
                    assert describe(await conn.receive()) == describe(payload[::-1])
                await conn.send_many(batch)  # one send_all; Twisted answers in a burst too
                replies: list[bytes] = []
                batches = 0
                while len(replies) < len(batch):
                    replies += await conn.receive_many()  # every frame decoded so far
                    batches += 1
                assert [describe(r) for r in replies] == [describe(p[::-1]) for p in batch]
                with pytest.raises(trio.WouldBlock):  # and nothing more came
                    conn.receive_nowait()
            twisted_reads, twisted_frames = await server.connection_report()
    assert twisted_frames == len(payloads) + len(batch)
    # Both sides cut frames out of reads that held many: the merging was real.
    assert twisted_reads < twisted_frames
    assert batches < len(batch)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.mode)
async def test_twisted_client_framekit_server(case: Case, nursery: trio.Nursery) -> None:
    items = (*case.items, *BATCH)
    with trio.fail_after(TIMEOUT):
        server = await start_reversing_server(nursery, case.spec)
        run = await run_twisted_client(case.mode, server.port, items)
    assert not server.errors
    assert [describe(r) for r in server.received] == [describe(decode(item)) for item in items]
    assert server.batches < len(items)  # Twisted's burst came merged
    assert run.lines == reversed_replies("frame", items)
    assert (run.returncode, run.stderr) == (0, "")


@pytest.mark.parametrize(
    ("spec", "line"), [("lines", b"abc"), ("lf", b"abc\r")], ids=["lines-strips-cr", "lf-keeps-cr"]
)
async def test_lf_trailing_cr(spec: str, line: bytes, nursery: trio.Nursery) -> None:
    # Twisted's LineReceiver with delimiter b"\n" sends and keeps "abc\r"; framekit's
    # "lines" reads "\r\n" as a line end too (so gets "abc"), "lf" only "\n".
    items = hexes(b"abc\r", b"x")
    with trio.fail_after(TIMEOUT):
        server = await start_reversing_server(nursery, spec)
        run = await run_twisted_client("lf", server.port, items)
    assert not server.errors
    assert server.received == [line, b"x"]
    assert run.lines == [
        f"RECV frame {describe(line[::-1])}",
        f"RECV frame {describe(b'x')}",
        "DONE",
    ]
    assert (run.returncode, run.stderr) == (0, "")


# -- LineReceiver's raw mode against BufferedByteStream ------------------------------


async def test_buffered_stream_client_twisted_raw_mode_server() -> None:
    items = parse_items("raw", list(RAW_ITEMS))
    expected = described([(kind, payload[::-1]) for kind, payload in items])
    with trio.fail_after(TIMEOUT):
        async with twisted_server("raw") as server:
            stream = BufferedByteStream(await trio.open_tcp_stream("127.0.0.1", server.port))
            async with stream:
                # One at a time: Twisted switches mode between reads.
                for (kind, payload), want in zip(items, expected, strict=True):
                    await stream.send_all(raw_encode(kind, payload))
                    assert described([await raw_receive(stream)]) == [want]
                # All at once: Twisted switches mode inside one read, and its replies
                # arrive merged; framekit reads lines and bodies out of one buffer.
                await stream.send_all(b"".join(raw_encode(kind, p) for kind, p in items))
                assert described([await raw_receive(stream) for _ in items]) == expected
                assert stream.buffered == 0
            _, twisted_frames = await server.connection_report()
    assert twisted_frames == 2 * len(items)


async def test_twisted_raw_mode_client_buffered_stream_server(nursery: trio.Nursery) -> None:
    received: list[tuple[str, bytes]] = []

    async def reverse_raw(transport: trio.SocketStream) -> None:
        stream = BufferedByteStream(transport)
        while True:
            try:
                line = await stream.receive_until(b"\r\n", MAX_LINE)
            except IncompleteFrame as exc:
                if exc.received == 0:
                    return  # the client closed between items
                raise
            kind, payload = await raw_receive_after(stream, line)
            received.append((kind, payload))
            await stream.send_all(raw_encode(kind, payload[::-1]))

    with trio.fail_after(TIMEOUT):
        listeners = await nursery.start(partial(trio.serve_tcp, reverse_raw, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        run = await run_twisted_client("raw", port, RAW_ITEMS)
    items = parse_items("raw", list(RAW_ITEMS))
    assert described(received) == described(items)
    assert run.lines == [
        *(f"RECV {kind} {describe(payload[::-1])}" for kind, payload in items),
        "DONE",
    ]
    assert (run.returncode, run.stderr) == (0, "")


# -- limits --------------------------------------------------------------------------


async def test_twisted_int16_frame_over_the_limit_is_frame_too_large() -> None:
    # A 10-byte frame is within FrameFormat(2, max_frame_size=10); the next, 11 bytes,
    # is refused from its header.
    framing = FrameFormat(2, max_frame_size=10)
    items = hexes(b"0123456789", b"0123456789A")
    runs: list[ClientRun] = []

    async def client(port: int) -> None:
        runs.append(await run_twisted_client("int16", port, items))

    with trio.fail_after(TIMEOUT):
        [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        async with listener, trio.open_nursery() as nursery:
            nursery.start_soon(client, listener.socket.getsockname()[1])
            async with FramedStream(await listener.accept(), format=framing) as channel:
                first = await channel.receive()
                assert first == b"0123456789"
                await channel.send(first[::-1])
                with pytest.raises(FrameTooLarge) as info:
                    await channel.receive()
            # closed: the Twisted client sees the connection end before its 2nd reply
    assert (info.value.length, info.value.limit) == (11, 10)
    [run] = runs
    assert run.lines[0] == f"RECV frame {describe(b'9876543210')}"
    assert run.lines[1].startswith("LOST ") and len(run.lines) == 2
    assert (run.returncode, run.stderr) == (3, "")
