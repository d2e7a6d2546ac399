"""The UDP echo server and datagram client: boundaries kept, no amplification."""

from __future__ import annotations

import socket
from functools import partial

import pytest
import trio

import framekit
from framekit import MAX_UDP_PAYLOAD, DatagramTimeout, UdpEchoStats, send_datagram, serve_udp_echo

from ..conftest import HAS_IPV6


async def start_echo(nursery: trio.Nursery) -> tuple[tuple[str, int], UdpEchoStats]:
    stats = UdpEchoStats()
    [addr] = await nursery.start(partial(serve_udp_echo, 0, stats=stats))
    return addr, stats


async def test_echo_each_datagram_whole(nursery: trio.Nursery) -> None:
    (host, port), stats = await start_echo(nursery)
    for payload in [b"", b"a", b"x" * 1500, bytes(range(256)) * 255, b"m" * MAX_UDP_PAYLOAD]:
        reply = await send_datagram(host, port, payload)
        assert reply.data == payload and reply.attempts == 1 and reply.rtt >= 0
    assert stats.datagrams == 5
    assert stats.bytes == 1 + 1500 + 256 * 255 + MAX_UDP_PAYLOAD


async def test_boundaries_kept_and_never_amplified(nursery: trio.Nursery) -> None:
    (host, port), stats = await start_echo(nursery)
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        sizes = [5, 12, 3000, 7, 40]
        for size in sizes:
            await sock.sendto(b"d" * size, (host, port))
        got = []
        with trio.fail_after(5):
            for _ in sizes:
                data, addr = await sock.recvfrom(65535)
                assert addr == (host, port)
                got.append(len(data))
    assert got == sizes  # one recvfrom, one datagram: no merging, no splitting
    assert stats.bytes == sum(sizes)


async def test_small_receive_buffer_truncates(nursery: trio.Nursery) -> None:
    (host, port), _ = await start_echo(nursery)
    reply = await send_datagram(host, port, b"t" * 2000, max_size=1024)
    assert reply.data == b"t" * 1024  # the tail of the datagram is lost, as UDP does


async def test_survives_vanished_clients(nursery: trio.Nursery) -> None:
    (host, port), stats = await start_echo(nursery)
    for _ in range(20):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.sendto(b"bye", (host, port))
        s.close()  # the echo goes to a closed port: ICMP port unreachable
    assert (await send_datagram(host, port, b"still there")).data == b"still there"
    assert stats.datagrams == 21


async def test_burst_is_drained(nursery: trio.Nursery) -> None:
    (host, port), stats = await start_echo(nursery)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("127.0.0.1", 0))
        for i in range(2000):
            s.sendto(i.to_bytes(4, "big") + b"p" * 508, (host, port))
        with trio.fail_after(10):
            while stats.datagrams < 2000:
                await trio.sleep(0.01)
    assert stats.datagrams == 2000


async def test_timeout_after_retries(autojump_clock: trio.testing.MockClock) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))  # bound but never answers
        port = quiet.getsockname()[1]
        start = trio.current_time()
        with pytest.raises(DatagramTimeout, match=r"no echo from 127\.0\.0\.1:\d+ after 3 tries"):
            await send_datagram("127.0.0.1", port, b"hello?", timeout=0.5, retries=2)
        assert trio.current_time() - start == pytest.approx(1.5)
        assert len(quiet.recv(100)) == 6  # it did send


async def test_too_big_for_a_datagram() -> None:
    with pytest.raises(ValueError, match="at most 65507 bytes"):
        await send_datagram("127.0.0.1", 9, b"x" * (MAX_UDP_PAYLOAD + 1))


def test_timeout_error_is_both() -> None:
    assert issubclass(DatagramTimeout, TimeoutError)
    assert issubclass(DatagramTimeout, framekit.FramekitError)


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback here")
async def test_ipv6_echoes_its_largest_datagram_whole(nursery: trio.Nursery) -> None:
    # IPv6 does not count its own header: a datagram holds 65,527 bytes, 20 more than
    # over IPv4. A buffer sized for IPv4 once echoed such a datagram cut to 65,508.
    stats = UdpEchoStats()
    [(host, port)] = await nursery.start(partial(serve_udp_echo, 0, host="::1", stats=stats))
    payload = bytes(range(256)) * 255 + b"z" * (65527 - 256 * 255)
    assert len(payload) == framekit.MAX_UDP6_PAYLOAD
    with trio.socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        await sock.connect((host, port))
        await sock.send(payload)
        with trio.fail_after(5):
            assert await sock.recv(65536) == payload
    assert (await send_datagram(host, port, payload)).data == payload  # the client too
    assert (stats.datagrams, stats.bytes, stats.dropped) == (2, 2 * 65527, 0)
    with pytest.raises(ValueError, match="at most 65527 bytes"):
        await send_datagram(host, port, payload + b"!")


async def test_a_datagram_too_long_for_the_buffer_is_dropped_not_echoed_short(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framekit.datagram import _echo

    monkeypatch.setattr(_echo, "RECEIVE_BUFFER", 1000)  # stands in for a jumbogram
    (host, port), stats = await start_echo(nursery)
    with pytest.raises(DatagramTimeout):
        await send_datagram(host, port, b"j" * 1001, timeout=0.2, retries=0)
    assert (await send_datagram(host, port, b"j" * 1000)).data == b"j" * 1000
    assert (stats.datagrams, stats.dropped) == (2, 1)
