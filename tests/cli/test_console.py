"""The installed console script end to end, where behaviour crosses processes: stdin
streaming, a reader that goes away, a server stopped under a command, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..server_helpers import ServerProcess

pytestmark = pytest.mark.skipif(
    not Path("/bin/sh").exists(), reason="the remote commands here are POSIX tools"
)


def send(
    server: ServerProcess, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(server.exe), "send", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_stdin_is_forwarded_like_ssh(tmp_path: Path) -> None:
    with ServerProcess(tmp_path) as server:
        echoed = send(server, server.tcp, "--", "cat", stdin=b"hi\n")
        assert (echoed.returncode, echoed.stdout, echoed.stderr) == (0, b"hi\n", b"")
        lines = b"".join(b"%d\n" % i for i in range(1, 100_001))
        counted = send(server, server.tcp, "--", "wc", "-l", stdin=lines)
        assert counted.stdout.strip() == b"100000"
        ignored = send(server, "-n", server.tcp, "--", "cat", stdin=b"not forwarded")
        assert (ignored.returncode, ignored.stdout) == (0, b"")


def test_unbounded_stdin_streams_while_the_command_runs(tmp_path: Path) -> None:
    # `tail -f log | framekit send HOST -- grep ERR`: each line goes through as it is
    # written, and the command's own end ends the run though stdin never does.
    with ServerProcess(tmp_path) as server:
        client = subprocess.Popen(
            [
                str(server.exe),
                "send",
                server.tcp,
                "--",
                "grep",
                "--line-buffered",
                "-m",
                "2",
                "ERR",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert client.stdin is not None and client.stdout is not None
        try:
            client.stdin.write(b"ok\nERR one\n")
            client.stdin.flush()
            assert client.stdout.readline() == b"ERR one\n"  # before any more input
            client.stdin.write(b"fine\nERR two\n")
            client.stdin.flush()
            assert client.stdout.readline() == b"ERR two\n"
            assert client.wait(timeout=20) == 0  # grep -m 2 ended; stdin is still open
        finally:
            client.kill()
            client.wait()
            client.stdin.close()
            client.stdout.close()


def test_a_closed_stdout_exits_quietly(tmp_path: Path) -> None:
    with ServerProcess(tmp_path) as server:
        client = subprocess.Popen(
            [str(server.exe), "send", server.tcp, "--", "seq", "1", "10000000"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert client.stdout is not None and client.stderr is not None
        assert client.stdout.readline() == b"1\n"
        client.stdout.close()  # `| head -1`
        assert client.wait(timeout=20) == 141
        assert client.stderr.read() == b""  # no "Broken pipe", no traceback
        client.stderr.close()


def test_many_hosts_keep_stdout_for_data_and_stderr_for_the_summary(tmp_path: Path) -> None:
    with ServerProcess(tmp_path) as server:
        port = server.tcp.rsplit(":", 1)[1]
        result = send(server, "-H", f"127.0.0.1:{port},localhost:{port}", "--", "echo", "x")
    assert result.returncode == 0
    assert sorted(result.stdout.splitlines()) == [
        f"127.0.0.1:{port} | x".encode(),
        f"localhost:{port} | x".encode(),
    ]
    assert b"summary" in result.stderr


@pytest.mark.parametrize("json_out", [False, True])
def test_a_server_stopped_under_a_command_is_said_as_ssh_says_it(
    tmp_path: Path, json_out: bool
) -> None:
    mark = tmp_path / "started"
    with ServerProcess(tmp_path, "--shutdown-grace", "0.5") as server:
        client = subprocess.Popen(
            [
                str(server.exe),
                "send",
                *(["--json"] if json_out else []),
                server.tcp,
                "--",
                "sh",
                "-c",
                f"touch {mark}; sleep 60",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert client.stderr is not None and client.stdout is not None
        try:
            deadline = time.monotonic() + 20
            while not mark.exists():  # the command runs once its mark is there
                assert time.monotonic() < deadline, "the command never started"
                time.sleep(0.01)
            assert server.stop(signal.SIGTERM) == 0
            assert client.wait(timeout=20) == 255
            err = client.stderr.read().decode()
            out = client.stdout.read().decode()
        finally:
            client.kill()
            client.wait()
            client.stdout.close()
            client.stderr.close()
    assert "connection closed by the remote host" in err
    assert "cancel" in err
    assert any("request 1 (sh -c" in line and "shutting down" in line for line in server.log)
    if json_out:
        doc = json.loads(out)
        assert doc["status"] == "cancelled" and doc["reason"] == "shutdown"


def test_a_timeout_capped_by_the_server_says_whose_limit(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, "--command-timeout", "0.3") as server:
        result = send(server, "--timeout", "100", server.tcp, "--", "sleep", "5")
    assert result.returncode == 124
    assert b"timed out after 0.3 s (the server's limit; you asked for 100 s)" in result.stderr


def _run_on_a_terminal(argv: list[str]) -> tuple[int, bytes]:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal; its exit code and all it
    wrote there (read until it closes)."""
    import os
    import pty

    main_fd, sub_fd = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=sub_fd, stderr=sub_fd, close_fds=True
    )
    os.close(sub_fd)
    out = b""
    try:
        while True:
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            out += data
    finally:
        os.close(main_fd)
    return proc.wait(timeout=60), out


def test_progress_bars_and_colours_on_a_terminal_and_not_in_pipes(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (64 * 1024 * 1024))
    with ServerProcess(tmp_path, "--upload-dir", str(uploads)) as server:
        code, shown = _run_on_a_terminal([str(server.exe), "send", server.tcp, "--put", str(big)])
        assert code == 0
        assert b"put " in shown and b"\x1b[" in shown  # a drawn, coloured progress bar
        assert shown.rstrip().endswith(b"(verified)")  # and it is gone after the end
        piped = send(server, server.tcp, "--put", str(big))
        assert piped.returncode == 0 and b"\x1b[" not in piped.stdout + piped.stderr
        port = server.tcp.rsplit(":", 1)[1]
        hosts = ["-H", f"127.0.0.1:{port},localhost:{port}", "--", "echo", "x"]
        code, shown = _run_on_a_terminal([str(server.exe), "send", *hosts])
        assert code == 0 and b"\x1b[1m" in shown  # bold host names on a terminal
        assert b"\x1b[" not in send(server, *hosts).stdout  # never in a pipe
