"""The CLI: every command and error path through typer's CliRunner, plus a real subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, Self

import pytest
import trio
from typer.testing import CliRunner

import framekit
from framekit_cli._exit import (
    EXIT_FAILURE,
    EXIT_FRAMEKIT,
    EXIT_HOSTS_FRAMEKIT,
    EXIT_HOSTS_KILLED,
    EXIT_HOSTS_NONZERO,
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
)
from framekit_cli.app import app

from ..helpers import process_gone

runner = CliRunner()


class LiveServer:
    """A framekit server running in a thread with its own trio loop (CLI tests are sync)."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("tcp_port", 0)
        options.setdefault("udp_port", 0)
        self.config = framekit.ServerConfig(**options)
        self._started = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            self.addresses = await nursery.start(partial(framekit.serve, self.config))
            self._scope = nursery.cancel_scope
            self._token = trio.lowlevel.current_trio_token()
            self._started.set()

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._started.wait(10), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(10)

    @property
    def tcp(self) -> str:
        host, port = self.addresses.tcp[0]
        return f"{host}:{port}"

    @property
    def udp(self) -> str:
        host, port = self.addresses.udp[0]
        return f"{host}:{port}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    (tmp_path / "uploads").mkdir()
    with LiveServer(upload_dir=tmp_path / "uploads") as live:
        yield live


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"framekit {framekit.__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for word in ("compare", "serve", "send", "Exit codes"):
        assert word in result.output
    for command in ("compare", "serve", "send"):
        help_text = runner.invoke(app, [command, "--help"]).output
        assert "Examples" in help_text and f"framekit {command}" in help_text


