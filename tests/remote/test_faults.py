"""Faults: resets at every point, killed servers and clients, stubborn children, a
reader that stops reading, and no file descriptors left.

Each fault runs while a well-behaved client keeps getting correct answers, and the
server must log no error, no traceback and nothing ``internal``.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import resource
import signal
import ssl
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import framekit
from framekit import MessageEncoder, MessageStream

from ..helpers import process_gone, reset
from ..server_helpers import ServerProcess, start_server

#: What a well-behaved process group may take beyond the grace to be gone (SIGKILL and
#: the reaping of the leader, on a loaded machine).
MARGIN = 1.0
#: The reserved prefix of the server's temporary upload files.
TEMP_PREFIX = ".framekit-upload-"
#: ``sh -c`` script: print the leader's pid and a background child's, then wait.
PIDS_THEN_WAIT = "echo $$ >&2; sleep 60 & echo $! >&2; wait"
#: The same, both processes ignoring SIGTERM.
STUBBORN = "trap '' TERM; echo $$ >&2; sleep 60 & echo $! >&2; wait"
#: The same, only the background child ignoring SIGTERM.
STUBBORN_CHILD = "echo $$ >&2; (trap '' TERM; exec sleep 60) & echo $! >&2; wait"

# -- helpers ----------------------------------------------------------------------------


def address(addrs: framekit.ServerAddresses | ServerProcess) -> tuple[str, int]:
    """``(host, port)`` of an in-process server or a ServerProcess."""
    if isinstance(addrs, ServerProcess):
        host, port = addrs.tcp.rsplit(":", 1)
        return host, int(port)
    return addrs.tcp[0]


@asynccontextmanager
async def well_behaved_client(
    addrs: framekit.ServerAddresses | ServerProcess, **connect: Any
) -> AsyncIterator[list[int]]:
    """A client that keeps running ``echo N`` and checks each answer, before, during and
    after the fault; leaving the block waits for three more answers."""
    answered: list[int] = []
    async with trio.open_nursery() as nursery:

        async def loop() -> None:
            async with await framekit.Client.connect(*address(addrs), **connect) as client:
                for n in range(1_000_000):
                    result = await client.run(["echo", str(n)])
                    assert result.ok and result.stdout == f"{n}\n".encode()
                    answered.append(n)

        nursery.start_soon(loop)
        with trio.fail_after(10):
            while not answered:
                await trio.sleep(0.01)
        yield answered
        before = len(answered)
        with trio.fail_after(10):
            while len(answered) < before + 3:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def raw_connection(
    addrs: framekit.ServerAddresses | ServerProcess,
) -> tuple[trio.SocketStream, MessageStream, dict[str, Any]]:
    """A TCP connection that has read the greeting: the socket, messages over it, hello."""
    stream = await trio.open_tcp_stream(*address(addrs))
    messages = MessageStream(stream)
    with trio.fail_after(5):
        hello = await messages.receive_message()
    assert hello.header["type"] == "hello"
    return stream, messages, hello.header.fields


def local_name(stream: trio.SocketStream) -> str:
    """Our end of ``stream`` as the server's log names its peer."""
    host, port = stream.socket.getsockname()[:2]
    return f"{host}:{port}"


def unacknowledged(stream: trio.SocketStream) -> int:
    """Bytes we sent that the peer's kernel has not acknowledged yet (Linux SIOCOUTQ)."""
    raw = fcntl.ioctl(stream.socket.fileno(), termios.TIOCOUTQ, b"\0" * 4)
    return int(struct.unpack("i", raw)[0])


async def delivered(stream: trio.SocketStream) -> None:
    """Wait until the peer's kernel has acknowledged every byte we sent."""
    with trio.fail_after(5):
        while unacknowledged(stream):
            await trio.sleep(0.001)


async def consumed(stream: trio.SocketStream) -> None:
    """Wait until an in-process server has read everything we sent (and blocks again)."""
    await delivered(stream)
    with trio.fail_after(5):
        await trio.testing.wait_all_tasks_blocked()


