"""Transfer files with Client.put and Client.get: verified, atomic, confined.

The server stores uploads in one directory (ServerConfig.upload_dir; `framekit serve
--upload-dir`). Every transfer carries the file's SHA-256, and a file is renamed into
place only after its last byte arrived and the hash matched. Names that would leave
the directory, with ".." or through a symlink, are refused.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import trio

import framekit


async def main(tmp: Path) -> None:
    uploads = tmp / "uploads"
    report = tmp / "report.csv"
    data = os.urandom(5 * 1024 * 1024)
    report.write_bytes(data)

    config = framekit.ServerConfig(
        tcp_port=0, udp_port=None, upload_dir=uploads, max_upload=10 * 1024 * 1024
    )
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(framekit.serve, config)
        async with await framekit.Client.connect(*addresses.tcp[0]) as client:
            assert client.server_info["files"] is True

            # Upload under a relative name; directories are created as needed.
            done: list[int] = []
            info = await client.put(
                report, "reports/today.csv", progress=lambda n, _: done.append(n)
            )
            assert info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
            assert (uploads / "reports" / "today.csv").read_bytes() == data
            assert done[-1] == len(data) and len(done) > 1  # progress as it went

            # Download: written to a temporary file, checked, then renamed.
            copy = tmp / "copy.csv"
            info = await client.get("reports/today.csv", copy)
            assert copy.read_bytes() == data and info.sha256 == hashlib.sha256(data).hexdigest()

            # Names that leave the upload directory are refused; the connection stays up
            # (a refused body over 2 MiB is not read: the server answers, then closes).
            note = tmp / "note.txt"
            note.write_text("a small file\n")
            codes = []
            for name in ["../escape.csv", "/etc/cron.d/job", "a/./b", "link/x"]:
                try:
                    await client.put(note, name)
                except framekit.RemoteError as exc:
                    codes.append(exc.code)
            assert codes == ["bad_request", "bad_request", "bad_request", "not_allowed"]
            try:
                await client.get("link", tmp / "x")  # a symlink to a file outside
            except framekit.RemoteError as exc:
                codes.append(exc.code)
            assert codes[-1] == "not_found", "a symlink out of the upload directory was followed"
        nursery.cancel_scope.cancel()
    # No temporary files are left behind by the refused transfers.
    assert sorted(p.name for p in uploads.rglob("*")) == ["link", "reports", "today.csv"]
    print(f"put and got {len(data):,} bytes, verified; 5 unsafe names refused")


with tempfile.TemporaryDirectory() as tmp:
    (Path(tmp) / "uploads").mkdir()
    (Path(tmp) / "secret.txt").write_text("outside the upload directory\n")
    (Path(tmp) / "uploads" / "link").symlink_to(Path(tmp) / "secret.txt")
    trio.run(main, Path(tmp))
