"""serve_framed / serve_messages: one peer or one handler's failure ends one connection."""

from __future__ import annotations

import logging
from functools import partial

import pytest
import trio
import trio.testing

import framekit
from framekit import FramedStream, MessageStream


async def echo_or_fail(channel: FramedStream) -> None:
    async for payload in channel:
        if payload == b"bug":
            raise ValueError("a bug in the handler")
        await channel.send(payload)


async def expect_echo(port: int) -> None:
    async with await framekit.open_framed_stream("127.0.0.1", port) as channel:
        await channel.send(b"still here")
        assert await channel.receive() == b"still here"


async def test_peer_closing_mid_conversation_does_not_stop_the_server(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")

    async def wants_two(channel: FramedStream) -> None:
        await channel.receive()
        await channel.receive()  # the peer closes instead: trio.EndOfChannel

    [(_, port)] = await nursery.start(partial(framekit.serve_framed, wants_two, 0))
    async with await framekit.open_framed_stream("127.0.0.1", port) as channel:
        await channel.send(b"one")
    with trio.fail_after(5):
        while not any("closed the connection" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.01)
    # The listener survived: a new connection is served.
    async with await framekit.open_framed_stream("127.0.0.1", port) as channel:
        await channel.send(b"one")


async def test_a_handler_bug_is_logged_and_ends_only_its_connection(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    [(_, port)] = await nursery.start(partial(framekit.serve_framed, echo_or_fail, 0))
    async with await framekit.open_framed_stream("127.0.0.1", port) as channel:
        await channel.send(b"bug")
        with pytest.raises(trio.EndOfChannel):
            await channel.receive()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "raised ValueError" in errors[0].getMessage()
    await expect_echo(port)


async def test_a_silent_peer_is_dropped_after_idle_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    ended = trio.Event()

    async def handler(stream: MessageStream) -> None:
        try:
            await stream.receive_message()
        finally:
            ended.set()

    [(_, port)] = await nursery.start(partial(framekit.serve_messages, handler, 0, idle_timeout=30))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    start = trio.current_time()
    await ended.wait()
    assert trio.current_time() - start == pytest.approx(30)
    assert await stream.receive_some() == b""  # the server closed its side
    await stream.aclose()
