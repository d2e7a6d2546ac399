"""What runs where: each platform-specific call has a fallback chosen once, at import,
and every fallback is forced here, on Linux (docs/platforms.md lists them).

The seams are module-level names the tests patch: ``_framed._CAN_GATHER`` (sendmsg),
``DIRECT_WRITE`` in ``_framed``, ``_deadline``, ``_channel`` and ``_message_stream``
(writing a socket's descriptor),
``_processes.PROCESS_GROUPS`` (the command server), ``_processes._Pipes`` (epoll),
``_processes._wait_process`` (pidfd_open), ``_echo._receive`` (recvmsg),
``_socket.SO_RCVBUFFORCE``/``SO_SNDBUFFORCE`` (Linux's buffer options) and
``_client._receive`` (Windows' recv). ``tests/pretend_windows.py`` imports the whole
package the way Windows would, and runs the library, the client and ``serve`` there.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import select
import socket
import sys
from functools import partial
from pathlib import Path
from typing import Any, Self

import pytest
import trio
import trio.lowlevel
from typer.testing import CliRunner

import framekit
from framekit import (
    DeadlineStream,
    FramedStream,
    MessageStream,
    UdpEchoStats,
    UnsupportedPlatform,
    open_framed_channel,
)
from framekit.datagram import _client, _echo, _socket
from framekit.remote import _processes
from framekit.streams import _channel, _deadline, _framed, _message_stream
from framekit_cli._exit import EXIT_CODES, EXIT_UNSUPPORTED, error_code
from framekit_cli.app import app

from .server_helpers import start_server

runner = CliRunner()
HERE = Path(__file__).resolve().parent


# -- the command server on Windows: refused at start, in one line -----------------------


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """This platform as Windows: no process groups (the import-time flag), and its name.
    (``serve`` sets up logging to the runner's stderr: the root logger is restored after.)"""
    monkeypatch.setattr(_processes, "PROCESS_GROUPS", False)
    monkeypatch.setattr(sys, "platform", "win32")
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)


@pytest.mark.usefixtures("windows")
async def test_serve_commands_refuses_before_anything_else() -> None:
    # A public address without a token would be refused too: the platform comes first,
    # before anything is bound or checked.
    config = framekit.ServerConfig(host="0.0.0.0", tcp_port=0)
    with pytest.raises(UnsupportedPlatform) as refused:
        await framekit.serve_commands(config)
    assert (refused.value.feature, refused.value.platform) == ("the command server", "win32")
    assert str(refused.value).startswith(
        "the command server is not supported on Windows: it needs POSIX process groups"
    )
    assert isinstance(refused.value, framekit.FramekitError)
    assert error_code(refused.value) == "unsupported_platform"


@pytest.mark.usefixtures("windows")
async def test_serve_refuses_with_the_error_itself_not_a_group() -> None:
    config = framekit.ServerConfig(tcp_port=0, udp_port=0)
    with pytest.raises(UnsupportedPlatform, match="not supported on Windows"):
        await framekit.serve(config)
    with pytest.raises(UnsupportedPlatform, match="not supported on Windows"):
        await framekit.serve_until_signal(config)


@pytest.mark.usefixtures("windows")
@pytest.mark.parametrize("options", [[], ["--no-udp"], ["--tcp-echo-port", "0"]])
def test_cli_serve_refuses_in_one_line_with_its_exit_code(options: list[str]) -> None:
    result = runner.invoke(app, ["serve", "--tcp-port", "0", "--udp-port", "0", *options])
    assert result.exit_code == EXIT_UNSUPPORTED == 69
    assert result.stdout == ""  # no banner: nothing was started
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "framekit: the command server is not supported on Windows: it needs POSIX process "
        "groups (os.killpg) to kill a command's whole process tree; the library, the client"
    )
    assert "Traceback" not in result.output


def test_the_exit_code_is_documented() -> None:
    assert "Windows" in EXIT_CODES[EXIT_UNSUPPORTED]
    help_text = runner.invoke(app, ["--help"]).stdout
    assert f"{EXIT_UNSUPPORTED:<4} {EXIT_CODES[EXIT_UNSUPPORTED]}" in help_text


