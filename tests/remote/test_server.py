"""The command server over real loopback sockets: every protocol path and limit."""

from __future__ import annotations

import logging
import ssl
import sys

import pytest
import trio

import framekit
from framekit import AuthenticationError, ErrorCode, RemoteError, ServerConfig
from framekit.remote._config import check_bind_safety, is_loopback

from ..conftest import HAS_IPV6
from ..helpers import wait_gone
from ..server_helpers import connect, start_server


async def test_run_argv_streams_output_and_exit_code(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    chunks: list[framekit.OutputChunk] = []
    async with await connect(addrs) as client:
        assert client.server_info["protocol"] == framekit.PROTOCOL_VERSION
        result = await client.run(
            ["sh", "-c", "echo out; echo err >&2; exit 3"], on_output=chunks.append
        )
        assert (result.status, result.returncode, result.exit_code) == ("exited", 3, 3)
        assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
        assert (result.stdout_bytes, result.stderr_bytes, result.truncated) == (4, 4, False)
        assert sorted(c.stream for c in chunks) == ["stderr", "stdout"]
        # several requests on one connection; stdin as the body; arguments not shell-parsed
        assert (await client.run(["cat"], stdin=b"piped\x00bytes")).stdout == b"piped\x00bytes"
        assert (await client.run(["echo", "$HOME; rm -rf /"])).stdout == b"$HOME; rm -rf /\n"


async def test_output_is_streamed_while_the_command_runs(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    first_seen = trio.Event()

    def seen(chunk: framekit.OutputChunk) -> None:
        first_seen.set()

    async with await connect(addrs) as client, trio.open_nursery() as inner:

        async def run() -> None:
            await client.run(
                [
                    sys.executable,
                    "-c",
                    "import sys,time; print('early', flush=True); sys.stdin.read()",
                ],
                stdin=b"",
                on_output=seen,
                timeout=5,
            )

        inner.start_soon(run)
        with trio.fail_after(5):
            await first_seen.wait()  # arrived before the command ended
        inner.cancel_scope.cancel()


async def test_async_output_callback(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    got: list[bytes] = []

    async def collect(chunk: framekit.OutputChunk) -> None:
        await trio.lowlevel.checkpoint()
        got.append(chunk.data)

    async with await connect(addrs) as client:
        result = await client.run(["echo", "x"], on_output=collect, collect=False)
    assert got == [b"x\n"] and result.stdout == b""


async def test_shell_only_when_enabled(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        with pytest.raises(RemoteError, match="does not run shell strings") as info:
            await client.run(shell="echo hi")
        assert info.value.code == ErrorCode.NOT_ALLOWED
        assert (await client.run(["echo", "still ok"])).ok
    shell_addrs = await start_server(nursery, allow_shell=True)
    async with await connect(shell_addrs) as client:
        assert client.server_info["shell"] is True
        assert (await client.run(shell="echo a | tr a b")).stdout == b"b\n"


async def test_allowlist(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, allow=frozenset({"echo", "/bin/echo"}))
    async with await connect(addrs) as client:
        assert (await client.run(["echo", "ok"])).stdout == b"ok\n"
        assert (await client.run(["/bin/echo", "ok"])).stdout == b"ok\n"
        with pytest.raises(RemoteError, match="'cat' is not in this server's allowlist") as info:
            await client.run(["cat"])
        assert info.value.code == "not_allowed"


async def test_program_not_found(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        with pytest.raises(RemoteError, match="cannot run 'no-such-program-xyz'") as info:
            await client.run(["no-such-program-xyz"])
        assert info.value.code == "not_found"
        assert (await client.run(["true"])).ok


async def test_timeout_kills_group_and_keeps_output(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        result = await client.run(["sh", "-c", "echo $$; sleep 30 & echo $!; wait"], timeout=0.5)
    assert result.status == "timeout" and result.exit_code == 124
    pids = [int(p) for p in result.stdout.split()]
    assert len(pids) == 2  # output produced before the deadline arrived
    await wait_gone(pids)


async def test_background_children_do_not_outlive_their_command(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        result = await client.run(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
    assert result.ok
    await wait_gone([int(result.stdout)])


async def test_output_limit_truncates_and_kills(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, max_output=10_000)
    async with await connect(addrs) as client:
        result = await client.run(["yes"])
        assert result.truncated
        assert len(result.stdout) + len(result.stderr) == 10_000
        assert result.status == "signaled" and result.signal == 9
        assert (await client.run(["echo", "next"])).stdout == b"next\n"


async def test_stdin_too_large(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, max_stdin=10)
    async with await connect(addrs) as client:
        with pytest.raises(RemoteError, match="stdin of 11 bytes is over") as info:
            await client.run(["cat"], stdin=b"x" * 11)
        assert info.value.code == "too_large"
        assert (await client.run(["cat"], stdin=b"x" * 10)).stdout == b"x" * 10


async def test_signal_exit(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        result = await client.run(["sh", "-c", "kill -TERM $$"])
    assert (result.status, result.signal, result.returncode) == ("signaled", 15, None)
    assert result.exit_code == 128 + 15


async def test_cancel_message_stops_command(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        stream = client.stream
        await stream.send_message(
            {"type": "run", "id": 1, "argv": ["sh", "-c", "echo $$; sleep 30"]}
        )
        out = await stream.receive_message()
        pid = int(out.body)
        await stream.send_message({"type": "cancel", "id": 1})
        exit_msg = await stream.receive_message()
        assert exit_msg.header["type"] == "exit" and exit_msg.header["status"] == "cancelled"
        await wait_gone([pid])
        assert (await client.run(["echo", "after"])).stdout == b"after\n"


@pytest.mark.parametrize("first", [["sh", "-c", "sleep 0.3; echo one"], ["echo", "one"]])
async def test_pipelined_request_is_served_after_the_running_one(
    nursery: trio.Nursery, first: list[str]
) -> None:
    # The same replies, in the same order, whether the first command ends before the
    # server starts watching the client (echo) or long after (sleep).
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        stream = client.stream
        await stream.send_message({"type": "run", "id": 1, "argv": first})
        await stream.send_message({"type": "run", "id": 2, "argv": ["echo", "two"]})
        replies = [(await stream.receive_message()) for _ in range(4)]
        assert [(r.header["type"], r.header["id"], r.body) for r in replies] == [
            ("output", 1, b"one\n"),
            ("exit", 1, b""),
            ("output", 2, b"two\n"),
            ("exit", 2, b""),
        ]
        assert replies[1].header["status"] == replies[3].header["status"] == "exited"


async def test_ping_is_answered_with_pong(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        assert 0 <= await client.ping() < 5
        await client.stream.send_message({"type": "ping", "id": "x"})
        reply = await client.stream.receive_message()
        assert reply.header.fields == {"type": "pong", "id": "x", "size": 0}
        assert (await client.run(["true"])).ok


async def test_cancel_after_the_command_ended_is_ignored(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        assert (await client.run(["true"])).ok
        await client.stream.send_message({"type": "cancel", "id": 1})  # crossed its exit
        assert (await client.run(["echo", "still"])).stdout == b"still\n"


async def test_unknown_request_type(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        await client.stream.send_message({"type": "format-disk", "id": 9}, b"body is skipped")
        reply = await client.stream.receive_message()
        assert reply.header.fields == {
            "type": "error",
            "code": "bad_request",
            "message": (
                "unknown request type 'format-disk'; expected 'run', 'put', 'get', 'ping' "
                "or 'cancel'"
            ),
            "id": 9,
            "size": 0,
        }
        assert (await client.run(["true"])).ok


class TestAuth:
    async def test_right_token(self, nursery: trio.Nursery) -> None:
        addrs = await start_server(nursery, token="s3cret")
        async with await connect(addrs, token="s3cret") as client:
            assert client.server_info["auth"] == "hmac-sha256"
            assert (await client.run(["echo", "in"])).stdout == b"in\n"

    async def test_wrong_token_is_slowed_and_refused(
        self, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
    ) -> None:
        addrs = await start_server(nursery, token="s3cret", auth_failure_delay=0.2)
        start = trio.current_time()
        with pytest.raises(AuthenticationError, match="auth_failed: wrong token") as info:
            await connect(addrs, token="guess")
        assert info.value.code == "auth_failed"
        assert trio.current_time() - start >= 0.2
        assert any("authentication failed" in r.getMessage() for r in caplog.records)

    async def test_missing_token(self, nursery: trio.Nursery) -> None:
        addrs = await start_server(nursery, token="s3cret")
        with pytest.raises(AuthenticationError, match="requires a token"):
            await connect(addrs)

    async def test_no_request_before_auth(self, nursery: trio.Nursery) -> None:
        addrs = await start_server(nursery, token="s3cret", auth_failure_delay=0)
        host, port = addrs.tcp[0]
        stream = await framekit.open_message_stream(host, port)
        async with stream:
            hello = await stream.receive_message()
            assert "s3cret" not in repr(hello.header.fields)
            await stream.send_message({"type": "run", "id": 1, "argv": ["touch", "pwned"]})
            reply = await stream.receive_message()
            assert reply.header["code"] == "auth_failed"
            with pytest.raises(trio.EndOfChannel):
                await stream.receive_message()

    async def test_handshake_timeout(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        addrs = await start_server(nursery, token="s3cret", handshake_timeout=10)
        host, port = addrs.tcp[0]
        async with await framekit.open_message_stream(host, port) as stream:
            await stream.receive_message()  # hello; then say nothing
            start = trio.current_time()
            reply = await stream.receive_message()
            assert reply.header["code"] == "timeout"
            assert trio.current_time() - start == pytest.approx(10)


async def test_tls(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    addrs = await start_server(nursery, ssl_context=server_ssl_context, token="t")
    async with await connect(
        addrs, token="t", ssl_context=client_ssl_context, server_hostname="localhost"
    ) as client:
        assert isinstance(client.stream.transport_stream, trio.SSLStream)
        assert (await client.run(["echo", "tls"])).stdout == b"tls\n"


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback on this machine")
async def test_ipv6(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, host="::1")
    assert addrs.tcp[0][0] == "::1" and addrs.udp[0][0] == "::1"
    async with await connect(addrs) as client:
        assert (await client.run(["echo", "v6"])).stdout == b"v6\n"
    reply = await framekit.send_datagram("::1", addrs.udp[0][1], b"six")
    assert reply.data == b"six"


class TestBindSafety:
    async def test_loopback_names(self) -> None:
        for host in ("127.0.0.1", "::1", "localhost"):
            assert await is_loopback(host)
        for host in ("0.0.0.0", "::"):
            assert not await is_loopback(host)

    async def test_non_loopback_without_token_refused_before_binding(self) -> None:
        with pytest.raises(framekit.InsecureBindError, match="without a token"):
            await framekit.serve(ServerConfig(host="0.0.0.0", tcp_port=0))

    async def test_token_or_insecure_allows_it(self) -> None:
        await check_bind_safety(ServerConfig(host="0.0.0.0", token="t"))
        await check_bind_safety(ServerConfig(host="0.0.0.0", insecure=True))

    @pytest.mark.parametrize(
        ("options", "match"),
        [
            ({"max_connections": 0}, "max_connections must be at least 1"),
            ({"command_timeout": 0}, "command_timeout must be a positive"),
            ({"token": ""}, "token must not be empty"),
        ],
    )
    def test_config_validation(self, options: dict[str, object], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            ServerConfig(**options)  # type: ignore[arg-type]


async def test_connection_limit(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, max_connections=1)
    async with await connect(addrs) as first:
        with pytest.raises(RemoteError, match="limit of 1 connections") as info:
            await connect(addrs)
        assert info.value.code == "busy"
        assert (await first.run(["true"])).ok
    async with await connect(addrs) as again:  # the slot is free again
        assert (await again.run(["true"])).ok


async def test_process_limit_queues_then_busy(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, max_processes=1, queue_timeout=0.3)
    async with (
        await connect(addrs) as holder,
        await connect(addrs) as waiter,
        trio.open_nursery() as inner,
    ):
        running = trio.Event()
        inner.start_soon(
            lambda: holder.run(["sh", "-c", "echo up; sleep 5"], on_output=lambda c: running.set())
        )
        await running.wait()  # the holder's command has the only slot
        with pytest.raises(RemoteError, match="process slots stayed busy") as info:
            await waiter.run(["true"])
        assert info.value.code == "busy"
        inner.cancel_scope.cancel()


async def test_logging_names_peer_request_program_duration_exit(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit.server")
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        await client.run(["sh", "-c", "exit 5"])
    line = next(r.getMessage() for r in caplog.records if "rc=5" in r.getMessage())
    assert line.startswith("127.0.0.1:") and "request 1 (sh -c 'exit 5'): exited" in line
    assert line.endswith(" s")


async def test_shutdown_kills_running_commands(nursery: trio.Nursery) -> None:
    async with trio.open_nursery() as server_nursery:
        addrs = await start_server(server_nursery, shutdown_grace=0.5)
        client = await connect(addrs)
        pid_seen = trio.Event()
        pids: list[int] = []

        def record(chunk: framekit.OutputChunk) -> None:
            pids.extend(int(p) for p in chunk.data.split())
            if len(pids) >= 2:
                pid_seen.set()

        async def run() -> None:
            try:
                await client.run(
                    ["sh", "-c", "trap '' TERM; echo $$; sleep 30 & echo $!; wait"],
                    on_output=record,
                )
            except (trio.BrokenResourceError, trio.EndOfChannel, framekit.FramekitError):
                pass

        server_nursery.start_soon(run)
        with trio.fail_after(5):
            await pid_seen.wait()
        start = trio.current_time()
        server_nursery.cancel_scope.cancel()
    await client.aclose()
    # the shell ignores SIGTERM, so it was killed after the grace period
    assert trio.current_time() - start >= 0.4
    await wait_gone(pids)


async def test_two_hundred_simultaneous_clients(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery)
    results: dict[int, bytes] = {}

    async def one(i: int) -> None:
        async with await connect(addrs) as client:
            results[i] = (await client.run(["echo", f"client {i}"])).stdout

    with trio.fail_after(60):
        async with trio.open_nursery() as clients:
            for i in range(200):
                clients.start_soon(one, i)
    assert results == {i: f"client {i}\n".encode() for i in range(200)}


async def test_raw_tcp_echo_half_closes_after_the_peer(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, tcp_echo_port=0, udp_port=None)
    assert addrs.udp == [] and len(addrs.tcp_echo) == 1
    async with await trio.open_tcp_stream(*addrs.tcp_echo[0]) as stream:
        await stream.send_all(b"x" * 100_000)
        await stream.send_eof()
        got = bytearray()
        with trio.fail_after(5):
            while chunk := await stream.receive_some():
                got += chunk
    assert got == b"x" * 100_000


async def test_client_that_stops_reading_frees_its_slot_and_shutdown() -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as server_nursery:
            addrs = await start_server(
                server_nursery, max_processes=1, command_timeout=1, idle_timeout=1, queue_timeout=20
            )
            greedy = await connect(addrs)
            # `yes` writes forever and this client never reads: its sends back up
            await greedy.stream.send_message({"type": "run", "id": 1, "argv": ["yes"]})
            async with await connect(addrs) as polite:
                result = await polite.run(["echo", "my turn"])  # waits for the only slot
            assert result.stdout == b"my turn\n"
            server_nursery.cancel_scope.cancel()  # and shutdown does not hang on it
        await greedy.aclose()


async def test_allowlist_is_exact_and_refuses_shell(nursery: trio.Nursery) -> None:
    addrs = await start_server(nursery, allow=frozenset({"echo"}), allow_shell=True)
    async with await connect(addrs) as client:
        assert (await client.run(["echo", "ok"])).ok
        for argv in (["./echo", "x"], ["/tmp/x/echo", "x"]):
            with pytest.raises(RemoteError, match="not in this server's allowlist"):
                await client.run(argv)
        with pytest.raises(RemoteError, match="shell string would bypass") as info:
            await client.run(shell="echo x && id")
        assert info.value.code == "not_allowed"


async def test_token_never_reaches_commands(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAMEKIT_TOKEN", "s3cret")
    monkeypatch.setenv("FRAMEKIT_TEST_OTHER", "visible")
    addrs = await start_server(nursery, token="s3cret")
    async with await connect(addrs, token="s3cret") as client:
        leaked = await client.run(["printenv", "FRAMEKIT_TOKEN"])
        other = await client.run(["printenv", "FRAMEKIT_TEST_OTHER"])
    assert leaked.returncode == 1 and leaked.stdout == b""
    assert other.stdout == b"visible\n"


async def test_commands_inherit_the_server_environment_without_a_secret(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRAMEKIT_TOKEN", raising=False)
    monkeypatch.setenv("FRAMEKIT_TEST_OTHER", "before")
    addrs = await start_server(nursery)
    async with await connect(addrs) as client:
        before = await client.run(["printenv", "FRAMEKIT_TEST_OTHER"])
        monkeypatch.setenv("FRAMEKIT_TOKEN", "set-later")  # the secret is still kept out
        leaked = await client.run(["printenv", "FRAMEKIT_TOKEN"])
    assert before.stdout == b"before\n"
    assert leaked.returncode == 1 and leaked.stdout == b""