async def logged(
    caplog: pytest.LogCaptureFixture, *needles: str, limit: float = 5
) -> logging.LogRecord:
    """Wait (bounded) for a log record whose message holds every needle; return it."""
    with trio.fail_after(limit):
        while True:
            for record in caplog.records:
                if all(n in record.getMessage() for n in needles):
                    return record
            await trio.sleep(0.01)


def assert_one_info_line(caplog: pytest.LogCaptureFixture, peer: str) -> None:
    """The server said one thing about ``peer``: an INFO line that it lost the connection
    (a reset is the peer's doing, not a server problem)."""
    [record] = [r for r in caplog.records if peer in r.getMessage()]
    assert record.levelno == logging.INFO
    text = record.getMessage()
    assert "connection lost" in text, text
    assert "reset" in text.lower() or "broken pipe" in text.lower(), text  # (if it was sending)


def assert_clean_log(caplog: pytest.LogCaptureFixture) -> None:
    """No error, no traceback, nothing ``internal`` in what the server logged."""
    for record in caplog.records:
        text = record.getMessage()
        assert record.levelno < logging.ERROR, f"{record.name}: {text}"
        assert record.exc_info is None, text
        assert "internal" not in text and "Traceback" not in text, text


def assert_clean_process_log(lines: Iterable[str]) -> None:
    """The same for the stderr of a ServerProcess."""
    text = "".join(lines)
    for bad in (" ERROR ", " CRITICAL ", "Traceback", "internal"):
        assert bad not in text, text[-4000:]


async def read_pids(messages: MessageStream, count: int = 2) -> list[int]:
    """Read a command's messages until its stderr has named ``count`` pids."""
    pids: list[int] = []
    with trio.fail_after(5):
        while len(pids) < count:
            message = await messages.receive_message()
            assert message.header["type"] == "output", message.header.fields
            if message.header["stream"] == "stderr":
                pids += [int(p) for p in message.body.split()]
    return pids


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(TEMP_PREFIX)]


async def temp_file_holding(folder: Path, size: int) -> Path:
    """Wait (bounded) for the server's temporary upload file to hold ``size`` bytes."""
    with trio.fail_after(5):
        while True:
            found = temp_files(folder)
            if found and found[0].stat().st_size == size:
                return found[0]
            await trio.sleep(0.005)


def put_header(name: str, body: bytes) -> bytes:
    fields = {"type": "put", "id": 1, "name": name, "sha256": hashlib.sha256(body).hexdigest()}
    return MessageEncoder().header(fields, size=len(body))


async def groups_gone_at(pids: list[int], start: float, limit: float) -> float:
    """Seconds from ``start`` until every pid is gone (polled every 10 ms, bounded)."""
    with trio.fail_after(limit):
        while not all(process_gone(p) for p in pids):
            await trio.sleep(0.01)
    return trio.current_time() - start


async def start_stoppable_server(
    nursery: trio.Nursery, **options: Any
) -> tuple[framekit.ServerAddresses, trio.CancelScope, trio.Event]:
    """An in-process server in its own cancel scope: cancel it to stop the server
    (gracefully); the event is set once it has stopped."""
    scope = trio.CancelScope()
    stopped = trio.Event()

    async def run(task_status: trio.TaskStatus[framekit.ServerAddresses]) -> None:
        try:
            with scope:
                async with trio.open_nursery() as inner:
                    task_status.started(await start_server(inner, **options))
        finally:
            stopped.set()

    addrs: framekit.ServerAddresses = await nursery.start(run)
    return addrs, scope, stopped


