"""The experiment behind ``framekit compare``: what a receiver gets, five ways.

The same messages are sent over loopback as raw TCP, raw TCP with a sleep between
sends, raw TCP with an acknowledgement per message, framekit-framed TCP, and UDP
datagrams; then a UDP burst larger than the receiving socket's buffer. Every way but the
acknowledgement (which cannot wait) reads on the same schedule, ``reader``:

* ``late``: the receiver starts once the sender is done, or as soon as the sender has
  stalled on full buffers (no progress for :data:`LATE_PATIENCE`), so any size completes;
* ``eager``: the receiver reads from the start, as fast as it can.

Everything is measured and returned as result objects; nothing is printed here, and every
note is computed from the figures it describes.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import trio

from ..streams import FramedStream
from ._conditions import Conditions, observe_conditions

__all__ = [
    "COMPARE_SCHEMA",
    "DEFAULT_SIZES",
    "LATE_PATIENCE",
    "MAX_MESSAGES",
    "MAX_MESSAGE_SIZE",
    "MAX_SLEEPING",
    "MAX_TOTAL",
    "BurstResult",
    "CompareOptions",
    "CompareReport",
    "Piece",
    "RepeatReport",
    "WayResult",
    "WayTally",
    "cycle_sizes",
    "run_compare",
    "run_compare_repeated",
]

#: Version of the ``--json`` document; bumped when a field changes meaning.
COMPARE_SCHEMA: Final = 2
#: Mixed sizes, one larger than the tutorials' ``recv(1024)``.
DEFAULT_SIZES: Final = (5, 12, 3000, 7, 40, 600, 1)
#: Every tutorial reads with ``recv(1024)``.
TUTORIAL_READ_SIZE: Final = 1024
#: Largest message: framekit's default frame limit.
MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
#: Most messages in one run.
MAX_MESSAGES: Final = 100_000
#: Most bytes in one run, all messages together: each way sends all of them.
MAX_TOTAL: Final = 256 * 1024 * 1024
#: Most reads one way may record (bytes / read size): each is kept for the picture.
MAX_READS: Final = 1_000_000
#: Largest UDP payload over IPv4: bigger messages cannot be datagrams.
MAX_DATAGRAM: Final = 65507
#: Most seconds the sleep hack may sleep in one run (sends x sleep); over it, that way is
#: skipped and the report says why.
MAX_SLEEPING: Final = 10.0
#: A late receiver starts when the sender has made no progress for this long: it has
#: filled the buffers between them and waits for the receiver.
LATE_PATIENCE: Final = 0.05
#: A rate over a shorter run than this says more about timer noise than the way.
MIN_RATE_SECONDS: Final = 0.1
#: Seconds a UDP receiver waits for one more datagram before it counts the rest lost.
UDP_QUIET: Final = 0.2

WayKey = Literal["raw", "sleep", "ack", "framed", "udp"]
Reader = Literal["late", "eager"]


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """Knobs of the experiment.

    Attributes:
        sizes: message sizes, sent in order (each 1 byte to 16 MiB; at most 100,000
            messages and 256 MiB in all).
        read_size: the receiver's read size (the tutorials' 1024).
        sleep: seconds between sends in the sleep hack.
        nodelay: ``TCP_NODELAY`` on the raw senders (``False``: Nagle's algorithm on).
        reader: when the receivers read: ``late`` (once the sender is done or stalled)
            or ``eager`` (from the start). The ack way always reads at once.
        burst: datagrams in the UDP burst (0 skips it).
        burst_size: bytes per burst datagram.
        burst_rcvbuf: receive buffer asked for on the burst's receiving socket.
        host: loopback address for the embedded receivers.
        tcp_echo: an existing TCP echo server to use instead of the embedded receivers
            (``framekit serve --tcp-echo-port``, or any echo that half-closes after EOF);
            the echoed bytes are what is read.
        udp_echo: an existing UDP echo server (``framekit serve``'s) for the datagrams.

    Raises:
        ValueError: an option is out of range; the message says which and why.
    """

    sizes: tuple[int, ...] = DEFAULT_SIZES
    read_size: int = TUTORIAL_READ_SIZE
    sleep: float = 0.02
    nodelay: bool = True
    reader: Reader = "late"
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
        if any(s > MAX_MESSAGE_SIZE for s in self.sizes):
            raise ValueError(f"message sizes must be at most {MAX_MESSAGE_SIZE} bytes (16 MiB)")
        if len(self.sizes) > MAX_MESSAGES:
            raise ValueError(
                f"at most {MAX_MESSAGES:,} messages in one run, not {len(self.sizes):,}"
            )
        total = sum(self.sizes)
        if total > MAX_TOTAL:
            raise ValueError(
                f"{total:,} bytes in all is over {MAX_TOTAL:,} (256 MiB): every way sends "
                "all of it; use fewer or smaller messages"
            )
        if self.read_size < 1:
            raise ValueError("read_size must be at least 1")
        if total / self.read_size > MAX_READS:
            raise ValueError(
                f"{total:,} bytes in reads of {self.read_size} would be over {MAX_READS:,} "
                "reads to record; use a larger read size or fewer bytes"
            )
        if self.reader not in ("late", "eager"):
            raise ValueError(f"reader must be 'late' or 'eager', not {self.reader!r}")
        if self.sleep < 0 or self.burst < 0 or not 1 <= self.burst_size <= MAX_DATAGRAM:
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
        reader: the schedule the receiver read on (``late`` or ``eager``).
        sent: sizes of the messages sent.
        received: sizes of what each receive returned, in order (for ``framed``: the
            payloads; for the others: each ``recv`` that returned data).
        origins: for UDP, the message each datagram was (lost ones are missing); empty
            for the TCP ways, whose bytes arrive in order.
        boundaries_kept: every receive returned whole (or, for UDP, truncated) single
            messages: none merged with another, none split over receives.
        merged: receives that held bytes of more than one message.
        split: messages whose bytes came in more than one receive.
        truncated: datagrams longer than the read size, cut to it (UDP).
        lost: datagrams that never arrived (UDP).
        bytes_lost: bytes sent that never arrived (UDP: truncated tails and lost
            datagrams).
        transport_reads: reads of the socket, the final one that saw the end included
            (framed: the ``receive_some`` calls underneath).
        elapsed: seconds from the first send to the last byte received.
        note: what happened and why, computed from the figures above.
    """

    key: WayKey
    title: str
    transport: Literal["tcp", "udp"]
    reader: Reader
    sent: tuple[int, ...]
    received: tuple[int, ...]
    origins: tuple[int, ...]
    boundaries_kept: bool
    merged: int
    split: int
    truncated: int
    lost: int
    bytes_lost: int
    transport_reads: int
    elapsed: float
    note: str

    @property
    def pieces(self) -> tuple[tuple[Piece, ...], ...]:
        """For each receive, which messages its bytes belong to (the picture).

        Computed when asked: a run of a million reads keeps only their sizes.
        """
        if self.transport == "udp":
            return tuple((Piece(m, n),) for m, n in zip(self.origins, self.received, strict=True))
        return attribute(self.sent, self.received)

    @property
    def messages_per_second(self) -> float | None:
        """Messages sent per second of elapsed time, if the run was long enough for a
        rate to mean something (``None`` under :data:`MIN_RATE_SECONDS`)."""
        if self.elapsed < MIN_RATE_SECONDS:
            return None
        return len(self.sent) / self.elapsed


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
    """One run of the experiment: one :class:`WayResult` per way, and the burst.

    Attributes:
        options: the knobs used.
        ways: the ways that ran, in order.
        burst: the UDP burst (``None`` with ``burst=0``).
        skipped: ways that did not run, and why (``udp`` for messages over 65,507 B;
            ``sleep`` when it would sleep over :data:`MAX_SLEEPING` seconds).
        conditions: the OS and socket settings the figures depend on.
        schema: version of :meth:`to_dict`'s document.
    """

    options: CompareOptions
    ways: tuple[WayResult, ...]
    burst: BurstResult | None
    skipped: dict[str, str] = field(default_factory=dict)
    conditions: Conditions | None = None
    schema: int = field(default=COMPARE_SCHEMA)

    def way(self, key: WayKey) -> WayResult:
        """The result of one way.

        Raises:
            KeyError: that way did not run (see :attr:`skipped`).
        """
        for way in self.ways:
            if way.key == key:
                return way
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the documented ``--json`` schema)."""
        ways = []
        for w in self.ways:
            d = asdict(w)
            del d["origins"]
            d["pieces"] = [[[p.message, p.length] for p in read] for read in w.pieces]
            d["messages_per_second"] = w.messages_per_second
            ways.append(d)
        burst = None
        if self.burst is not None:
            burst = asdict(self.burst) | {"lost": self.burst.lost}
        doc: dict[str, Any] = json_ready(
            {
                "schema": self.schema,
                "options": asdict(self.options),
                "ways": ways,
                "skipped": dict(self.skipped),
                "burst": burst,
                "conditions": None if self.conditions is None else asdict(self.conditions),
            }
        )
        return doc


@dataclass(frozen=True, slots=True)
class WayTally:
    """One way over many runs (:func:`run_compare_repeated`).

    Attributes:
        key: the way.
        title: its name.
        runs: runs counted.
        exact: runs in which every message arrived whole, in a receive of its own.
        kept: runs in which no receive held more than one message or part of one (UDP:
            always, even when datagrams were cut or lost).
        merged: runs with at least one merged receive.
        split: runs with at least one split message.
        lossy: runs that lost or truncated datagrams (UDP).
        elapsed: seconds of each run, in order.
    """

    key: WayKey
    title: str
    runs: int
    exact: int
    kept: int
    merged: int
    split: int
    lossy: int
    elapsed: tuple[float, ...]

    @property
    def elapsed_spread(self) -> tuple[float, float, float]:
        """(min, median, max) seconds."""
        return min(self.elapsed), statistics.median(self.elapsed), max(self.elapsed)


@dataclass(frozen=True, slots=True)
class RepeatReport:
    """The experiment run several times: how often each way kept, merged or split.

    Attributes:
        options: the knobs used.
        runs: the number of runs.
        ways: one tally per way.
        skipped: ways that could not run, and why.
        conditions: the OS and socket settings the figures depend on.
        schema: version of :meth:`to_dict`'s document.
    """

    options: CompareOptions
    runs: int
    ways: tuple[WayTally, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    conditions: Conditions | None = None
    schema: int = field(default=COMPARE_SCHEMA)

    def way(self, key: WayKey) -> WayTally:
        """The tally of one way.

        Raises:
            KeyError: that way did not run.
        """
        for way in self.ways:
            if way.key == key:
                return way
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (``compare --repeat N --json``)."""
        ways = []
        for w in self.ways:
            low, median, high = w.elapsed_spread
            ways.append(
                asdict(w) | {"elapsed_min": low, "elapsed_median": median, "elapsed_max": high}
            )
        doc: dict[str, Any] = json_ready(
            {
                "schema": self.schema,
                "options": asdict(self.options),
                "runs": self.runs,
                "ways": ways,
                "skipped": dict(self.skipped),
                "conditions": None if self.conditions is None else asdict(self.conditions),
            }
        )
        return doc


def json_ready(value: Any) -> Any:
    """Tuples become lists all the way down, so the dict is what JSON gives back."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def cycle_sizes(sizes: Sequence[int], count: int) -> tuple[int, ...]:
    """``count`` message sizes, going round ``sizes`` (for a longer experiment)."""
    if count < 1 or not sizes:
        raise ValueError("give at least one message size and a count of at least 1")
    return tuple(sizes[i % len(sizes)] for i in range(count))


def _messages(sizes: Sequence[int]) -> Iterator[bytes]:
    """Each message one repeated letter (a dump of the bytes shows where it went), made
    as it is sent: 256 MiB of messages never sit in memory at once."""
    for i, size in enumerate(sizes):
        yield bytes([ord("a") + i % 26]) * size


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


def _merged_and_split(sent: Sequence[int], received: Sequence[int]) -> tuple[int, int]:
    """Receives holding bytes of more than one message; messages spread over more than
    one receive. One pass, nothing kept (a run may have millions of reads)."""
    merged = split = 0
    index, left = 0, sent[0] if sent else 0
    started = False  # part of message ``index`` came in an earlier receive
    for size in received:
        messages = 0
        while size > 0 and index < len(sent):
            take = min(size, left)
            size -= take
            left -= take
            messages += 1
            if left:
                started = True  # the receive ended inside this message
                continue
            split += started
            started = False
            index += 1
            left = sent[index] if index < len(sent) else 0
        merged += messages > 1
    return merged, split


# -- notes: each sentence from the figures it states ------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _stream_note(key: WayKey, opts: CompareOptions, reads: int, merged: int, split: int) -> str:
    parts = []
    if merged:
        parts.append(f"{merged:,} of {_plural(reads, 'read')} held more than one message")
    if split:
        parts.append(
            f"{_plural(split, 'message')} came in pieces over several {opts.read_size}-byte reads"
        )
    if not parts:
        parts.append(
            "the one read returned the whole message"
            if reads == 1
            else f"each of the {reads:,} reads returned one whole message"
        )
    said = "; ".join(parts)
    pause = f"{opts.sleep * 1000:g} ms"
    if key == "raw":
        why = (
            "TCP keeps no boundaries: a read returns whatever has arrived, up to its size"
            if merged or split
            else "the receiver kept up this time, which TCP does not promise"
        )
    elif key == "sleep":
        if merged:
            why = (
                f"sleeping {pause} between sends did not keep them apart: the receiver "
                "read later than that"
            )
        elif split:
            why = "no sleep keeps a message longer than one read in one piece"
        elif opts.reader == "eager" and reads > 1:
            why = f"sleeping {pause} kept the sends apart only because the receiver read in between"
        else:
            why = f"the sleeps ({pause} each) cost time, not a guarantee"
    elif merged or split:
        why = (
            "the receiver acknowledges each read, not each message, so a message longer "
            "than one read lets the next send go early"
            if split
            else "an acknowledgement does not stop two sends from sharing a read"
        )
    else:
        why = "waiting for an ack after each send costs a round trip per message"
    return f"{said}: {why}"


# -- the ways -------------------------------------------------------------------------


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


@dataclass(slots=True)
class _Sender:
    """How far the sender has got, for a late receiver to see it stall."""

    sent: int = 0
    done: trio.Event = field(default_factory=trio.Event)


async def _when_to_read(sender: _Sender, reader: Reader) -> None:
    """Return when the receiver should start: at once (eager), or when the sender is
    done or has stalled on full buffers for :data:`LATE_PATIENCE` (late)."""
    if reader == "eager":
        return
    last = -1
    while not sender.done.is_set():
        with trio.move_on_after(LATE_PATIENCE):
            await sender.done.wait()
        if sender.sent == last:
            return  # no progress: the buffers are full, the sender waits for us
        last = sender.sent


async def _read_to_eof(stream: trio.SocketStream, read_size: int, reads: list[int]) -> int:
    """The tutorials' receive loop: ``recv(read_size)`` until the peer closes; the number
    of reads, the last (empty) one included."""
    calls = 0
    while True:
        chunk = await stream.receive_some(read_size)
        calls += 1
        if not chunk:
            return calls
        reads.append(len(chunk))


async def _plain(opts: CompareOptions, key: WayKey, title: str, pause: float) -> WayResult:
    """Raw TCP (``pause`` 0) or the sleep hack: every send as it is, read on schedule."""
    sender, receiver = await _tcp_link(opts)
    reads: list[int] = []
    calls = 0
    progress = _Sender()
    start = time.perf_counter()
    async with sender, receiver, trio.open_nursery() as nursery:

        async def receive() -> None:
            nonlocal calls
            await _when_to_read(progress, opts.reader)
            calls = await _read_to_eof(receiver, opts.read_size, reads)

        nursery.start_soon(receive)
        for message in _messages(opts.sizes):
            await sender.send_all(message)
            progress.sent += 1
            if pause:
                await trio.sleep(pause)
        progress.done.set()
        await sender.send_eof()
    return _stream_result(key, title, opts, reads, calls, time.perf_counter() - start)


def _stream_result(
    key: WayKey,
    title: str,
    opts: CompareOptions,
    received: Sequence[int],
    transport_reads: int,
    elapsed: float,
    note: str | None = None,
    reader: Reader | None = None,
) -> WayResult:
    sent = opts.sizes
    merged, split = _merged_and_split(sent, received)
    return WayResult(
        key=key,
        title=title,
        transport="tcp",
        reader=reader or opts.reader,
        sent=tuple(sent),
        received=tuple(received),
        origins=(),
        boundaries_kept=merged == 0 and split == 0,
        merged=merged,
        split=split,
        truncated=0,
        lost=0,
        bytes_lost=sum(sent) - sum(received),
        transport_reads=transport_reads,
        elapsed=elapsed,
        note=note or _stream_note(key, opts, len(received), merged, split),
    )


async def _ack(opts: CompareOptions) -> WayResult:
    """Each send waits for an acknowledgement. The receiver acknowledges every read with
    one byte; the sender's side drains them as they come, so a message that takes many
    reads (many acks) can never fill the buffers between them."""
    sender, receiver = await _tcp_link(opts)
    echo = opts.tcp_echo is not None
    reads: list[int] = []
    calls = 0
    acked = 0  # bytes the sender has seen come back: acks, or echoed bytes
    came = trio.Event()
    start = time.perf_counter()
    async with sender, receiver, trio.open_nursery() as nursery:

        async def receive() -> None:
            nonlocal calls
            while chunk := await receiver.receive_some(opts.read_size):
                calls += 1
                reads.append(len(chunk))
                await receiver.send_all(b"k")  # one acknowledgement byte per read
            calls += 1  # the read that saw the end
            await receiver.send_eof()

        async def acks() -> None:
            # Against an echo server the echoed bytes are both the acks and what is read.
            nonlocal acked, came, calls
            while True:
                chunk = await sender.receive_some(opts.read_size if echo else 65536)
                if echo:
                    calls += 1
                    if chunk:
                        reads.append(len(chunk))
                acked += len(chunk)
                came.set()
                came = trio.Event()
                if not chunk:
                    return

        if not echo:
            nursery.start_soon(receive)
        nursery.start_soon(acks)
        for message in _messages(opts.sizes):
            before = acked
            await sender.send_all(message)
            while acked == before:  # wait for the peer before the next send
                await came.wait()
        await sender.send_eof()
    # The receiver acknowledges each read at once: this way cannot read late.
    return _stream_result(
        "ack", "ack hack", opts, reads, calls, time.perf_counter() - start, reader="eager"
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


class FramingBroken(AssertionError):
    """framekit returned something other than what was sent: a bug, if ever seen."""


async def _framed(opts: CompareOptions) -> WayResult:
    sender, receiver = await _tcp_link(opts)
    counting = _CountingStream(receiver)
    got: list[int] = []
    progress = _Sender()
    start = time.perf_counter()
    async with (
        FramedStream(sender) as out,
        FramedStream(counting, receive_size=opts.read_size) as into,
        trio.open_nursery() as nursery,
    ):

        async def receive() -> None:
            await _when_to_read(progress, opts.reader)
            expected = _messages(opts.sizes)
            async for payload in into:
                if payload != next(expected, None):
                    raise FramingBroken(f"message {len(got)} came back changed")
                got.append(len(payload))

        nursery.start_soon(receive)
        for message in _messages(opts.sizes):
            await out.send(message)
            progress.sent += 1
        progress.done.set()
        await sender.send_eof()
    if len(got) != len(opts.sizes):
        raise FramingBroken(f"{len(got)} of {len(opts.sizes)} messages came back")
    note = (
        f"each of the {len(got):,} receives returned one whole message, whatever the "
        f"{counting.reads:,} reads of up to {opts.read_size} B underneath returned: a "
        "length before each message marks where it ends"
    )
    return _stream_result(
        "framed", "framekit", opts, got, counting.reads, time.perf_counter() - start, note
    )


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


async def _udp(opts: CompareOptions) -> WayResult:
    std_tx, std_rx = _udp_link(opts)
    tx, rx = trio.socket.from_stdlib_socket(std_tx), trio.socket.from_stdlib_socket(std_rx)
    sizes = opts.sizes
    reads: list[int] = []
    origins: list[int] = []
    progress = _Sender()
    calls = 0
    start = time.perf_counter()
    with tx, rx:
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                nonlocal calls
                await _when_to_read(progress, opts.reader)
                index = 0  # the next message a datagram can be (order is kept here)
                while index < len(sizes):
                    with trio.move_on_after(UDP_QUIET if progress.done.is_set() else 5):
                        data = await rx.recv(opts.read_size)
                        calls += 1
                        # Which message: the next one whose letter this datagram carries.
                        while index < len(sizes) and data[:1] != bytes([97 + index % 26]):
                            index += 1
                        reads.append(len(data))
                        origins.append(index)
                        index += 1
                        continue
                    if progress.done.is_set():
                        return  # quiet after the last send: the rest are lost

            nursery.start_soon(receive)
            for message in _messages(sizes):
                await tx.send(message)
                progress.sent += 1
                await trio.lowlevel.checkpoint()  # let an eager receiver run
            progress.done.set()
    elapsed = time.perf_counter() - start
    truncated = sum(1 for i, length in zip(origins, reads, strict=True) if length < sizes[i])
    lost = len(sizes) - len(origins)
    bytes_lost = sum(sizes) - sum(reads)
    parts = [f"{len(reads):,} of {len(sizes):,} datagrams arrived, one per recv"]
    if truncated:
        parts.append(
            f"{_plural(truncated, 'datagram')} longer than the {opts.read_size}-byte buffer "
            "lost its tail"
        )
    if lost:
        parts.append(f"{_plural(lost, 'datagram')} never arrived (the receive buffer overflowed)")
    kept = (
        "boundaries are kept, delivery is not"
        if lost or truncated
        else ("boundaries are kept (delivery is not promised)")
    )
    note = "; ".join(parts) + ": " + kept
    return WayResult(
        key="udp",
        title="UDP",
        transport="udp",
        reader=opts.reader,
        sent=tuple(sizes),
        received=tuple(reads),
        origins=tuple(origins),
        boundaries_kept=True,  # one datagram per recv, always: truncation is not merging
        merged=0,
        split=0,
        truncated=truncated,
        lost=lost,
        bytes_lost=bytes_lost,
        transport_reads=calls,
        elapsed=elapsed,
        note=note,
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
    (nothing to set up). With ``tcp_echo`` / ``udp_echo``, the TCP ways and the
    datagrams go through those servers. Messages over 65,507 bytes skip the UDP way
    (they cannot be datagrams); the report says so.
    """
    opts = options or CompareOptions()
    skipped: dict[str, str] = {}
    ways = [await _plain(opts, "raw", "raw TCP", 0)]
    sleeping = opts.sleep * len(opts.sizes)
    if sleeping > MAX_SLEEPING:
        skipped["sleep"] = (
            f"{len(opts.sizes):,} sends x {opts.sleep * 1000:g} ms would sleep "
            f"{sleeping:,.0f} s, over the {MAX_SLEEPING:g} s allowed: sleep less or send fewer"
        )
    else:
        ways.append(await _plain(opts, "sleep", "sleep hack", opts.sleep))
    ways += [await _ack(opts), await _framed(opts)]
    if max(opts.sizes) > MAX_DATAGRAM:
        skipped["udp"] = f"messages over {MAX_DATAGRAM:,} bytes cannot be UDP datagrams"
    else:
        ways.append(await _udp(opts))
    burst = await _burst(opts) if opts.burst else None
    conditions = await observe_conditions(
        host=opts.host, read_size=opts.read_size, nagle=not opts.nodelay
    )
    return CompareReport(
        options=opts, ways=tuple(ways), burst=burst, skipped=skipped, conditions=conditions
    )


async def run_compare_repeated(options: CompareOptions | None, runs: int) -> RepeatReport:
    """Run the experiment ``runs`` times; how often each way kept, merged or split.

    Raises:
        ValueError: ``runs`` is below 1.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    opts = options or CompareOptions()
    reports = [await run_compare(opts) for _ in range(runs)]
    tallies = []
    for first in reports[0].ways:
        results = [report.way(first.key) for report in reports]
        tallies.append(
            WayTally(
                key=first.key,
                title=first.title,
                runs=runs,
                exact=sum(r.boundaries_kept and not (r.truncated or r.lost) for r in results),
                kept=sum(r.boundaries_kept for r in results),
                merged=sum(r.merged > 0 for r in results),
                split=sum(r.split > 0 for r in results),
                lossy=sum(r.truncated > 0 or r.lost > 0 for r in results),
                elapsed=tuple(r.elapsed for r in results),
            )
        )
    return RepeatReport(
        opts, runs, tuple(tallies), dict(reports[0].skipped), conditions=reports[0].conditions
    )
