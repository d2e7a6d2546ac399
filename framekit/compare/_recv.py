"""What ``recv`` really does, shown live and measured on a loopback TCP connection.

Five observations, each on its own connection made with :mod:`trio.socket`, so every
figure is a real ``recv(n)`` call with an explicit size:

* ``blocks``: with nothing buffered, ``recv`` waits until the peer writes;
* ``buffered``: ``recv(n)`` returns what is buffered, up to ``n`` bytes, and leaves the
  rest for the next call (so several messages come out together);
* ``partial``: a ``recv(n)`` smaller than one message returns part of it, and the next
  call returns the rest;
* ``closed``: once the peer has closed and everything has been read, ``recv`` returns
  ``b''`` at once, every time;
* ``half_close``: a peer that called ``shutdown(SHUT_WR)`` can still receive.

Each message is one repeated letter (``a``, ``b``, ``c`` ...), so the bytes a call returned
show which messages they came from. Everything is returned as a :class:`RecvLesson`;
nothing is printed here.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from itertools import groupby
from typing import Any, Final, Literal

import trio

from ..streams._address import require_loopback
from ._conditions import Conditions, observe_conditions
from ._experiment import Piece, attribute

__all__ = [
    "RECV_SCHEMA",
    "RecvCall",
    "RecvLesson",
    "RecvOptions",
    "RecvStep",
    "run_recv_lesson",
]

#: Version of the lesson's ``to_dict()`` document; bumped when a field changes meaning.
RECV_SCHEMA: Final = 1
#: The messages of all the steps are sent before reading; this much always fits in the
#: loopback socket buffers, so no send has to wait for the reader.
_MAX_TOTAL: Final = 32768
#: How long to wait for sent bytes to show up in the receive buffer before reading. On
#: Linux and macOS a peek sees them at once; Winsock's peek may stop at an internal
#: buffer boundary (KB192599), and this bounds the wait there.
_SETTLE: Final = 0.1
_POLL: Final = 0.001
#: Runs of one letter shown in a preview before ``+ ...``.
_PREVIEW_RUNS: Final = 4

RecvKey = Literal["blocks", "buffered", "partial", "closed", "half_close"]
Caller = Literal["receiver", "sender"]
SenderEnd = Literal["open", "closed", "shut_wr"]


@dataclass(frozen=True, slots=True)
class RecvOptions:
    """Knobs of the recv lesson.

    Attributes:
        read_size: ``n`` in the receiver's ``recv(n)`` (the tutorials' 1024).
        small_read: a ``recv(n)`` smaller than the first message, for the ``partial`` step.
        wait: seconds the sender waits before writing in the ``blocks`` step, so the
            receiver's first ``recv`` visibly waits.
        sizes: sizes of the messages sent in the ``buffered`` and ``closed`` steps; in
            all, more than ``read_size``. The first is also the ``partial`` and
            ``half_close`` message.
        reply_size: bytes the receiver sends back to the half-closed sender.
        host: a loopback address (``127.0.0.1`` or ``::1``).
        timeout: seconds each step may take before :class:`trio.TooSlowError`.
    """

    read_size: int = 1024
    small_read: int = 100
    wait: float = 0.2
    sizes: tuple[int, ...] = (600, 300, 500)
    reply_size: int = 200
    host: str = "127.0.0.1"
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.read_size < 1:
            raise ValueError("read_size must be at least 1 (recv(0) returns b'' at once)")
        if not self.sizes or any(s < 1 for s in self.sizes):
            raise ValueError("give at least one message size, each at least 1 byte")
        if sum(self.sizes) > _MAX_TOTAL or self.reply_size > _MAX_TOTAL:
            raise ValueError(
                f"keep the message sizes, in all, and reply_size at most {_MAX_TOTAL} bytes, so "
                "everything fits in the socket buffers before reading starts"
            )
        if sum(self.sizes) <= self.read_size:
            raise ValueError(
                "the message sizes must add up to more than read_size, so one recv cannot "
                "take them all: give larger sizes or a smaller read_size"
            )
        if not 1 <= self.small_read < self.sizes[0]:
            raise ValueError(
                "small_read must be at least 1 and smaller than the first message size, so "
                "part of that message is left for the next recv"
            )
        if self.reply_size < 1:
            raise ValueError("reply_size must be at least 1 byte (an empty send sends nothing)")
        if not self.wait > 0:
            raise ValueError("wait must be more than 0 seconds, or recv has nothing to wait for")
        if not self.timeout > self.wait:
            raise ValueError("timeout must be longer than wait; the default is 5 seconds")
        require_loopback(self.host)


@dataclass(frozen=True, slots=True)
class RecvCall:
    """One ``recv(max_bytes)`` call and what it returned.

    Attributes:
        by: which end called ``recv``: ``receiver``, or ``sender`` (the half-closed end
            reading the reply).
        max_bytes: the size asked for.
        length: bytes returned; 0 is ``b''``.
        preview: the returned bytes as a Python expression, one term per run of a
            letter (``b'a'*600 + b'b'*300``); ``b''`` for none.
        pieces: which messages the bytes came from (indexes into the step's ``sent``, or
            ``replied`` for the sender's calls).
        left: bytes sent to this end that were still unread after the call.
        at: seconds from the start of the step to the call.
        blocked: seconds the call took.
    """

    by: Caller
    max_bytes: int
    length: int
    preview: str
    pieces: tuple[Piece, ...]
    left: int
    at: float
    blocked: float

    @property
    def eof(self) -> bool:
        """The call returned ``b''``: the peer will send nothing more."""
        return self.length == 0


@dataclass(frozen=True, slots=True)
class RecvStep:
    """One observation: what the sender did, each ``recv`` call, and what it shows.

    Attributes:
        key: ``blocks``, ``buffered``, ``partial``, ``closed`` or ``half_close``.
        title: the fact shown, in a few words.
        sent: sizes of the messages the sender wrote, one ``send`` each.
        sender_end: what the sender did after writing: ``open`` (nothing), ``closed``
            (``close()``) or ``shut_wr`` (``shutdown(SHUT_WR)``).
        sender_wrote_after: for ``blocks``, seconds from the receiver's ``recv`` call to
            the sender's write; otherwise ``None`` (everything was sent before reading).
        replied: sizes of what the receiver sent back (``half_close``), else empty.
        calls: every ``recv`` call, in order.
        note: one sentence on what happened, made from the figures above.
    """

    key: RecvKey
    title: str
    sent: tuple[int, ...]
    sender_end: SenderEnd
    sender_wrote_after: float | None
    replied: tuple[int, ...]
    calls: tuple[RecvCall, ...]
    note: str

    def calls_by(self, by: Caller) -> tuple[RecvCall, ...]:
        """The calls made by one end."""
        return tuple(c for c in self.calls if c.by == by)


@dataclass(frozen=True, slots=True)
class RecvLesson:
    """The whole lesson: the options used and one :class:`RecvStep` per observation."""

    options: RecvOptions
    steps: tuple[RecvStep, ...]
    #: The OS and socket settings the figures depend on.
    conditions: Conditions | None = None
    schema: int = field(default=RECV_SCHEMA)

    def step(self, key: RecvKey) -> RecvStep:
        """The result of one observation.

        Raises:
            KeyError: no step has that key.
        """
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: only dicts, lists, strings, numbers, booleans and None."""
        options = asdict(self.options) | {"sizes": list(self.options.sizes)}
        steps = [
            {
                "key": s.key,
                "title": s.title,
                "sent": list(s.sent),
                "sender_end": s.sender_end,
                "sender_wrote_after": s.sender_wrote_after,
                "replied": list(s.replied),
                "calls": [
                    {
                        "by": c.by,
                        "max_bytes": c.max_bytes,
                        "length": c.length,
                        "eof": c.eof,
                        "preview": c.preview,
                        "pieces": [[p.message, p.length] for p in c.pieces],
                        "left": c.left,
                        "at": c.at,
                        "blocked": c.blocked,
                    }
                    for c in s.calls
                ],
                "note": s.note,
            }
            for s in self.steps
        ]
        conditions = None if self.conditions is None else asdict(self.conditions)
        return {"schema": self.schema, "options": options, "steps": steps, "conditions": conditions}


# --- measuring ------------------------------------------------------------------------


def _messages(sizes: Sequence[int], upper: bool = False) -> list[bytes]:
    """One repeated letter per message, so the bytes show which message they came from."""
    return [_label(i, upper).encode() * size for i, size in enumerate(sizes)]


def _label(index: int, upper: bool = False) -> str:
    letter = chr(ord("a") + index % 26)
    return letter.upper() if upper else letter


def _preview(data: bytes) -> str:
    """``data`` as a short Python expression: ``b'a'*600 + b'b'*300``."""
    if not data:
        return "b''"
    runs = [(bytes([byte]), len(list(run))) for byte, run in groupby(data)]
    terms = [repr(chunk) if n == 1 else f"{chunk!r}*{n}" for chunk, n in runs[:_PREVIEW_RUNS]]
    return " + ".join(terms) + (" + ..." if len(runs) > _PREVIEW_RUNS else "")


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms" if ms >= 1 else f"{ms:.3f} ms"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _letters(pieces: Sequence[Piece]) -> str:
    names = [_label(p.message) for p in pieces]
    if len(names) < 2:
        return f"message {names[0]}" if names else "no message"
    return "messages " + ", ".join(names[:-1]) + " and " + names[-1]


class _Reader:
    """Timed ``recv`` calls on one end, checked against the bytes the other end sent."""

    def __init__(self, sock: trio.socket.SocketType, by: Caller, messages: list[bytes]) -> None:
        self.sock = sock
        self.by: Caller = by
        self.sizes = tuple(len(m) for m in messages)
        self.expected = b"".join(messages)
        self.got = 0
        self.records: list[tuple[int, bytes, float, float]] = []

    async def recv(self, max_bytes: int) -> bytes:
        start = time.perf_counter()
        data = await self.sock.recv(max_bytes)
        blocked = time.perf_counter() - start
        if data != self.expected[self.got : self.got + len(data)]:
            raise RuntimeError(f"recv returned bytes that were not sent in this order: {data!r}")
        self.got += len(data)
        self.records.append((max_bytes, data, start, blocked))
        return data

    async def drain(self, max_bytes: int) -> None:
        """``recv(max_bytes)`` until every byte sent to this end has been returned."""
        while self.got < len(self.expected):
            if not await self.recv(max_bytes):
                raise RuntimeError(
                    f"the connection ended after {self.got} of {len(self.expected)} bytes"
                )

    def calls(self, step_start: float) -> list[RecvCall]:
        pieces = attribute(self.sizes, [len(data) for _, data, _, _ in self.records])
        calls, got = [], 0
        for (max_bytes, data, start, blocked), piece in zip(self.records, pieces, strict=True):
            got += len(data)
            calls.append(
                RecvCall(
                    by=self.by,
                    max_bytes=max_bytes,
                    length=len(data),
                    preview=_preview(data),
                    pieces=piece,
                    left=len(self.expected) - got,
                    at=start - step_start,
                    blocked=blocked,
                )
            )
        return calls


@asynccontextmanager
async def _link(
    host: str,
) -> AsyncIterator[tuple[trio.socket.SocketType, trio.socket.SocketType, socket.socket]]:
    """A loopback connection: (sender, receiver, the receiver's stdlib socket for peeks).

    Both ends are closed on the way out, whatever happened.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as plain, trio.socket.from_stdlib_socket(plain) as receiver:
        with trio.socket.socket(family) as listener:
            await listener.bind((host, 0))
            listener.listen(1)
            await receiver.connect(listener.getsockname())
            sender, _ = await listener.accept()
        with sender:
            # Every send leaves at once as its own segment; merging happens in the
            # receiver's buffer, which is the point.
            for end in (sender, receiver):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            yield sender, receiver, plain


async def _send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[await sock.send(view) :]


async def _settle(plain: socket.socket, n: int) -> None:
    """Wait, briefly, until a peek sees ``n`` bytes in the receive buffer (not consumed)."""
    with trio.move_on_after(_SETTLE):
        while True:
            try:
                if len(plain.recv(n, socket.MSG_PEEK)) >= n:
                    return
            except BlockingIOError:  # nothing buffered yet (the socket is non-blocking)
                pass
            await trio.sleep(_POLL)


async def _blocks(opts: RecvOptions) -> RecvStep:
    message = _messages(opts.sizes[:1])[0]
    wrote: list[float] = []
    async with _link(opts.host) as (sender, receiver, _):
        reader = _Reader(receiver, "receiver", [message])
        start = time.perf_counter()

        async def write_later() -> None:
            await trio.sleep(opts.wait)
            wrote.append(time.perf_counter())
            await _send_all(sender, message)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_later)
            await reader.recv(opts.read_size)  # called at once: nothing is buffered yet
    call = reader.calls(start)[0]
    after = wrote[0] - reader.records[0][2]
    note = (
        f"recv({call.max_bytes}) waited {_ms(call.blocked)}: nothing was buffered until the "
        f"sender wrote, {_ms(after)} after the call; then it returned the {call.length} B "
        "that had arrived"
    )
    if call.left:
        note += f", and left {call.left} B for the next call"
    return RecvStep(
        key="blocks",
        title="recv waits while nothing is buffered",
        sent=(len(message),),
        sender_end="open",
        sender_wrote_after=after,
        replied=(),
        calls=(call,),
        note=note,
    )


async def _buffered(opts: RecvOptions) -> RecvStep:
    messages = _messages(opts.sizes)
    async with _link(opts.host) as (sender, receiver, plain):
        reader = _Reader(receiver, "receiver", messages)
        start = time.perf_counter()
        for m in messages:
            await _send_all(sender, m)
        await _settle(plain, sum(opts.sizes))
        await reader.drain(opts.read_size)
    calls = reader.calls(start)
    returned = "; then ".join(
        f"{c.length} B ({_letters(c.pieces)}), {c.left} B left" for c in calls
    )
    note = (
        f"{len(messages)} messages ({sum(opts.sizes)} B) were sent before reading; "
        f"recv({opts.read_size}) returned {returned}: what a call left came in the next "
        f"call, the largest returned {max(c.length for c in calls)} B of the "
        f"{opts.read_size} asked for, and none waited longer than "
        f"{_ms(max(c.blocked for c in calls))}"
    )
    return RecvStep(
        key="buffered",
        title="recv returns what is buffered, up to its size, and leaves the rest",
        sent=opts.sizes,
        sender_end="open",
        sender_wrote_after=None,
        replied=(),
        calls=tuple(calls),
        note=note,
    )


async def _partial(opts: RecvOptions) -> RecvStep:
    message = _messages(opts.sizes[:1])[0]
    async with _link(opts.host) as (sender, receiver, plain):
        reader = _Reader(receiver, "receiver", [message])
        start = time.perf_counter()
        await _send_all(sender, message)
        await _settle(plain, len(message))
        await reader.recv(opts.small_read)
        await reader.drain(opts.read_size)
    first, *rest = reader.calls(start)
    next_calls = f"the next {len(rest)} calls" if len(rest) > 1 else "the next call"
    note = (
        f"recv({first.max_bytes}) returned {first.length} B of the {len(message)} B "
        f"{_letters(first.pieces)} and left {first.left} B; {next_calls}, "
        f"recv({opts.read_size}), returned {', '.join(f'{c.length} B' for c in rest)}"
    )
    if rest[-1].length < rest[-1].max_bytes:
        note += f" ({rest[-1].max_bytes - rest[-1].length} B fewer than asked for)"
    note += f", in at most {_ms(max(c.blocked for c in rest))}"
    return RecvStep(
        key="partial",
        title="a recv smaller than the message returns part of it; the next, the rest",
        sent=(len(message),),
        sender_end="open",
        sender_wrote_after=None,
        replied=(),
        calls=(first, *rest),
        note=note,
    )


async def _closed(opts: RecvOptions) -> RecvStep:
    messages = _messages(opts.sizes)
    async with _link(opts.host) as (sender, receiver, plain):
        reader = _Reader(receiver, "receiver", messages)
        start = time.perf_counter()
        for m in messages:
            await _send_all(sender, m)
        sender.close()
        await _settle(plain, sum(opts.sizes))
        await reader.drain(opts.read_size)
        # Everything is read; wait until the sender's close has arrived too (readable
        # with nothing buffered), so what is timed next is recv at the end of the stream.
        await trio.lowlevel.wait_readable(receiver)
        for _ in range(2):
            await reader.recv(opts.read_size)
    calls = reader.calls(start)
    data = [c for c in calls if not c.eof]
    empty = [c for c in calls if c.eof]
    longest = _ms(max(c.blocked for c in empty))
    note = (
        f"the sender wrote {sum(opts.sizes)} B and closed; recv({opts.read_size}) returned "
        f"the last bytes ({', '.join(f'{c.length} B' for c in data)}), then b'' "
        f"{_count(len(empty), 'time')} in a row, each in at most {longest}: b'' means the "
        "stream has ended, never an empty message"
    )
    return RecvStep(
        key="closed",
        title="after the peer closes and the buffer is drained, recv returns b''",
        sent=opts.sizes,
        sender_end="closed",
        sender_wrote_after=None,
        replied=(),
        calls=tuple(calls),
        note=note,
    )


async def _half_close(opts: RecvOptions) -> RecvStep:
    request = _messages(opts.sizes[:1])[0]
    reply = _messages([opts.reply_size], upper=True)[0]
    async with _link(opts.host) as (sender, receiver, _):
        on_receiver = _Reader(receiver, "receiver", [request])
        on_sender = _Reader(sender, "sender", [reply])
        start = time.perf_counter()
        await _send_all(sender, request)
        sender.shutdown(socket.SHUT_WR)  # "I have finished sending; I am still listening"
        while await on_receiver.recv(opts.read_size):  # until b'': the sender's end of data
            pass
        await _send_all(receiver, reply)
        receiver.shutdown(socket.SHUT_WR)
        while await on_sender.recv(opts.read_size):  # the half-closed end reads the reply
            pass
    calls = on_receiver.calls(start) + on_sender.calls(start)
    answer = [c for c in calls if c.by == "sender" and not c.eof]
    got = sum(c.length for c in answer)
    share = "all of it" if got == len(reply) else f"only {got} B of it"
    note = (
        f"the sender wrote {len(request)} B and called shutdown(SHUT_WR); the receiver read "
        f"{on_receiver.got} B, then b'' (the sender's end of data), and sent a {len(reply)} B "
        f"reply: the half-closed sender received {share} in {_count(len(answer), 'call')}, "
        "then b''"
    )
    return RecvStep(
        key="half_close",
        title="a half-closed peer can still receive",
        sent=(len(request),),
        sender_end="shut_wr",
        sender_wrote_after=None,
        replied=(len(reply),),
        calls=tuple(calls),
        note=note,
    )


async def run_recv_lesson(options: RecvOptions | None = None) -> RecvLesson:
    """Show, on loopback, what ``recv`` does, and measure it.

    Each step runs on a fresh connection, under ``trio.fail_after(options.timeout)``,
    and closes its sockets whatever happens. It takes a little over ``options.wait``.

    Args:
        options: the knobs; the defaults read with ``recv(1024)`` as the tutorials do.

    Returns:
        One :class:`RecvStep` per observation, in the order ``blocks``, ``buffered``,
        ``partial``, ``closed``, ``half_close``.

    Raises:
        trio.TooSlowError: a step took longer than ``options.timeout``.
        OSError: the loopback connection could not be made.
        RuntimeError: ``recv`` returned bytes that were not sent in that order (a broken
            TCP stack, or a bug here).
    """
    opts = options or RecvOptions()
    steps = []
    for step in (_blocks, _buffered, _partial, _closed, _half_close):
        with trio.fail_after(opts.timeout):
            steps.append(await step(opts))
    conditions = await observe_conditions(host=opts.host, read_size=opts.read_size, nagle=False)
    return RecvLesson(options=opts, steps=tuple(steps), conditions=conditions)
