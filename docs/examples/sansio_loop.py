"""The sans-IO "sandwich": your I/O on the outside, framekit's pure codec in the middle.

The codec never touches a socket, so the same decoder works with blocking sockets,
Trio, asyncio or a test that hands it bytes. Here a plain blocking socket pair.
"""

from __future__ import annotations

import socket

from framekit import END_OF_STREAM, NEED_DATA, FrameDecoder, FrameEncoder


def receive_all_frames(sock: socket.socket) -> list[bytes]:
    decoder = FrameDecoder()
    frames: list[bytes] = []
    while True:
        event = decoder.next_frame()
        if event is NEED_DATA:
            # The only I/O: read whatever arrived (b"" at EOF) and hand it over.
            decoder.receive_data(sock.recv(1024))
        elif event is END_OF_STREAM:
            return frames
        else:
            frames.append(event)


left, right = socket.socketpair()
with left, right:
    encoder = FrameEncoder()
    # Two frames in one send: on a raw stream the receiver could not tell them apart.
    left.sendall(encoder.encode(b"first") + encoder.encode(b"second"))
    left.sendall(encoder.encode(b"third" * 500))  # bigger than one recv(1024)
    left.shutdown(socket.SHUT_WR)
    assert receive_all_frames(right) == [b"first", b"second", b"third" * 500]
print("three frames, each whole")
