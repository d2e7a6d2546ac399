"""The benchmark's peers: one small runner per implementation, run as worker processes.

``framing.py`` starts two workers per case - a receiver (the server) and a sender (the
client) - and drives them over their stdin/stdout, one line per command:

    python bench/peers.py recv IMPL MODE SIZE TIMEOUT CPU   prints "PORT n", then per trial:
        "RUN count"            -> accepts, prints "READY", runs, prints "RESULT {json}"
    python bench/peers.py send IMPL MODE SIZE TIMEOUT CPU   per trial:
        "RUN port count"       -> connects, prints "CONNECTED", waits for "GO",
                                  runs, prints "RESULT {json}"

(CPU: the CPU to pin the worker to, or "-".)

The wire format is framekit's default: a 4-byte unsigned big-endian length, then the
payload. Every receiver checks what it got - the exact number of frames and bytes, the
content of a sample of frames and a clean end of stream after the last frame - and
raises :class:`BenchError` otherwise, so a peer that mis-frames fails the run instead of
reporting a number. Timing runs from the first frame received to the last one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

PREFIX = struct.Struct("!I")
pack = PREFIX.pack
unpack_from = PREFIX.unpack_from

ONEWAY = "oneway"
PINGPONG = "pingpong"
#: Payloads at least this big are sent apart from their prefix instead of being copied.
BIG = 64 * 1024
#: Receivers check the content of every frame whose index is a multiple of this (+ last).
SAMPLE_EVERY = 1024
VARIANTS = 3  # frame i carries pool[i % VARIANTS], so a shifted or swapped frame shows
#: Bytes asked per read by the coalescing blocking pair (of 64, 128, 256 and 512 KiB,
#: 64-128 KiB were fastest for it here: bigger ``recv`` buffers leave the CPU cache).
BULK_RECEIVE_SIZE = 128 * 1024
#: The coalescing blocking sender's user-space buffer: sent once it holds this much.
COALESCE_BUFFER = 64 * 1024
#: Bytes asked per read by the raw ceilings (128 KiB-1 MiB were alike, 64 KiB slower).
RAW_RECEIVE_SIZE = 256 * 1024
#: Chunk the raw (unframed) senders write with: the payload size, at least this.
RAW_CHUNK = 64 * 1024
#: asyncio StreamReader limit: above the largest frame, so readexactly never has to
#: pause and resume the transport in the middle of one.
ASYNCIO_LIMIT = 8 * 1024 * 1024
#: asyncio sender: call drain() after this many bytes written.
ASYNCIO_DRAIN_EVERY = 64 * 1024
#: Twisted's default MAX_LENGTH (99,999) would refuse the big frames.
TWISTED_MAX_LENGTH = 16 * 1024 * 1024
#: Bytes of frames Twisted's pull producer writes each time the transport asks.
TWISTED_PULL_CHUNK = 64 * 1024

Result = dict[str, Any]


class BenchError(Exception):
    """A peer delivered the wrong frames: lost, extra, mis-sized or corrupted."""


def make_pool(size: int) -> tuple[bytes, ...]:
    """``VARIANTS`` distinct payloads of ``size`` bytes."""
    pool = []
    for j in range(VARIANTS):
        seed = bytes((j * 71 + k * 13 + 1) & 0xFF for k in range(256))
        pool.append((seed * (size // 256 + 1))[:size])
    return tuple(pool)


@dataclass
class Plan:
    """One trial, as seen by one worker."""

    role: str  # "recv" or "send"
    mode: str  # ONEWAY or PINGPONG
    size: int
    count: int
    ready: Callable[[], None] = lambda: None  # receivers call it once set up to receive
    pool: tuple[bytes, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.pool = make_pool(self.size)

    @property
    def batch(self) -> int:
        """Frames per batch for the batch senders: about 64 KiB of frames."""
        return max(1, 65536 // (self.size + PREFIX.size))

    def frames(self) -> list[bytes]:
        return (list(self.pool) * (self.count // VARIANTS + 1))[: self.count]

    def batches(self) -> list[list[bytes]]:
        frames, b = self.frames(), self.batch
        return [frames[i : i + b] for i in range(0, len(frames), b)]


@dataclass(frozen=True)
class Impl:
    name: str
    run: Callable[[socket.socket, Plan], Result]
    description: str
    sizes: tuple[int, ...] | None = None  # one-way sizes it runs at (None: all)
    pingpong: bool = True


SMALL = (64, 1024)


def check(plan: Plan, i: int, payload: bytes | bytearray) -> None:
    if payload != plan.pool[i % VARIANTS]:
        raise BenchError(
            f"frame {i}: wrong payload ({len(payload)} bytes, expected {plan.size}; "
            f"starts {bytes(payload[:8])!r}, expected {plan.pool[i % VARIANTS][:8]!r})"
        )


def measured(
    plan: Plan, frames: int, nbytes: int, first_frames: int, first_bytes: int, t0: float, t1: float
) -> Result:
    """The receiver's report; raises unless exactly the planned frames and bytes came."""
    if frames != plan.count or nbytes != plan.count * plan.size:
        raise BenchError(
            f"received {frames} frames / {nbytes} bytes, "
            f"expected {plan.count} frames / {plan.count * plan.size} bytes"
        )
    return {
        "frames_total": frames,
        "bytes_total": nbytes,
        "frames": frames - first_frames,
        "bytes": nbytes - first_bytes,
        "elapsed": t1 - t0,
    }


