"""Talk to the tutorials' last server: struct 'i' header length, JSON header, raw body.

That server (a thread below, written the tutorials' way with blocking sockets) answers a
command with struct.pack('i', len(header)), a JSON header {"total_size", "md5",
"filename"}, then total_size raw bytes. Its header has no "size" key, so it is not a
framekit message; but its framing is one frame (the header, in the 'i' format)
followed by raw bytes. framekit's sans-IO FrameDecoder reads exactly that: next_frame()
for the header, read_raw() for the body bytes that follow it.

The format is spelled out, not taken from this machine: little-endian, signed, 4 bytes,
which is what struct 'i' produces on the x86 and ARM machines that run such servers.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
from typing import Any

import trio

import framekit

#: struct 'i' as an x86 or ARM machine packs it, whatever machine this client runs on.
LITTLE_ENDIAN_I = framekit.FrameFormat(width=4, byteorder="little", signed=True)
OUTPUT = b"".join(b"line %d\n" % i for i in range(500))  # 4,390 bytes


def tutorial_server(server: socket.socket) -> None:
    """The tutorials' final server, reduced to its framing (and with '<i', not 'i')."""
    conn, _ = server.accept()
    with conn:
        while cmd := conn.recv(1024):
            res = OUTPUT if cmd == b"dir" else b"unknown command\n"
            header_dic = {"total_size": len(res), "md5": hashlib.md5(res).hexdigest()}
            header_dic["filename"] = "a.txt"
            header_bytes = json.dumps(header_dic).encode("utf-8")
            conn.send(struct.pack("<i", len(header_bytes)))
            conn.send(header_bytes)
            conn.send(res)


async def receive_reply(
    stream: trio.abc.Stream, decoder: framekit.FrameDecoder
) -> tuple[dict[str, Any], bytes]:
    """One reply: the header frame, then exactly total_size raw bytes."""
    while (frame := decoder.next_frame()) is framekit.NEED_DATA:
        decoder.receive_data(await stream.receive_some())
    if frame is framekit.END_OF_STREAM:
        raise EOFError("the server closed the connection")
    header = json.loads(frame)
    body, left = [], header["total_size"]
    while left:
        chunk = decoder.read_raw(left)  # bytes already read past the header, if any
        if not chunk:
            data = await stream.receive_some()
            if not data:
                raise EOFError(f"the server closed with {left} body bytes missing")
            decoder.receive_data(data)
            continue
        body.append(chunk)
        left -= len(chunk)
    return header, b"".join(body)


async def main() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        thread = threading.Thread(target=tutorial_server, args=(server,), daemon=True)
        thread.start()
        stream = await trio.open_tcp_stream(*server.getsockname())
        async with stream:
            decoder = framekit.FrameDecoder(LITTLE_ENDIAN_I)
            # The tutorials' client sends the command unframed: the server recv(1024)s it.
            for command in [b"dir", b"whoami"]:
                await stream.send_all(command)
                header, body = await receive_reply(stream, decoder)
                assert hashlib.md5(body).hexdigest() == header["md5"]
                print(f"{command.decode()}: {header['total_size']} bytes, md5 checked")
            assert body == b"unknown command\n"
        await trio.to_thread.run_sync(thread.join)

    # The limits still apply: a negative or oversized length is refused at the prefix.
    decoder = framekit.FrameDecoder(LITTLE_ENDIAN_I)
    decoder.receive_data(struct.pack("<i", -2))
    try:
        decoder.next_frame()
    except framekit.FrameTooLarge as exc:
        print("refused:", exc)


trio.run(main)
