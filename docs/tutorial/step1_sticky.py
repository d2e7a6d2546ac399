"""Step 1: TCP is a byte stream, and recv(1024) returns whatever happens to be buffered.

Plain blocking sockets on loopback, as in the tutorials. To make every run show the same
thing, one thread plays both programs in the order things happen, and the receiver
reads only once the bytes it is about to read have arrived (``until_buffered``). That
is exactly the situation of a receiver that was busy for a moment, which is normal.

Run it: python docs/tutorial/step1_sticky.py
"""

from __future__ import annotations

import socket
import threading
import time


def connected_pair(rcvbuf: int | None = None) -> tuple[socket.socket, socket.socket]:
    """A TCP connection over loopback: (client end, server end)."""
    with socket.socket() as listener:
        if rcvbuf is not None:  # set before listen(): accepted sockets inherit it
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind(("127.0.0.1", 0))  # port 0: any free port
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    # Nagle's algorithm off: every send() leaves at once, as its own segment. The
    # messages below merge all the same: in the receiver's buffer.
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, server


def until_buffered(sock: socket.socket, n: int) -> None:
    """Wait until ``n`` bytes wait in ``sock``'s receive buffer, without reading them."""
    deadline = time.monotonic() + 5
    while len(sock.recv(n, socket.MSG_PEEK)) < n:
        assert time.monotonic() < deadline, "the bytes never arrived"
        time.sleep(0.001)


def how_recv_behaves() -> None:
    client, server = connected_pair()
    with client, server:
        client.sendall(b"hello")
        until_buffered(server, 5)
        # recv(n) returns at most n bytes of what is buffered, and never waits for more
        # once it has at least one: recv(1024) here returns the 1 byte that is left.
        assert server.recv(2) == b"he"
        assert server.recv(2) == b"ll"
        assert server.recv(1024) == b"o"
        # Nothing buffered and the peer still connected: recv waits (here at most 0.2 s).
        server.settimeout(0.2)
        try:
            server.recv(1024)
        except TimeoutError:
            print("recv waited: nothing buffered, and the peer is still connected")
        else:
            raise AssertionError("recv should have waited")
        server.settimeout(None)
        # Once the peer has closed and everything has been read, recv returns b""
        # at once, every time. b"" means "closed", never "an empty message".
        client.close()
        assert server.recv(1024) == b""
        assert server.recv(1024) == b""
        print("recv returned b'' after the peer closed")


def small_sends_merge() -> None:
    client, server = connected_pair()
    with client, server:
        for command in [b"dir", b"ipconfig", b"ls -la"]:
            client.sendall(command)  # three sends...
        until_buffered(server, 17)
        data = server.recv(1024)  # ...one recv
        assert data == b"diripconfigls -la"
        print(f"3 sends, 1 recv: {data!r}")


def big_sends_split() -> None:
    # A receive buffer of 64 KiB: a 1 MiB send cannot arrive in one piece, whatever the
    # size given to recv. (The kernel may round the buffer up; it stays far below 1 MiB.)
    client, server = connected_pair(rcvbuf=64 * 1024)
    message = bytes(1024 * 1024)
    sender = threading.Thread(target=client.sendall, args=(message,))
    sender.start()  # sendall blocks until the receiver has made room: a thread sends
    reads = []
    with client, server:
        received = 0
        while received < len(message):
            chunk = server.recv(len(message))  # "give me up to 1 MiB"
            reads.append(len(chunk))
            received += len(chunk)
        sender.join()
    assert sum(reads) == len(message) and len(reads) > 1
    print(f"1 send of 1 MiB, {len(reads)} recvs (the largest: {max(reads)} bytes)")


def run(command: bytes) -> bytes:
    """A stand-in for the tutorials' subprocess.Popen(command, shell=True)."""
    if command == b"ls -la":
        return b"".join(b"file%07d.txt\n" % i for i in range(300))  # 300 lines of 16 bytes
    return b"alice\n"  # whoami


def answers_go_astray() -> None:
    # The tutorials' remote shell: the client sends a command and prints recv(1024).
    client, server = connected_pair()
    with client, server:
        answers = []
        for command in [b"ls -la", b"whoami"]:
            client.sendall(command)  # the client sends a command
            until_buffered(server, len(command))
            output = run(server.recv(1024))  # the server runs it...
            server.sendall(output)  # ...and sends all of its output
            until_buffered(client, 1024)
            answers.append(client.recv(1024))  # the client prints one recv's worth
        # The first answer was cut at 1024 bytes. The second command's "answer" is the
        # next 1024 bytes of the first one; "alice" is still waiting behind them.
        assert answers[0] == run(b"ls -la")[:1024]
        assert answers[1] == run(b"ls -la")[1024:2048]
        assert b"alice" not in answers[1]
        print(f"'whoami' printed {answers[1][:16]!r}... instead of b'alice\\n'")


how_recv_behaves()
small_sends_merge()
big_sends_split()
answers_go_astray()