def extra_data(what: object) -> BenchError:
    return BenchError(f"data after the last expected frame: {what!r:.80}")


# -- the generic loops: async (any event loop) and blocking ---------------------------------
#
# They take the implementation's own per-frame (or per-batch) calls, so the per-frame
# work is exactly what a user of that library writes: its call, plus counting bytes.


async def consume(receive: Callable[[], Awaitable[bytes]], plan: Plan) -> Result:
    count = plan.count
    plan.ready()
    p = await receive()
    t0 = perf_counter()
    first = nbytes = len(p)
    check(plan, 0, p)
    for i in range(1, count):
        p = await receive()
        nbytes += len(p)
        if not i % SAMPLE_EVERY:
            check(plan, i, p)
    t1 = perf_counter()
    check(plan, count - 1, p)
    return measured(plan, count, nbytes, 1, first, t0, t1)


async def consume_batches(receive_many: Callable[[], Awaitable[list[bytes]]], plan: Plan) -> Result:
    count = plan.count
    plan.ready()
    batch = await receive_many()
    t0 = perf_counter()
    check(plan, 0, batch[0])
    first_frames = got = len(batch)
    first_bytes = nbytes = sum(map(len, batch))
    next_check = SAMPLE_EVERY
    while got < count:
        batch = await receive_many()
        if got >= next_check:
            check(plan, got, batch[0])
            next_check = got + SAMPLE_EVERY
        got += len(batch)
        nbytes += sum(map(len, batch))
    t1 = perf_counter()
    check(plan, got - 1, batch[-1])
    return measured(plan, got, nbytes, first_frames, first_bytes, t0, t1)


async def ping(
    send: Callable[[bytes], Awaitable[None]], receive: Callable[[], Awaitable[bytes]], plan: Plan
) -> Result:
    pool = plan.pool
    await send(pool[0])
    if await receive() != pool[0]:
        raise BenchError("round trip 0: wrong echo")
    t0 = perf_counter()
    for i in range(1, plan.count):
        p = pool[i % VARIANTS]
        await send(p)
        if await receive() != p:
            raise BenchError(f"round trip {i}: wrong echo")
    t1 = perf_counter()
    n = plan.count - 1
    return {"frames_total": plan.count, "frames": n, "bytes": n * plan.size, "elapsed": t1 - t0}


async def echo(
    send: Callable[[bytes], Awaitable[None]],
    receive: Callable[[], Awaitable[bytes]],
    eof: type[BaseException] | tuple[type[BaseException], ...],
    plan: Plan,
) -> Result:
    plan.ready()
    n = 0
    while True:
        try:
            p = await receive()
        except eof:
            break
        await send(p)
        n += 1
    if n != plan.count:
        raise BenchError(f"echoed {n} frames, expected {plan.count}")
    return {"echoed": n}


def consume_sync(receive: Callable[[], bytes | bytearray], plan: Plan) -> Result:
    count = plan.count
    plan.ready()
    p = receive()
    t0 = perf_counter()
    first = nbytes = len(p)
    check(plan, 0, p)
    for i in range(1, count):
        p = receive()
        nbytes += len(p)
        if not i % SAMPLE_EVERY:
            check(plan, i, p)
    t1 = perf_counter()
    check(plan, count - 1, p)
    return measured(plan, count, nbytes, 1, first, t0, t1)


def consume_batches_sync(receive_many: Callable[[], list[bytes]], plan: Plan) -> Result:
    count = plan.count
    plan.ready()
    batch = receive_many()
    t0 = perf_counter()
    check(plan, 0, batch[0])
    first_frames = got = len(batch)
    first_bytes = nbytes = sum(map(len, batch))
    next_check = SAMPLE_EVERY
    while got < count:
        batch = receive_many()
        if got >= next_check:
            check(plan, got, batch[0])
            next_check = got + SAMPLE_EVERY
        got += len(batch)
        nbytes += sum(map(len, batch))
    t1 = perf_counter()
    check(plan, got - 1, batch[-1])
    return measured(plan, got, nbytes, first_frames, first_bytes, t0, t1)


def ping_sync(
    send: Callable[[bytes], None], receive: Callable[[], bytes | bytearray], plan: Plan
) -> Result:
    pool = plan.pool
    send(pool[0])
    if receive() != pool[0]:
        raise BenchError("round trip 0: wrong echo")
    t0 = perf_counter()
    for i in range(1, plan.count):
        p = pool[i % VARIANTS]
        send(p)
        if receive() != p:
            raise BenchError(f"round trip {i}: wrong echo")
    t1 = perf_counter()
    n = plan.count - 1
    return {"frames_total": plan.count, "frames": n, "bytes": n * plan.size, "elapsed": t1 - t0}


def echo_sync(
    send: Callable[[bytes], None], receive: Callable[[], bytes | bytearray], plan: Plan
) -> Result:
    plan.ready()
    n = 0
    while True:
        try:
            p = receive()
        except EOFError:
            break
        send(bytes(p))
        n += 1
    if n != plan.count:
        raise BenchError(f"echoed {n} frames, expected {plan.count}")
    return {"echoed": n}


