"""Talk to a program written the tutorials' way: struct.pack('i', n) length prefixes.

The peer below is a plain blocking-socket server in a thread, as in the tutorials. It
frames replies with the native-order, signed 4-byte 'i'. framekit speaks it with
FrameFormat.tutorial() (also available as framekit.TUTORIAL_FORMAT).
"""

from __future__ import annotations

import socket
import struct
import sys
import threading

import trio

import framekit


def recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def tutorial_server(server: socket.socket) -> None:
    """Echo each message upper-cased, framed with struct 'i' (native order, signed)."""
    conn, _ = server.accept()
    with conn:
        while True:
            try:
                (length,) = struct.unpack("i", recv_exactly(conn, 4))
            except EOFError:
                return
            reply = recv_exactly(conn, length).upper()
            conn.sendall(struct.pack("i", len(reply)) + reply)


async def main() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        thread = threading.Thread(target=tutorial_server, args=(server,), daemon=True)
        thread.start()
        channel = await framekit.open_framed_stream(
            "127.0.0.1", port, format=framekit.FrameFormat.tutorial()
        )
        async with channel:
            await channel.send(b"hello")
            assert await channel.receive() == b"HELLO"
        await trio.to_thread.run_sync(thread.join)


trio.run(main)

# What 'i' means depends on the machine: 'i' packs in this machine's byte order.
assert framekit.TUTORIAL_FORMAT.byteorder == sys.byteorder
assert struct.pack("i", 5) == framekit.FrameEncoder(framekit.TUTORIAL_FORMAT).prefix(5)
# The same length in network order, which is what framekit's default format sends:
assert struct.pack("!I", 5) == framekit.FrameEncoder().prefix(5) == b"\x00\x00\x00\x05"
# A big-endian peer reading little-endian 5 would see 83,886,080 bytes coming:
assert int.from_bytes(struct.pack("<i", 5), "big") == 83_886_080

# A signed field can carry a negative length; framekit refuses it instead of hanging.
decoder = framekit.FrameDecoder(framekit.TUTORIAL_FORMAT)
decoder.receive_data(struct.pack("i", -1))
try:
    decoder.next_frame()
except framekit.FrameTooLarge as exc:
    negative = exc.length
assert negative == -1
print("spoke struct 'i' on a", sys.byteorder, "endian machine")
