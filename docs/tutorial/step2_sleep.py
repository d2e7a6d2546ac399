"""Step 2: the sleep hack. Sleep after each send and hope the receiver has read it.

The tutorials put time.sleep(1) between two sends. This script does the same with a
shorter sleep and shows what it costs, and the two ways it fails: a message larger than
one recv() is split anyway, and a receiver slower than the sleep gets merged messages.

Run it: python docs/tutorial/step2_sleep.py
"""

from __future__ import annotations

import socket
import threading
import time

SLEEP = 0.05  # the tutorials sleep a whole second
#: The message sizes of `framekit compare`; one is larger than a recv(1024).
SIZES = [5, 12, 3000, 7, 40, 600, 1]
MESSAGES = [bytes([ord("a") + i]) * size for i, size in enumerate(SIZES)]


def connected_pair() -> tuple[socket.socket, socket.socket]:
    """A TCP connection over loopback: (client end, server end)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, server


def read_until_closed(sock: socket.socket, reads: list[bytes]) -> None:
    """The tutorials' receiver: recv(1024) in a loop, until the peer closes."""
    while data := sock.recv(1024):
        reads.append(data)


def send_with_sleeps(delay_receiver: bool) -> tuple[list[bytes], float]:
    client, server = connected_pair()
    reads: list[bytes] = []
    receiver = threading.Thread(target=read_until_closed, args=(server, reads))
    if not delay_receiver:
        receiver.start()  # reading all along, as fast as it can
    start = time.perf_counter()
    with client, server:
        for message in MESSAGES:
            client.sendall(message)
            time.sleep(SLEEP)  # the hack
        client.shutdown(socket.SHUT_WR)  # no more messages: the receiver sees b""
        elapsed = time.perf_counter() - start
        if delay_receiver:
            receiver.start()  # a receiver busy for longer than the sleep
        receiver.join()
    assert b"".join(reads) == b"".join(MESSAGES)  # TCP lost nothing, it never does
    return reads, elapsed


reads, elapsed = send_with_sleeps(delay_receiver=False)
# The cost is certain: the sleeps, for every message, whatever the network does.
assert elapsed >= len(MESSAGES) * SLEEP
print(f"{len(MESSAGES)} messages took {elapsed:.2f} s, {SLEEP * 1000:g} ms of sleep each")
# The 3000-byte message (of "c"s) cannot come in one recv(1024): three reads at least.
assert sum(b"c" in read for read in reads) >= 3
print(f"the receiver read {[len(r) for r in reads]}: the big message is split")

reads, _ = send_with_sleeps(delay_receiver=True)
# A receiver that reads later than the sender's sleep finds every message waiting in its
# buffer: the sleep protected nothing. A busy server or a slow network does this.
assert len(reads) < len(MESSAGES)
print(f"a late receiver read {[len(r) for r in reads]}: merged again")