class TestCompare:
    def test_json_schema_and_the_lesson(self) -> None:
        result = runner.invoke(app, ["compare", "--json", "--sleep", "0.001", "--burst", "500"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        assert doc["schema"] == framekit.COMPARE_SCHEMA
        assert set(doc) == {"schema", "options", "ways", "skipped", "burst", "conditions"}
        ways = {w["key"]: w for w in doc["ways"]}
        assert list(ways) == ["raw", "sleep", "ack", "framed", "udp"]
        assert not ways["raw"]["boundaries_kept"] and ways["raw"]["merged"] > 0
        assert (
            ways["framed"]["boundaries_kept"]
            and ways["framed"]["received"] == ways["framed"]["sent"]
        )
        assert ways["udp"]["boundaries_kept"] and ways["udp"]["truncated"] == 1
        assert ways["udp"]["bytes_lost"] == 3000 - 1024
        assert doc["burst"]["sent"] == 500
        assert doc["burst"]["received"] + doc["burst"]["lost"] == 500

    def test_picture_and_svg(self, tmp_path: Path) -> None:
        svg = tmp_path / "compare.svg"
        result = runner.invoke(app, ["compare", "--sleep", "0", "--burst", "0", "--svg", str(svg)])
        assert result.exit_code == 0, result.output
        assert "framekit compare" in result.output and "broken" in result.output
        assert svg.read_text().startswith("<svg")

    @pytest.mark.parametrize(
        "args",
        [
            [],
            ["--count", "1000", "--size", "1000", "--sleep", "0"],
            ["--read-size", "1", "--size", "3000", "--count", "20", "--burst", "0"],
            ["--count", "20000", "--size", "1", "--burst", "0", "--sleep", "0"],
            ["--repeat", "3", "--burst", "0", "--sleep", "0"],
            ["recv"],
            ["lifecycle"],
        ],
        ids=["default", "1000x1000", "read-size-1", "20k", "repeat", "recv", "lifecycle"],
    )
    def test_every_drawing_fits_80_columns_whatever_the_run(self, args: list[str]) -> None:
        result = runner.invoke(app, ["compare", *args], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert max(len(line) for line in lines) <= 80
        assert len(lines) < 70  # summarised: not one line per message
        assert "…" not in "".join(ln for ln in lines if "way" in ln)  # no cut column names

    def test_long_runs_are_summarised(self) -> None:
        args = ["compare", "--count", "1000", "--size", "1000", "--sleep", "0", "--burst", "0"]
        result = runner.invoke(app, args, env={"COLUMNS": "80"})
        assert "1,000 messages of 1000 bytes each" in result.output
        assert "… +991 messages" in result.output and "… +" in result.output.split("sent")[1]

    def test_the_sleep_hack_over_its_budget_is_skipped_with_the_reason(self) -> None:
        args = ["compare", "--count", "1000", "--size", "10", "--burst", "0"]
        result = runner.invoke(app, args, env={"COLUMNS": "80"})
        assert result.exit_code == 0
        assert "skipped" in result.output and "would sleep 20 s" in result.output

    def test_repeat_reports_how_often(self) -> None:
        result = runner.invoke(
            app, ["compare", "--repeat", "3", "--burst", "0", "--sleep", "0", "--json"]
        )
        doc = json.loads(result.output)
        ways = {w["key"]: w for w in doc["ways"]}
        assert doc["runs"] == 3 and ways["framed"]["exact"] == 3 and ways["raw"]["merged"] == 3
        text = runner.invoke(app, ["compare", "--repeat", "3", "--burst", "0", "--sleep", "0"])
        assert "raw TCP merged in 3/3" in text.output and "framekit exact in 3/3" in text.output

    def test_the_reader_option_reaches_the_experiment(self) -> None:
        args = ["compare", "--json", "--reader", "eager", "--burst", "0", "--sleep", "0"]
        doc = json.loads(runner.invoke(app, args).output)
        assert doc["options"]["reader"] == "eager"
        assert {w["reader"] for w in doc["ways"]} == {"eager"}

    def test_recv_and_lifecycle_lessons_as_json(self) -> None:
        recv = json.loads(runner.invoke(app, ["compare", "recv", "--json"]).output)
        assert recv["schema"] == framekit.RECV_SCHEMA
        assert [s["key"] for s in recv["steps"]] == [
            "blocks",
            "buffered",
            "partial",
            "closed",
            "half_close",
        ]
        life = json.loads(runner.invoke(app, ["compare", "lifecycle", "--json"]).output)
        assert life["schema"] == framekit.LIFECYCLE_SCHEMA
        assert [c["first_closer"] for c in life["closes"]] == ["client", "server"]

    def test_lessons_pass_their_options_on(self) -> None:
        args = ["compare", "recv", "--json", "--read-size", "512", "-s", "400", "-s", "400"]
        recv = json.loads(runner.invoke(app, args).output)
        assert recv["options"]["read_size"] == 512 and recv["options"]["sizes"] == [400, 400]
        args = ["compare", "lifecycle", "--json", "--count", "3"]
        life = json.loads(runner.invoke(app, args).output)
        assert len(life["handshake"]["samples_us"]) == 3

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--size", "0"], "at least 1 byte"),
            (["--size", "16777217"], "at most 16777216 bytes"),
            (["--size", "1", "--count", "100001"], "at most 100,000 messages"),
            (["--read-size", "0"], None),
            (["--reader", "lazy"], None),
            (["--repeat", "0"], None),
            (["recv", "--sleep", "1"], "--sleep applies to the framing lesson only"),
            (["lifecycle", "--size", "5"], "--size applies to the framing and recv lessons only"),
            (["recv", "--count", "5"], "--count applies to the framing and lifecycle lessons"),
            (["recv", "--host", "192.0.2.1"], "loopback address"),
            (["recv", "--read-size", "5000"], "add up to more than read_size"),
            (["lifecycle", "--count", "0"], None),
            (["nosuchlesson"], None),
        ],
    )
    def test_bad_options(self, args: list[str], message: str | None) -> None:
        result = runner.invoke(app, ["compare", *args])
        assert result.exit_code == EXIT_USAGE, result.output
        if message:
            assert message in result.output


class TestSendCommand:
    def test_output_and_exit_code_mirror_remote(self, server: LiveServer) -> None:
        result = runner.invoke(app, ["send", server.tcp, "--", "sh", "-c", "echo hi; exit 7"])
        assert result.exit_code == 7
        assert result.stdout == "hi\n"

    def test_the_command_may_follow_the_host_without_dashes(self, server: LiveServer) -> None:
        result = runner.invoke(app, ["send", server.tcp, "printf", "%s,", "-a", "--b"])
        assert (result.exit_code, result.stdout) == (0, "-a,--b,")

    def test_json(self, server: LiveServer) -> None:
        result = runner.invoke(app, ["send", "--json", server.tcp, "--", "echo", "j"])
        assert result.exit_code == 0
        doc = json.loads(result.stdout)
        assert doc["stdout"] == "j\n" and doc["stdout_encoding"] == "utf-8"
        assert (doc["exit_code"], doc["status"], doc["host"]) == (0, "exited", server.tcp)

    def test_json_output_that_is_not_utf8_is_base64(self, server: LiveServer) -> None:
        result = runner.invoke(app, ["send", "--json", server.tcp, "--", "printf", "\\377\\376"])
        doc = json.loads(result.stdout)
        assert doc["stdout_encoding"] == "base64" and doc["stdout"] == "//4="

    def test_missing_and_unexecutable_programs_exit_as_a_shell_would(
        self, server: LiveServer
    ) -> None:
        missing = runner.invoke(app, ["send", server.tcp, "--", "no-such-program-here"])
        assert missing.exit_code == EXIT_NOT_FOUND
        assert "no-such-program-here" in missing.stderr
        not_a_program = runner.invoke(app, ["send", server.tcp, "--", "/etc/hostname"])
        assert not_a_program.exit_code == EXIT_NOT_EXECUTABLE

    def test_refused(self, closed_port: int) -> None:
        result = runner.invoke(app, ["send", f"127.0.0.1:{closed_port}", "--", "true"])
        assert result.exit_code == EXIT_FRAMEKIT
        assert result.stderr.startswith("framekit: could not connect to 127.0.0.1:")
        assert "Traceback" not in result.output

    def test_wrong_and_missing_token(self, tmp_path: Path) -> None:
        with LiveServer(token="right", auth_failure_delay=0) as locked:
            wrong = runner.invoke(app, ["send", locked.tcp, "--token", "wrong", "--", "true"])
            assert wrong.exit_code == EXIT_FRAMEKIT
            assert "authentication failed: wrong token" in wrong.stderr
            missing = runner.invoke(app, ["send", locked.tcp, "--", "true"])
            assert "requires a token: set FRAMEKIT_TOKEN, --token-file or --token" in (
                missing.stderr
            )
            assert "token=" not in missing.stderr
            env_ok = runner.invoke(
                app, ["send", locked.tcp, "--", "true"], env={"FRAMEKIT_TOKEN": "right"}
            )
            assert env_ok.exit_code == 0
            token_file = tmp_path / "token"
            token_file.write_text("right\n")
            file_ok = runner.invoke(
                app, ["send", "--token-file", str(token_file), locked.tcp, "--", "true"]
            )
            assert file_ok.exit_code == 0

    def test_remote_refusal(self, server: LiveServer) -> None:
        result = runner.invoke(app, ["send", "--shell", server.tcp, "--", "echo", "hi"])
        assert result.exit_code == EXIT_FRAMEKIT
        assert "the server refused:" in result.stderr and "(not_allowed)" in result.stderr

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ([], "give HOST[:PORT], -H HOST or -h HOSTS_FILE"),
            (["127.0.0.1"], "give exactly one of"),
            (["[::1"], "without ']'"),
            (["host:99999", "--", "true"], "port must be a number"),
            (["--datagram", "x", "127.0.0.1", "--", "true"], "give exactly one of"),
            (["-H", "127.0.0.1", "uptime"], "with -H or -h, put the command after --"),
            (["--group", "--json", "-H", "a", "-H", "b", "--", "true"], "choose one"),
        ],
    )
    def test_bad_usage(self, args: list[str], message: str) -> None:
        result = runner.invoke(app, ["send", *args])
        assert result.exit_code == EXIT_USAGE
        assert message in result.stderr


