"""The experiment behind ``framekit compare``: what a receiver gets, five ways.

The same messages are sent over loopback as raw TCP (read in 1024-byte chunks after the
sender is done), raw TCP with a sleep between sends, raw TCP with an acknowledgement per
message, framekit-framed TCP, and UDP datagrams; then a UDP burst larger than the
receiving socket's buffer. Everything is measured and returned as a
:class:`CompareReport`; nothing is printed here.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import trio

from ..streams import FramedStream

__all__ = [
    "DEFAULT_SIZES",
    "REPORT_SCHEMA",
    "BurstResult",
    "CompareOptions",
    "CompareReport",
    "Piece",
    "WayResult",
    "cycle_sizes",
    "run_compare",
]

#: Version of the ``--json`` document; bumped when a field changes meaning.
REPORT_SCHEMA: Final = 1
#: Mixed sizes, one larger than the tutorials' ``recv(1024)``.
DEFAULT_SIZES: Final = (5, 12, 3000, 7, 40, 600, 1)
#: Every tutorial reads with ``recv(1024)``.
TUTORIAL_READ_SIZE: Final = 1024

WayKey = Literal["raw", "sleep", "ack", "framed", "udp"]


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """Knobs of the experiment.

    Attributes:
        sizes: message sizes, sent in order.
        read_size: the receiver's read size (the tutorials' 1024).
        sleep: seconds between sends in the sleep hack.
        nodelay: ``TCP_NODELAY`` on the raw senders (``False``: Nagle's algorithm on).
        burst: datagrams in the UDP burst (0 skips it).
        burst_size: bytes per burst datagram.
        burst_rcvbuf: receive buffer asked for on the burst's receiving socket.
        host: loopback address for the embedded receivers.
        tcp_echo: an existing TCP echo server to use instead of the embedded receivers
            (``framekit serve --tcp-echo-port``, or any echo that half-closes after EOF);
            the echoed bytes are what is read.
        udp_echo: an existing UDP echo server (``framekit serve``'s) for the datagrams.
    """

    sizes: tuple[int, ...] = DEFAULT_SIZES
    read_size: int = TUTORIAL_READ_SIZE
    sleep: float = 0.02
    nodelay: bool = True
    burst: int = 2000
    burst_size: int = 512
    burst_rcvbuf: int = 65536
    host: str = "127.0.0.1"
    tcp_echo: tuple[str, int] | None = None
    udp_echo: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ValueError("give at least one message size")
        if any(s < 1 for s in self.sizes):
            raise ValueError("message sizes must be at least 1 byte (an empty send sends nothing)")
        if any(s > 65507 for s in self.sizes):
            raise ValueError("message sizes must be at most 65507 bytes, so UDP can carry them")
        if self.read_size < 1:
            raise ValueError("read_size must be at least 1")
        if self.sleep < 0 or self.burst < 0 or not 1 <= self.burst_size <= 65507:
            raise ValueError("sleep and burst must be >= 0, burst_size from 1 to 65507")


@dataclass(frozen=True, slots=True)
class Piece:
    """Part of one read: ``length`` bytes of message number ``message``."""

    message: int
    length: int


@dataclass(frozen=True, slots=True)
class WayResult:
    """What the receiver got in one way of sending.

    Attributes:
        key: ``raw``, ``sleep``, ``ack``, ``framed`` or ``udp``.
        title: a short human name.
        transport: ``tcp`` or ``udp``.
        sent: sizes of the messages sent.
        received: sizes of what each receive returned, in order (for ``framed``: the
            payloads; for the others: each ``recv``).
        pieces: for each receive, which messages its bytes belong to (the visual strip).
        boundaries_kept: every receive returned exactly one whole message.
        merged: receives that held bytes of more than one message.
        split: messages whose bytes came in more than one receive.
        bytes_lost: bytes sent that never arrived (UDP truncation).
        transport_reads: reads of the socket (framed: ``receive_some`` calls underneath).
        elapsed: seconds from the first send to the last byte received.
        note: one line on what happened and why.
    """

    key: WayKey
    title: str
    transport: Literal["tcp", "udp"]
    sent: tuple[int, ...]
    received: tuple[int, ...]
    pieces: tuple[tuple[Piece, ...], ...]
    boundaries_kept: bool
    merged: int
    split: int
    bytes_lost: int
    transport_reads: int
    elapsed: float
    note: str

    @property
    def messages_per_second(self) -> float:
        """Messages sent per second of elapsed time."""
        return len(self.sent) / self.elapsed if self.elapsed > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class BurstResult:
    """A burst of datagrams sent faster than the receiver reads them.

    Attributes:
        sent: datagrams sent.
        received: datagrams the receiver got, each whole.
        size: bytes per datagram.
        rcvbuf: the receiving socket's buffer as the kernel reports it.
    """

    sent: int
    received: int
    size: int
    rcvbuf: int

    @property
    def lost(self) -> int:
        """Datagrams dropped because the receive buffer was full."""
        return self.sent - self.received


@dataclass(frozen=True, slots=True)
class CompareReport:
    """The whole experiment: one :class:`WayResult` per way, and the burst."""

    options: CompareOptions
    ways: tuple[WayResult, ...]
    burst: BurstResult | None
    schema: int = field(default=REPORT_SCHEMA)

    def way(self, key: WayKey) -> WayResult:
        """The result of one way."""
        return next(w for w in self.ways if w.key == key)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the documented ``--json`` schema)."""
        ways = []
        for w in self.ways:
            d = asdict(w)
            d["pieces"] = [[[p.message, p.length] for p in read] for read in w.pieces]
            d["messages_per_second"] = w.messages_per_second
            ways.append(d)
        burst = None
        if self.burst is not None:
            burst = asdict(self.burst) | {"lost": self.burst.lost}
        doc: dict[str, Any] = _lists(
            {"schema": self.schema, "options": asdict(self.options), "ways": ways, "burst": burst}
        )
        return doc


def _lists(value: Any) -> Any:
    """Tuples become lists all the way down, so the dict is what JSON gives back."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


def cycle_sizes(sizes: Sequence[int], count: int) -> tuple[int, ...]:
    """``count`` message sizes, going round ``sizes`` (for a longer experiment)."""
    if count < 1 or not sizes:
        raise ValueError("give at least one message size and a count of at least 1")
    return tuple(sizes[i % len(sizes)] for i in range(count))


def _messages(sizes: Sequence[int]) -> list[bytes]:
    # Each message is one repeated letter, so a dump of the bytes shows where it went.
    return [bytes([ord("a") + i % 26]) * size for i, size in enumerate(sizes)]


def attribute(sent: Sequence[int], received: Sequence[int]) -> tuple[tuple[Piece, ...], ...]:
    """Map each receive of a byte stream onto the messages its bytes came from."""
    pieces: list[tuple[Piece, ...]] = []
    index, left = 0, sent[0] if sent else 0
    for size in received:
        read: list[Piece] = []
        while size > 0 and index < len(sent):
            take = min(size, left)
            if take:
                read.append(Piece(index, take))
            size -= take
            left -= take
            if left == 0:
                index += 1
                left = sent[index] if index < len(sent) else 0
        pieces.append(tuple(read))
    return tuple(pieces)


def _stream_result(
    key: WayKey,
    title: str,
    sent: Sequence[int],
    received: Sequence[int],
    transport_reads: int,
    elapsed: float,
    note: str,
) -> WayResult:
    pieces = attribute(sent, received)
    merged = sum(1 for read in pieces if len({p.message for p in read}) > 1)
    reads_per_message: dict[int, int] = {}
    for read in pieces:
        for p in read:
            reads_per_message[p.message] = reads_per_message.get(p.message, 0) + 1
    split = sum(1 for n in reads_per_message.values() if n > 1)
    kept = tuple(received) == tuple(sent)
    return WayResult(
        key=key,
        title=title,
        transport="tcp",
        sent=tuple(sent),
        received=tuple(received),
        pieces=pieces,
        boundaries_kept=kept,
        merged=merged,
        split=split,
        bytes_lost=sum(sent) - sum(received),
        transport_reads=transport_reads,
        elapsed=elapsed,
        note=note,
    )


async def _tcp_pair(host: str, nodelay: bool) -> tuple[trio.SocketStream, trio.SocketStream]:
    listener = trio.socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    with listener:
        await listener.bind((host, 0))
        listener.listen(1)
        client = trio.socket.socket(listener.family)
        await client.connect(listener.getsockname())
        server, _ = await listener.accept()
    a, b = trio.SocketStream(client), trio.SocketStream(server)
    a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)
    return a, b


async def _tcp_link(opts: CompareOptions) -> tuple[trio.SocketStream, trio.SocketStream]:
    """(sender, receiver): a loopback pair, or one connection to an echo server (then the
    echoed bytes are what the "receiver" reads)."""
    if opts.tcp_echo is None:
        return await _tcp_pair(opts.host, opts.nodelay)
    stream = await trio.open_tcp_stream(*opts.tcp_echo)
    stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, opts.nodelay)
    return stream, stream


async def _read_to_eof(stream: trio.SocketStream, read_size: int, reads: list[int]) -> None:
    """The tutorials' receive loop: ``recv(read_size)`` until the peer closes."""
    while chunk := await stream.receive_some(read_size):
        reads.append(len(chunk))


async def _raw(opts: CompareOptions, messages: list[bytes]) -> WayResult:
    sender, receiver = await _tcp_link(opts)
    reads: list[int] = []
    start = time.perf_counter()
    async with sender, receiver:
        for m in messages:
            await sender.send_all(m)
        await sender.send_eof()
        await _read_to_eof(receiver, opts.read_size, reads)
    elapsed = time.perf_counter() - start
    return _stream_result(
        "raw",
        "raw TCP",
        opts.sizes,
        reads,
        len(reads) + 1,
        elapsed,
        f"small sends merged into one read; anything over {opts.read_size} B was cut into "
        f"{opts.read_size}-byte reads: TCP is a byte stream with no message boundaries",
    )


async def _sleep(opts: CompareOptions, messages: list[bytes]) -> WayResult:
    sender, receiver = await _tcp_link(opts)
    reads: list[int] = []
    start = time.perf_counter()
    async with sender, receiver, trio.open_nursery() as nursery:
        nursery.start_soon(_read_to_eof, receiver, opts.read_size, reads)
        for m in messages:
            await sender.send_all(m)
            await trio.sleep(opts.sleep)
        await sender.send_eof()
    elapsed = time.perf_counter() - start
    return _stream_result(
        "sleep",
        "sleep hack",
        opts.sizes,
        reads,
        len(reads) + 1,
        elapsed,
        f"sleeping {opts.sleep * 1000:g} ms after each send kept small messages apart, at the "
        "cost of that time per message; it cannot stop a large one from being split",
    )


async def _ack(opts: CompareOptions, messages: list[bytes]) -> WayResult:
    sender, receiver = await _tcp_link(opts)
    reads: list[int] = []
    start = time.perf_counter()
    async with sender, receiver, trio.open_nursery() as nursery:
        if opts.tcp_echo is None:

            async def receive() -> None:
                while chunk := await receiver.receive_some(opts.read_size):
                    reads.append(len(chunk))
                    await receiver.send_all(b"k")  # one acknowledgement byte per read

            nursery.start_soon(receive)
            for m in messages:
                await sender.send_all(m)
                await sender.receive_some(1)  # wait for the peer before the next send
            await sender.send_eof()
        else:
            # Against an echo server the first bytes of the echo are the acknowledgement.
            for m in messages:
                await sender.send_all(m)
                reads.append(len(await sender.receive_some(opts.read_size)))
            await sender.send_eof()
            await _read_to_eof(receiver, opts.read_size, reads)
    elapsed = time.perf_counter() - start
    return _stream_result(
        "ack",
        "ack hack",
        opts.sizes,
        reads,
        len(reads) + 1,
        elapsed,
        "waiting for an acknowledgement after each send costs a round trip per message, and "
        "a message longer than one read is still split (its ack comes after the first read)",
    )


class _CountingStream(trio.abc.Stream):
    """Counts the reads a FramedStream makes of its transport."""

    def __init__(self, inner: trio.SocketStream) -> None:
        self.inner = inner
        self.reads = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self.reads += 1
        return await self.inner.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _framed(opts: CompareOptions, messages: list[bytes]) -> WayResult:
    sender, receiver = await _tcp_link(opts)
    counting = _CountingStream(receiver)
    got: list[bytes] = []
    start = time.perf_counter()
    async with (
        FramedStream(sender) as fs,
        FramedStream(counting, receive_size=opts.read_size) as fr,
    ):
        await fs.send_many(messages)
        await sender.send_eof()
        async for payload in fr:
            got.append(payload)
    elapsed = time.perf_counter() - start
    assert got == messages, "framekit returned different messages"  # a bug if ever seen
    result = _stream_result(
        "framed",
        "framekit",
        opts.sizes,
        [len(p) for p in got],
        counting.reads,
        elapsed,
        "a 4-byte length before each message lets the receiver return exactly one whole "
        f"message per receive, whatever the reads ({counting.reads} of up to "
        f"{opts.read_size} B) returned",
    )
    return result


def _udp_link(opts: CompareOptions) -> tuple[socket.socket, socket.socket]:
    """(sender, receiver) datagram sockets: a local pair, or one socket talking to an echo."""
    target = opts.udp_echo
    family = socket.AF_INET6 if ":" in (target[0] if target else opts.host) else socket.AF_INET
    tx = socket.socket(family, socket.SOCK_DGRAM)
    if target is not None:
        tx.connect(target)
        return tx, tx
    rx = socket.socket(family, socket.SOCK_DGRAM)
    rx.bind((opts.host, 0))
    tx.connect(rx.getsockname())
    return tx, rx


async def _udp(opts: CompareOptions, messages: list[bytes]) -> WayResult:
    std_tx, std_rx = _udp_link(opts)
    tx, rx = trio.socket.from_stdlib_socket(std_tx), trio.socket.from_stdlib_socket(std_rx)
    with tx, rx:
        start = time.perf_counter()
        reads: list[int] = []
        pieces: list[tuple[Piece, ...]] = []
        for i, m in enumerate(messages):
            await tx.send(m)
            with trio.fail_after(5):
                data = await rx.recv(opts.read_size)
            reads.append(len(data))
            pieces.append((Piece(i, len(data)),))
        elapsed = time.perf_counter() - start
    lost = sum(opts.sizes) - sum(reads)
    truncated = sum(1 for s, r in zip(opts.sizes, reads, strict=True) if r < s)
    return WayResult(
        key="udp",
        title="UDP",
        transport="udp",
        sent=tuple(opts.sizes),
        received=tuple(reads),
        pieces=tuple(pieces),
        boundaries_kept=tuple(reads) == tuple(opts.sizes),
        merged=0,
        split=0,
        bytes_lost=lost,
        transport_reads=len(reads),
        elapsed=elapsed,
        note=(
            "each recvfrom returned exactly one datagram, never merged or split"
            + (
                f"; {truncated} datagram(s) longer than the {opts.read_size}-byte buffer lost "
                f"their tail ({lost} B)"
                if truncated
                else ""
            )
        ),
    )


async def _burst(opts: CompareOptions) -> BurstResult:
    tx, rx = _udp_link(opts)
    with tx, rx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, opts.burst_rcvbuf)
        payload = b"u" * opts.burst_size
        for _ in range(opts.burst):  # as fast as possible (blocking sends); nobody reads
            tx.send(payload)
        if opts.udp_echo is not None:
            await trio.sleep(0.2)  # let the remote echoes land (there is nothing to wait on)
        else:
            await trio.lowlevel.checkpoint()
        rx.setblocking(False)
        received = 0
        while True:
            try:
                data = rx.recv(65535)
            except BlockingIOError:
                break
            assert len(data) == opts.burst_size  # whole, or not at all
            received += 1
        rcvbuf = rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return BurstResult(sent=opts.burst, received=received, size=opts.burst_size, rcvbuf=rcvbuf)


async def run_compare(options: CompareOptions | None = None) -> CompareReport:
    """Run every way and return what the receivers saw.

    With no echo targets in ``options``, everything runs on embedded loopback receivers
    (nothing to set up, and the raw-TCP result is the same on every run). With
    ``tcp_echo`` / ``udp_echo``, the TCP ways and the datagrams go through those servers.
    """
    opts = options or CompareOptions()
    messages = _messages(opts.sizes)
    ways = (
        await _raw(opts, messages),
        await _sleep(opts, messages),
        await _ack(opts, messages),
        await _framed(opts, messages),
        await _udp(opts, messages),
    )
    burst = await _burst(opts) if opts.burst else None
    return CompareReport(options=opts, ways=ways, burst=burst)
