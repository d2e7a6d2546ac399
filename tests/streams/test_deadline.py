"""DeadlineStream: no wait past its deadline without progress, and the error says which."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing
from trio.testing import lockstep_stream_pair, memory_stream_pair

from framekit import DeadlineStream, StreamTimeout
from framekit.streams._deadline import SEND_PIECE

from ..helpers import PassThroughStream


async def test_receive_waits_at_most_its_timeout(autojump_clock: trio.testing.MockClock) -> None:
    a, _b = memory_stream_pair()
    stream = DeadlineStream(a, receive_timeout=7, phase="waiting for a request")
    start = trio.current_time()
    with pytest.raises(StreamTimeout) as info:
        await stream.receive_some()
    assert trio.current_time() - start == pytest.approx(7)
    assert str(info.value) == "the peer sent nothing for 7 s while waiting for a request"
    assert (info.value.direction, info.value.phase, info.value.seconds) == (
        "receive",
        "waiting for a request",
        7,
    )
    assert isinstance(info.value, trio.BrokenResourceError)


async def test_data_in_time_is_returned(autojump_clock: trio.testing.MockClock) -> None:
    a, b = memory_stream_pair()
    stream = DeadlineStream(a, receive_timeout=7)
    async with trio.open_nursery() as nursery:

        async def late_sender() -> None:
            await trio.sleep(6)
            await b.send_all(b"hi")

        nursery.start_soon(late_sender)
        assert await stream.receive_some() == b"hi"


async def test_a_slow_reader_that_keeps_up_is_progress(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = lockstep_stream_pair()
    stream = DeadlineStream(a, send_timeout=10, phase="sending a file")
    data = b"x" * (3 * SEND_PIECE)
    got = bytearray()
    async with trio.open_nursery() as nursery:

        async def slow_reader() -> None:
            while len(got) < len(data):
                await trio.sleep(9)  # under the timeout each time: the send goes on
                got.extend(await b.receive_some(SEND_PIECE))

        nursery.start_soon(slow_reader)
        await stream.send_all(data)
    assert got == data
    assert trio.current_time() > 10  # far longer than the timeout, in all


async def test_a_reader_that_stops_times_out_the_send(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, _b = lockstep_stream_pair()
    stream = DeadlineStream(a, send_timeout=10, phase="sending output")
    with pytest.raises(StreamTimeout, match="read nothing for 10 s while sending output"):
        await stream.send_all(b"x" * 100)


async def test_the_absolute_deadline_caps_every_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = memory_stream_pair()
    stream = DeadlineStream(a)
    stream.enter("the handshake", timeout=100, within=10)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:

        async def trickle() -> None:  # progress every 4 s is not enough: 10 s in all
            for _ in range(10):
                await trio.sleep(4)
                await b.send_all(b".")

        async def read_forever() -> None:
            while True:
                await stream.receive_some()

        nursery.start_soon(trickle)
        with pytest.raises(StreamTimeout, match="did not finish the handshake within 10 s"):
            await read_forever()
        nursery.cancel_scope.cancel()
    assert trio.current_time() - start == pytest.approx(10)


async def test_no_limit_passes_straight_through() -> None:
    a, b = memory_stream_pair()
    stream = DeadlineStream(a)
    assert stream.send_timeout == stream.receive_timeout == stream.deadline == math.inf
    await stream.send_all(b"abc")
    assert await b.receive_some() == b"abc"


class NeverClosing(PassThroughStream):
    """A graceful close that waits forever (a TLS close_notify to a peer not reading)."""

    forced = False

    async def aclose(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            self.forced = True
            await self.inner.aclose()


async def test_close_is_bounded_too(autojump_clock: trio.testing.MockClock) -> None:
    a, _b = memory_stream_pair()
    inner = NeverClosing(a)
    stream = DeadlineStream(inner, send_timeout=3)
    start = trio.current_time()
    await stream.aclose()
    assert inner.forced and trio.current_time() - start == pytest.approx(3)


# -- a phase enforced by the owner's scope ----------------------------------------------


async def test_a_phase_can_use_the_owners_scope(autojump_clock: trio.testing.MockClock) -> None:
    a, _b = memory_stream_pair()
    stream = DeadlineStream(a)
    start = trio.current_time()
    with trio.CancelScope() as scope:
        stream.enter("waiting for a request", timeout=30, within=30, scope=scope)
        assert scope.deadline == pytest.approx(start + 30)
        await stream.receive_some()
    assert scope.cancelled_caught
    assert trio.current_time() - start == pytest.approx(30)
    error = stream.timeout_error()
    assert str(error) == "the peer did not finish waiting for a request within 30 s"
    assert (error.direction, error.seconds) == ("receive", 30)


async def test_the_next_phase_takes_the_deadline_off_the_owners_scope(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = memory_stream_pair()
    stream = DeadlineStream(a)
    with trio.CancelScope() as scope:
        stream.enter("waiting for a request", timeout=5, within=5, scope=scope)
        await b.send_all(b"x")
        assert await stream.receive_some() == b"x"
        stream.enter("running a command", timeout=math.inf)
        assert scope.deadline == math.inf
        await trio.sleep(60)  # past the old deadline: nothing fires
    assert not scope.cancelled_caught


async def test_the_owners_scope_enforces_within_alone() -> None:
    a, _b = memory_stream_pair()
    stream = DeadlineStream(a)
    scope = trio.CancelScope()
    with pytest.raises(ValueError, match="within"):
        stream.enter("x", timeout=5, scope=scope)
    with pytest.raises(ValueError, match="within"):
        stream.enter("x", timeout=5, within=10, scope=scope)


# -- small sends written at once on TCP -------------------------------------------------


async def tcp_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listeners[0]:
        port = listeners[0].socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listeners[0].accept()
    return client, server


async def test_a_small_send_on_tcp_is_written_at_once() -> None:
    client, server = await tcp_pair()
    async with client, server:
        stream = DeadlineStream(client, send_timeout=5)
        await stream.send_all(b"hello")
        assert await server.receive_some() == b"hello"
        await client.send_eof()
        with pytest.raises(trio.ClosedResourceError):
            await stream.send_all(b"after eof")


async def test_a_direct_send_on_a_closed_socket_is_closed_resource() -> None:
    client, server = await tcp_pair()
    async with server:
        stream = DeadlineStream(client, send_timeout=5)
        await client.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await stream.send_all(b"x")


async def test_a_direct_send_to_a_reset_peer_is_broken() -> None:
    client, server = await tcp_pair()
    async with client:
        stream = DeadlineStream(client, send_timeout=5)
        server.socket.setsockopt(
            trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        await server.aclose()  # linger 0: a reset, already here on loopback
        with pytest.raises(trio.BrokenResourceError):
            await stream.send_all(b"x")


async def test_a_peer_that_stops_reading_times_out_a_direct_send(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server = await tcp_pair()
    async with client, server:
        stream = DeadlineStream(client, send_timeout=5, phase="sending output")
        chunk = b"x" * 65536
        start = trio.current_time()

        async def fill() -> None:
            for _ in range(10_000):  # the socket buffers fill well before this
                await stream.send_all(chunk)

        with pytest.raises(StreamTimeout, match="read nothing for 5 s while sending output"):
            await fill()
        assert trio.current_time() - start == pytest.approx(5, abs=0.5)


async def test_two_tasks_cannot_send_at_once() -> None:
    client, server = await tcp_pair()
    async with client, server:
        stream = DeadlineStream(client, send_timeout=60)
        async with trio.open_nursery() as nursery:

            async def fill() -> None:
                for _ in range(10_000):
                    await stream.send_all(b"x" * 65536)

            nursery.start_soon(fill)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await stream.send_all(b"y")
            nursery.cancel_scope.cancel()


async def test_a_cancelled_direct_send_writes_nothing() -> None:
    client, server = await tcp_pair()
    async with client, server:
        stream = DeadlineStream(client, send_timeout=5)
        with trio.CancelScope() as scope:
            scope.cancel()
            await stream.send_all(b"never")
        await client.send_eof()
        assert await server.receive_some() == b""
