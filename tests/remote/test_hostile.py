"""Hostile clients, each run while a well-behaved client keeps getting correct answers."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import framekit
from framekit import FrameEncoder, MessageEncoder

from ..helpers import wait_gone
from ..server_helpers import connect, start_server

Hostile = Callable[[str, int], Awaitable[None]]


@asynccontextmanager
async def good_client_running(addrs: framekit.ServerAddresses) -> AsyncIterator[list[int]]:
    """A client that keeps running `echo N` and checks every answer; yields its count."""
    answered: list[int] = []
    async with trio.open_nursery() as nursery:

        async def loop() -> None:
            async with await connect(addrs) as client:
                for n in range(10_000):
                    result = await client.run(["echo", str(n)])
                    assert result.stdout == f"{n}\n".encode() and result.ok
                    answered.append(n)

        nursery.start_soon(loop)
        yield answered
        before = len(answered)
        with trio.fail_after(10):
            while len(answered) < before + 3:  # still served after the hostile client
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def raw_connection(host: str, port: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream(host, port)
    hello = await framekit.MessageStream(stream).receive_message()
    assert hello.header["type"] == "hello"
    return stream


async def expect_closed_with(stream: trio.SocketStream, code: str | None) -> None:
    """Read what the server says until it hangs up; check the last error code."""
    messages = framekit.MessageStream(stream)
    last = None
    with trio.fail_after(10):
        try:
            while True:
                last = await messages.receive_message()
        except (trio.EndOfChannel, trio.BrokenResourceError):
            pass
    if code is not None:
        assert last is not None and last.header["code"] == code
    await stream.aclose()


async def huge_length(host: str, port: int) -> None:
    stream = await raw_connection(host, port)
    await stream.send_all(b"\xff\xff\xff\xff")  # a 4 GiB header length
    await expect_closed_with(stream, "too_large")


async def truncated_then_disconnect(host: str, port: int) -> None:
    stream = await raw_connection(host, port)
    await stream.send_all(FrameEncoder().encode(b'{"type":"run","argv":["true"],"size":0}')[:10])
    await stream.aclose()


async def not_json(host: str, port: int) -> None:
    stream = await raw_connection(host, port)
    await stream.send_all(FrameEncoder().encode(b"\x80not json at all"))
    await expect_closed_with(stream, "bad_request")


async def header_without_size(host: str, port: int) -> None:
    stream = await raw_connection(host, port)
    await stream.send_all(FrameEncoder().encode(b'{"type":"run","argv":["true"]}'))
    await expect_closed_with(stream, "bad_request")


async def body_size_lies(host: str, port: int) -> None:
    stream = await raw_connection(host, port)
    header = MessageEncoder().header({"type": "run", "argv": ["cat"]}, size=1000)
    await stream.send_all(header + b"only a little")
    await stream.aclose()


async def stdin_stalls(host: str, port: int) -> None:
    stream = await raw_connection(host, port)
    header = MessageEncoder().header({"type": "run", "argv": ["cat"]}, size=1000)
    await stream.send_all(header + b"part of the stdin, then nothing")
    await expect_closed_with(stream, "timeout")


async def silent(host: str, port: int) -> None:
    stream = await raw_connection(host, port)
    await expect_closed_with(stream, "timeout")  # idle_timeout in the fixture


async def one_byte_per_tick(host: str, port: int) -> None:
    stream = await raw_connection(host, port)
    request = MessageEncoder().message({"type": "run", "argv": ["echo", "slow"]})
    with trio.move_on_after(10):
        for byte in request[:-1]:  # never quite finishes the request
            try:
                await stream.send_all(bytes([byte]))
            except trio.BrokenResourceError:
                break
            await trio.sleep(0.1)
    await expect_closed_with(stream, None)


HOSTILE: dict[str, Hostile] = {
    "4 GiB declared length": huge_length,
    "truncated frame then disconnect": truncated_then_disconnect,
    "non-JSON header": not_json,
    "header without size": header_without_size,
    "body shorter than its size then disconnect": body_size_lies,
    "stdin body stalls half way": stdin_stalls,
    "connects and sends nothing": silent,
    "one byte at a time, never finishing": one_byte_per_tick,
}


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_client_does_not_disturb_others(name: str, nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, idle_timeout=1.0)
    host, port = addrs.tcp[0]
    async with good_client_running(addrs):
        await HOSTILE[name](host, port)


async def test_client_vanishing_mid_command_kills_it(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with good_client_running(addrs):
        client = await connect(addrs)
        stream = client.stream
        await stream.send_message(
            {"type": "run", "id": 1, "argv": ["sh", "-c", "echo $$; sleep 60 & echo $!; wait"]}
        )
        pids: list[int] = []
        while len(pids) < 2:
            pids += [int(p) for p in (await stream.receive_message()).body.split()]
        await trio.aclose_forcefully(stream)  # vanish
        await wait_gone(pids)


async def test_path_traversal_names_refused(nursery: trio.Nursery, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (uploads / "escape").symlink_to(tmp_path)
    local = tmp_path / "payload.txt"
    local.write_text("payload")
    addrs = await start_server(nursery, upload_dir=uploads)
    async with good_client_running(addrs), await connect(addrs) as client:
        for name in ["../secret.txt", "/etc/passwd", "a/../../secret.txt", "escape/secret.txt"]:
            with pytest.raises(framekit.RemoteError) as info:
                await client.get(name, tmp_path / "stolen")
            assert info.value.code in ("bad_request", "not_found")
        for name in ["../evil.txt", "/tmp/evil.txt", "escape/evil.txt"]:
            with pytest.raises(framekit.RemoteError) as info:
                await client.put(local, name)
            assert info.value.code in ("bad_request", "not_allowed")
    assert not (tmp_path / "stolen").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in uploads.iterdir()) == ["escape"]


async def test_stalled_upload_is_cut_and_leaves_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    import hashlib

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    addrs = await start_server(nursery, upload_dir=uploads, idle_timeout=0.5)
    async with good_client_running(addrs):
        stream = await raw_connection(*addrs.tcp[0])
        body = b"z" * 10_000
        header = MessageEncoder().header(
            {"type": "put", "name": "slow.bin", "sha256": hashlib.sha256(body).hexdigest()},
            size=len(body),
        )
        await stream.send_all(header + body[:3000])  # then nothing
        await expect_closed_with(stream, "timeout")
    assert list(uploads.iterdir()) == []


def test_struct_helper_sanity() -> None:
    # The hostile 4 GiB prefix above is what struct would write for 2**32 - 1.
    assert struct.pack("!I", 2**32 - 1) == b"\xff\xff\xff\xff"