def test_process_groups_are_found_here() -> None:
    assert _processes.PROCESS_GROUPS is hasattr(os, "killpg")
    _processes.require_process_groups()  # POSIX: nothing to refuse


# -- sendmsg: 16 KiB to 1 MiB frames ---------------------------------------------------


def test_gathered_sends_follow_what_trio_sockets_offer() -> None:
    assert _framed._CAN_GATHER is hasattr(trio.socket.SocketType, "sendmsg")


@pytest.mark.parametrize("sender", ["FramedStream", "FramedChannel"])
async def test_frames_between_16_kib_and_1_mib_go_out_without_sendmsg(
    monkeypatch: pytest.MonkeyPatch, sender: str
) -> None:
    monkeypatch.setattr(_framed, "_CAN_GATHER", False)  # as chosen on Windows
    sock = trio.socket.socket()
    with sock:
        for cls in {trio.socket.SocketType, type(sock)}:  # and so sendmsg is not there
            monkeypatch.delattr(cls, "sendmsg", raising=False)
    assert not hasattr(trio.socket.SocketType, "sendmsg")
    sizes = [16 * 1024 - 1, 16 * 1024, 64 * 1024 + 3, 900_000, 1024 * 1024 - 1, 1024 * 1024]
    payloads = [bytes([i + 1]) * size for i, size in enumerate(sizes)]
    got: list[bytes] = []
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    async with trio.open_nursery() as nursery:

        async def receive_all() -> None:
            async with listener, FramedStream(await listener.accept()) as channel:
                got.extend([frame async for frame in channel])

        nursery.start_soon(receive_all)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        if sender == "FramedStream":
            async with FramedStream(stream) as framed:
                for payload in payloads:
                    await framed.send(payload)
        else:
            async with open_framed_channel(stream) as channel:
                for payload in payloads:
                    await channel.send(payload)
    assert got == payloads


async def test_without_descriptor_writes_small_sends_go_through_send_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Windows sockets are not file descriptors: no os.write fast path for FramedStream or
    # DeadlineStream, and every frame still arrives whole and in order.
    monkeypatch.setattr(_framed, "DIRECT_WRITE", False)
    monkeypatch.setattr(_deadline, "DIRECT_WRITE", False)

    def no_write(fd: int, data: bytes) -> int:
        raise AssertionError("os.write on a socket where there is none")

    monkeypatch.setattr(os, "write", no_write)
    payloads = [bytes([i]) * (i * 7) for i in range(40)]
    got: list[bytes] = []
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    async with trio.open_nursery() as nursery:

        async def receive_all() -> None:
            async with listener, FramedStream(await listener.accept()) as channel:
                got.extend([frame async for frame in channel])

        nursery.start_soon(receive_all)
        client = await trio.open_tcp_stream("127.0.0.1", port)
        framed = FramedStream(client)
        assert framed._direct is None
        for payload in payloads[:20]:
            await framed.send(payload)
        bounded = DeadlineStream(client, send_timeout=5)
        for payload in payloads[20:]:
            await bounded.send_all(framekit.FrameEncoder().encode(payload))
        await client.aclose()
    assert got == payloads