class TestManyHosts:
    def test_prefixed_lines_on_stdout_and_the_summary_on_stderr(self, server: LiveServer) -> None:
        with LiveServer() as other:
            result = runner.invoke(
                app, ["send", "-H", f"{server.tcp},{other.tcp}", "--", "printf", "a\\nb\\n"]
            )
            assert result.exit_code == 0, result.output
            assert sorted(result.stdout.splitlines()) == sorted(
                f"{host} | {line}" for host in (server.tcp, other.tcp) for line in "ab"
            )
            assert "summary" in result.stderr and "summary" not in result.stdout

    def test_positional_hosts_before_dashes_are_hosts_too(self, server: LiveServer) -> None:
        with LiveServer() as other:
            result = runner.invoke(app, ["send", "-H", server.tcp, other.tcp, "--", "true"])
        assert result.exit_code == 0, result.output
        assert server.tcp in result.stderr and other.tcp in result.stderr

    def test_hosts_file_with_comments_and_users(self, server: LiveServer, tmp_path: Path) -> None:
        hosts = tmp_path / "hosts"
        hosts.write_text(f"# the fleet\n\nops@{server.tcp}   # a comment\n{server.tcp}\n")
        result = runner.invoke(app, ["send", "-h", str(hosts), "--", "echo", "x"])
        assert result.exit_code == 0, result.output
        assert result.stdout == f"{server.tcp} | x\n"  # each host once

    def test_a_bad_hosts_file_line_names_the_line(self, tmp_path: Path) -> None:
        hosts = tmp_path / "hosts"
        hosts.write_text("good\n[::1\n")
        result = runner.invoke(app, ["send", "-h", str(hosts), "--", "true"])
        assert result.exit_code == EXIT_USAGE
        assert f"{hosts}:2:" in result.stderr

    def test_exit_codes_follow_pssh(self, server: LiveServer, closed_port: int) -> None:
        down = f"127.0.0.1:{closed_port}"
        framekit_failed = runner.invoke(app, ["send", "-H", server.tcp, "-H", down, "--", "true"])
        assert framekit_failed.exit_code == EXIT_HOSTS_FRAMEKIT
        assert "refused" in framekit_failed.stderr
        with LiveServer() as other:
            both = ["-H", server.tcp, "-H", other.tcp, "--"]
            nonzero = runner.invoke(app, ["send", *both, "sh", "-c", "exit 3"])
            assert nonzero.exit_code == EXIT_HOSTS_NONZERO
            killed = runner.invoke(app, ["send", "--timeout", "0.2", *both, "sleep", "5"])
            assert killed.exit_code == EXIT_HOSTS_KILLED

    def test_deadline_per_host(self, server: LiveServer) -> None:
        with LiveServer() as other:
            result = runner.invoke(
                app,
                [
                    "send",
                    "--deadline",
                    "0.3",
                    "-H",
                    server.tcp,
                    "-H",
                    other.tcp,
                    "--",
                    "sleep",
                    "5",
                ],
            )
        assert result.exit_code == EXIT_HOSTS_KILLED
        assert result.stderr.count("host_timeout") == 2

    def test_group_collapses_identical_outputs(self, server: LiveServer) -> None:
        with LiveServer() as other:
            result = runner.invoke(
                app, ["send", "--group", "-H", server.tcp, "-H", other.tcp, "--", "echo", "same"]
            )
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[1] == f"{server.tcp}, {other.tcp}" and lines[3] == "same"
        assert result.stdout.count("same") == 1

    def test_json_lines_one_per_host_with_error_codes(
        self, server: LiveServer, closed_port: int
    ) -> None:
        down = f"127.0.0.1:{closed_port}"
        result = runner.invoke(
            app, ["send", "--json", "-H", server.tcp, "-H", down, "--", "echo", "j"]
        )
        docs = {d["host"]: d for d in map(json.loads, result.stdout.splitlines())}
        assert docs[server.tcp]["stdout"] == "j\n" and "error" not in docs[server.tcp]
        assert docs[down]["error"]["code"] == "refused"
        assert result.exit_code == EXIT_HOSTS_FRAMEKIT