class DrainedLog:
    """Read a ServerProcess's stderr on a thread, so a chatty server never blocks on a
    full pipe; ``stop`` replaces ``ServerProcess.stop``."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        assert self.server.proc.stderr is not None
        try:
            for line in self.server.proc.stderr:
                self.server.log.append(line)
        except (OSError, ValueError):  # closed by ServerProcess.__exit__ after a failure
            pass

    def stop(self, signum: int) -> int:
        self.server.proc.send_signal(signum)
        code = self.server.proc.wait(timeout=20)
        self.thread.join(timeout=5)
        return code


# -- 1. resets ------------------------------------------------------------------------------

RUN_WITH_STDIN = MessageEncoder().header({"type": "run", "id": 1, "argv": ["cat"]}, size=1000)

RESET_POINTS = {
    "mid length prefix": RUN_WITH_STDIN[:2],
    "mid header": RUN_WITH_STDIN[: 4 + (len(RUN_WITH_STDIN) - 4) // 2],
    "mid stdin body": RUN_WITH_STDIN + b"x" * 300,
}


@pytest.mark.parametrize("point", RESET_POINTS)
async def test_reset_mid_request_is_one_info_line(
    point: str, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    addrs = await start_server(nursery, udp_port=None)
    async with well_behaved_client(addrs):
        stream, _, _ = await raw_connection(addrs)
        peer = local_name(stream)
        await stream.send_all(RESET_POINTS[point])
        await consumed(stream)
        await reset(stream)
        await logged(caplog, peer, "connection lost")
    assert_one_info_line(caplog, peer)
    assert_clean_log(caplog)


async def test_reset_mid_upload_stores_nothing(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    addrs = await start_server(nursery, udp_port=None, upload_dir=tmp_path)
    body = os.urandom(1024 * 1024)
    async with well_behaved_client(addrs):
        stream, _, _ = await raw_connection(addrs)
        peer = local_name(stream)
        await stream.send_all(put_header("sub/half.bin", body) + body[: 256 * 1024])
        temp = await temp_file_holding(tmp_path, 256 * 1024)  # the server is mid-body
        await reset(stream)
        await logged(caplog, peer, "connection lost")
        with trio.fail_after(5):
            while temp.exists():
                await trio.sleep(0.005)
    assert [p.name for p in tmp_path.rglob("*")] == ["sub"]  # no file, no temporary file
    assert_one_info_line(caplog, peer)
    assert_clean_log(caplog)


async def test_reset_mid_download_leaves_the_file_intact(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    content = os.urandom(8 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(content)
    addrs = await start_server(nursery, udp_port=None, upload_dir=tmp_path)
    async with well_behaved_client(addrs):
        stream, messages, _ = await raw_connection(addrs)
        peer = local_name(stream)
        await messages.send_message({"type": "get", "id": 1, "name": "big.bin"})
        incoming = await messages.receive_message_stream()
        assert incoming.header["type"] == "file"
        async for _ in incoming:
            break  # some of the body has come: the server is sending the rest
        await reset(stream)
        await logged(caplog, peer, "connection lost")
    assert_one_info_line(caplog, peer)
    assert (tmp_path / "big.bin").read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]
    assert_clean_log(caplog)


def client_hello(context: ssl.SSLContext) -> bytes:
    """The first flight of a TLS client: its ClientHello."""
    tls = context.wrap_bio(
        ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="localhost"
    )
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("point", ["mid ClientHello", "after the server's first flight"])
async def test_reset_during_the_tls_handshake(
    point: str,
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    addrs = await start_server(nursery, udp_port=None, ssl_context=server_ssl_context)
    hello = client_hello(client_ssl_context)
    async with well_behaved_client(
        addrs, ssl_context=client_ssl_context, server_hostname="localhost"
    ):
        stream = await trio.open_tcp_stream(*addrs.tcp[0])
        peer = local_name(stream)
        if point == "mid ClientHello":
            await stream.send_all(hello[: len(hello) // 2])
            await consumed(stream)
        else:
            await stream.send_all(hello)
            with trio.fail_after(5):
                assert await stream.receive_some()  # ServerHello...: it waits for our Finished
        await reset(stream)
        await logged(caplog, peer, "connection lost")
    assert_one_info_line(caplog, peer)
    assert_clean_log(caplog)


async def test_reset_during_authentication(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    addrs = await start_server(nursery, udp_port=None, token="s3cret", auth_failure_delay=0)
    async with well_behaved_client(addrs, token="s3cret"):
        stream, _, hello = await raw_connection(addrs)
        assert hello["auth"] == "hmac-sha256"
        peer = local_name(stream)
        answer = MessageEncoder().message({"type": "auth", "mac": "0" * 64})
        await stream.send_all(answer[: len(answer) // 2])
        await consumed(stream)
        await reset(stream)
        await logged(caplog, peer, "connection lost")
    assert_one_info_line(caplog, peer)  # not "authentication failed": it never answered
    assert_clean_log(caplog)


async def test_reset_while_a_command_streams_output_kills_its_group(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    addrs = await start_server(nursery, udp_port=None)
    async with well_behaved_client(addrs):
        stream, messages, _ = await raw_connection(addrs)
        await messages.send_message(
            {"type": "run", "id": 1, "argv": ["sh", "-c", "echo $$ >&2; yes & echo $! >&2; wait"]}
        )
        pids = await read_pids(messages)
        assert not any(process_gone(p) for p in pids)
        start = trio.current_time()
        await reset(stream)
        gone_after = await groups_gone_at(pids, start, limit=5)
    print(f"group gone {gone_after:.3f} s after the reset")
    assert gone_after < MARGIN
    assert_clean_log(caplog)


# -- 2. the server killed mid-upload ------------------------------------------------------


async def test_server_killed_mid_upload_leaves_nothing_partial(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    body = os.urandom(4 * 1024 * 1024)
    half = len(body) // 2
    with ServerProcess(tmp_path / "first", "--upload-dir", str(uploads)) as server:
        stream, _, _ = await raw_connection(server)
        async with stream:
            await stream.send_all(put_header("reports/big.bin", body) + body[:half])
            temp = await temp_file_holding(uploads, half)  # written, not yet complete
            assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    assert not (uploads / "reports" / "big.bin").exists()
    assert temp.exists()  # only a server can know it is stale: the next one at its start
    assert_clean_process_log(server.log)

    local = tmp_path / "local.bin"
    local.write_bytes(body)
    with ServerProcess(tmp_path / "second", "--upload-dir", str(uploads)) as server:
        assert temp_files(uploads) == []
        assert any("removed 1 unfinished upload(s)" in line for line in server.log)
        async with await framekit.Client.connect(*address(server)) as client:
            with pytest.raises(framekit.RemoteError) as info:
                await client.get("reports/big.bin", tmp_path / "copy.bin")
            assert info.value.code == "not_found"
            assert not (tmp_path / "copy.bin").exists()
            await client.put(local, "reports/big.bin")  # the name works, whole
            await client.get("reports/big.bin", tmp_path / "copy.bin")
        assert (tmp_path / "copy.bin").read_bytes() == body
        assert server.stop(signal.SIGTERM) == 0
    assert_clean_process_log(server.log)


# -- 3. the client killed mid-command -----------------------------------------------------


@pytest.mark.parametrize("script", [PIDS_THEN_WAIT, STUBBORN], ids=["plain", "ignoring SIGTERM"])
async def test_client_process_killed_mid_command_kills_the_remote_group(
    script: str, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    # A vanished client's command gets no grace: even a group that ignores SIGTERM is
    # gone at once, not after shutdown_grace.
    caplog.set_level(logging.INFO, logger="framekit")
    addrs = await start_server(nursery, udp_port=None, shutdown_grace=5)
    host, port = addrs.tcp[0]
    framekit_exe = str(Path(sys.executable).with_name("framekit"))
    async with well_behaved_client(addrs):
        client = await trio.lowlevel.open_process(
            [framekit_exe, "send", f"{host}:{port}", "--", "sh", "-c", script],
            stderr=subprocess.PIPE,
        )
        try:
            assert client.stderr is not None
            text = b""
            with trio.fail_after(10):
                while len(text.split()) < 2 and (chunk := await client.stderr.receive_some()):
                    text += chunk
            assert all(word.isdigit() for word in text.split()), text.decode(errors="replace")
            pids = [int(p) for p in text.split()]
            assert not any(process_gone(p) for p in pids)
            start = trio.current_time()
        finally:
            client.kill()
            with trio.CancelScope(shield=True):
                await client.wait()
                await client.stderr.aclose()
        gone_after = await groups_gone_at(pids, start, limit=5)
        await logged(caplog, "left during request", "killed it")
    print(f"group gone {gone_after:.3f} s after the client was killed")
    assert gone_after < MARGIN
    assert_clean_log(caplog)


# -- 4. children that ignore SIGTERM ------------------------------------------------------

GRACE = 1.0


@pytest.mark.parametrize(
    "script", [STUBBORN, STUBBORN_CHILD], ids=["leader and child", "background child only"]
)
async def test_stubborn_group_is_killed_at_the_grace_when_the_server_stops(
    script: str, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    addrs, server_scope, stopped = await start_stoppable_server(
        nursery, udp_port=None, shutdown_grace=GRACE
    )
    stream, messages, _ = await raw_connection(addrs)
    async with stream:
        await messages.send_message({"type": "run", "id": 1, "argv": ["sh", "-c", script]})
        pids = await read_pids(messages)
        start = trio.current_time()
        server_scope.cancel()
        gone_after = await groups_gone_at(pids, start, limit=GRACE + 5)
        with trio.fail_after(5):
            await stopped.wait()
        stopped_after = trio.current_time() - start
    print(f"group gone {gone_after:.3f} s, server stopped {stopped_after:.3f} s after the stop")
    if script == STUBBORN:  # SIGTERM ignored: SIGKILL at the grace
        assert GRACE * 0.9 <= gone_after <= GRACE + MARGIN
    else:  # the leader obeys, and its end takes the group with it
        assert gone_after < GRACE * 0.5
    assert stopped_after <= GRACE + MARGIN
    await logged(caplog, "stopped: the server is shutting down")
    assert_clean_log(caplog)


async def test_stubborn_group_is_killed_at_the_grace_when_the_server_process_stops(
    tmp_path: Path,
) -> None:
    with ServerProcess(tmp_path, "--shutdown-grace", str(GRACE)) as server:
        stream, messages, _ = await raw_connection(server)
        async with stream:
            await messages.send_message({"type": "run", "id": 1, "argv": ["sh", "-c", STUBBORN]})
            pids = await read_pids(messages)
            start = trio.current_time()
            async with trio.open_nursery() as watch:
                watch.start_soon(trio.to_thread.run_sync, server.stop, signal.SIGTERM)
                gone_after = await groups_gone_at(pids, start, limit=GRACE + 5)
            stopped_after = trio.current_time() - start
    print(f"group gone {gone_after:.3f} s, server exited {stopped_after:.3f} s after SIGTERM")
    assert server.proc.returncode == 0
    assert GRACE * 0.9 <= gone_after <= GRACE + MARGIN
    assert stopped_after <= GRACE + 3  # the group, then the interpreter's own exit
    assert_clean_process_log(server.log)


async def test_stubborn_group_is_killed_at_the_grace_when_the_client_cancels(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framekit")
    addrs = await start_server(nursery, udp_port=None, shutdown_grace=GRACE)
    async with well_behaved_client(addrs):
        stream, messages, _ = await raw_connection(addrs)
        async with stream:
            await messages.send_message({"type": "run", "id": 1, "argv": ["sh", "-c", STUBBORN]})
            pids = await read_pids(messages)
            start = trio.current_time()
            await messages.send_message({"type": "cancel", "id": 1})
            with trio.fail_after(GRACE + 5):
                exit_message = await messages.receive_message()
            answered_after = trio.current_time() - start
            gone_after = await groups_gone_at(pids, start, limit=MARGIN)
            assert exit_message.header["type"] == "exit"
            assert exit_message.header["status"] == "cancelled"
            await messages.send_message({"type": "run", "id": 2, "argv": ["echo", "next"]})
            assert (await messages.receive_message()).body == b"next\n"  # the connection goes on
    print(f"group gone {gone_after:.3f} s, exit sent {answered_after:.3f} s after the cancel")
    assert GRACE * 0.9 <= answered_after <= GRACE + MARGIN
    assert gone_after <= GRACE + MARGIN
    assert_clean_log(caplog)


# -- 5. a reader that stops reading -------------------------------------------------------


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def test_reader_that_stops_reading_is_cut_in_flat_memory(tmp_path: Path) -> None:
    idle = 2.0
    endless = "echo $$ >&2; yes & echo $! >&2; exec yes"
    with ServerProcess(
        tmp_path, "--idle-timeout", str(idle), "--max-output", str(1 << 40)
    ) as server:
        drained = DrainedLog(server)
        async with well_behaved_client(server):
            stream, messages, _ = await raw_connection(server)
            async with stream:
                await messages.send_message({"type": "run", "id": 1, "argv": ["sh", "-c", endless]})
                pids = await read_pids(messages)  # ... and from now on, nothing is read
                start = trio.current_time()
                samples = [rss_kib(server.proc.pid)]
                with trio.fail_after(idle + 5):
                    while not all(process_gone(p) for p in pids):
                        samples.append(rss_kib(server.proc.pid))
                        await trio.sleep(0.1)
                cut_after = trio.current_time() - start
                # What was queued before the stall arrives, then the end: no exit message.
                kinds, queued = set(), 0
                with trio.fail_after(10):
                    try:
                        while True:
                            message = await messages.receive_message()
                            kinds.add(message.header["type"])
                            queued += len(message.body)
                    except (trio.EndOfChannel, trio.BrokenResourceError, framekit.IncompleteFrame):
                        pass  # the server hung up, possibly in the middle of a message
        assert drained.stop(signal.SIGTERM) == 0
    growth = (max(samples) - samples[0]) / 1024
    print(
        f"cut {cut_after:.2f} s into the stall; server RSS {samples[0] / 1024:.1f} MiB, growth "
        f"{growth:.2f} MiB over {len(samples)} samples; {queued >> 10} KiB queued in sockets"
    )
    assert kinds <= {"output"}
    assert idle * 0.9 <= cut_after <= idle + 3
    assert growth < 20
    assert any(
        "timed out" in line and "sending the command's output" in line and "killed it" in line
        for line in server.log
    )
    assert_clean_process_log(server.log)


# -- 6. descriptor exhaustion -------------------------------------------------------------


@dataclass
class Exhaustion:
    """What a server with few file descriptors did when they ran out, and after."""

    base_fds: int
    limit: int
    connections: int  # accepted before the server could accept no more
    replies: dict[str, dict[str, Any]]  # to run, get and put while it was full
    pong: bool  # the connection still worked after them
    waiting_served: bool  # the connection left waiting was served once fds were free
    waiting_served_after: float  # seconds from freeing the fds to its greeting
    full_for: float  # seconds the server could accept nothing
    recovered_after: float  # seconds from freeing the fds to a normal client served
    fds_after: int  # the server's descriptors once everything had closed
    alive: bool  # the server never exited on its own
    exit_code: int
    log: list[str]


async def exhaust_descriptors(tmp_path: Path) -> Exhaustion:
    """Start a server, cut its RLIMIT_NOFILE to a few dozen, open connections until it
    can accept no more, send work that needs descriptors; then free them and recover."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "file.txt").write_bytes(b"content")
    local = tmp_path / "local.txt"
    local.write_bytes(b"upload")
    body = b"new"
    with ServerProcess(tmp_path, "--upload-dir", str(uploads)) as server:
        drained = DrainedLog(server)
        pid = server.proc.pid
        base = len(os.listdir(f"/proc/{pid}/fd"))
        limit = base + 40
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        held: list[tuple[trio.SocketStream, MessageStream]] = []
        waiting: trio.SocketStream | None = None
        try:
            for _ in range(limit):
                stream = await trio.open_tcp_stream(*address(server))
                messages = MessageStream(stream)
                with trio.move_on_after(0.5):  # it retries accept every 0.1 s
                    await messages.receive_message()
                    held.append((stream, messages))
                    continue
                waiting = stream  # in the kernel's backlog: the server cannot accept it
                full_since = trio.current_time() - 0.5
                break
            assert waiting is not None, f"{len(held)} connections and still not full"
            _, messages = held[0]
            # Work that needs a descriptor, on an accepted connection. (No well-behaved
            # client runs meanwhile: its commands would need descriptors too.)
            replies, waiting_served = {}, False
            with trio.fail_after(5):
                await messages.send_message({"type": "run", "id": 1, "argv": ["echo", "hi"]})
                replies["run"] = (await messages.receive_message()).header.fields
                await messages.send_message({"type": "get", "id": 2, "name": "file.txt"})
                replies["get"] = (await messages.receive_message()).header.fields
                put = {"type": "put", "id": 3, "name": "new.txt"}
                await messages.send_message(put, body, checksum=True)
                replies["put"] = (await messages.receive_message()).header.fields
                await messages.send_message({"type": "ping", "id": 4})
                pong = (await messages.receive_message()).header["type"] == "pong"
            # Descriptors free again: the waiting connection is greeted.
            for stream, _ in held:
                await stream.aclose()
            start = trio.current_time()
            full_for = start - full_since
            with trio.move_on_after(5):
                hello = await MessageStream(waiting).receive_message()
                waiting_served = hello.header["type"] == "hello"
            waiting_served_after = trio.current_time() - start
        finally:
            for stream, _ in held:
                await stream.aclose()
            if waiting is not None:
                await waiting.aclose()
        with trio.fail_after(10):
            for _ in range(100):
                try:
                    async with await framekit.Client.connect(*address(server)) as client:
                        assert (await client.run(["echo", "back"])).stdout == b"back\n"
                        await client.put(local, "new.txt")
                        await client.get("new.txt", tmp_path / "copy.txt")
                        break
                except framekit.RemoteError as exc:  # a slow recovery: only `busy` is fine
                    if exc.code != "busy":
                        raise
                    await trio.sleep(0.1)
        recovered_after = trio.current_time() - start
        # Every descriptor the refused requests and the connections took is back.
        with trio.move_on_after(5):
            while len(os.listdir(f"/proc/{pid}/fd")) > base:
                await trio.sleep(0.01)
        fds_after = len(os.listdir(f"/proc/{pid}/fd"))
        assert (tmp_path / "copy.txt").read_bytes() == b"upload"
        assert temp_files(uploads) == []
        alive = server.proc.poll() is None
        exit_code = drained.stop(signal.SIGTERM)
    return Exhaustion(
        base_fds=base,
        limit=limit,
        connections=len(held),
        replies=replies,
        pong=pong,
        waiting_served=waiting_served,
        waiting_served_after=waiting_served_after,
        full_for=full_for,
        recovered_after=recovered_after,
        fds_after=fds_after,
        alive=alive,
        exit_code=exit_code,
        log=server.log,
    )


