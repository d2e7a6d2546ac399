"""Step 7: the same program with framekit, on Trio.

A framekit message is step 6's format, ready-made: a length-prefixed JSON header with
`size` (and optionally `sha256`), then `size` raw body bytes. The server below is both
programs of this tutorial: it runs commands (steps 1 to 4) and stores files (step 6).
framekit does the framing, the limits and the checksum; the handler only decides what
to do with each message.

Run it: python docs/tutorial/step7_framekit.py
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import trio

import framekit


async def handle(stream: framekit.MessageStream, inbox: trio.Path) -> None:
    """One connection: answer each request until the client closes."""
    while True:
        try:
            request = await stream.receive_message_stream()  # the header has arrived
        except trio.EndOfChannel:
            return  # the client closed cleanly between messages
        if request.header["type"] == "run":
            # argv is a list, run without a shell: no quoting, no injection.
            result = await trio.run_process(
                request.header["argv"], capture_stdout=True, check=False
            )
            await stream.send_message({"returncode": result.returncode}, result.stdout)
        elif request.header["type"] == "put":
            name = request.header["name"].rpartition("/")[2]  # never trust a path
            partial = inbox / (name + ".part")
            try:
                async with await trio.open_file(partial, "wb") as f:
                    async for chunk in request:  # chunks as they come off the socket
                        await f.write(chunk)
            except framekit.ChecksumMismatch as exc:  # raised after the last chunk
                await partial.unlink()
                await stream.send_message({"refused": name, "reason": str(exc)})
                continue  # the body was read in full: the stream is still in step
            await partial.rename(inbox / name)
            await stream.send_message({"stored": name, "bytes": request.size})


async def main(source: trio.Path, inbox: trio.Path) -> None:
    async with trio.open_nursery() as nursery:
        serve = framekit.serve_messages
        [(host, port)] = await nursery.start(serve, lambda s: handle(s, inbox), 0)

        async with await framekit.open_message_connection(host, port) as stream:
            # Two commands sent back to back, then their answers: each one whole.
            commands = [
                [sys.executable, "-c", "print('x' * 4799)"],  # 4,800 bytes of output
                [sys.executable, "-c", "print('alice')"],
            ]
            for argv in commands:
                await stream.send_message({"type": "run", "argv": argv})
            answers = [await stream.receive_message() for _ in commands]
            assert [len(a.body) for a in answers] == [4800, 6]
            assert answers[1].body.strip() == b"alice" and answers[1].header["returncode"] == 0

            # A file, streamed from disk with its size and SHA-256 in the header.
            await stream.send_file({"type": "put", "name": "data.bin"}, source)
            stored = await stream.receive_message()
            assert stored.header["stored"] == "data.bin"

            # A body that does not match its header's sha256 is refused.
            bad = {"type": "put", "name": "bad.bin", "sha256": hashlib.sha256(b"").hexdigest()}
            await stream.send_message(bad, b"not empty")
            refused = await stream.receive_message()
            assert refused.header["refused"] == "bad.bin"

        nursery.cancel_scope.cancel()  # stop the server
    assert await (inbox / "data.bin").read_bytes() == await source.read_bytes()
    assert sorted(p.name for p in await inbox.iterdir()) == ["data.bin"]
    print(f"answers of {[len(a.body) for a in answers]} bytes, each one whole")
    print(f"stored data.bin ({stored.header['bytes']:,} bytes), refused bad.bin")


with tempfile.TemporaryDirectory() as tmp:
    source, inbox = Path(tmp, "data.bin"), Path(tmp, "inbox")
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    inbox.mkdir()
    trio.run(main, trio.Path(source), trio.Path(inbox))
