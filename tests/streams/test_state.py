"""The one state machine, seen through all three wrappers: each rule holds on every path."""

from __future__ import annotations

import array
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import memory_stream_pair

import framekit
from framekit import FramedStream, MessageStream

from ..helpers import PassThroughStream

Sender = Callable[[trio.abc.Stream], Any]


@asynccontextmanager
async def framed_stream(stream: trio.abc.Stream) -> AsyncIterator[Any]:
    yield FramedStream(stream)


@asynccontextmanager
async def framed_channel(stream: trio.abc.Stream) -> AsyncIterator[Any]:
    async with framekit.open_framed_channel(stream) as channel:
        yield channel


@asynccontextmanager
async def message_stream(stream: trio.abc.Stream) -> AsyncIterator[Any]:
    yield MessageStream(stream)


WRAPPERS = {"FramedStream": framed_stream, "FramedChannel": framed_channel}


async def send_one(wrapper: Any, payload: Any) -> None:
    if isinstance(wrapper, MessageStream):
        await wrapper.send_message({"type": "m"}, payload)
    else:
        await wrapper.send(payload)
        if isinstance(wrapper, framekit.FramedChannel):
            await wrapper.flush()


@pytest.mark.parametrize("open_wrapper", [framed_stream, framed_channel, message_stream])
async def test_text_is_a_clear_type_error_and_leaves_the_stream_usable(
    open_wrapper: Callable[[trio.abc.Stream], Any],
) -> None:
    a, b = memory_stream_pair()
    async with open_wrapper(a) as wrapper:
        with pytest.raises(TypeError, match=r"not str; encode text first"):
            await send_one(wrapper, "text")
        await send_one(wrapper, b"bytes")  # not broken: nothing was written
        got = await b.receive_some()
        assert got.endswith(b"bytes")


@pytest.mark.parametrize("open_wrapper", [framed_stream, framed_channel, message_stream])
async def test_a_memoryview_of_wide_items_is_framed_by_its_bytes(
    open_wrapper: Callable[[trio.abc.Stream], Any],
) -> None:
    items = array.array("i", range(1000))  # 1000 items, 4000 bytes
    a, b = memory_stream_pair()
    with trio.fail_after(5):  # counting items, not bytes, once left a flush waiting forever
        async with open_wrapper(a) as wrapper:
            await send_one(wrapper, memoryview(items))
            await a.aclose()
    raw = b""
    while chunk := await b.receive_some():
        raw += chunk
    assert raw.endswith(items.tobytes())
    if isinstance(wrapper, MessageStream):
        assert b'"size":4000' in raw
    else:
        assert raw[:4] == (4000).to_bytes(4, "big") and len(raw) == 4004


@pytest.mark.parametrize("open_wrapper", [framed_stream, message_stream])
async def test_a_send_cut_off_part_way_breaks_sending_but_not_receiving(
    open_wrapper: Callable[[trio.abc.Stream], Any],
) -> None:
    a, b = trio.testing.lockstep_stream_pair()
    async with open_wrapper(a) as wrapper:
        with trio.move_on_after(0.05):  # nobody reads: the send blocks, then is cancelled
            await send_one(wrapper, b"x" * 100)
        with pytest.raises(trio.BrokenResourceError, match="failed or was cancelled part-way"):
            await send_one(wrapper, b"y")
        # The other direction still works: the peer's last words can be read.
        async with trio.open_nursery() as nursery:
            if isinstance(wrapper, MessageStream):
                nursery.start_soon(b.send_all, framekit.MessageEncoder().message({"t": 1}, b"bye"))
                message = await wrapper.receive_message()
                assert (message.header["t"], message.body) == (1, b"bye")
            else:
                nursery.start_soon(b.send_all, framekit.FrameEncoder().encode(b"bye"))
                assert await wrapper.receive() == b"bye"


@pytest.mark.parametrize("open_wrapper", [framed_stream, framed_channel, message_stream])
async def test_closed_is_closed_in_both_directions(
    open_wrapper: Callable[[trio.abc.Stream], Any],
) -> None:
    a, _ = memory_stream_pair()
    async with open_wrapper(a) as wrapper:
        await wrapper.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await send_one(wrapper, b"x")
        with pytest.raises(trio.ClosedResourceError):
            await wrapper.receive()


@pytest.mark.parametrize("open_wrapper", [framed_stream, framed_channel, message_stream])
async def test_end_of_stream_mid_frame_stays_an_error(
    open_wrapper: Callable[[trio.abc.Stream], Any],
) -> None:
    a, b = memory_stream_pair()
    async with open_wrapper(a) as wrapper:
        await b.send_all(b"\x00\x00\x00\x10half")
        await b.aclose()
        for _ in range(2):  # the same error every time, never a resynchronised frame
            with pytest.raises(framekit.IncompleteFrame):
                await wrapper.receive()


class FailingAfter(PassThroughStream):
    """Lets ``budget`` bytes through, then fails like a reset connection."""

    def __init__(self, inner: trio.abc.Stream, budget: int) -> None:
        super().__init__(inner)
        self.budget = budget

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) > self.budget:
            await self.inner.send_all(bytes(data)[: self.budget])
            self.budget = 0
            raise trio.BrokenResourceError("reset")
        self.budget -= len(data)
        await self.inner.send_all(data)


async def test_a_failed_writer_breaks_the_channel_for_every_sender() -> None:
    a, b = memory_stream_pair()
    async with framekit.open_framed_channel(FailingAfter(a, 10)) as channel:
        await channel.send(b"x" * 100)
        with pytest.raises(trio.BrokenResourceError, match="part-way"):
            await channel.flush()
        with pytest.raises(trio.BrokenResourceError, match="part-way"):
            channel.send_nowait(b"y")
        await channel.aclose()
    assert await b.receive_some() == b"\x00\x00\x00\x64" + b"x" * 6
