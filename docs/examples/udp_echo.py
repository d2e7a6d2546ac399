"""UDP: boundaries kept, delivery not. The echo server, truncation, loss and ping.

Everything runs on loopback, where nothing is lost unless a receive buffer overflows;
the burst at the end makes one overflow on purpose.
"""

from __future__ import annotations

import functools
import socket

import trio

import framekit


async def main() -> None:
    stats = framekit.UdpEchoStats()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(framekit.serve_udp_echo, stats=stats)
        [(host, port)] = await nursery.start(serve, 0)

        # Each datagram comes back whole and alone: one recv, one datagram, whatever
        # the sizes. No framing needed, and none possible to get wrong.
        for data in [b"a", b"", b"b" * 20, b"c" * 3000]:
            reply = await framekit.send_datagram(host, port, data)
            assert reply.data == data
        print(f"4 datagrams echoed whole, last round trip {reply.rtt * 1e6:.0f} us")

        # Truncation: a receive buffer smaller than the datagram keeps its start and
        # silently drops the rest. (The tutorials' recv(1024) does this to UDP.)
        reply = await framekit.send_datagram(host, port, b"x" * 3000, max_size=1024)
        assert reply.data == b"x" * 1024
        print("a 3000-byte datagram read with a 1024-byte buffer: 1024 bytes, the rest lost")

        # ping: a series of round trips, with the loss and round-trip summary.
        report = await framekit.ping(host, port, b"ping", count=5, interval=0.01)
        assert report.sent == 5 and report.received == 5 and report.loss == 0
        assert stats.datagrams == 10  # the server's own counters

        # Nobody answers: send_datagram resends, then gives up.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))  # bound, so no "port unreachable"; never reads
            try:
                await framekit.send_datagram(*silent.getsockname(), b"hello?", timeout=0.1)
            except framekit.DatagramTimeout:
                print("no echo after 3 tries: DatagramTimeout")
        nursery.cancel_scope.cancel()

    # Loss: 2000 datagrams sent at once into a 64 KiB receive buffer nobody reads. The
    # kernel keeps what fits and drops the rest, silently; no error reaches the sender.
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        rx.bind(("127.0.0.1", 0))
        tx.connect(rx.getsockname())
        for _ in range(2000):
            tx.send(b"u" * 512)
        rx.setblocking(False)
        received = 0
        while True:
            try:
                assert len(rx.recv(65536)) == 512  # whole, or not at all
            except BlockingIOError:
                break
            received += 1
    assert 0 < received < 2000
    print(f"burst: 2000 sent, {received} received, {2000 - received} lost")


trio.run(main)
