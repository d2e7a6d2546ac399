"""Step 6: a JSON header that describes the body, and a body streamed in chunks.

The tutorials' "header dictionary" ({"total_size": ..., "md5": ..., "filename": ...}),
done carefully. On the wire: a "!I" length, the header as UTF-8 JSON, then exactly
`size` raw body bytes:

    00 00 00 77  {"filename": "data.bin", "size": 8388608, "sha256": "<64 hex digits>"}
    <8388608 body bytes>

The sender hashes the file, then sends it in 64 KiB chunks; the receiver writes chunks to
a temporary file as they arrive, checks size and SHA-256, and only then renames it into
place. Neither side ever holds the whole file in memory: tracemalloc proves it.

Run it: python docs/tutorial/step6_json_header.py
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import tempfile
import threading
import tracemalloc
from pathlib import Path
from typing import Any

PREFIX = struct.Struct("!I")
MAX_HEADER = 64 * 1024  # a header is small; a larger length is an attack or a bug
CHUNK = 64 * 1024


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    parts, left = [], n
    while left:
        data = sock.recv(min(left, CHUNK))
        if not data:
            raise EOFError(f"connection closed with {left} of {n} bytes missing")
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def send_file(sock: socket.socket, path: Path, *, corrupt: bool = False) -> None:
    size = path.stat().st_size
    header = {"filename": path.name, "size": size, "sha256": sha256_of(path)}
    raw = json.dumps(header).encode()
    sock.sendall(PREFIX.pack(len(raw)) + raw)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            if corrupt:  # one flipped bit on the way, for the demonstration below
                chunk, corrupt = bytes([chunk[0] ^ 1]) + chunk[1:], False
            sock.sendall(chunk)


def receive_file(sock: socket.socket, directory: Path) -> Path | None:
    """Receive one file into ``directory``; None at a clean end of the connection."""
    first = sock.recv(PREFIX.size)
    if not first:
        return None
    (length,) = PREFIX.unpack(first + recv_exactly(sock, PREFIX.size - len(first)))
    if length > MAX_HEADER:
        raise ValueError(f"header of {length} bytes announced; the limit is {MAX_HEADER}")
    header: dict[str, Any] = json.loads(recv_exactly(sock, length))
    size = header["size"]
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"bad size in header: {size!r}")
    # Never use a path from the network as it is: keep only a plain file name.
    name = os.path.basename(header["filename"])
    if name in ("", ".", ".."):
        raise ValueError(f"bad file name in header: {header['filename']!r}")
    digest, left = hashlib.sha256(), size
    partial = directory / (name + ".part")
    with partial.open("wb") as f:
        while left:
            chunk = sock.recv(min(left, CHUNK))  # never more than the body's remainder
            if not chunk:
                raise EOFError(f"connection closed with {left} body bytes missing")
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    if digest.hexdigest() != header["sha256"]:
        partial.unlink()  # the body is still fully read: the next header is in step
        raise ValueError(f"{name}: SHA-256 mismatch, file discarded")
    return partial.rename(directory / name)


def receiver(sock: socket.socket, directory: Path, results: list[Path | str]) -> None:
    with sock:
        while True:
            try:
                path = receive_file(sock, directory)
            except ValueError as exc:  # a bad file: report it and go on with the next
                results.append(str(exc))
                continue
            if path is None:
                return
            results.append(path)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outbox, inbox = Path(tmp, "outbox"), Path(tmp, "inbox")
        outbox.mkdir()
        inbox.mkdir()
        source = outbox / "data.bin"
        with source.open("wb") as f:
            for _ in range(128):  # 8 MiB, written (and later sent) in 64 KiB pieces
                f.write(os.urandom(CHUNK))

        with socket.create_server(("127.0.0.1", 0)) as listener:
            client = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
        results: list[Path | str] = []
        tracemalloc.start()  # counts the Python memory both threads allocate
        thread = threading.Thread(target=receiver, args=(server, inbox, results))
        thread.start()
        with client:
            send_file(client, source)
            send_file(client, source, corrupt=True)
            client.shutdown(socket.SHUT_WR)
            thread.join()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        received, refused = results
        assert isinstance(received, Path) and received.read_bytes() == source.read_bytes()
        assert refused == "data.bin: SHA-256 mismatch, file discarded"
        assert sorted(p.name for p in inbox.iterdir()) == ["data.bin"]  # no .part left
        size = source.stat().st_size
        assert peak < size / 8, f"peak memory {peak} for a {size}-byte file"
        print(f"sent {size:,} bytes twice; stored 1 file, refused 1 ({refused})")
        print(f"peak Python memory while sending and receiving: under {size // 8:,} bytes")


main()
