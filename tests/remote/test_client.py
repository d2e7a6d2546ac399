"""Client-side API: one-call run, fan-out, connect-with-retry, result helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

import framekit
from framekit import CommandResult, Retry, fan_out, run_command

from ..helpers import note_writes
from ..server_helpers import connect, start_server


async def test_run_command_one_call(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, token="t")
    host, port = addrs.tcp[0]
    result = await run_command(host, port, ["echo", "one"], token="t")
    assert result.stdout == b"one\n" and result.argv == ("echo", "one")


async def test_fan_out_reports_each_host_separately(
    nursery: trio.Nursery, closed_port: int
) -> None:
    a = await start_server(nursery)
    b = await start_server(nursery)
    lines: list[tuple[str, bytes]] = []
    targets = [a.tcp[0], ("127.0.0.1", closed_port), b.tcp[0]]
    results = await fan_out(
        targets, ["echo", "hi"], on_output=lambda host, chunk: lines.append((host, chunk.data))
    )
    assert [r.label for r in results] == [f"{h}:{p}" for h, p in targets]
    assert results[0].result is not None and results[0].result.stdout == b"hi\n"
    assert isinstance(results[1].error, framekit.ConnectError) and results[1].result is None
    assert results[2].result is not None and results[2].result.ok
    assert sorted(lines) == sorted([(results[0].label, b"hi\n"), (results[2].label, b"hi\n")])


async def test_fan_out_remote_errors_are_per_host(nursery: trio.Nursery) -> None:
    open_server = await start_server(nursery)
    locked = await start_server(nursery, token="secret")
    results = await fan_out([open_server.tcp[0], locked.tcp[0]], ["true"])
    assert results[0].result is not None and results[0].result.ok
    assert isinstance(results[1].error, framekit.AuthenticationError)


async def test_connect_waits_for_a_late_server(nursery: trio.Nursery, closed_port: int) -> None:
    async def late() -> None:
        await trio.sleep(0.3)
        await start_server(nursery, tcp_port=closed_port, udp_port=None)

    nursery.start_soon(late)
    result = await run_command(
        "127.0.0.1", closed_port, ["echo", "waited"], retry=Retry.for_seconds(10)
    )
    assert result.stdout == b"waited\n"


async def test_not_a_framekit_server(nursery: trio.Nursery) -> None:
    async def liar(stream: trio.SocketStream) -> None:
        await framekit.MessageStream(stream).send_message({"type": "hello", "protocol": 99})

    listeners = await nursery.start(trio.serve_tcp, liar, 0)
    port = listeners[0].socket.getsockname()[1]
    with pytest.raises(framekit.FramekitError, match="not a framekit server of protocol 1"):
        await framekit.Client.connect("127.0.0.1", port)


async def test_greeting_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async def mute(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    listeners = await nursery.start(trio.serve_tcp, mute, 0)
    port = listeners[0].socket.getsockname()[1]
    start = trio.current_time()
    with pytest.raises(framekit.ConnectError, match="handshake within 3 s"):
        await framekit.Client.connect("127.0.0.1", port, handshake_timeout=3)
    assert trio.current_time() - start == pytest.approx(3)


async def test_run_needs_exactly_one_of_argv_or_shell(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with await framekit.Client.connect(*addrs.tcp[0]) as client:
        with pytest.raises(ValueError, match="exactly one of argv or shell"):
            await client.run()
        with pytest.raises(ValueError, match="exactly one of argv or shell"):
            await client.run(["a"], shell="a")


@pytest.mark.parametrize(
    ("status", "returncode", "signal", "code", "ok"),
    [
        ("exited", 0, None, 0, True),
        ("exited", 7, None, 7, False),
        ("signaled", None, 9, 137, False),
        ("timeout", None, 9, 124, False),
        ("cancelled", None, None, 130, False),
    ],
)
def test_exit_code_mirrors_remote(
    status: str, returncode: int | None, signal: int | None, code: int, ok: bool
) -> None:
    result = CommandResult(("x",), status, returncode, signal, b"", b"", 0.1, False, 0, 0)
    assert result.exit_code == code and result.ok is ok


async def test_get_refuses_a_file_without_sha256(nursery: trio.Nursery, tmp_path: Path) -> None:
    async def no_checksum(stream: trio.SocketStream) -> None:
        messages = framekit.MessageStream(stream)
        await messages.send_message({"type": "hello", "protocol": 1, "auth": "none", "files": True})
        request = await messages.receive_message()
        await messages.send_message(
            {"type": "file", "id": request.header["id"], "name": "f"}, b"unverified"
        )
        await trio.sleep_forever()

    listeners = await nursery.start(trio.serve_tcp, no_checksum, 0)
    port = listeners[0].socket.getsockname()[1]
    async with await framekit.Client.connect("127.0.0.1", port) as client:
        with pytest.raises(framekit.FramekitError, match="without its sha256"):
            await client.get("f", tmp_path / "f")
    assert list(tmp_path.iterdir()) == []


async def test_fan_out_isolates_a_server_with_a_malformed_greeting(
    nursery: trio.Nursery,
) -> None:
    async def bad_nonce(stream: trio.SocketStream) -> None:
        await framekit.MessageStream(stream).send_message(
            {"type": "hello", "protocol": 1, "auth": "hmac-sha256", "nonce": "not hex at all"}
        )
        await trio.sleep_forever()

    listeners = await nursery.start(partial(trio.serve_tcp, bad_nonce, 0, host="127.0.0.1"))
    bad = ("127.0.0.1", listeners[0].socket.getsockname()[1])
    good = await start_server(nursery)
    results = await fan_out([bad, good.tcp[0]], ["echo", "ok"], token="t")
    assert isinstance(results[0].error, framekit.RemoteProtocolError)
    assert "challenge is malformed" in str(results[0].error)
    assert results[1].result is not None and results[1].result.stdout == b"ok\n"


async def test_cancelled_run_leaves_the_client_in_step(nursery: trio.Nursery) -> None:
    from ..helpers import wait_gone

    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        pids: list[int] = []

        async def note_pid(chunk: framekit.OutputChunk) -> None:
            pids.append(int(chunk.data))

        with trio.move_on_after(0.5):
            await client.run(["sh", "-c", "echo $$; exec sleep 30"], on_output=note_pid)
        await wait_gone(pids)  # the client asked the server to stop it
        for word in ["first", "second"]:  # and the next replies are the next requests'
            assert (await client.run(["echo", word])).stdout == f"{word}\n".encode()


async def test_cancelled_get_leaves_the_client_in_step(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "big").write_bytes(b"b" * (8 * 1024 * 1024))
    addrs = await start_server(nursery, upload_dir=uploads)
    async with await connect(addrs) as client:
        seen: list[int] = []
        with trio.move_on_after(5) as scope:
            await client.get(
                "big",
                tmp_path / "copy",
                progress=lambda n, _: (
                    seen.append(n) or (scope.cancel() if n > 1024 * 1024 else None)
                ),
            )
        assert scope.cancelled_caught and not (tmp_path / "copy").exists()
        assert (await client.run(["echo", "next"])).stdout == b"next\n"


async def test_put_refused_early_reports_the_refusal(nursery: trio.Nursery, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    big = tmp_path / "big"
    big.write_bytes(b"b" * (16 * 1024 * 1024))
    addrs = await start_server(nursery, upload_dir=uploads, max_upload=1024)
    async with await connect(addrs) as client:
        with pytest.raises(framekit.RemoteError, match="over the server's limit") as info:
            await client.put(big, "big")
        assert info.value.code == "too_large"
    assert list(uploads.iterdir()) == []


async def test_put_to_a_server_without_uploads_sends_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    local = tmp_path / "f"
    local.write_bytes(b"data")
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        with pytest.raises(framekit.RemoteError, match="disabled") as info:
            await client.put(local)
        assert info.value.code == "not_allowed"
        assert (await client.run(["true"])).ok


async def test_streamed_stdin_of_any_length(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)

    async def megabytes(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"z" * (1024 * 1024)

    async with await connect(addrs) as client:
        assert "stdin" in client.server_info["features"]
        result = await client.run(["wc", "-c"], stdin=megabytes(40))  # over max_stdin
        assert result.stdout.strip() == str(40 * 1024 * 1024).encode()
        assert (await client.run(["echo", "next"])).stdout == b"next\n"


async def test_streamed_stdin_that_never_ends_stops_with_the_command(
    nursery: trio.Nursery,
) -> None:
    addrs = await start_server(nursery)

    async def tail_f() -> AsyncIterator[bytes]:
        yield b"first line\n"
        await trio.sleep_forever()  # like `tail -f`: no more input, and no end
        yield b""  # pragma: no cover

    async with await connect(addrs) as client:
        with trio.fail_after(10):
            result = await client.run(["head", "-n", "1"], stdin=tail_f())
        assert result.stdout == b"first line\n" and result.ok
        assert (await client.run(["echo", "still in step"])).stdout == b"still in step\n"


async def test_streamed_stdin_needs_a_server_that_offers_it(nursery: trio.Nursery) -> None:
    async def old_server(stream: trio.SocketStream) -> None:
        await framekit.MessageStream(stream).send_message(
            {"type": "hello", "protocol": 1, "auth": "none"}
        )
        await trio.sleep_forever()

    listeners = await nursery.start(partial(trio.serve_tcp, old_server, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]

    async def one() -> AsyncIterator[bytes]:
        yield b"x"

    async with await framekit.Client.connect("127.0.0.1", port) as client:
        with pytest.raises(framekit.FramekitError, match="cannot take a streamed stdin"):
            await client.run(["cat"], stdin=one())


async def test_a_run_in_a_cancelled_scope_sends_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    addrs = await start_server(nursery)
    marker = tmp_path / "ran"
    async with await connect(addrs) as client:
        with trio.CancelScope() as scope:
            scope.cancel()
            await client.run(["touch", str(marker)])
        # the server answers requests in order: had the first been sent, it ran by now
        assert (await client.run(["echo", "next"])).stdout == b"next\n"
    assert not marker.exists()


async def test_tasks_sharing_a_client_take_turns_in_arrival_order(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    release = trio.Event()
    done: list[str] = []

    async def held_stdin() -> AsyncIterator[bytes]:
        yield b"a\n"
        await release.wait()  # the first request holds the client until then

    async with await connect(addrs) as client, trio.open_nursery() as tasks:

        async def run(stdin: bytes | AsyncIterator[bytes]) -> None:
            result = await client.run(["cat"], stdin=stdin)
            done.append(result.stdout.decode().strip())

        tasks.start_soon(run, held_stdin())
        await trio.testing.wait_all_tasks_blocked()
        tasks.start_soon(run, b"b\n")
        await trio.testing.wait_all_tasks_blocked()  # b waits for the client
        tasks.start_soon(run, b"c\n")
        await trio.testing.wait_all_tasks_blocked()  # and c behind it
        assert done == []
        release.set()
    assert done == ["a", "b", "c"]


async def test_an_idle_clients_request_goes_out_before_other_tasks_run(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No scheduling pass before the request is written (a free lock is taken at once,
    and a small message is written straight to the socket): the round trip's only
    wait is for the reply."""
    from framekit.streams import _direct

    if not _direct.DIRECT_WRITE:
        pytest.skip("no direct writes here")
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        writes = note_writes(monkeypatch, client.stream.transport_stream)  # type: ignore[arg-type]
        written_before_others: list[int] = []

        async def other_task() -> None:
            written_before_others.append(len(writes))

        nursery.start_soon(other_task)  # ready to run at the client's first yield
        await client.ping()
        assert written_before_others == [1]
