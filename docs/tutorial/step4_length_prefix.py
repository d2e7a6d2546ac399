"""Step 4: a fixed-size length prefix. Send the length, then exactly that many bytes.

struct.pack("!I", n) is the length as 4 bytes: "!" is network byte order (big-endian,
standard sizes), "I" an unsigned 32-bit integer. The receiver reads exactly 4 bytes,
learns n, then reads exactly n bytes: a loop of recv() calls, because recv() returns
*up to* the number of bytes asked for. Merged or split, every message comes out whole.

Run it: python docs/tutorial/step4_length_prefix.py
"""

from __future__ import annotations

import socket
import struct
import threading

PREFIX = struct.Struct("!I")  # 4 bytes, unsigned, big-endian
MAX_MESSAGE = 16 * 1024 * 1024  # refuse larger lengths before allocating anything


def send_message(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(PREFIX.pack(len(payload)) + payload)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Exactly n bytes: recv() until they are all here (EOFError if the peer closes)."""
    parts, left = [], n
    while left:
        data = sock.recv(min(left, 65536))
        if not data:
            raise EOFError(f"connection closed with {left} of {n} bytes missing")
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def recv_message(sock: socket.socket) -> bytes | None:
    """One whole message, or None if the peer closed cleanly between messages."""
    first = sock.recv(PREFIX.size)
    if not first:
        return None  # a clean end: no message was started
    prefix = first + recv_exactly(sock, PREFIX.size - len(first))  # even the prefix splits
    (length,) = PREFIX.unpack(prefix)
    if length > MAX_MESSAGE:
        raise ValueError(f"peer announced {length} bytes, over the {MAX_MESSAGE} limit")
    return recv_exactly(sock, length)


def run(command: bytes) -> bytes:
    """The same stand-in for subprocess as in step 1."""
    if command == b"ls -la":
        return b"".join(b"file%07d.txt\n" % i for i in range(300))
    return b"alice\n"


def serve(sock: socket.socket) -> None:
    """The remote shell's server: one framed answer per framed command."""
    with sock:
        while (command := recv_message(sock)) is not None:
            send_message(sock, run(command))


def main() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    thread = threading.Thread(target=serve, args=(server,))
    thread.start()
    with client:
        # The commands are sent back to back, so they can merge on the way; the answers
        # are 4,800 and 6 bytes. Each recv_message returns exactly one of them.
        commands = [b"ls -la", b"whoami", b"ls -la"]
        for command in commands:
            send_message(client, command)
        answers = [recv_message(client) for _ in commands]
        assert answers == [run(command) for command in commands]
        print(f"answers of {[len(run(c)) for c in commands]} bytes, each one whole")

        # An empty message is a message too: its prefix is 00 00 00 00.
        send_message(client, b"")
        assert recv_message(client) == b"alice\n"

        # Even a prefix sent in two pieces is read correctly.
        frame = PREFIX.pack(6) + b"whoami"
        client.sendall(frame[:2])
        client.sendall(frame[2:])
        assert recv_message(client) == b"alice\n"
        client.shutdown(socket.SHUT_WR)  # done: the server's recv_message returns None
        assert recv_message(client) is None
    thread.join()
    print("the length prefix of b'whoami':", PREFIX.pack(6).hex(" "))


main()
