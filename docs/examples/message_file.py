"""Send a file over loopback TCP; the server streams it to disk in bounded memory."""

from __future__ import annotations

import hashlib
import os
import tempfile

import trio

import framekit


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = trio.Path(tmp) / "photo.jpg"
        data = os.urandom(3 * 1024 * 1024 + 17)
        await source.write_bytes(data)
        inbox = trio.Path(tmp) / "inbox"
        await inbox.mkdir()

        async def receive_files(stream: framekit.MessageStream) -> None:
            while True:
                try:
                    incoming = await stream.receive_message_stream()
                except trio.EndOfChannel:
                    return  # the client is done
                # Never use a path from the network as is: keep only the file name.
                name = os.path.basename(incoming.header["name"])
                partial = inbox / (name + ".part")
                async with await trio.open_file(partial, "wb") as f:
                    async for chunk in incoming:  # chunks as they arrive off the socket
                        await f.write(chunk)
                # The loop ended, so the body matched the header's sha256 (else the
                # loop raised ChecksumMismatch). Only now give the file its real name.
                await partial.rename(inbox / name)
                # ("sha256" in a header means *this* body's hash, so use another key.)
                await stream.send_message({"saved": name, "digest": incoming.sha256})

        async with trio.open_nursery() as nursery:
            [(host, port)] = await nursery.start(framekit.serve_messages, receive_files, 0)
            async with await framekit.open_message_stream(host, port) as stream:
                sent: list[int] = []
                # send_file streams the file; checksum=True (the default) adds its sha256.
                await stream.send_file(
                    {"name": "photo.jpg"}, source, progress=lambda done, total: sent.append(done)
                )
                reply = await stream.receive_message()
            nursery.cancel_scope.cancel()

        assert reply.header["saved"] == "photo.jpg"
        assert reply.header["digest"] == hashlib.sha256(data).hexdigest()
        assert await (inbox / "photo.jpg").read_bytes() == data
        assert sent[-1] == len(data) and len(sent) > 1  # progress was reported per chunk
        print(f"sent {len(data)} bytes in {len(sent)} chunks")


trio.run(main)
