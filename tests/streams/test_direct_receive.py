"""FramedStream's direct read on TCP: bytes in the kernel are read from the socket's
descriptor without a pass through the scheduler; when none have arrived the call waits
(a checkpoint). Frames split anywhere, cancellation at every point, a closed or reset
socket and the transports without a descriptor all give what receive_some gave."""

from __future__ import annotations

import itertools
import os
import socket
import struct

import pytest
import trio
import trio.testing

from framekit import CANCEL_CHECK_INTERVAL, DelimitedFormat, FramedStream, FrameEncoder
from framekit.streams import _framed

from ..helpers import TcpPair, TlsPair, send_frames

pytestmark = pytest.mark.skipif(not _framed.DIRECT_READ, reason="no direct reads here")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What each os.read of a socket returned (its length); SocketStream.receive_some
    fails the test if FramedStream calls it."""
    got: list[int] = []
    real_read = os.read

    def counting_read(fd: int, size: int) -> bytes:
        data = real_read(fd, size)
        got.append(len(data))
        return data

    async def no_receive_some(self: trio.SocketStream, max_bytes: int | None = None) -> bytes:
        raise AssertionError("receive_some on the direct path")

    monkeypatch.setattr(_framed.os, "read", counting_read)
    monkeypatch.setattr(trio.SocketStream, "receive_some", no_receive_some)
    return got


async def test_frames_are_read_from_the_descriptor(tcp_pair: TcpPair, reads: list[int]) -> None:
    client, server = await tcp_pair()
    frames = [b"%d" % i * (i % 50) for i in range(200)]
    await client.send_all(FrameEncoder().encode_many(frames))
    await client.send_eof()
    framed = FramedStream(server)
    assert [frame async for frame in framed] == frames
    assert reads[-1] == 0  # the end of the stream, read directly too
    assert sum(reads) == sum(len(f) + 4 for f in frames)


async def test_every_split_point_waits_and_loses_nothing(
    tcp_pair: TcpPair, reads: list[int]
) -> None:
    """The sender stops at every byte offset: each time the reader finds nothing, waits
    in wait_readable, then reads the rest."""
    frames = [b"", b"a", b"hello world", bytes(range(256)) * 3]
    data = FrameEncoder().encode_many(frames)
    for cut in range(1, len(data)):
        client, server = await tcp_pair()
        framed = FramedStream(server)
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def receive_all(framed: FramedStream = framed, got: list[bytes] = got) -> None:
                got.extend([frame async for frame in framed])

            nursery.start_soon(receive_all)
            await client.send_all(data[:cut])
            await trio.testing.wait_all_tasks_blocked()  # the reader waits for the rest
            await client.send_all(data[cut:])
            await client.send_eof()
        assert got == frames, cut


async def test_other_framings_read_directly_too(tcp_pair: TcpPair, reads: list[int]) -> None:
    client, server = await tcp_pair()
    await client.send_all(b"one\ntwo\nthree\n")
    await client.send_eof()
    framed = FramedStream(server, format=DelimitedFormat(b"\n"))
    assert [line async for line in framed] == [b"one", b"two", b"three"]
    assert reads


async def test_reads_that_never_wait_check_for_cancellation(tcp_pair: TcpPair) -> None:
    """Bytes are always in the kernel, so no read waits: cancellation still lands within
    CANCEL_CHECK_INTERVAL reads, and the frames after it are all still there."""
    client, server = await tcp_pair()
    frames = [b"f%03d" % i for i in range(CANCEL_CHECK_INTERVAL * 4)]
    await client.send_all(FrameEncoder().encode_many(frames))
    await client.send_eof()
    framed = FramedStream(server, receive_size=8)  # one 8-byte frame per read
    got: list[bytes] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        while True:
            got.append(await framed.receive())
    assert scope.cancelled_caught
    assert 0 < len(got) <= CANCEL_CHECK_INTERVAL
    got.extend([frame async for frame in framed])
    assert got == frames


@pytest.mark.parametrize("cut", [0, 2, 4, 9])
async def test_cancelled_while_waiting_loses_nothing(cut: int, tcp_pair: TcpPair) -> None:
    """Cancelled while waiting for the rest of a frame (or for any byte): the bytes
    already read stay, and the next receive returns the whole frame."""
    client, server = await tcp_pair()
    data = FrameEncoder().encode(b"0123456789")
    framed = FramedStream(server)
    await client.send_all(data[:cut])
    with trio.move_on_after(0.05) as scope:  # real time: the socket wait is real too
        await framed.receive()
    assert scope.cancelled_caught
    await client.send_all(data[cut:])
    assert await framed.receive() == b"0123456789"


async def test_closed_while_waiting(tcp_pair: TcpPair) -> None:
    client, server = await tcp_pair()
    framed = FramedStream(server)
    async with trio.open_nursery() as nursery:

        async def close_it() -> None:
            await client.send_all(struct.pack("!I", 10) + b"half")
            await trio.testing.wait_all_tasks_blocked()
            await framed.aclose()

        nursery.start_soon(close_it)
        with pytest.raises(trio.ClosedResourceError):
            await framed.receive()
    with pytest.raises(trio.ClosedResourceError):
        await framed.receive()


async def test_a_reset_connection_is_broken(tcp_pair: TcpPair) -> None:
    client, server = await tcp_pair()
    framed = FramedStream(server)
    async with trio.open_nursery() as nursery:

        async def reset() -> None:
            await client.send_all(FrameEncoder().encode(b"whole") + b"\0\0")
            await trio.testing.wait_all_tasks_blocked()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.socket.close()  # an RST, not a FIN

        nursery.start_soon(reset)
        assert await framed.receive() == b"whole"
        with pytest.raises(trio.BrokenResourceError, match="socket connection broken"):
            await framed.receive()
    with pytest.raises(trio.BrokenResourceError):
        await framed.receive()


async def test_tls_reads_through_the_ssl_stream(
    monkeypatch: pytest.MonkeyPatch, tls_pair: TlsPair
) -> None:
    """A TLS stream has no socket of its own: its frames are read with receive_some."""
    client, server = await tls_pair()

    def no_read(fd: int, size: int) -> bytes:
        raise AssertionError("os.read under TLS")

    monkeypatch.setattr(_framed.os, "read", no_read)
    frames = [b"", b"x", bytes(100_000)]
    framed = FramedStream(server)
    assert framed._read_socket is None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_frames, client, frames)
        assert [frame async for frame in framed] == frames


async def test_without_direct_reads_receive_some_reads(
    monkeypatch: pytest.MonkeyPatch, tcp_pair: TcpPair
) -> None:
    """Windows sockets are not file descriptors: the transport's receive_some reads."""
    monkeypatch.setattr(_framed, "DIRECT_READ", False)

    def no_read(fd: int, size: int) -> bytes:
        raise AssertionError("os.read on a socket where there is none")

    monkeypatch.setattr(_framed.os, "read", no_read)
    client, server = await tcp_pair()
    await client.send_all(FrameEncoder().encode_many([b"a", b"bc"]))
    await client.send_eof()
    framed = FramedStream(server)
    assert framed._read_socket is None
    assert [frame async for frame in framed] == [b"a", b"bc"]


