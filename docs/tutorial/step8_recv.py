"""Step 8: what recv really does, measured.

Step 1 stated the rules of recv; this step times them, with plain blocking sockets on
loopback, and adds one more: a peer that has shut down its sending side
(``shutdown(SHUT_WR)``) can still receive. Each message is one letter repeated, so the
bytes a recv returns show which messages they came from.

Run it: python docs/tutorial/step8_recv.py
"""

from __future__ import annotations

import socket
import threading
import time
from itertools import groupby

WAIT = 0.2  # seconds the sender waits before sending, in the first experiment


def connected_pair() -> tuple[socket.socket, socket.socket]:
    """A TCP connection over loopback: (client end, server end)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # every send leaves at once
    return client, server


def until_buffered(sock: socket.socket, n: int) -> None:
    """Wait until ``n`` bytes wait in ``sock``'s receive buffer, without reading them."""
    deadline = time.monotonic() + 5
    while len(sock.recv(n, socket.MSG_PEEK)) < n:
        assert time.monotonic() < deadline, "the bytes never arrived"
        time.sleep(0.001)


def timed_recv(sock: socket.socket, n: int) -> tuple[bytes, float]:
    """``sock.recv(n)``, and how many seconds it took."""
    start = time.perf_counter()
    data = sock.recv(n)
    return data, time.perf_counter() - start


def letters(data: bytes) -> str:
    """b"aaabb" as "a*3 + b*2": which messages, and how many bytes of each."""
    return " + ".join(f"{chr(byte)}*{len(list(run))}" for byte, run in groupby(data))


def recv_all(sock: socket.socket) -> bytes:
    """Everything the peer sends, until it closes or shuts down its sending side."""
    received = b""
    while data := sock.recv(1024):
        received += data
    return received


def recv_waits() -> float:
    client, server = connected_pair()
    with client, server:
        later = threading.Timer(WAIT, client.sendall, args=(b"hello",))
        later.start()  # another thread sends b"hello" in 0.2 s
        data, took = timed_recv(server, 1024)  # nothing is buffered yet: recv waits
        later.join()
    assert data == b"hello"
    assert 0.9 * WAIT <= took < WAIT + 0.5  # it waited for the sender, and no longer
    print(f"recv(1024) waited {took * 1000:.0f} ms, then returned {data!r}")
    return took


def recv_returns_what_is_buffered() -> None:
    client, server = connected_pair()
    with client, server:
        for message in [b"a" * 600, b"b" * 300, b"c" * 500]:
            client.sendall(message)
        until_buffered(server, 1400)
        first = server.recv(1024)  # 1024 of the 1400 buffered bytes...
        second = server.recv(1024)  # ...then the 376 it left, though 1024 were asked for
    assert first == b"a" * 600 + b"b" * 300 + b"c" * 124
    assert second == b"c" * 376
    print(
        f"3 sends (600, 300, 500 bytes): recv(1024) returned {letters(first)}, "
        f"then {letters(second)}"
    )


def small_recv_returns_part() -> None:
    client, server = connected_pair()
    with client, server:
        client.sendall(b"d" * 600)
        until_buffered(server, 600)
        part = server.recv(100)  # less than the message: the first 100 bytes of it
        rest = server.recv(1024)  # the next call returns the rest
    assert part + rest == b"d" * 600 and len(part) == 100
    print(
        f"a 600-byte message: recv(100) returned {letters(part)}, "
        f"then recv(1024) returned {letters(rest)}"
    )


def recv_after_close(waited: float) -> None:
    client, server = connected_pair()
    with server:
        with client:
            client.sendall(b"bye")
        # The client has closed. What it sent is still buffered; after that, b"".
        data = server.recv(1024)
        empty, took = timed_recv(server, 1024)
        again, _ = timed_recv(server, 1024)
    assert data == b"bye" and empty == again == b""
    assert took < waited / 4  # b"" comes at once: recv does not wait for anything
    print(
        f"after the peer closed: {data!r}, then {empty!r} in {took * 1e6:.0f} us, "
        f"and {again!r} again"
    )


def half_closed_peer_receives() -> None:
    client, server = connected_pair()
    with client:
        with server:
            client.sendall(b"whoami")
            client.shutdown(socket.SHUT_WR)  # "I have sent everything" - but still listening
            request = recv_all(server)  # the server reads until b"": the request is complete
            server.sendall(b"alice\n")  # ...and answers the half-closed client
        reply = recv_all(client)
    assert request == b"whoami" and reply == b"alice\n"
    print(
        f"the client shut down its sending side; the server read {request!r}, then b'', "
        f"and the client still received {reply!r}"
    )


waited = recv_waits()
recv_returns_what_is_buffered()
small_recv_returns_part()
recv_after_close(waited)
half_closed_peer_receives()
