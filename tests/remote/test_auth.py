"""Token guessing is slowed per address across connections; silent peers cannot starve others."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

import framekit
from framekit.remote._auth import AuthThrottle, address_key

from ..server_helpers import connect, start_server


async def test_parallel_guesses_from_one_address_are_checked_one_at_a_time(
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    addrs = await start_server(
        nursery, udp_port=None, token="right", auth_failure_delay=1, max_auth_failures=5
    )
    refusals: list[str] = []

    async def guess(n: int) -> None:
        with pytest.raises(framekit.AuthenticationError) as info:
            await connect(addrs, token=f"guess-{n}", handshake_timeout=1000)
        refusals.append(info.value.message)

    start = trio.current_time()
    async with trio.open_nursery() as guesses:
        for n in range(40):
            guesses.start_soon(guess, n)
    # Only max_auth_failures tokens were ever checked; the rest were refused unchecked.
    checked = [r for r in caplog.records if "authentication failed" in r.getMessage()]
    assert len(checked) == 5 and len(refusals) == 40
    assert refusals.count("too many wrong tokens from this address; try again later") == 35
    [block] = [r for r in caplog.records if "wrong tokens from 127.0.0.1" in r.getMessage()]
    assert block.levelno == logging.WARNING
    # one second per attempt, one attempt at a time: 200 guesses can no longer take 1.2 s
    assert trio.current_time() - start >= 40
    # The address stays blocked for auth_block_time: even the right token is not checked.
    with pytest.raises(framekit.AuthenticationError, match="too many"):
        await connect(addrs, token="right", handshake_timeout=1000)


async def test_the_block_ends_after_auth_block_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    addrs = await start_server(
        nursery,
        udp_port=None,
        token="right",
        auth_failure_delay=0,
        max_auth_failures=2,
        auth_block_time=60,
    )
    for _ in range(2):
        with pytest.raises(framekit.AuthenticationError, match="wrong token"):
            await connect(addrs, token="wrong")
    with pytest.raises(framekit.AuthenticationError, match="too many"):
        await connect(addrs, token="right")
    await trio.sleep(61)
    async with await connect(addrs, token="right") as client:
        assert client.server_info["auth"] == "hmac-sha256"


async def test_silent_connections_cannot_keep_a_real_client_out(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    addrs = await start_server(
        nursery, udp_port=None, token="t", max_connections=20, max_unauthenticated=4
    )
    silent = [await trio.open_tcp_stream(*addrs.tcp[0]) for _ in range(30)]
    async with await connect(addrs, token="t") as client:  # not "busy"
        assert client.server_info["auth"] == "hmac-sha256"
    # The oldest silent ones were told why and closed; at most 4 are still waiting.
    still_open = 0
    for stream in silent:
        with trio.move_on_after(0.5):
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
            assert b'"code":"busy"' in data and b"authenticating" in data
            continue
        still_open += 1
    assert still_open <= 4
    for stream in silent:
        await stream.aclose()


def test_ipv6_addresses_are_counted_per_64() -> None:
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
    assert address_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert address_key("10.0.0.1") == "10.0.0.1"


async def test_the_throttle_forgets_quiet_addresses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    throttle = AuthThrottle(delay=0, max_failures=3, block_time=10)
    assert await throttle.check("10.0.0.1", lambda: True) == "ok"
    assert not throttle._entries  # nothing worth remembering about a success
    assert await throttle.check("10.0.0.2", lambda: False) == "wrong"
    assert list(throttle._entries) == ["10.0.0.2"]