async def test_a_reader_kept_busy_still_yields_every_mib(
    monkeypatch: pytest.MonkeyPatch, tcp_pair: TcpPair
) -> None:
    """Bytes keep arriving, so reads find them waiting and need not wait: the reader
    still takes a checkpoint before reading on once _YIELD_BYTES (a MiB) were read
    without one (Trio's receive_some takes one after every read), so other tasks run."""
    read_so_far = 0
    marks = [0]  # bytes read when each checkpoint (or wait) was taken
    real_read, real_checkpoint = os.read, _framed.checkpoint
    real_wait = trio.lowlevel.wait_readable

    def counting_read(fd: int, size: int) -> bytes:
        nonlocal read_so_far
        data = real_read(fd, size)
        read_so_far += len(data)
        return data

    async def marked_checkpoint() -> None:
        marks.append(read_so_far)
        await real_checkpoint()

    async def marked_wait(sock: trio.socket.SocketType) -> None:
        marks.append(read_so_far)
        await real_wait(sock)

    monkeypatch.setattr(_framed.os, "read", counting_read)
    monkeypatch.setattr(_framed, "checkpoint", marked_checkpoint)
    monkeypatch.setattr(trio.lowlevel, "wait_readable", marked_wait)
    budget, read_size = 256 * 1024, 64 * 1024  # smaller than a MiB: more checkpoints
    monkeypatch.setattr(_framed, "_YIELD_BYTES", budget)
    client, server = await tcp_pair()
    data = FrameEncoder().encode_many([b"x" * 60] * 150_000)  # 9.6 MB of small frames
    framed = FramedStream(server, receive_size=read_size)

    async def send() -> None:
        await client.send_all(data)
        await client.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        assert sum([len(frame) + 4 async for frame in framed]) == len(data)
    marks.append(read_so_far)
    # under the budget read, then at most one more read
    assert max(b - a for a, b in itertools.pairwise(marks)) < budget + read_size
