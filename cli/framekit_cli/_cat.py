"""``framekit cat``: netcat for framed protocols.

Each stdin line (or ``--hex`` line, or ``--file``) goes out as one frame in the chosen
framing; each frame received is printed as one line (escaped), as a hexdump, or as a
JSON object. ``--listen`` serves the same.
"""

from __future__ import annotations

import base64
import math
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import trio
import typer

import framekit

from ._app import address, app, usage
from ._exit import (
    EXIT_FAILURE,
    EXIT_FRAMEKIT,
    EXIT_LISTEN,
    BadInput,
    describe,
    error_code,
    run_trio,
)
from ._output import print_json_line, write_bytes
from ._stdin import stdin_chunks

__all__ = ["cat", "escape_frame", "hexdump"]

# Everything that could break a line or fool a terminal: C0/C1 controls, DEL, the
# backslash itself, Unicode line/paragraph separators and bidi/format characters, and the
# stand-ins surrogateescape makes for bytes that are not UTF-8.
_UNSAFE = re.compile(
    "["
    + "\x00-\x1f\x7f-\x9f\\\\"  # C0, DEL, C1, backslash
    + "\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"  # invisible, bidi
    + "\udc80-\udcff"  # surrogateescape's bytes
    + "]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    # \xNN is kept for bytes (below, and for C0 controls); characters above get \uNNNN.
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def escape_frame(frame: bytes) -> str:
    """``frame`` as one printable line: UTF-8 text as it is, every control or invisible
    character and every byte that is not UTF-8 as a backslash escape (``\\n``, ``\\x00``,
    ``\\u202e``), a backslash doubled. The same escapes undo it."""
    return _UNSAFE.sub(_escape_char, frame.decode("utf-8", "surrogateescape"))


def hexdump(frame: bytes) -> list[str]:
    """``hexdump -C``'s lines for ``frame`` (offset, 16 bytes in two groups, ASCII)."""
    lines = []
    for offset in range(0, len(frame), 16):
        row = frame[offset : offset + 16]
        left = " ".join(f"{b:02x}" for b in row[:8])
        right = " ".join(f"{b:02x}" for b in row[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{offset:08x}  {left:<23}  {right:<23}  |{text}|")
    lines.append(f"{len(frame):08x}")
    return lines


@dataclass
class _Printer:
    """Renders received frames (text, hex or JSON) and counts them."""

    mode: str  # "text", "hex" or "json"
    prefix_peers: bool
    count: int | None
    received: int = 0
    done: trio.Event = field(default_factory=trio.Event)

    def frame(self, frame: bytes, peer: str) -> None:
        self.received += 1
        if self.mode == "json":
            doc: dict[str, object] = {"frame": self.received, "length": len(frame)}
            if self.prefix_peers:
                doc["peer"] = peer
            try:
                doc["text"] = frame.decode("utf-8")
            except UnicodeDecodeError:
                doc["base64"] = base64.b64encode(frame).decode("ascii")
            print_json_line(doc)
        else:
            tag = f"[{peer}] " if self.prefix_peers else ""
            if self.mode == "hex":
                lines = [f"{tag}frame {self.received}, {len(frame)} bytes", *hexdump(frame)]
            else:
                lines = [tag + escape_frame(frame)]
            write_bytes(sys.stdout.buffer, ("\n".join(lines) + "\n").encode("utf-8"))
        if self.count is not None and self.received >= self.count:
            self.done.set()


async def _input_frames(hex_input: bool, files: list[Path]) -> AsyncIterator[bytes]:
    """The frames to send: each file whole, else each stdin line (``--hex``: decoded).
    Lines are split by framekit's own line decoder (``\\n`` or ``\\r\\n``; a last line
    without one counts)."""
    for path in files:
        yield await trio.Path(path).read_bytes()
    if files:
        return
    lines = framekit.DelimitedFormat.lines(
        max_frame_size=framekit.DEFAULT_MAX_FRAME_SIZE * (2 if hex_input else 1), at_eof="return"
    ).decoder()
    number = 0
    async for chunk in _stdin_then_eof():
        lines.receive_data(chunk)
        try:
            ready = lines.frames()
        except framekit.FrameTooLarge as exc:
            raise BadInput(f"input line {number + 1} is too long: {exc}") from None
        for line in ready:
            number += 1
            if not hex_input:
                yield line
                continue
            try:
                yield bytes.fromhex(line.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                raise BadInput(
                    f"input line {number} is not hex bytes (e.g. 68 65 6c 6c 6f): "
                    f"{escape_frame(line[:40])}"
                ) from None


async def _stdin_then_eof() -> AsyncIterator[bytes]:
    async for chunk in stdin_chunks():
        yield chunk
    yield b""


@dataclass
class _Peers:
    """Open connections, for broadcasting our input to each (``--listen --keep-open``)."""

    streams: dict[str, framekit.FramedStream] = field(default_factory=dict)
    input_done: trio.Event = field(default_factory=trio.Event)


async def _send_input(
    frames: AsyncIterator[bytes] | None, peers: _Peers, framing: framekit.Framing
) -> None:
    """Send each input frame to every open connection, then half-close them."""
    if frames is not None:
        async for frame in frames:
            for name, stream in list(peers.streams.items()):
                try:
                    await stream.send(frame)  # refuses, sending nothing, what cannot be a frame
                except (framekit.FrameTooLarge, framekit.LocalProtocolError) as exc:
                    raise BadInput(
                        f"cannot send this input as a {framing.spec} frame: {exc}"
                    ) from None
                except trio.BrokenResourceError:
                    peers.streams.pop(name, None)
    peers.input_done.set()
    for stream in list(peers.streams.values()):
        await _half_close(stream)


async def _half_close(stream: framekit.FramedStream) -> None:
    """Tell the peer we are done sending (TCP FIN), keeping the read side open."""
    transport = stream.transport_stream
    while isinstance(transport, framekit.DeadlineStream):
        transport = transport.transport_stream
    if isinstance(transport, trio.abc.HalfCloseableStream):
        try:
            await transport.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` once ``event`` is set (``--count`` frames arrived)."""
    await event.wait()
    scope.cancel()


async def _receive(stream: framekit.FramedStream, peer: str, printer: _Printer) -> None:
    async for frame in stream:
        printer.frame(frame, peer)
        if printer.done.is_set():  # --count reached: frames already buffered stay unprinted
            return


def _wrap(
    transport: trio.abc.Stream, framing: framekit.Framing, idle: float
) -> framekit.FramedStream:
    bounded = framekit.DeadlineStream(
        transport, receive_timeout=idle, phase="waiting for a frame from the peer"
    )
    return framekit.FramedStream(bounded, format=framing)


async def _connect(
    host: str,
    port: int,
    framing: framekit.Framing,
    frames: AsyncIterator[bytes] | None,
    printer: _Printer,
    idle: float,
    connect_timeout: float,
) -> None:
    transport = await framekit.open_stream(
        host, port, retry=framekit.Retry(attempts=1, attempt_timeout=connect_timeout)
    )
    peer = framekit.format_address(host, port)
    async with _wrap(transport, framing, idle) as stream:
        peers = _Peers({peer: stream})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_send_input, frames, peers, framing)
            nursery.start_soon(_cancel_when, printer.done, nursery.cancel_scope)
            await _receive(stream, peer, printer)
            # Done when both sides are: the peer closed its side, and our input was sent.
            await peers.input_done.wait()
            nursery.cancel_scope.cancel()


async def _listen(
    host: str,
    port: int,
    framing: framekit.Framing,
    frames: AsyncIterator[bytes] | None,
    printer: _Printer,
    idle: float,
    keep_open: bool,
) -> None:
    listeners = await framekit.listen_tcp(port, host)
    bound = [framekit.format_address(*lst.socket.getsockname()[:2]) for lst in listeners]
    typer.echo(f"framekit cat: listening on {', '.join(bound)}", err=True)
    peers = _Peers()
    async with trio.open_nursery() as nursery:
        first_done = trio.Event()
        nursery.start_soon(_cancel_when, printer.done, nursery.cancel_scope)
        started_input = False

        async def handle(transport: trio.SocketStream) -> None:
            nonlocal started_input
            name = framekit.format_address(*transport.socket.getpeername()[:2])
            typer.echo(f"framekit cat: connection from {name}", err=True)
            stream = _wrap(transport, framing, idle)
            peers.streams[name] = stream
            if peers.input_done.is_set():
                await _half_close(stream)
            if not started_input:
                started_input = True
                nursery.start_soon(_send_input, frames, peers, framing)
            try:
                await _receive(stream, name, printer)
                # The peer is done sending; it may still read what our input holds.
                await peers.input_done.wait()
            except (trio.BrokenResourceError, framekit.ProtocolError) as exc:
                if not keep_open:
                    raise
                typer.echo(f"framekit cat: {name}: {describe(exc)}", err=True)
            finally:
                peers.streams.pop(name, None)
                await trio.aclose_forcefully(stream)
                first_done.set()

        async def accept_loop() -> None:
            if keep_open:
                await trio.serve_listeners(handle, listeners)
            else:  # one connection, as nc -l: stop listening once it is accepted
                transport = await listeners[0].accept()
                for lst in listeners:
                    await lst.aclose()
                await handle(transport)

        nursery.start_soon(accept_loop)
        if not keep_open:
            await first_done.wait()
            nursery.cancel_scope.cancel()


def _failure_code(exc: BaseException) -> int:
    if isinstance(exc, BadInput):
        return EXIT_FAILURE
    return EXIT_LISTEN if isinstance(exc, framekit.ListenError) else EXIT_FRAMEKIT


@app.command()
def cat(
    target: Annotated[
        str,
        typer.Argument(
            metavar="HOST:PORT",
            help="Where to connect; with --listen, [HOST:]PORT to listen on.",
            show_default=False,
        ),
    ],
    listen: Annotated[
        bool,
        typer.Option(
            "--listen", "-l", help="Listen instead (loopback unless HOST is given), as nc -l."
        ),
    ] = False,
    keep_open: Annotated[
        bool,
        typer.Option(
            "--keep-open",
            "-k",
            help="With --listen: serve connection after connection; input goes to all.",
        ),
    ] = False,
    framing: Annotated[
        str,
        typer.Option(
            "--framing",
            "-f",
            metavar="SPEC",
            help="The framing: u32be, u16be, u24be, i32le, lines, crlf, delim:0x00, varint, "
            "netstring, len:offset=2,width=3,...",
        ),
    ] = "u32be",
    hex_mode: Annotated[
        bool,
        typer.Option("--hex", "-x", help="Input lines are hex; print frames as hexdump -C."),
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json", help="One JSON object per frame: length, text (or base64 if not UTF-8)."
        ),
    ] = False,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            metavar="FILE",
            help="Send this file's bytes as one frame (repeatable); stdin is not read.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    no_stdin: Annotated[
        bool, typer.Option("-n", "--no-stdin", help="Send nothing; only print what arrives.")
    ] = False,
    count: Annotated[
        int | None,
        typer.Option("--count", "-c", metavar="N", help="Exit after N frames arrive.", min=1),
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout",
            "-w",
            metavar="SECONDS",
            help="Give up when the peer sends nothing for this long (as nc -w); also "
            "bounds connecting.",
            min=0.001,
        ),
    ] = None,
) -> None:
    """Send and receive frames in any framing: netcat for framed protocols.

    Each line of stdin is sent as one frame (--hex: a line of hex bytes; --file: a whole
    file); each frame that arrives is printed on one line, with control characters,
    invisible characters and bytes that are not UTF-8 escaped (\\n, \\x00, \\u202e), or as
    a hexdump (--hex) or JSON (--json). When the input ends our sending side is closed
    (TCP half-close); cat exits once the peer has closed its side too, or after --count
    frames.

    Examples:

    \b
      framekit cat 127.0.0.1:9000 --framing lines
      printf 'ping\\n' | framekit cat host:7000 -f u16be --count 1
      framekit cat --listen 9000 -f netstring --hex -k
    """
    try:
        fmt = framekit.parse_framing(framing)
    except framekit.InvalidFormat as exc:
        usage(f"--framing: {exc}")
    if keep_open and not listen:
        usage("--keep-open applies to --listen only")
    if hex_mode and json_out:
        usage("choose --hex or --json")
    if listen:
        text = f"127.0.0.1:{target}" if target.isdigit() else target
        host, port = address(text, 0)
    else:
        host, port = address(target, 0)
        if port == 0:
            usage(f"give HOST:PORT to connect to, not {target!r}")
    read_stdin = not no_stdin and not files and sys.stdin is not None and not sys.stdin.isatty()
    frames = _input_frames(hex_mode, files or []) if (files or read_stdin) else None
    printer = _Printer("json" if json_out else "hex" if hex_mode else "text", keep_open, count)
    idle = math.inf if idle_timeout is None else idle_timeout
    connect_timeout = 10.0 if idle_timeout is None else idle_timeout

    def on_error(exc: Exception) -> None:
        if json_out:
            print_json_line({"error": {"code": error_code(exc), "message": describe(exc)}})

    def run() -> None:
        if listen:
            trio.run(_listen, host, port, fmt, frames, printer, idle, keep_open)
        else:
            trio.run(_connect, host, port, fmt, frames, printer, idle, connect_timeout)

    run_trio(run, failure_code=_failure_code, on_error=on_error)
