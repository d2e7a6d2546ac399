"""put / get through the server: confinement, atomic verified uploads, progress."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio

import framekit
from framekit import MessageEncoder

from ..server_helpers import connect, start_server


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    path = tmp_path / "uploads"
    path.mkdir()
    return path


async def test_put_then_get_roundtrip_with_progress(
    nursery: trio.Nursery, uploads: Path, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 5000  # ~1.3 MB: several chunks
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    addrs = await start_server(nursery, upload_dir=uploads)
    sent: list[tuple[int, int]] = []
    received: list[tuple[int, int]] = []
    async with await connect(addrs) as client:
        assert client.server_info["files"] is True
        info = await client.put(
            local, "nested/dir/big.bin", progress=lambda d, t: sent.append((d, t))
        )
        assert info == framekit.FileInfo(
            "nested/dir/big.bin", len(data), hashlib.sha256(data).hexdigest()
        )
        assert (uploads / "nested/dir/big.bin").read_bytes() == data
        back = await client.get(
            "nested/dir/big.bin",
            tmp_path / "back.bin",
            progress=lambda d, t: received.append((d, t)),
        )
    assert back == info
    assert (tmp_path / "back.bin").read_bytes() == data
    assert sent[-1] == (len(data), len(data)) and len(sent) > 1
    assert received[-1] == (len(data), len(data))
    assert [p.name for p in uploads.rglob(".framekit-upload-*")] == []


async def test_empty_file(nursery: trio.Nursery, uploads: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    addrs = await start_server(nursery, upload_dir=uploads)
    async with await connect(addrs) as client:
        assert (await client.put(tmp_path / "empty")).size == 0
        assert (await client.get("empty", tmp_path / "empty2")).size == 0
    assert (uploads / "empty").read_bytes() == b""


async def test_transfers_disabled_without_upload_dir(nursery: trio.Nursery, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        assert client.server_info["files"] is False
        for call in (client.put(tmp_path / "f"), client.get("f", tmp_path / "g")):
            with pytest.raises(framekit.RemoteError, match="file transfer is disabled") as info:
                await call
            assert info.value.code == "not_allowed"
        assert (await client.run(["true"])).ok  # the connection is still in step


async def test_get_missing(nursery: trio.Nursery, uploads: Path, tmp_path: Path) -> None:
    addrs = await start_server(nursery, upload_dir=uploads)
    async with await connect(addrs) as client:
        with pytest.raises(framekit.RemoteError, match="no file named 'nope'") as info:
            await client.get("nope", tmp_path / "nope")
        assert info.value.code == "not_found"
    assert not (tmp_path / "nope").exists()


async def test_checksum_mismatch_stores_nothing(nursery: trio.Nursery, uploads: Path) -> None:
    addrs = await start_server(nursery, upload_dir=uploads)
    async with await connect(addrs) as client:
        wrong = hashlib.sha256(b"something else").hexdigest()
        header = {"type": "put", "id": 1, "name": "f.txt", "sha256": wrong}
        await client.stream.send_message(header, b"the real body")
        reply = await client.stream.receive_message()
        assert reply.header["code"] == "bad_request"
        assert "SHA-256" in reply.header["message"]
        assert (await client.run(["true"])).ok
    assert list(uploads.iterdir()) == []


async def test_put_needs_sha256(nursery: trio.Nursery, uploads: Path) -> None:
    addrs = await start_server(nursery, upload_dir=uploads)
    async with await connect(addrs) as client:
        await client.stream.send_message({"type": "put", "id": 1, "name": "f"}, b"body")
        reply = await client.stream.receive_message()
        assert reply.header["message"] == "a 'put' request needs the body's 'sha256'"
    assert list(uploads.iterdir()) == []


async def test_upload_cut_off_mid_body_leaves_no_file(nursery: trio.Nursery, uploads: Path) -> None:
    addrs = await start_server(nursery, upload_dir=uploads)
    host, port = addrs.tcp[0]
    stream = await trio.open_tcp_stream(host, port)
    await framekit.MessageStream(stream).receive_message()  # hello
    body = b"x" * 1_000_000
    header = MessageEncoder().header(
        {"type": "put", "id": 1, "name": "partial.bin", "sha256": hashlib.sha256(body).hexdigest()},
        size=len(body),
    )
    await stream.send_all(header + body[:300_000])
    await stream.aclose()  # gone mid-body
    async with await connect(addrs) as client:  # the server is fine, and left nothing
        assert (await client.run(["true"])).ok
    with trio.fail_after(5):
        while list(uploads.iterdir()):
            await trio.sleep(0.01)


async def test_upload_too_large(nursery: trio.Nursery, uploads: Path, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 101)
    addrs = await start_server(nursery, upload_dir=uploads, max_upload=100)
    async with await connect(addrs) as client:
        with pytest.raises(framekit.RemoteError, match="upload of 101 bytes is over") as info:
            await client.put(tmp_path / "f")
        assert info.value.code == "too_large"
        assert (await client.run(["true"])).ok
    assert list(uploads.iterdir()) == []


async def test_overwrite_replaces_atomically(
    nursery: trio.Nursery, uploads: Path, tmp_path: Path
) -> None:
    (uploads / "f").write_bytes(b"old")
    (tmp_path / "f").write_bytes(b"new contents")
    addrs = await start_server(nursery, upload_dir=uploads)
    async with await connect(addrs) as client:
        await client.put(tmp_path / "f")
    assert (uploads / "f").read_bytes() == b"new contents"


async def test_get_through_a_symlink_inside_is_allowed(
    nursery: trio.Nursery, uploads: Path, tmp_path: Path
) -> None:
    (uploads / "real.txt").write_bytes(b"data")
    (uploads / "alias.txt").symlink_to(uploads / "real.txt")
    addrs = await start_server(nursery, upload_dir=uploads)
    async with await connect(addrs) as client:
        await client.get("alias.txt", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"data"


async def test_upload_dir_must_exist(tmp_path: Path) -> None:
    from framekit.remote._files import UploadDirectory

    with pytest.raises(FileNotFoundError):
        await UploadDirectory.open(tmp_path / "missing")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        await UploadDirectory.open(tmp_path / "file")