# -- framekit --------------------------------------------------------------------------------
#
# Each framekit row is one receive function registered with ``@framekit_variant``: given
# the receiving end (a FramedStream, or in ping-pong through a channel a FramedChannel)
# and the plan, it returns the call that yields one frame (or, with ``batch=True``, a
# list of frames). The sender side is picked by the decorator's arguments; adding a row
# is one decorated function (``framekit-into`` below is one). A frame may be any
# bytes-like object that compares equal to the payload sent.

FRAMEKIT: list[Impl] = []

FramekitReceive = Callable[[Any, Plan], Callable[[], Awaitable[Any]]]


def framekit_variant(
    name: str,
    description: str,
    *,
    channel: bool = False,
    batch: bool = False,
    sizes: tuple[int, ...] | None = None,
    pingpong: bool = True,
) -> Callable[[FramekitReceive], FramekitReceive]:
    """Register a framekit row named ``name`` that receives with the decorated function.

    ``channel``: the sender (and both ends in ping-pong) go through
    ``open_framed_channel`` + ``await ch.send(p)`` per frame; otherwise a FramedStream's
    ``await fs.send(p)`` per frame. ``batch``: the sender calls ``send_many`` with
    batches of about 64 KiB, and the receive function returns lists of frames.
    """

    def register(receive: FramekitReceive) -> FramekitReceive:
        run = run_framekit(receive, channel=channel, batch=batch)
        FRAMEKIT.append(Impl(name, run, description, sizes=sizes, pingpong=pingpong))
        return receive

    return register


def run_framekit(
    receive: FramekitReceive, *, channel: bool, batch: bool
) -> Callable[[socket.socket, Plan], Result]:
    def runner(sock: socket.socket, plan: Plan) -> Result:
        import trio

        import framekit

        async def role(end: framekit.FramedStream | framekit.FramedChannel) -> Result:
            if plan.mode == PINGPONG:
                if plan.role == "send":
                    return await ping(end.send, receive(end, plan), plan)
                return await echo(end.send, receive(end, plan), trio.EndOfChannel, plan)
            if plan.role == "send":
                if batch:
                    for frames in plan.batches():
                        await end.send_many(frames)
                else:
                    send = end.send
                    for p in plan.frames():
                        await send(p)
                return {}
            get = receive(end, plan)
            if batch:
                result = await consume_batches(get, plan)
            else:
                result = await consume(get, plan)
            try:
                extra = await get()
            except trio.EndOfChannel:
                return result
            raise extra_data(extra)

        async def main() -> Result:
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
            if channel and (plan.role == "send" or plan.mode == PINGPONG):
                async with framekit.open_framed_channel(stream) as ch:
                    return await role(ch)
            async with framekit.FramedStream(stream) as fs:
                return await role(fs)

        return trio.run(main)

    return runner


@framekit_variant(
    "framekit-channel",
    "framekit's coalescing channel, one call per frame: `async with open_framed_channel(s) "
    "as ch:` then `await ch.send(p)`; receiver: FramedStream `await fs.receive()`",
    channel=True,
)
def receive_each_from_channel(end: Any, plan: Plan) -> Callable[[], Awaitable[Any]]:
    return end.receive  # type: ignore[no-any-return]


@framekit_variant(
    "framekit-stream",
    "framekit FramedStream, one call per frame: `await fs.send(p)`; `await fs.receive()`",
)
def receive_each(end: Any, plan: Plan) -> Callable[[], Awaitable[Any]]:
    return end.receive  # type: ignore[no-any-return]


@framekit_variant(
    "framekit-into",
    "framekit FramedStream, zero-copy receive: `await fs.send(p)`; "
    "`n = await fs.receive_into(buf)` into one reused buffer",
    sizes=(64 << 10, 4 << 20),
    pingpong=False,
)
def receive_into(end: Any, plan: Plan) -> Callable[[], Awaitable[Any]]:
    view = memoryview(bytearray(max(plan.size, 1)))

    async def receive() -> memoryview:
        return view[: await end.receive_into(view)]  # EndOfChannel at a clean end

    return receive


@framekit_variant(
    "framekit-batch",
    "framekit FramedStream batch API: `await fs.send_many(batch)` (~64 KiB batches); "
    "`await fs.receive_many()`",
    batch=True,
    sizes=(64, 1024),
    pingpong=False,
)
def receive_batches(end: Any, plan: Plan) -> Callable[[], Awaitable[Any]]:
    return end.receive_many  # type: ignore[no-any-return]


# -- Twisted ---------------------------------------------------------------------------------

_reactor_thread: threading.Thread | None = None


def run_twisted(producer: str) -> Callable[[socket.socket, Plan], Result]:
    """``Int32StringReceiver`` on both ends, default (epoll) reactor; the one-way sender's
    ``sendString`` calls are driven by a ``producer``: "push" (a streaming producer,
    paused by the transport when its buffer is full) or "pull" (the transport asks for
    more when its buffer is empty). The reactor runs once per process, in a thread; each
    trial adopts the connected socket."""

    def runner(sock: socket.socket, plan: Plan) -> Result:
        global _reactor_thread
        from twisted.internet import reactor
        from twisted.internet.threads import blockingCallFromThread

        if _reactor_thread is None:
            _reactor_thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
            )
            _reactor_thread.start()
        result: Result = blockingCallFromThread(reactor, _twisted_trial, sock, plan, producer)
        return result

    return runner


