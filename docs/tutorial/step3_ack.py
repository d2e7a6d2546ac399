"""Step 3: the acknowledgement hack. Wait for the receiver to confirm each message.

The receiver answers every recv() with b"ok", and the sender waits for that answer
before it sends the next message. Nothing can merge any more: the next message is not
even sent until the previous one has been read. But every message now costs a round
trip, and the receiver still does not know where a message ends: a message longer than
one recv(1024) is acknowledged after its first 1024 bytes.

Run it: python docs/tutorial/step3_ack.py
"""

from __future__ import annotations

import socket
import threading
import time


def connected_pair() -> tuple[socket.socket, socket.socket]:
    """A TCP connection over loopback: (client end, server end)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, server


def receiver(sock: socket.socket, reads: list[bytes]) -> None:
    """Read, then acknowledge what was read, until the peer closes."""
    while data := sock.recv(1024):
        reads.append(data)
        sock.sendall(b"ok")


def send_all_acknowledged(messages: list[bytes]) -> tuple[list[bytes], float]:
    client, server = connected_pair()
    reads: list[bytes] = []
    thread = threading.Thread(target=receiver, args=(server, reads))
    thread.start()
    start = time.perf_counter()
    with client, server:
        for message in messages:
            client.sendall(message)
            assert client.recv(2) == b"ok"  # a whole round trip before the next send
        elapsed = time.perf_counter() - start
        client.shutdown(socket.SHUT_WR)
        thread.join()
    return reads, elapsed


# Small messages: each is read on its own, because the next one waits for its ack.
small = [b"%03d" % i for i in range(200)]
reads, elapsed = send_all_acknowledged(small)
assert reads == small
print(f"{len(small)} small messages, {len(small)} round trips: {elapsed * 1000:.1f} ms")

# For comparison, the same messages sent back to back (one write) and read at once.
client, server = connected_pair()
with client, server:
    start = time.perf_counter()
    client.sendall(b"".join(small))
    client.shutdown(socket.SHUT_WR)
    received = b""
    while data := server.recv(65536):
        received += data
    no_ack = time.perf_counter() - start
assert received == b"".join(small)
print(f"the same {len(received)} bytes in one send, no acks: {no_ack * 1e6:.0f} us")

# A message longer than one read: the receiver's first recv(1024) returns 1024 bytes,
# and it has no way to know that 1976 more belong to the same message.
big = [b"x" * 3000]
client, server = connected_pair()
with client, server:
    client.sendall(big[0])
    first = server.recv(1024)
assert len(first) <= 1024 < len(big[0])  # read in part, and acknowledged as if whole
print(f"a 3000-byte message: the first recv returned {len(first)} bytes, then an ack")