class TestSendDatagrams:
    def test_ping_series(self, server: LiveServer) -> None:
        result = runner.invoke(
            app, ["send", server.udp, "--datagram", "hello", "--count", "3", "--interval", "0"]
        )
        assert result.exit_code == 0, result.output
        assert result.output.count("5 bytes 'hello'") == 3
        assert "3 sent, 3 echoed, 0% loss" in result.output

    def test_json(self, server: LiveServer, tmp_path: Path) -> None:
        data = tmp_path / "d.bin"
        data.write_bytes(os.urandom(2000))
        result = runner.invoke(app, ["send", server.udp, "--datagram-file", str(data), "--json"])
        doc = json.loads(result.stdout)
        assert doc["received"] == 1 and doc["echo_matches"] is True

    def test_nobody_listening(self, closed_port: int) -> None:
        result = runner.invoke(
            app, ["send", f"127.0.0.1:{closed_port}", "--datagram", "x", "--interval", "0"]
        )
        assert result.exit_code == EXIT_FAILURE
        assert "no echo (lost)" in result.output


class TestSendFiles:
    def test_put_and_get(self, server: LiveServer, tmp_path: Path) -> None:
        src = tmp_path / "report.csv"
        src.write_bytes(b"a,b\n1,2\n" * 1000)
        result = runner.invoke(app, ["send", server.tcp, "--put", str(src)])
        assert result.exit_code == 0, result.output
        assert (
            "stored" in result.output
            and hashlib.sha256(src.read_bytes()).hexdigest() in result.output
        )
        out = tmp_path / "copy.csv"
        result = runner.invoke(
            app, ["send", server.tcp, "--get", "report.csv", "-o", str(out), "--json"]
        )
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert (doc["size"], doc["saved"]) == (8000, str(out))
        assert out.read_bytes() == src.read_bytes()

    def test_stdin_and_stdout_are_dash(self, server: LiveServer, tmp_path: Path) -> None:
        data = os.urandom(100_000)
        put = runner.invoke(app, ["send", server.tcp, "--put", "-", "--name", "piped"], input=data)
        assert put.exit_code == 0, put.output
        got = runner.invoke(app, ["send", server.tcp, "--get", "piped", "-o", "-"])
        assert got.exit_code == 0 and got.stdout_bytes == data
        assert not (tmp_path / "-").exists() and not Path("-").exists()
        no_name = runner.invoke(app, ["send", server.tcp, "--put", "-"], input=b"x")
        assert no_name.exit_code == EXIT_USAGE and "--name" in no_name.stderr

    def test_output_into_a_directory(self, server: LiveServer, tmp_path: Path) -> None:
        src = tmp_path / "f.txt"
        src.write_text("content")
        runner.invoke(app, ["send", server.tcp, "--put", str(src), "--name", "dir/f.txt"])
        result = runner.invoke(
            app, ["send", server.tcp, "--get", "dir/f.txt", "-o", f"{tmp_path}/copies/"]
        )
        assert result.exit_code == 0, result.output
        assert (tmp_path / "copies" / "f.txt").read_text() == "content"

    def test_a_missing_local_directory_names_the_file_not_a_temporary(
        self, server: LiveServer, tmp_path: Path
    ) -> None:
        src = tmp_path / "f.txt"
        src.write_text("content")
        runner.invoke(app, ["send", server.tcp, "--put", str(src)])
        target = tmp_path / "nowhere" / "f.txt"
        result = runner.invoke(app, ["send", server.tcp, "--get", "f.txt", "-o", str(target)])
        assert result.exit_code == EXIT_FAILURE
        assert str(target) in result.stderr and ".f.txt." not in result.stderr

    def test_uploads_disabled(self, tmp_path: Path) -> None:
        src = tmp_path / "f"
        src.write_bytes(b"x")
        with LiveServer() as plain:
            result = runner.invoke(app, ["send", plain.tcp, "--put", str(src)])
        assert result.exit_code == EXIT_FRAMEKIT
        assert "file transfer is disabled" in result.stderr

    def test_get_missing(self, server: LiveServer, tmp_path: Path) -> None:
        result = runner.invoke(
            app, ["send", server.tcp, "--get", "nope", "-o", str(tmp_path / "n")]
        )
        assert result.exit_code == EXIT_FRAMEKIT
        assert "(not_found)" in result.stderr

    def test_put_and_get_many_hosts(self, server: LiveServer, tmp_path: Path) -> None:
        src = tmp_path / "f.txt"
        src.write_text("to everyone")
        (tmp_path / "other").mkdir()
        with LiveServer(upload_dir=tmp_path / "other") as other:
            hosts = ["-H", server.tcp, "-H", other.tcp]
            put = runner.invoke(app, ["send", *hosts, "--put", str(src)])
            assert put.exit_code == 0, put.output
            got = runner.invoke(app, ["send", *hosts, "--get", "f.txt", "-o", f"{tmp_path}/in/"])
            assert got.exit_code == 0, got.output
            for label in (server.tcp, other.tcp):
                folder = label.replace(":", "_")
                assert (tmp_path / "in" / folder / "f.txt").read_text() == "to everyone"


