"""One server connection: its one deadline in every phase, and hostile input kept in bounds.

Each test here is a case that once held a connection slot forever, ended as an
``internal`` error, or reached the log unescaped.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import framekit
from framekit import MessageEncoder, MessageStream

from ..server_helpers import connect, start_server


async def raw(addrs: framekit.ServerAddresses) -> tuple[trio.SocketStream, MessageStream]:
    """A connection that has read the greeting, and a MessageStream over it."""
    stream = await trio.open_tcp_stream(*addrs.tcp[0])
    messages = MessageStream(stream)
    hello = await messages.receive_message()
    assert hello.header["type"] == "hello"
    return stream, messages


async def read_until_closed(messages: MessageStream) -> list[dict[str, Any]]:
    """Every message until the server hangs up (their headers); then close our end."""
    got = []
    try:
        while True:
            got.append((await messages.receive_message()).header.fields)
    except (trio.EndOfChannel, trio.BrokenResourceError):
        return got
    finally:
        await messages.aclose()


def no_internal_errors(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.levelno < logging.ERROR, record.getMessage()
        assert record.exc_info is None, record.getMessage()
        assert "internal" not in record.getMessage()


# -- the deadline, phase by phase -----------------------------------------------------


async def test_a_refused_body_that_stalls_is_cut_off(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    addrs = await start_server(nursery, udp_port=None, idle_timeout=30)
    stream, messages = await raw(addrs)
    header = MessageEncoder().header({"type": "run", "id": 1, "shell": "ls"}, size=1000)
    await stream.send_all(header + b"ten bytes.")  # refused (no shell), body never finished
    start = trio.current_time()
    with trio.fail_after(100):
        replies = await read_until_closed(messages)
    assert [r["code"] for r in replies] == ["not_allowed", "timeout"]
    assert trio.current_time() - start == pytest.approx(30, abs=3)


async def test_an_oversized_put_is_refused_without_reading_its_body(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    addrs = await start_server(nursery, udp_port=None, upload_dir=tmp_path, max_upload=1000)
    stream, messages = await raw(addrs)
    header = MessageEncoder().header(
        {"type": "put", "id": 1, "name": "big", "sha256": "0" * 64}, size=100 * 1024 * 1024
    )
    await stream.send_all(header)  # and none of the 100 MiB
    with trio.fail_after(10):  # the closing linger, not an endless discard
        replies = await read_until_closed(messages)
    assert [r["code"] for r in replies] == ["too_large"]
    assert "was not read: closing the connection" in replies[0]["message"]


async def test_a_get_whose_client_never_reads_frees_its_slot(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    (tmp_path / "big").write_bytes(b"x" * (32 * 1024 * 1024))
    addrs = await start_server(
        nursery, udp_port=None, upload_dir=tmp_path, idle_timeout=0.5, max_connections=1
    )
    stream, messages = await raw(addrs)
    await messages.send_message({"type": "get", "id": 1, "name": "big"})
    # ... and never reads. The server gives up after idle_timeout; the slot is free.
    with trio.fail_after(10):
        while True:
            try:
                async with await connect(addrs) as client:
                    assert (await client.run(["echo", "in"])).stdout == b"in\n"
                    break
            except framekit.RemoteError as exc:
                if exc.code != "busy":
                    raise
                await trio.sleep(0.1)
    await stream.aclose()


async def test_a_tls_client_that_never_handshakes_is_cut_off(
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    addrs = await start_server(
        nursery, udp_port=None, ssl_context=server_ssl_context, handshake_timeout=5
    )
    stream = await trio.open_tcp_stream(*addrs.tcp[0])  # TCP only: no ClientHello, ever
    start = trio.current_time()
    with trio.fail_after(60):
        while await stream.receive_some():
            pass
    await stream.aclose()
    assert trio.current_time() - start == pytest.approx(5, abs=1)


async def test_the_whole_handshake_has_one_deadline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # A byte every few seconds is progress, but the handshake as a whole is bounded.
    start = trio.current_time()
    addrs = await start_server(nursery, udp_port=None, token="t", handshake_timeout=10)
    stream, messages = await raw(addrs)
    answer = MessageEncoder().message({"type": "auth", "mac": "0" * 64})

    async def trickle() -> None:
        try:
            for byte in answer:
                await stream.send_all(bytes([byte]))
                await trio.sleep(3)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as inner:
        inner.start_soon(trickle)
        with trio.fail_after(60):
            reply = await messages.receive_message()
        assert reply.header["code"] == "timeout"
        assert trio.current_time() - start == pytest.approx(10)
        inner.cancel_scope.cancel()
    await messages.aclose()


# -- hostile input, well framed: bad_request, never internal ------------------------


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # a put of an empty body that would verify


def raw_request(json_text: str) -> bytes:
    """A header frame from literal JSON (lone surrogates can be written as escapes)."""
    return framekit.FrameEncoder().encode(json_text.encode())


HOSTILE_REQUESTS = {
    "argv with a lone surrogate": (
        '{"type":"run","id":1,"argv":["echo","\\ud800"],"size":0}',
        "bad_request",
    ),
    "shell with a lone surrogate": (
        '{"type":"run","id":1,"shell":"echo \\udfff","size":0}',
        "bad_request",
    ),
    "put name component over 255 bytes": (
        '{"type":"put","id":1,"name":"' + "n" * 256 + '","size":0,"sha256":"' + EMPTY_SHA256 + '"}',
        "bad_request",
    ),
    "put naming an existing directory": (
        '{"type":"put","id":1,"name":"adir","size":0,"sha256":"' + EMPTY_SHA256 + '"}',
        "bad_request",
    ),
    "put under a file": (
        '{"type":"put","id":1,"name":"afile/x","size":0,"sha256":"' + EMPTY_SHA256 + '"}',
        "bad_request",
    ),
    "get name component of 256 characters": (
        '{"type":"get","id":1,"name":"' + "g" * 256 + '","size":0}',
        "bad_request",
    ),
    "get of a directory": ('{"type":"get","id":1,"name":"adir","size":0}', "not_found"),
    "reserved upload prefix": (
        '{"type":"get","id":1,"name":".framekit-upload-abc","size":0}',
        "bad_request",
    ),
    "id with a lone surrogate": (
        '{"type":"run","id":"\\ud800","argv":["true"],"size":0}',
        "bad_request",
    ),
}


@pytest.mark.parametrize("case", HOSTILE_REQUESTS)
async def test_hostile_request_is_a_bad_request(
    case: str, nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_bytes(b"")
    addrs = await start_server(nursery, udp_port=None, upload_dir=tmp_path)
    stream, messages = await raw(addrs)
    request, code = HOSTILE_REQUESTS[case]
    await stream.send_all(raw_request(request))
    reply = await messages.receive_message()
    assert reply.header["type"] == "error" and reply.header["code"] == code
    await messages.send_message({"type": "run", "id": 2, "argv": ["echo", "next"]})
    assert (await messages.receive_message()).body == b"next\n"  # the connection goes on
    await stream.aclose()
    no_internal_errors(caplog)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]


async def test_an_auth_mac_with_a_lone_surrogate_is_a_wrong_token(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    addrs = await start_server(nursery, udp_port=None, token="t", auth_failure_delay=0)
    stream, messages = await raw(addrs)
    await stream.send_all(raw_request('{"type":"auth","mac":"\\ud800","size":0}'))
    assert (await read_until_closed(messages))[-1]["code"] == "auth_failed"
    no_internal_errors(caplog)


async def test_leaving_before_authenticating_is_one_info_line(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    addrs = await start_server(nursery, udp_port=None, token="t")
    stream, _ = await raw(addrs)
    await stream.aclose()
    with trio.fail_after(5):
        while not any("before authenticating" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.01)
    [line] = [r for r in caplog.records if "before authenticating" in r.getMessage()]
    assert line.levelno == logging.INFO
    no_internal_errors(caplog)


async def test_client_strings_are_escaped_in_the_log(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    addrs = await start_server(nursery, udp_port=None, upload_dir=tmp_path)
    local = tmp_path / "local"
    local.write_bytes(b"data")
    forged = "x\n2026-12-01 00:00:00 INFO framekit.server: admin logged in \x1b[2J"
    async with await connect(addrs) as client:
        await client.put(local, forged)
        await client.run(["echo", "a\nb", "\u202eevil"])
        with pytest.raises(framekit.RemoteError):
            await client.run(["no-such-program\nFORGED"])
    messages = [r.getMessage() for r in caplog.records]
    assert all("\n" not in m and "\x1b" not in m and "\u202e" not in m for m in messages)
    assert any("x\\n2026-12-01" in m and "\\x1b[2J" in m for m in messages)
    assert any("$'a\\nb'" in m and "\\u202eevil" in m for m in messages)


# -- temporary upload files ---------------------------------------------------------


async def test_stale_upload_files_are_removed_at_start_and_cannot_be_named(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".framekit-upload-abc123", tmp_path / "sub" / ".framekit-upload-x"]
    for path in stale:
        path.write_bytes(b"half an upload from a killed server")
    (tmp_path / "keep.txt").write_bytes(b"kept")
    addrs = await start_server(nursery, udp_port=None, upload_dir=tmp_path)
    assert not any(path.exists() for path in stale)
    assert (tmp_path / "keep.txt").exists()
    assert any("removed 2 unfinished upload(s)" in r.getMessage() for r in caplog.records)
    local = tmp_path / "local"
    local.write_bytes(b"data")
    async with await connect(addrs) as client:
        for name in [".framekit-upload-abc123", "sub/.framekit-upload-evil"]:
            with pytest.raises(framekit.RemoteError, match="reserved") as info:
                await client.put(local, name)
            assert info.value.code == "bad_request"


async def test_an_upload_is_fsynced_before_it_is_renamed_into_place(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append(f"replace {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    addrs = await start_server(nursery, udp_port=None, upload_dir=uploads)
    local = tmp_path / "local"
    local.write_bytes(b"data" * 1000)
    async with await connect(addrs) as client:
        await client.put(local, "stored.bin")
    # the file's data, then the rename, then the directory entry
    assert events == ["fsync", "replace stored.bin", "fsync"]
    assert (
        hashlib.sha256((uploads / "stored.bin").read_bytes()).hexdigest()
        == hashlib.sha256(local.read_bytes()).hexdigest()
    )


# -- nothing that can block runs on the event loop's thread ---------------------------


async def test_name_lookups_and_file_system_calls_stay_off_the_event_loop(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hung DNS server or NFS mount must stall only the request that touches it.
    import os
    import pathlib
    import socket
    import tempfile
    import threading

    on_loop: list[str] = []

    def watch(owner: Any, name: str) -> None:
        real = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            numeric = name == "getaddrinfo" and len(args) > 5 and args[5] & socket.AI_NUMERICHOST
            if threading.current_thread() is threading.main_thread() and not numeric:
                on_loop.append(name)  # (a numeric-only lookup cannot block: trio tries it)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    local = tmp_path / "local"
    local.write_bytes(b"data")
    for owner, name in [
        (socket, "getaddrinfo"),
        (tempfile, "mkstemp"),
        (pathlib.Path, "resolve"),
        (pathlib.Path, "is_file"),
        (pathlib.Path, "is_dir"),
        (pathlib.Path, "mkdir"),
        (os, "replace"),
        (os, "unlink"),
    ]:
        watch(owner, name)
    addrs = await start_server(nursery, host="localhost", udp_port=None, upload_dir=uploads)
    async with await connect(addrs) as client:
        await client.put(local, "dir/stored")
        await client.get("dir/stored", tmp_path / "back")
        with pytest.raises(framekit.RemoteError):
            await client.get("missing", tmp_path / "nothing")
    assert (tmp_path / "back").read_bytes() == b"data"
    assert on_loop == []


# -- TLS on one side only: said at once, on both sides --------------------------------


async def test_a_tls_client_at_a_plain_server_is_told_so(
    nursery: trio.Nursery,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    addrs = await start_server(nursery, udp_port=None)
    with trio.fail_after(5), pytest.raises(framekit.ConnectError) as info:
        await connect(addrs, ssl_context=client_ssl_context)
    assert info.value.reason == "not_tls" and "does not speak TLS" in str(info.value)
    with trio.fail_after(5):
        while not any("does not speak TLS" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.01)
    no_internal_errors(caplog)


async def test_a_plain_client_at_a_tls_server_is_told_so(
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    addrs = await start_server(nursery, udp_port=None, ssl_context=server_ssl_context)
    start = trio.current_time()
    with trio.fail_after(5), pytest.raises(framekit.ConnectError) as info:
        await connect(addrs)  # the handshake timeout is 10 s: this must not wait for it
    assert info.value.reason == "tls_required" and "speaks TLS" in str(info.value)
    assert trio.current_time() - start < 3
    with trio.fail_after(5):
        while not any("TLS handshake failed" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.01)
    no_internal_errors(caplog)


# -- an idle connection: one scope, a flat stack ----------------------------------------


def _all_tasks() -> list[trio.lowlevel.Task]:
    tasks, todo = [], [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        assert task is not None
        tasks.append(task)
        todo += [t for n in task.child_nurseries for t in n.child_tasks]
    return tasks


def _framekit_frames(task: trio.lowlevel.Task) -> list[str]:
    package = Path(framekit.__file__).parent
    return [
        frame.f_code.co_name
        for frame, _ in task.iter_await_frames()
        if Path(frame.f_code.co_filename).is_relative_to(package)
    ]


async def test_an_idle_connection_waits_two_framekit_frames_deep(nursery: trio.Nursery) -> None:
    # 10,000 idle connections each hold this stack: every frame on it is ~250 bytes, a
    # cancel scope per wait ~800 (it used to be eight frames and a scope of its own).
    addrs = await start_server(nursery, udp_port=None, token="sekrit")
    client = await connect(addrs, token="sekrit")
    await client.ping()
    await trio.testing.wait_all_tasks_blocked()
    stacks = [_framekit_frames(t) for t in _all_tasks()]
    idle = [s for s in stacks if "receive_message_stream" in s and "serve" in s]
    assert idle == [["serve", "receive_message_stream"]]
    await client.aclose()


async def test_an_idle_authenticated_connection_is_told_and_closed_at_its_deadline(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "framekit.server")
    addrs = await start_server(nursery, udp_port=None, idle_timeout=30)
    stream, messages = await raw(addrs)
    await messages.send_message({"type": "ping", "id": 1})
    assert (await messages.receive_message()).header["type"] == "pong"
    start = trio.current_time()
    await stream.send_all(b"\x00\x00")  # half a header prefix, then silence
    with trio.fail_after(100):
        replies = await read_until_closed(messages)
    assert trio.current_time() - start == pytest.approx(30, abs=0.1)
    assert [(r["code"], r["message"]) for r in replies] == [
        (
            "timeout",
            "the peer did not finish waiting for a request within 30 s; closing",
        )
    ]
    timed_out = [r.getMessage() for r in caplog.records if "timed out" in r.getMessage()]
    assert len(timed_out) == 1 and caplog.records[-1].levelno <= logging.INFO
    no_internal_errors(caplog)
    # and the server goes on serving
    client = await connect(addrs)
    await client.ping()
    await client.aclose()


async def test_a_quick_command_costs_its_request_no_nursery(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A nursery costs ~16 us and a cancel scope ~8 us here; most commands end before the
    # client needs watching, so the request opens none: the command runs in its task.
    from framekit.remote import _connection

    open_nurseries: list[int] = []
    run = _connection.run_command_streaming

    async def counting(*args: Any, **kwargs: Any) -> Any:
        open_nurseries.append(len(trio.lowlevel.current_task().child_nurseries))
        return await run(*args, **kwargs)

    monkeypatch.setattr(_connection, "run_command_streaming", counting)
    addrs = await start_server(nursery, udp_port=None)
    async with await connect(addrs) as client:
        assert (await client.run(["echo", "hi"])).stdout == b"hi\n"
        assert (await client.run(["sh", "-c", "sleep 0.2; echo slow"])).stdout == b"slow\n"
    assert open_nurseries == [0, 0]  # the slow one got its nursery later, from the pump