def _twisted_trial(sock: socket.socket, plan: Plan, producer: str) -> Any:
    from twisted.internet import defer, protocol, reactor
    from twisted.protocols.basic import Int32StringReceiver

    done: defer.Deferred[Result] = defer.Deferred()
    pool, count = plan.pool, plan.count

    class Base(Int32StringReceiver):
        MAX_LENGTH = TWISTED_MAX_LENGTH
        error: BaseException | None = None
        result: Result | None = None

        def fail(self, error: BaseException) -> None:
            self.error = error
            self.transport.abortConnection()

        def lengthLimitExceeded(self, length: int) -> None:
            self.fail(BenchError(f"frame of {length} bytes is over MAX_LENGTH"))

        def connectionLost(self, reason: Any = None) -> None:
            if self.error is None and self._unprocessed:
                self.error = BenchError(f"stream ended inside a frame: {self._unprocessed!r:.80}")
            if self.error is None:
                try:
                    self.finish()
                except BenchError as exc:
                    self.error = exc
            if self.error is not None:
                done.errback(self.error)
            else:
                done.callback(self.result or {})

        def finish(self) -> None:
            pass

    class Receiver(Base):
        n = 0
        nbytes = 0
        t0 = t1 = 0.0

        def connectionMade(self) -> None:
            plan.ready()

        def stringReceived(self, p: bytes) -> None:
            i = self.n
            self.n = i + 1
            self.nbytes += len(p)
            if not i % SAMPLE_EVERY or self.n == count:
                if i == 0:
                    self.t0 = perf_counter()
                    self.first = len(p)
                if self.n == count:
                    self.t1 = perf_counter()
                try:
                    check(plan, i, p)
                except BenchError as exc:
                    self.fail(exc)

        def finish(self) -> None:
            self.result = measured(plan, self.n, self.nbytes, 1, self.first, self.t0, self.t1)

    class Sender(Base):
        """A streaming push producer: writes until the transport asks it to pause.
        (``streaming=False`` makes it a pull producer: see :class:`PullSender`.)"""

        streaming = True
        paused = False
        i = 0
        per_call = count  # frames per resumeProducing at most

        def connectionMade(self) -> None:
            self.frames = plan.frames()
            # a pull producer is asked for its first chunk here
            self.transport.registerProducer(self, self.streaming)
            if self.streaming:
                self.resumeProducing()

        def pauseProducing(self) -> None:
            self.paused = True

        def resumeProducing(self) -> None:
            self.paused = False
            frames, i, send = self.frames, self.i, self.sendString
            stop = min(count, i + self.per_call)
            while i < stop and not self.paused:
                send(frames[i])
                i += 1
            self.i = i
            if i == count:
                self.transport.unregisterProducer()
                self.transport.loseConnection()

        def stopProducing(self) -> None:
            self.paused = True

    class PullSender(Sender):
        """A pull producer: each time the transport's buffer is empty it asks for more,
        and gets ``TWISTED_PULL_CHUNK`` bytes of frames (at least one)."""

        streaming = False
        per_call = max(1, TWISTED_PULL_CHUNK // (plan.size + PREFIX.size))

    class Echo(Base):
        n = 0

        def connectionMade(self) -> None:
            plan.ready()

        def stringReceived(self, p: bytes) -> None:
            self.n += 1
            self.sendString(p)

        def finish(self) -> None:
            if self.n != count:
                raise BenchError(f"echoed {self.n} frames, expected {count}")
            self.result = {"echoed": self.n}

    class Ping(Base):
        n = 0
        t0 = 0.0

        def connectionMade(self) -> None:
            self.sendString(pool[0])

        def stringReceived(self, p: bytes) -> None:
            i = self.n
            if p != pool[i % VARIANTS]:
                self.fail(BenchError(f"round trip {i}: wrong echo"))
                return
            self.n = i = i + 1
            if i == 1:
                self.t0 = perf_counter()
            if i < count:
                self.sendString(pool[i % VARIANTS])
            else:
                n = count - 1
                elapsed = perf_counter() - self.t0
                self.result = {
                    "frames_total": count,
                    "frames": n,
                    "bytes": n * plan.size,
                    "elapsed": elapsed,
                }
                self.transport.loseConnection()

        def finish(self) -> None:
            if self.n != count:
                raise BenchError(f"{self.n} round trips, expected {count}")

    if plan.mode == PINGPONG:
        cls: type[Base] = Ping if plan.role == "send" else Echo
    else:
        sender = PullSender if producer == "pull" else Sender
        cls = sender if plan.role == "send" else Receiver
    factory = protocol.Factory.forProtocol(cls)
    reactor.adoptStreamConnection(sock.fileno(), socket.AF_INET, factory)
    sock.close()  # the reactor holds its own duplicate
    return done


# -- asyncio ---------------------------------------------------------------------------------


def run_asyncio(loop: str) -> Callable[[socket.socket, Plan], Result]:
    """The same asyncio code on the default event loop (``loop="asyncio"``) or on
    uvloop's (``loop="uvloop"``)."""

    def runner(sock: socket.socket, plan: Plan) -> Result:
        main = asyncio_main(sock, plan)
        if loop == "uvloop":
            import uvloop

            result: Result = uvloop.run(main)
            return result
        import asyncio

        return asyncio.run(main)

    return runner


async def asyncio_main(sock: socket.socket, plan: Plan) -> Result:
    """``asyncio.open_connection``; ``writer.write`` per frame with a periodic ``drain``;
    ``readexactly`` for the prefix, then for the payload."""
    import asyncio

    reader, writer = await asyncio.open_connection(sock=sock, limit=ASYNCIO_LIMIT)

    async def read_frame() -> bytes:
        header = await reader.readexactly(4)
        return await reader.readexactly(unpack_from(header)[0])

    async def send(p: bytes) -> None:
        writer.write(pack(len(p)) + p)

    try:
        if plan.mode == PINGPONG:
            if plan.role == "send":
                return await ping(send, read_frame, plan)
            return await echo(send, read_frame, asyncio.IncompleteReadError, plan)
        if plan.role == "send":
            written = 0
            for p in plan.frames():
                n = len(p)
                if n < BIG:
                    writer.write(pack(n) + p)
                else:
                    writer.write(pack(n))
                    writer.write(p)
                written += n
                if written >= ASYNCIO_DRAIN_EVERY:
                    written = 0
                    await writer.drain()
            await writer.drain()
            return {}
        result = await consume(read_frame, plan)
        extra = await reader.read()
        if extra:
            raise extra_data(extra)
        return result
    finally:
        writer.close()
        await writer.wait_closed()


# -- anyio on Trio ---------------------------------------------------------------------------


def run_anyio(sock: socket.socket, plan: Plan) -> Result:
    """anyio's ``SocketStream`` on the Trio backend; ``send`` per frame;
    ``BufferedByteReceiveStream.receive_exactly`` for the prefix, then for the payload."""
    import anyio
    from anyio.abc import SocketStream
    from anyio.streams.buffered import BufferedByteReceiveStream

    async def main() -> Result:
        async with await SocketStream.from_socket(sock) as stream:
            buffered = BufferedByteReceiveStream(stream)

            async def read_frame() -> bytes:
                header = await buffered.receive_exactly(4)
                return await buffered.receive_exactly(unpack_from(header)[0])

            async def send(p: bytes) -> None:
                await stream.send(pack(len(p)) + p)

            if plan.mode == PINGPONG:
                if plan.role == "send":
                    return await ping(send, read_frame, plan)
                return await echo(send, read_frame, anyio.IncompleteRead, plan)
            if plan.role == "send":
                for p in plan.frames():
                    n = len(p)
                    if n < BIG:
                        await stream.send(pack(n) + p)
                    else:
                        await stream.send(pack(n))
                        await stream.send(p)
                return {}
            result = await consume(read_frame, plan)
            try:
                extra = await buffered.receive()
            except anyio.EndOfStream:
                return result
            raise extra_data(extra)

    result: Result = anyio.run(main, backend="trio")
    return result


# -- naive Trio ------------------------------------------------------------------------------


class NaiveTrioReader:
    """``receive_some`` into a bytearray, parse by hand - the loop most Trio code starts as."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def read_frame(self) -> bytes:
        buf = self.buf
        while True:
            if len(buf) >= 4:
                end = 4 + unpack_from(buf)[0]
                if len(buf) >= end:
                    payload = bytes(buf[4:end])
                    del buf[:end]
                    return payload
            data = await self.stream.receive_some()
            if not data:
                if buf:
                    raise BenchError(f"stream ended inside a frame: {bytes(buf)!r:.80}")
                raise EOFError
            buf += data


def run_trio_naive(sock: socket.socket, plan: Plan) -> Result:
    """One ``send_all`` per frame; ``receive_some`` + manual parse."""
    import trio

    async def main() -> Result:
        async with trio.SocketStream(trio.socket.from_stdlib_socket(sock)) as stream:
            reader = NaiveTrioReader(stream)

            async def send(p: bytes) -> None:
                await stream.send_all(pack(len(p)) + p)

            if plan.mode == PINGPONG:
                if plan.role == "send":
                    return await ping(send, reader.read_frame, plan)
                return await echo(send, reader.read_frame, EOFError, plan)
            if plan.role == "send":
                for p in plan.frames():
                    await stream.send_all(pack(len(p)) + p)
                return {}
            result = await consume(reader.read_frame, plan)
            try:
                extra = await reader.read_frame()
            except EOFError:
                return result
            raise extra_data(extra)

    return trio.run(main)


# -- blocking sockets ------------------------------------------------------------------------


def recv_exactly(sock: socket.socket, n: int) -> bytes | bytearray:
    """Exactly ``n`` bytes; EOFError if the stream ends first."""
    if n < BIG:
        data = sock.recv(n)
        if len(data) == n:
            return data
        buf = bytearray(data)
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError if not buf else BenchError("stream ended inside a frame")
            buf += chunk
        return buf
    big = bytearray(n)
    view = memoryview(big)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise BenchError("stream ended inside a frame")
        got += k
    return big


def run_blocking_tutorial(sock: socket.socket, plan: Plan) -> Result:
    """The tutorial loop: ``sendall`` per frame; ``recv`` exactly 4, then exactly n."""
    sock.setblocking(True)

    def send(p: bytes) -> None:
        n = len(p)
        if n < BIG:
            sock.sendall(pack(n) + p)
        else:
            sock.sendall(pack(n))
            sock.sendall(p)

    def read_frame() -> bytes | bytearray:
        header = recv_exactly(sock, 4)
        try:
            return recv_exactly(sock, unpack_from(header)[0])
        except EOFError:
            raise BenchError("stream ended inside a frame") from None

    with sock:
        if plan.mode == PINGPONG:
            if plan.role == "send":
                return ping_sync(send, read_frame, plan)
            return echo_sync(send, read_frame, plan)
        if plan.role == "send":
            for p in plan.frames():
                send(p)
            return {}
        result = consume_sync(read_frame, plan)
        extra = sock.recv(1)
        if extra:
            raise extra_data(extra)
        return result


class BulkReader:
    """Big reads, every whole frame in them parsed at once (slices of one ``bytes``). A big
    frame's remainder is read straight into its own buffer, never re-copied."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rest = b""

    def read_batch(self) -> list[bytes]:
        """The next whole frames (at least one); ``[]`` at a clean end of stream."""
        sock = self.sock
        frames: list[Any] = []
        append = frames.append
        while not frames:
            data = sock.recv(BULK_RECEIVE_SIZE)
            if not data:
                if self.rest:
                    raise BenchError(f"stream ended inside a frame: {self.rest!r:.80}")
                return frames
            if self.rest:
                data = self.rest + data
            pos, n = 0, len(data)
            while pos + 4 <= n:
                start = pos + 4
                end = start + unpack_from(data, pos)[0]
                if end > n:
                    if end - start >= BIG:  # a big frame: read its remainder in place
                        append(self._read_big(data, start, end - start))
                        pos = n
                    break
                append(data[start:end])
                pos = end
            self.rest = data[pos:]
        return frames

    def _read_big(self, data: bytes, start: int, length: int) -> bytearray:
        payload = bytearray(length)
        got = len(data) - start
        payload[:got] = memoryview(data)[start:]
        view = memoryview(payload)
        while got < length:
            k = self.sock.recv_into(view[got:])
            if not k:
                raise BenchError("stream ended inside a frame")
            got += k
        return payload


def run_blocking_bulk(sock: socket.socket, plan: Plan) -> Result:
    """A blocking pair that coalesces: the sender joins a batch of frames into one
    ``sendall`` (a big payload goes after its prefix, uncopied); the receiver is a
    :class:`BulkReader`."""
    sock.setblocking(True)
    reader = BulkReader(sock)

    def send(p: bytes) -> None:
        sock.sendall(pack(len(p)) + p)

    def read_frame() -> bytes:
        batch = reader.read_batch()
        if not batch:
            raise EOFError
        if len(batch) != 1:
            raise BenchError(f"{len(batch)} frames where one echo was expected")
        return batch[0]

    with sock:
        if plan.mode == PINGPONG:
            if plan.role == "send":
                return ping_sync(send, read_frame, plan)
            return echo_sync(send, read_frame, plan)
        if plan.role == "send":
            for batch in plan.batches():
                if len(batch) == 1 and len(batch[0]) >= BIG:
                    sock.sendall(pack(len(batch[0])))
                    sock.sendall(batch[0])
                    continue
                parts: list[bytes] = []
                for p in batch:
                    parts.append(pack(len(p)))
                    parts.append(p)
                sock.sendall(b"".join(parts))
            return {}
        result = consume_batches_sync(reader.read_batch, plan)
        extra = reader.read_batch()
        if extra:
            raise extra_data(extra)
        return result


def run_blocking_coalesce(writer: str, reader: str) -> Callable[[socket.socket, Plan], Result]:
    """A blocking pair that coalesces frame by frame: one call per frame on each end.

    The sender's call appends prefix + payload to a user-space buffer that goes out with
    one ``sendall`` once it holds ``COALESCE_BUFFER`` bytes (and at the end):
    ``writer="makefile"`` is ``sock.makefile("wb", buffering=COALESCE_BUFFER).write``,
    ``writer="bytearray"`` a ``bytearray`` and ``sendall``. The receiver's call returns
    one frame: ``reader="makefile"`` reads 4 bytes then n from
    ``sock.makefile("rb", buffering=BULK_RECEIVE_SIZE)``, ``reader="bulk"`` hands out, one
    at a time, the frames a :class:`BulkReader` parsed from each big read."""

    def runner(sock: socket.socket, plan: Plan) -> Result:
        sock.setblocking(True)
        with sock:
            if plan.role == "send":
                frames = plan.frames()
                if writer == "makefile":
                    with sock.makefile("wb", buffering=COALESCE_BUFFER) as out:
                        write = out.write
                        for p in frames:
                            write(pack(len(p)) + p)
                    return {}
                buf = bytearray()

                def send(p: bytes) -> None:
                    buf.extend(pack(len(p)))
                    buf.extend(p)
                    if len(buf) >= COALESCE_BUFFER:
                        sock.sendall(buf)
                        buf.clear()

                for p in frames:
                    send(p)
                if buf:
                    sock.sendall(buf)
                return {}
            if reader == "makefile":
                with sock.makefile("rb", buffering=BULK_RECEIVE_SIZE) as source:
                    read = source.read

                    def read_frame() -> bytes:
                        header = read(4)
                        if len(header) < 4:
                            if header:
                                raise BenchError("stream ended inside a prefix")
                            raise EOFError
                        n = unpack_from(header)[0]
                        payload: bytes = read(n)
                        if len(payload) < n:
                            raise BenchError("stream ended inside a frame")
                        return payload

                    return consume_to_eof_sync(read_frame, plan)
            bulk = BulkReader(sock)
            ready: deque[bytes] = deque()
            popleft = ready.popleft

            def next_frame() -> bytes:
                if not ready:
                    batch = bulk.read_batch()
                    if not batch:
                        raise EOFError
                    ready.extend(batch)
                return popleft()

            return consume_to_eof_sync(next_frame, plan)

    return runner


def consume_to_eof_sync(read_frame: Callable[[], bytes | bytearray], plan: Plan) -> Result:
    """:func:`consume_sync`, then a check that the stream ends cleanly (EOFError)."""
    result = consume_sync(read_frame, plan)
    try:
        extra = read_frame()
    except EOFError:
        return result
    raise extra_data(extra)


# -- raw unframed bulk TCP: the ceilings -----------------------------------------------------


def raw_total(plan: Plan) -> tuple[bytes, int]:
    chunk = (plan.pool[0] * (RAW_CHUNK // plan.size + 1))[: max(plan.size, RAW_CHUNK)]
    return chunk, plan.count * plan.size


def raw_result(plan: Plan, got: int, first: int, t0: float, t1: float) -> Result:
    if got != plan.count * plan.size:
        raise BenchError(f"received {got} bytes, expected {plan.count * plan.size}")
    return {
        "frames_total": plan.count,
        "bytes_total": got,
        "frames": (got - first) / plan.size,
        "bytes": got - first,
        "elapsed": t1 - t0,
    }


def raw_echoed(plan: Plan, echoed: int) -> Result:
    if echoed != plan.count * plan.size:
        raise BenchError(f"echoed {echoed} bytes, expected {plan.count * plan.size}")
    return {"echoed": plan.count}


def run_raw_blocking(sock: socket.socket, plan: Plan) -> Result:
    """Unframed: ``sendall`` of big chunks; ``recv_into`` one reused buffer. Ping-pong:
    ``size`` bytes each way, no prefix."""
    sock.setblocking(True)

    def send(p: bytes) -> None:
        sock.sendall(p)

    def receive() -> bytes | bytearray:
        return recv_exactly(sock, plan.size)

    with sock:
        if plan.mode == PINGPONG:
            if plan.role == "send":
                return ping_sync(send, receive, plan)
            plan.ready()
            echoed = 0
            while data := sock.recv(RAW_RECEIVE_SIZE):
                sock.sendall(data)
                echoed += len(data)
            return raw_echoed(plan, echoed)
        chunk, total = raw_total(plan)
        if plan.role == "send":
            view = memoryview(chunk)
            sent = 0
            while sent < total:
                part = view[: total - sent]
                sock.sendall(part)
                sent += len(part)
            return {}
        buf = bytearray(RAW_RECEIVE_SIZE)
        into = memoryview(buf)
        plan.ready()
        got = first = sock.recv_into(into)
        t0 = perf_counter()
        while got < total:
            k = sock.recv_into(into)
            if not k:
                break
            got += k
        t1 = perf_counter()
        if got == total and sock.recv(1):
            raise extra_data("raw bytes")
        return raw_result(plan, got, first, t0, t1)


def run_raw_trio(sock: socket.socket, plan: Plan) -> Result:
    """Unframed on a Trio ``SocketStream``: ``send_all`` of big chunks; ``receive_some``."""
    import trio

    async def main() -> Result:
        async with trio.SocketStream(trio.socket.from_stdlib_socket(sock)) as stream:
            if plan.mode == PINGPONG:

                async def receive() -> bytes:
                    data = await stream.receive_some(plan.size)
                    while len(data) < plan.size:
                        more = await stream.receive_some(plan.size - len(data))
                        if not more:
                            raise BenchError("stream ended inside a message")
                        data += more
                    return data

                if plan.role == "send":
                    return await ping(stream.send_all, receive, plan)
                plan.ready()
                echoed = 0
                while data := await stream.receive_some(RAW_RECEIVE_SIZE):
                    await stream.send_all(data)
                    echoed += len(data)
                return raw_echoed(plan, echoed)
            chunk, total = raw_total(plan)
            if plan.role == "send":
                view = memoryview(chunk)
                sent = 0
                while sent < total:
                    part = view[: total - sent]
                    await stream.send_all(part)
                    sent += len(part)
                return {}
            plan.ready()
            data = await stream.receive_some(RAW_RECEIVE_SIZE)
            t0 = perf_counter()
            got = first = len(data)
            while got < total:
                data = await stream.receive_some(RAW_RECEIVE_SIZE)
                if not data:
                    break
                got += len(data)
            t1 = perf_counter()
            if got == total and await stream.receive_some(1):
                raise extra_data("raw bytes")
            return raw_result(plan, got, first, t0, t1)

    return trio.run(main)


# -- registry and worker loop ----------------------------------------------------------------


PEERS: list[Impl] = [
    Impl(
        "twisted-push",
        run_twisted("push"),
        "Twisted Int32StringReceiver both ends, epoll reactor; `sendString` per frame from a "
        "streaming push producer",
    ),
    Impl(
        "twisted-pull",
        run_twisted("pull"),
        "Twisted Int32StringReceiver both ends, epoll reactor; `sendString` per frame from a "
        "pull producer (~64 KiB of frames each time the transport asks)",
        pingpong=False,  # no producer in ping-pong: the same code as twisted-push
    ),
    Impl("asyncio", run_asyncio("asyncio"), "asyncio streams: write + periodic drain; readexactly"),
    Impl(
        "asyncio-uvloop",
        run_asyncio("uvloop"),
        "the asyncio code above on uvloop's event loop",
    ),
    Impl("anyio", run_anyio, "anyio on Trio: send; BufferedByteReceiveStream.receive_exactly"),
    Impl("trio-naive", run_trio_naive, "Trio: send_all per frame; receive_some + manual parse"),
    Impl(
        "blocking-tutorial",
        run_blocking_tutorial,
        "blocking socket: sendall per frame; recv exactly 4, then exactly n",
    ),
    Impl(
        "blocking-coalesce",
        # the strongest of the four writer/reader pairs at 64 B and 1 KiB, or tied with
        # the best (docs/performance.md, "The implementations")
        run_blocking_coalesce("bytearray", "bulk"),
        "blocking socket pair, one call per frame, coalescing in user space: the sender's "
        "call appends prefix + payload to a bytearray sent with one sendall per ~64 KiB; "
        "the receiver's call returns the next frame of a bulk parse of 128 KiB reads",
        sizes=SMALL,
        pingpong=False,  # one frame at a time: nothing to coalesce
    ),
    Impl(
        "blocking-bulk",
        run_blocking_bulk,
        "blocking socket pair, batch to batch (the comparison for framekit-batch): one "
        "sendall per ready-made ~64 KiB batch; bulk parse",
        sizes=SMALL,
        pingpong=False,  # one frame at a time: nothing to batch
    ),
    Impl("raw-blocking", run_raw_blocking, "ceiling: unframed bulk TCP, blocking sockets"),
    Impl("raw-trio", run_raw_trio, "ceiling: unframed bulk TCP, Trio SocketStream"),
]

if importlib.util.find_spec("uvloop") is None:  # not installed (the bench extra has it)
    PEERS = [impl for impl in PEERS if impl.name != "asyncio-uvloop"]

#: Every implementation, framekit's rows first, in the order of the tables.
IMPLS: dict[str, Impl] = {impl.name: impl for impl in [*FRAMEKIT, *PEERS]}


def crossed(name: str, sender: str, receiver: str) -> Impl:
    """A row whose sender is ``sender``'s and whose receiver is ``receiver``'s: one end
    changed, so its figure says which end limits a pair (they speak the same framing)."""
    send_run, receive_run = IMPLS[sender].run, IMPLS[receiver].run

    def run(sock: socket.socket, plan: Plan) -> Result:
        return (send_run if plan.role == "send" else receive_run)(sock, plan)

    description = f"{sender}'s sender into {receiver}'s receiver"
    return Impl(name, run, description, sizes=(64,), pingpong=False)


#: Crossed pairs at 64 B: framekit's per-frame send into the tutorial's receiver, and the
#: tutorial's sendall into framekit's receiver (docs/performance.md says why).
IMPLS.update(
    (impl.name, impl)
    for impl in [
        crossed("cross-stream-to-tutorial", "framekit-stream", "blocking-tutorial"),
        crossed("cross-tutorial-to-stream", "blocking-tutorial", "framekit-stream"),
    ]
)


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def expect(word: str) -> list[str]:
    words = sys.stdin.readline().split()
    if not words or words[0] != word:
        raise SystemExit(0)  # the driver is gone or is done with us
    return words


def main(argv: list[str]) -> None:
    role, name, mode, size, timeout, cpu = argv
    run = IMPLS[name].run
    if cpu != "-":
        os.sched_setaffinity(0, {int(cpu)})
    listener = None
    if role == "recv":
        listener = socket.create_server(("127.0.0.1", 0))
        emit(f"PORT {listener.getsockname()[1]}")
    while True:
        words = expect("RUN")
        signal.alarm(int(timeout))  # a stuck trial kills this worker (SIGALRM's default action)
        if listener is not None:
            plan = Plan(role, mode, int(size), int(words[1]), ready=lambda: emit("READY"))
            sock, _ = listener.accept()
        else:
            plan = Plan(role, mode, int(size), int(words[2]))
            sock = socket.create_connection(("127.0.0.1", int(words[1])))
            emit("CONNECTED")
            expect("GO")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        result = run(sock, plan)
        signal.alarm(0)
        emit("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
