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
