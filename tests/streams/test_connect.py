from __future__ import annotations

import logging
import random
import ssl
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

import framekit
from framekit import (
    ConnectError,
    FramedStream,
    MessageStream,
    Retry,
    open_framed_stream,
    open_message_stream,
    serve_framed,
    serve_messages,
)

from ..conftest import HAS_IPV6


async def echo(channel: FramedStream) -> None:
    async for payload in channel:
        await channel.send(payload)


async def test_framed_echo_over_loopback_tcp(nursery: trio.Nursery) -> None:
    [(host, port)] = await nursery.start(serve_framed, echo, 0)
    assert host == "127.0.0.1" and port > 0
    async with await open_framed_stream(host, port) as conn:
        for payload in [b"", b"hi", b"x" * 100_000, bytes(range(256)) * 20000]:
            await conn.send(payload)
            assert await conn.receive() == payload


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback on this machine")
async def test_ipv6_loopback(nursery: trio.Nursery) -> None:
    [(host, port)] = await nursery.start(
        lambda task_status: serve_framed(echo, 0, host="::1", task_status=task_status)
    )
    assert host == "::1"
    async with await open_framed_stream("::1", port) as conn:
        await conn.send(b"v6")
        assert await conn.receive() == b"v6"


async def test_tls_with_trustme(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    [(_, port)] = await nursery.start(
        lambda task_status: serve_framed(
            echo, 0, ssl_context=server_ssl_context, task_status=task_status
        )
    )
    conn = await open_framed_stream(
        "127.0.0.1", port, ssl_context=client_ssl_context, server_hostname="localhost"
    )
    assert isinstance(conn.transport_stream, trio.SSLStream)
    async with conn:
        await conn.send(b"secret")
        assert await conn.receive() == b"secret"


async def test_tls_untrusted_server_is_a_connect_error_not_retried(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext
) -> None:
    [(_, port)] = await nursery.start(
        lambda task_status: serve_framed(
            echo, 0, ssl_context=server_ssl_context, task_status=task_status
        )
    )
    untrusting = ssl.create_default_context()  # does not know the test CA
    with pytest.raises(
        ConnectError, match=r"TLS certificate of 127\.0\.0\.1:\d+ was not accepted"
    ) as info:
        await open_framed_stream("127.0.0.1", port, ssl_context=untrusting, retry=Retry(attempts=5))
    assert info.value.reason == "tls"


async def test_refused_after_bounded_attempts(closed_port: int) -> None:
    with pytest.raises(ConnectError, match=r"after 3 attempts .*is the server running") as info:
        await open_framed_stream(
            "127.0.0.1", closed_port, retry=Retry(attempts=3, initial_delay=0.001)
        )
    assert info.value.reason == "refused"
    assert isinstance(info.value.__cause__, OSError)
    assert isinstance(info.value, OSError)  # callers catching OSError still work


async def test_retry_until_server_is_up(closed_port: int) -> None:
    # The tutorials' "wait 3 s and reconnect", bounded and with backoff.
    listener = trio.socket.socket()
    async with trio.open_nursery() as nursery:

        async def late_server() -> None:
            await trio.sleep(0.2)
            await listener.bind(("127.0.0.1", closed_port))
            listener.listen()
            async with FramedStream(trio.SocketStream((await listener.accept())[0])) as server:
                await server.send(b"finally")

        nursery.start_soon(late_server)
        conn = await open_framed_stream("127.0.0.1", closed_port, retry=Retry.for_seconds(10))
        assert await conn.receive() == b"finally"
        await conn.aclose()
    listener.close()


async def test_retry_gives_up_at_timeout(closed_port: int) -> None:
    start = trio.current_time()
    with pytest.raises(ConnectError):
        await open_framed_stream(
            "127.0.0.1", closed_port, retry=Retry(attempts=None, timeout=0.3, initial_delay=0.05)
        )
    assert trio.current_time() - start < 0.3


def test_retry_delays_back_off_and_are_bounded() -> None:
    delays = list(Retry(attempts=6, initial_delay=0.1, max_delay=0.5, jitter=0).delays())
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    jittered = list(Retry(attempts=4, jitter=0.5).delays(random.Random(1)))
    assert all(0.05 <= d <= 0.15 for d in jittered[:1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attempts": None, "timeout": None}, "needs a bound"),
        ({"attempts": 0}, "at least 1"),
        ({"timeout": -1}, ">= 0 seconds"),
        ({"multiplier": 0.5}, "multiplier >= 1"),
        ({"jitter": 2}, "between 0 and 1"),
    ],
)
def test_retry_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Retry(**kwargs)  # type: ignore[arg-type]


async def test_bad_peer_is_logged_and_others_keep_working(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    [(host, port)] = await nursery.start(serve_framed, echo, 0)
    async with await trio.open_tcp_stream(host, port) as hostile:
        await hostile.send_all(b"\xff\xff\xff\xff")  # a 4 GiB declared length
        with trio.fail_after(5):
            assert await hostile.receive_some() == b""  # the server hung up on it
    async with await open_framed_stream(host, port) as good:
        await good.send(b"still here")
        assert await good.receive() == b"still here"
    assert any("4294967295-byte frame" in r.getMessage() for r in caplog.records)
    assert all(r.levelno <= logging.WARNING for r in caplog.records)


async def test_serve_messages_and_open_message_stream(nursery: trio.Nursery) -> None:
    async def upper(channel: MessageStream) -> None:
        async for message in channel:
            await channel.send_message({"reply": True}, message.body.upper())

    [(host, port)] = await nursery.start(serve_messages, upper, 0)
    async with await open_message_stream(host, port) as conn:
        await conn.send_message({}, b"shout")
        reply = await conn.receive_message()
        assert reply.header["reply"] is True and reply.body == b"SHOUT"


def test_public_names_importable() -> None:
    for name in framekit.__all__:
        assert getattr(framekit, name) is not None
    assert issubclass(framekit.FrameTooLarge, framekit.FramekitError)
    assert issubclass(framekit.IncompleteFrame, framekit.FramekitError)


async def test_refused_reason_is_spelled_out(closed_port: int) -> None:
    with pytest.raises(ConnectError, match="Connection refused") as info:
        await open_framed_stream("127.0.0.1", closed_port)
    # in the CLI's words: no Python tuple of the address (trio's own message has one)
    assert str(info.value) == (
        f"could not connect to 127.0.0.1:{closed_port}: Connection refused; "
        "is the server running there?"
    )


async def black_hole(host: str, port: int) -> trio.SocketStream:
    """Stands in for trio.open_tcp_stream to a host that silently drops SYNs."""
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def test_each_attempt_is_bounded(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    # Such a host would hold one connect for minutes.
    monkeypatch.setattr(trio, "open_tcp_stream", black_hole)
    start = trio.current_time()
    with pytest.raises(ConnectError, match=r"after 2 attempts .*no answer within 3 s"):
        await open_framed_stream(
            "192.0.2.1", 9, retry=Retry(attempts=2, initial_delay=1, jitter=0, attempt_timeout=3)
        )
    assert trio.current_time() - start == pytest.approx(7)


async def test_overall_timeout_cuts_a_slow_attempt(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    monkeypatch.setattr(trio, "open_tcp_stream", black_hole)
    start = trio.current_time()
    with pytest.raises(ConnectError):
        await open_framed_stream("192.0.2.1", 9, retry=Retry.for_seconds(5))
    assert trio.current_time() - start == pytest.approx(5)


async def test_tls_handshake_without_answer_is_bounded(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    client_ssl_context: ssl.SSLContext,
) -> None:
    async def mute(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    listeners = await nursery.start(trio.serve_tcp, mute, 0)
    port = listeners[0].socket.getsockname()[1]
    with pytest.raises(ConnectError, match="got no answer within 10 s"):
        await open_framed_stream("127.0.0.1", port, ssl_context=client_ssl_context)


async def test_gathered_sends_survive_partial_writes(nursery: trio.Nursery) -> None:
    # 16 KiB..1 MiB frames go to a socket with one sendmsg; when the kernel takes only
    # part (the reader is slow), the rest must follow in order.
    got: list[bytes] = []
    done = trio.Event()

    async def slow_reader(channel: FramedStream) -> None:
        await trio.sleep(0.2)  # let the sender fill the socket buffers first
        async for payload in channel:
            got.append(payload)
        done.set()

    [(host, port)] = await nursery.start(serve_framed, slow_reader, 0)
    payloads = [bytes([i]) * (900_000 - i) for i in range(6)] + [b"x" * 20_000]
    async with await open_framed_stream(host, port) as conn:
        for p in payloads:
            await conn.send(p)
    with trio.fail_after(10):
        await done.wait()
    assert got == payloads


async def test_gathered_send_to_a_vanished_peer_is_broken(nursery: trio.Nursery) -> None:
    async def hang_up(channel: FramedStream) -> None:
        pass  # closes at once

    [(host, port)] = await nursery.start(serve_framed, hang_up, 0)
    conn = await open_framed_stream(host, port)
    with pytest.raises(trio.BrokenResourceError):  # noqa: PT012
        for _ in range(100):  # the reset arrives after a send or two
            await conn.send(b"z" * 50_000)
    await conn.aclose()


def test_earlier_connect_names_are_aliases() -> None:
    assert framekit.open_framed_connection is framekit.open_framed_stream
    assert framekit.open_message_connection is framekit.open_message_stream


async def test_cancelled_tls_handshake_closes_the_socket(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext
) -> None:
    accepted: trio.MemorySendChannel[trio.SocketStream]
    accepted, incoming = trio.open_memory_channel[trio.SocketStream](1)

    async def mute(stream: trio.SocketStream) -> None:  # accepts, never answers the hello
        await accepted.send(stream)
        await trio.sleep_forever()

    [listener] = await nursery.start(partial(trio.serve_tcp, mute, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    with trio.move_on_after(0.2):
        await framekit.open_stream("127.0.0.1", port, ssl_context=client_ssl_context)
    server_side = await incoming.receive()
    with trio.fail_after(5):  # the client's socket was closed, not left to the GC
        while await server_side.receive_some():
            pass


async def test_a_name_that_does_not_resolve_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    class NoDNS(trio.abc.HostnameResolver):
        async def getaddrinfo(self, *args: object, **kwargs: object) -> Any:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        async def getnameinfo(self, *args: object) -> Any:
            raise NotImplementedError

    trio.socket.set_custom_hostname_resolver(NoDNS())
    try:
        with pytest.raises(ConnectError, match="cannot resolve the host name of") as info:
            await framekit.open_stream("no-such-host.invalid", 9999)
    finally:
        trio.socket.set_custom_hostname_resolver(None)
    assert info.value.reason == "name_resolution"
    assert "no-such-host.invalid:9999" in str(info.value)


async def test_ipv6_addresses_are_written_in_brackets(closed_port: int) -> None:
    if not HAS_IPV6:
        pytest.skip("no IPv6 loopback here")
    with pytest.raises(ConnectError, match=rf"could not connect to \[::1\]:{closed_port}"):
        await framekit.open_stream("::1", closed_port)