async def test_without_descriptor_writes_the_channel_and_messages_use_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The channel's write of a frame after a pause and MessageStream's small messages are
    # the same os.write fast path: gone too, and what they send still arrives.
    for module in (_channel, _message_stream):
        monkeypatch.setattr(module, "DIRECT_WRITE", False)

    def no_write(fd: int, data: bytes) -> int:
        raise AssertionError("os.write on a socket where there is none")

    monkeypatch.setattr(os, "write", no_write)
    bodies: list[bytes] = []
    frames: list[bytes] = []
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    async with trio.open_nursery() as nursery:

        async def receive_all() -> None:
            async with listener:
                async with MessageStream(await listener.accept()) as messages:
                    bodies.extend([message.body async for message in messages])
                async with FramedStream(await listener.accept()) as framed:
                    frames.extend([frame async for frame in framed])

        nursery.start_soon(receive_all)
        async with MessageStream(await trio.open_tcp_stream("127.0.0.1", port)) as messages:
            assert messages._direct is None
            for i in range(5):
                await messages.send_message({"n": i}, b"m%d" % i)
                await trio.lowlevel.checkpoint()  # each after a pause
        client = await trio.open_tcp_stream("127.0.0.1", port)
        async with open_framed_channel(client) as channel:
            assert channel._direct_socket is None
            for i in range(5):
                await channel.send(b"f%d" % i)
                await trio.lowlevel.checkpoint()  # the writer goes idle: a pause
    assert bodies == [b"m%d" % i for i in range(5)]
    assert frames == [b"f%d" % i for i in range(5)]


# -- epoll and pidfd_open: the command runner -------------------------------------------


def test_pipes_and_waits_are_chosen_by_what_the_platform_has() -> None:
    # Every test of tests/remote/test_processes.py runs on both choices.
    assert _processes._Pipes is (
        _processes._EpollPipes if hasattr(select, "epoll") else _processes._SelectorPipes
    )
    assert _processes._wait_process is (
        _processes._wait_with_pidfd if hasattr(os, "pidfd_open") else _processes._wait_in_thread
    )


class _Sink:
    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []

    async def __call__(self, name: str, data: bytes) -> None:
        self.chunks.append((name, data))


# The leader closes its output but runs on: the server waits for it to exit.
OUTLIVES_ITS_PIPES = ["sh", "-c", "exec >/dev/null 2>&1; sleep 0.2; exit 7"]