def test_serve_refuses_public_bind_without_token() -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--tcp-port", "0", "--no-udp"])
    assert result.exit_code == EXIT_USAGE
    assert "without a token" in result.output


def test_python_dash_m_framekit() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framekit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "Usage" in proc.stdout


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_end_to_end_with_the_console_script(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("framekit")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    addr_file = tmp_path / "addr.json"
    server = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--tcp-port",
            "0",
            "--udp-port",
            "0",
            "--address-file",
            str(addr_file),
            "--upload-dir",
            str(uploads),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        for _ in range(50):  # log lines may come first; the banner means it is listening
            banner = server.stderr.readline()
            if "framekit serving" in banner or not banner:
                break
        assert "framekit serving commands on tcp://127.0.0.1:" in banner
        addrs = json.loads(addr_file.read_text())
        tcp = "{}:{}".format(*addrs["tcp"][0])
        udp = "{}:{}".format(*addrs["udp"][0])

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)

        run = cli("send", tcp, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
        assert (run.returncode, run.stdout, run.stderr) == (3, "out\n", "err\n")
        ping = cli("send", udp, "--datagram", "ping", "--count", "2", "--interval", "0")
        assert ping.returncode == 0 and "2 echoed" in ping.stdout
        src = tmp_path / "data.bin"
        src.write_bytes(os.urandom(300_000))
        assert cli("send", tcp, "--put", str(src), "--json").returncode == 0
        assert (
            cli("send", tcp, "--get", "data.bin", "-o", str(tmp_path / "back.bin")).returncode == 0
        )
        assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
        # leave a long command running, then stop the server with Ctrl-C
        sleeper = subprocess.Popen(
            [str(exe), "send", tcp, "--", "sh", "-c", "echo started; sleep 60"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert sleeper.stdout is not None
            assert sleeper.stdout.readline() == "started\n"  # the command is running now
            kids = _children(server.pid)
            assert kids, "the command is not a child of the server"
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=20) == 0
            assert all(process_gone(k) for k in kids)
        finally:
            sleeper.kill()
            sleeper.wait()
            if sleeper.stdout is not None:
                sleeper.stdout.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()


def test_compare_against_a_running_server() -> None:
    with LiveServer(tcp_echo_port=0) as live:
        echo = "{}:{}".format(*live.addresses.tcp_echo[0])
        result = runner.invoke(
            app,
            [
                "compare",
                "--json",
                "--tcp-echo",
                echo,
                "--udp-echo",
                live.udp,
                "--sleep",
                "0",
                "--burst",
                "50",
            ],
        )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["options"]["tcp_echo"] == list(live.addresses.tcp_echo[0])
    ways = {w["key"]: w for w in doc["ways"]}
    assert ways["framed"]["boundaries_kept"]
    assert sum(ways["raw"]["received"]) == sum(ways["raw"]["sent"])


@pytest.mark.parametrize(
    ("env", "coloured"),
    [
        ({}, False),  # not a terminal: plain text
        ({"FORCE_COLOR": "1", "TERM": "xterm-256color"}, True),
        ({"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": "1"}, False),
    ],
)
def test_colour_only_on_a_terminal_and_never_with_no_color(
    env: dict[str, str], coloured: bool
) -> None:
    result = runner.invoke(app, ["compare", "--sleep", "0", "--burst", "0"], env=env)
    assert result.exit_code == 0
    assert ("\x1b[3" in result.output) is coloured  # SGR foreground colour codes


def test_debug_shows_the_traceback(closed_port: int) -> None:
    result = runner.invoke(app, ["--debug", "send", f"127.0.0.1:{closed_port}", "--", "true"])
    assert isinstance(result.exception, framekit.ConnectError)


def test_result_lines_are_not_wrapped_for_scripts(server: LiveServer, tmp_path: Path) -> None:
    src = tmp_path / "a-rather-long-file-name-so-the-line-is-well-over-eighty-columns.bin"
    src.write_bytes(b"x" * 100)
    result = runner.invoke(app, ["send", server.tcp, "--put", str(src)])
    line = next(ln for ln in result.output.splitlines() if ln.startswith("stored"))
    assert line.endswith("(verified)") and hashlib.sha256(b"x" * 100).hexdigest() in line


def _keys(value: object) -> set[str]:
    """Every key of a JSON document, nested ones included."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@pytest.mark.parametrize(
    "args",
    [
        ["--sleep", "0", "--burst", "5"],
        ["--repeat", "2", "--sleep", "0", "--burst", "0"],
        ["recv"],
        ["lifecycle", "--count", "2"],
    ],
    ids=["framing", "repeat", "recv", "lifecycle"],
)
def test_documented_compare_json_fields_match_the_output(args: list[str]) -> None:
    page = (Path(__file__).parents[2] / "docs" / "reference" / "cli.md").read_text()
    section = page[
        page.index("### `framekit compare --json`") : page.index("### `framekit send --json`")
    ]
    doc = json.loads(runner.invoke(app, ["compare", "--json", *args]).output)
    for key in _keys(doc):
        assert f"`{key}`" in section, f"{key} is not documented"


def test_compare_count_repeats_the_sizes() -> None:
    result = runner.invoke(
        app,
        [
            "compare",
            "--json",
            "--size",
            "10",
            "--size",
            "20",
            "--count",
            "5",
            "--sleep",
            "0",
            "--burst",
            "0",
        ],
    )
    doc = json.loads(result.output)
    assert doc["options"]["sizes"] == [10, 20, 10, 20, 10]
    assert {w["key"]: w for w in doc["ways"]}["framed"]["received"] == [10, 20, 10, 20, 10]


class TestServeOptions:
    def test_log_level_is_a_choice(self) -> None:
        result = runner.invoke(app, ["serve", "--log-level", "verbose"])
        assert result.exit_code == EXIT_USAGE
        assert "verbose" in result.stderr and "Traceback" not in result.output

    def test_config_file_print_config_and_flags_winning(self, tmp_path: Path) -> None:
        config = tmp_path / "serve.toml"
        config.write_text(
            'host = "127.0.0.1"\ntcp-port = 4242\nallow = ["uptime", "df"]\n'
            "max_connections = 9\nidle_timeout = 12.5\n"
        )
        result = runner.invoke(
            app,
            ["serve", "--config", str(config), "--max-connections", "3", "--print-config"],
            env={"FRAMEKIT_TOKEN": "s3cret"},
        )
        assert result.exit_code == 0, result.output
        printed = result.stdout
        assert "tcp_port = 4242" in printed and 'allow = ["df", "uptime"]' in printed
        assert "max_connections = 3" in printed  # the flag wins over the file
        assert "idle_timeout = 12.5" in printed
        assert "s3cret" not in printed and "# token: set" in printed
        # What --print-config prints, --config reads back.
        again = tmp_path / "again.toml"
        again.write_text(printed)
        assert runner.invoke(app, ["serve", "--config", str(again), "--print-config"]).stdout == (
            printed.replace("# token: set (never printed)", "# token: none")
        )

    def test_config_file_errors(self, tmp_path: Path) -> None:
        bad_key = tmp_path / "bad.toml"
        bad_key.write_text("max_conections = 3\n")
        result = runner.invoke(app, ["serve", "--config", str(bad_key), "--print-config"])
        assert (
            result.exit_code == EXIT_USAGE and "unknown setting 'max_conections'" in result.stderr
        )
        bad_value = tmp_path / "value.toml"
        bad_value.write_text('max_connections = "many"\n')
        result = runner.invoke(app, ["serve", "--config", str(bad_value), "--print-config"])
        assert result.exit_code == EXIT_USAGE and "max_connections" in result.stderr

    def test_token_file(self, tmp_path: Path) -> None:
        token = tmp_path / "token"
        token.write_text("from-a-file\n")
        result = runner.invoke(app, ["serve", "--token-file", str(token), "--print-config"])
        assert result.exit_code == 0 and "# token: set" in result.stdout
        token.write_text("")
        empty = runner.invoke(app, ["serve", "--token-file", str(token), "--print-config"])
        assert empty.exit_code == EXIT_USAGE and "is empty" in empty.stderr

    def test_an_address_in_use_is_named_and_has_its_own_exit_code(self) -> None:
        with LiveServer() as busy:
            port = busy.addresses.tcp[0][1]
            result = runner.invoke(app, ["serve", "--tcp-port", str(port), "--no-udp"])
        assert result.exit_code == 71
        assert result.stderr.startswith(f"framekit: cannot listen on tcp://127.0.0.1:{port}: ")
        assert "another server" in result.stderr and "Traceback" not in result.output


def test_compare_refuses_an_svg_path_it_cannot_write_before_running(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", "--svg", str(tmp_path / "missing" / "x.svg")])
    assert result.exit_code == EXIT_USAGE
    assert f"no directory {tmp_path / 'missing'}" in result.stderr
    assert "framekit compare" not in result.stdout  # it did not run


@pytest.mark.parametrize("command", [[], ["compare"], ["serve"], ["send"], ["cat"]])
def test_help_reads_well_at_80_columns(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "…" not in result.stdout  # no option name cut short
    assert "--no-" not in result.stdout.replace("--no-udp", "").replace("--no-stdin", "")


def test_json_logs_for_log_shippers() -> None:
    import logging

    from framekit_cli._logs import LogFormat, LogLevel, setup_logging

    try:
        setup_logging(LogLevel.INFO, LogFormat.JSON, debug=False)
        handler = logging.getLogger().handlers[0]
        record = logging.LogRecord(
            "framekit.server", logging.WARNING, "x", 1, "a\nb %s", ("c",), None
        )
        doc = json.loads(handler.format(record))
        assert doc["level"] == "warning" and doc["message"] == "a\nb c"
        assert doc["logger"] == "framekit.server" and doc["time"].endswith("+00:00")
        # a worker process forwards its record with the traceback formatted already
        forwarded = logging.makeLogRecord(
            {"name": "framekit.server", "levelno": logging.CRITICAL, "levelname": "CRITICAL"}
            | {"msg": "worker 1 failed", "exc_text": "Traceback ...\nRuntimeError: x"}
        )
        assert json.loads(handler.format(forwarded))["traceback"].endswith("RuntimeError: x")
    finally:
        logging.getLogger().handlers.clear()


def test_documented_send_json_fields_match_the_output(server: LiveServer, closed_port: int) -> None:
    page = (Path(__file__).parents[2] / "docs" / "reference" / "cli.md").read_text()
    section = page[page.index("### `framekit send --json`") :]
    ok = json.loads(runner.invoke(app, ["send", "--json", server.tcp, "--", "true"]).stdout)
    failed = json.loads(
        runner.invoke(app, ["send", "--json", f"127.0.0.1:{closed_port}", "--", "true"]).stdout
    )
    ping = json.loads(runner.invoke(app, ["send", "--json", server.udp, "--datagram", "x"]).stdout)
    for key in [*ok, *failed, *failed["error"], *ping]:
        assert f"`{key}`" in section, f"{key} is not documented"
    assert f"`{failed['error']['code']}`" in section