async def test_descriptor_exhaustion_is_survived_and_recovered(tmp_path: Path) -> None:
    result = await exhaust_descriptors(tmp_path)
    print(
        f"{result.base_fds} fds at start, limit {result.limit}: full after "
        f"{result.connections} connections; replies {result.replies}; "
        f"the waiting connection greeted {result.waiting_served_after:.3f} s and a new client "
        f"served {result.recovered_after:.3f} s after the fds were freed; "
        f"{result.fds_after} fds at the end"
    )
    assert result.alive and result.exit_code == 0
    for reply in result.replies.values():
        assert reply["type"] == "error" and reply["code"] != "internal", reply
        assert "Too many open files" in reply["message"], reply
    assert result.pong and result.waiting_served
    assert result.fds_after <= result.base_fds  # nothing leaked on the refusals
    assert result.recovered_after < 2
    assert not any("internal" in line or " ERROR framekit" in line for line in result.log)


async def test_descriptor_exhaustion_refuses_every_request_as_busy(tmp_path: Path) -> None:
    # A shortage is temporary: `busy` ("try again later"), as for files, not `not_found`.
    result = await exhaust_descriptors(tmp_path)
    assert {kind: reply["code"] for kind, reply in result.replies.items()} == {
        "run": "busy",
        "get": "busy",
        "put": "busy",
    }


async def test_descriptor_exhaustion_is_logged_without_errors_or_tracebacks(
    tmp_path: Path,
) -> None:
    result = await exhaust_descriptors(tmp_path)
    errors = [line for line in result.log if " ERROR " in line]
    tracebacks = sum("Traceback" in line for line in result.log)
    print(f"{len(errors)} ERROR lines, {tracebacks} tracebacks in {result.full_for:.2f} s full")
    assert any("Too many open files" in line for line in result.log)  # the operator is told
    assert_clean_process_log(result.log)