async def test_commands_are_reaped_without_pidfd_open_or_epoll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_processes, "_Pipes", _processes._SelectorPipes)  # macOS
    monkeypatch.setattr(_processes, "_wait_process", _processes._wait_in_thread)
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    monkeypatch.delattr(select, "epoll", raising=False)
    with trio.fail_after(10):
        outcome = await _processes.run_command_streaming(OUTLIVES_ITS_PIPES, sink=_Sink())
        assert (outcome.status, outcome.returncode) == ("exited", 7)
        with trio.move_on_after(0.3):  # cancelled: SIGTERM, then reaped on a thread
            await _processes.run_command_streaming(
                ["sh", "-c", "exec >/dev/null 2>&1; sleep 30"], sink=_Sink(), shutdown_grace=1
            )
        outcome = await _processes.run_command_streaming(
            ["sh", "-c", "exec >/dev/null 2>&1; sleep 30"], sink=_Sink(), timeout=0.3
        )
        assert outcome.status == "timeout"


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfd_open here")
async def test_a_kernel_without_pidfds_falls_back_to_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_pidfds(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")  # Linux before 5.3

    monkeypatch.setattr(os, "pidfd_open", no_pidfds)
    monkeypatch.setattr(_processes, "_wait_process", _processes._wait_with_pidfd)
    outcome = await _processes.run_command_streaming(OUTLIVES_ITS_PIPES, sink=_Sink())
    assert (outcome.status, outcome.returncode) == ("exited", 7)


# -- the UDP echo without recvmsg (Windows) ---------------------------------------------


def test_the_echo_receives_with_recvmsg_where_sockets_have_it() -> None:
    assert _echo._receive is (
        _echo._receive_with_recvmsg
        if hasattr(socket.socket, "recvmsg")
        else _echo._receive_with_recvfrom
    )


async def test_the_echo_runs_on_recvfrom(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_echo, "_receive", _echo._receive_with_recvfrom)
    stats = UdpEchoStats()
    [(host, port)] = await nursery.start(partial(framekit.serve_udp_echo, 0, stats=stats))
    for payload in [b"", b"a", b"x" * 1500, b"m" * framekit.MAX_UDP_PAYLOAD]:
        assert (await framekit.send_datagram(host, port, payload)).data == payload
    assert (stats.datagrams, stats.dropped) == (4, 0)


class _FakeUdpSocket:
    """recvfrom answers from a script; the echo loop stops once it is used up."""

    def __init__(self, script: list[Any], stop: Any) -> None:
        self.script, self.stop = script, stop
        self.sent: list[tuple[bytes, Any]] = []

    def recvfrom(self, size: int) -> tuple[bytes, Any]:
        if not self.script:
            self.stop.set()
            raise TimeoutError
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step, ("127.0.0.1", 5)

    def sendto(self, data: bytes, address: Any) -> int:
        self.sent.append((data, address))
        return len(data)


def test_windows_reports_a_long_datagram_and_icmp_as_errors_of_recvfrom(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    monkeypatch.setattr(_echo, "_receive", _echo._receive_with_recvfrom)
    stop, stats = threading.Event(), UdpEchoStats()
    sock = _FakeUdpSocket(
        [
            b"first",
            OSError(_echo._EMSGSIZE, "message too long"),  # WSAEMSGSIZE: longer than the buffer
            OSError(errno.ECONNRESET, "port unreachable"),  # WSAECONNRESET: an earlier ICMP
            b"last",
        ],
        stop,
    )
    _echo._echo_until(sock, stats, stop)  # type: ignore[arg-type]
    assert [data for data, _ in sock.sent] == [b"first", b"last"]  # never one cut short
    assert (stats.datagrams, stats.dropped, stats.errors) == (3, 1, 1)


# -- UDP socket buffers: Linux's *BUFFORCE options are Linux's only ----------------------


class _Recorder:
    def __init__(self) -> None:
        self.options: list[tuple[int, int]] = []


@pytest.fixture
def setsockopt_calls(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    recorder = _Recorder()
    real = socket.socket.setsockopt

    def recording(sock: socket.socket, level: int, option: int, *value: Any) -> None:
        if sock.type == socket.SOCK_DGRAM:  # not Trio's own sockets
            recorder.options.append((level, option))
        real(sock, level, option, *value)

    monkeypatch.setattr(socket.socket, "setsockopt", recording)
    return recorder


async def test_buffers_elsewhere_use_only_the_portable_options(
    monkeypatch: pytest.MonkeyPatch, setsockopt_calls: _Recorder
) -> None:
    # On macOS and Windows, 32 is SO_BROADCAST: Linux's SO_SNDBUFFORCE number must not
    # be sent there.
    monkeypatch.setattr(_socket, "SO_RCVBUFFORCE", None)
    monkeypatch.setattr(_socket, "SO_SNDBUFFORCE", None)
    monkeypatch.setattr(_socket, "_REPORT_FACTOR", 1)
    with await _socket.open_udp_socket("127.0.0.1", 0, buffer_size=64 * 1024) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 64 * 1024
    assert setsockopt_calls.options == [
        (socket.SOL_SOCKET, socket.SO_RCVBUF),
        (socket.SOL_SOCKET, socket.SO_SNDBUF),
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's options")
async def test_linux_asks_with_the_force_options_first(setsockopt_calls: _Recorder) -> None:
    assert (_socket.SO_RCVBUFFORCE, _socket.SO_SNDBUFFORCE) == (33, 32)
    with await _socket.open_udp_socket("127.0.0.1", 0, buffer_size=64 * 1024):
        pass
    asked = [option for _, option in setsockopt_calls.options]
    assert asked[0] == 33 and 32 in asked  # root gets them; others fall back to SO_*BUF


# -- the datagram client on Windows: ICMP as a reset, a long echo as an error -----------


class _WindowsUdp:
    """A connected UDP socket as Windows behaves: the first receive reports the ICMP
    "port unreachable" of an earlier send as WSAECONNRESET; a longer echo than the
    buffer fills it and fails with WSAEMSGSIZE."""

    def __init__(self, *args: object) -> None:
        self.sent: list[bytes] = []
        self.receives = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    async def connect(self, address: object) -> None:
        await trio.lowlevel.checkpoint()

    async def send(self, data: bytes) -> int:
        self.sent.append(data)
        await trio.lowlevel.checkpoint()
        return len(data)

    async def recv(self, size: int) -> bytes:
        return await self._next(bytearray(size), size)

    async def recv_into(self, buffer: bytearray) -> int:
        await self._next(buffer, len(buffer))
        return len(self.sent[-1])

    async def _next(self, buffer: bytearray, size: int) -> bytes:
        await trio.lowlevel.checkpoint()
        self.receives += 1
        if self.receives == 1:
            raise ConnectionResetError(10054, "an existing connection was forcibly closed")
        echo = self.sent[-1]
        buffer[: min(size, len(echo))] = echo[:size]
        if len(echo) > size:
            raise OSError(_client._WSAEMSGSIZE, "message too long")
        return echo


async def test_a_reset_for_port_unreachable_means_send_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trio.socket, "socket", _WindowsUdp)
    reply = await framekit.send_datagram("127.0.0.1", 9, b"ping", timeout=1)
    assert (reply.data, reply.attempts) == (b"ping", 2)


async def test_a_long_echo_is_cut_to_the_buffer_as_posix_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trio.socket, "socket", _WindowsUdp)
    monkeypatch.setattr(_client, "_receive", _client._receive_into)  # as chosen on Windows
    reply = await framekit.send_datagram("127.0.0.1", 9, b"t" * 2000, max_size=1024)
    assert reply.data == b"t" * 1024
    short = await framekit.send_datagram("127.0.0.1", 9, b"s" * 10, max_size=1024)
    assert short.data == b"s" * 10


async def test_recv_into_cuts_a_real_echo_too(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_client, "_receive", _client._receive_into)
    [(host, port)] = await nursery.start(partial(framekit.serve_udp_echo, 0))
    assert (await framekit.send_datagram(host, port, b"t" * 2000, max_size=1024)).data == (
        b"t" * 1024
    )
    assert (await framekit.send_datagram(host, port, b"whole")).data == b"whole"


# -- the whole package imported as on Windows --------------------------------------------


async def test_the_package_imports_and_works_as_on_windows(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Imported with ``sys.platform`` "win32" and what Windows lacks removed, framekit
    chooses every fallback; its library, client and UDP echo work, and ``serve`` refuses
    in one line. The server is this test's (on Linux): the client talks to it."""
    uploads, scratch = tmp_path / "uploads", tmp_path / "scratch"
    uploads.mkdir()
    scratch.mkdir()
    addresses = await start_server(nursery, upload_dir=uploads)
    tcp, udp = (framekit.format_address(*a[0]) for a in (addresses.tcp, addresses.udp))
    with trio.fail_after(60):
        proc = await trio.run_process(
            [sys.executable, str(HERE / "pretend_windows.py"), tcp, udp, str(scratch)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert {k: report[k] for k in report if k not in ("serve", "client", "compare")} == {
        "process_groups": False,
        "pipes": "_SelectorPipes",
        "wait_process": "_wait_in_thread",
        "gather": False,
        "direct_read": False,
        "echo_receive": "_receive_with_recvfrom",
        "client_receive": "_receive_into",
        "buffer_force": [None, None],
        "stop_signals": ["SIGINT", "SIGTERM"],
        "framed_sizes": [[100, 16384, 65539, 1048575]] * 2,
        "udp_echo": [1500, 1024, 2],
        "tcp_echo": 100_000,
    }
    code, stdout, stderr = report["serve"]
    assert (code, stdout) == (EXIT_UNSUPPORTED, "")
    [line] = stderr.splitlines()
    assert line.startswith("framekit: the command server is not supported on Windows: ")
    assert report["compare"] == [0, 0, 0]  # framing, recv, lifecycle
    client = report["client"]
    assert client["command"] == [0, "hi\n"]
    assert client["datagrams"][0] == 0 and "2 sent, 2 echoed" in client["datagrams"][1]
    assert client["put"][0] == 0 and client["get"][0] == 0 and client["same_file"] is True
