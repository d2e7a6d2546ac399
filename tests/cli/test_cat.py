"""``framekit cat``, the installed console script against independent peers: plain
blocking sockets that check the exact bytes, and cat talking to cat."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framekit_cli._cat import escape_frame, hexdump

EXE = str(Path(sys.executable).parent / "framekit")


class Peer:
    """A one-connection TCP server on loopback, in a thread: it runs ``script`` on the
    accepted socket and keeps everything the client sent."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(20)
        self.port = self.listener.getsockname()[1]
        self.received = b""
        self._script = script
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self.listener, self.listener.accept()[0] as conn:
            conn.settimeout(20)
            self._script(conn)
            while chunk := conn.recv(65536):
                self.received += chunk

    def join(self) -> None:
        self._thread.join(20)
        assert not self._thread.is_alive()


def replies(data: bytes) -> Callable[[socket.socket], None]:
    return lambda conn: conn.sendall(data)


def cat(
    *args: str, stdin: bytes | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [EXE, "cat", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def u16(*frames: bytes) -> bytes:
    return b"".join(len(f).to_bytes(2, "big") + f for f in frames)


def test_each_line_is_a_frame_and_each_frame_a_line() -> None:
    peer = Peer(replies(u16(b"hi", b"a\nb", b"\xff\x00", "\u202eevil".encode())))
    result = cat(f"127.0.0.1:{peer.port}", "-f", "u16be", stdin=b"one\ntwo\r\nlast")
    peer.join()
    assert result.returncode == 0, result.stderr
    assert peer.received == u16(b"one", b"two", b"last")
    assert result.stdout.decode().splitlines() == ["hi", "a\\nb", "\\xff\\x00", "\\u202eevil"]
    assert result.stderr == b""


def test_hex_in_and_hexdump_out() -> None:
    peer = Peer(replies(u16(b"hello, world!\x00\x01\x02\x03")))
    result = cat(f"127.0.0.1:{peer.port}", "-f", "u16be", "--hex", stdin=b"68 69\n00ff\n")
    peer.join()
    assert result.returncode == 0, result.stderr
    assert peer.received == u16(b"hi", b"\x00\xff")
    assert result.stdout.decode().splitlines() == [
        "frame 1, 17 bytes",
        "00000000  68 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 00 01 02  |hello, world!...|",
        "00000010  03                                                |.|",
        "00000011",
    ]


def test_json_frames_with_text_or_base64() -> None:
    peer = Peer(replies(b"5:hello,2:\xff\xfe,"))
    result = cat(f"127.0.0.1:{peer.port}", "-f", "netstring", "--json", "-n")
    peer.join()
    assert result.returncode == 0, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert docs == [
        {"frame": 1, "length": 5, "text": "hello"},
        {"frame": 2, "length": 2, "base64": "//4="},
    ]


def test_files_are_whole_frames(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"line one\nline two\n")
    b.write_bytes(b"")
    peer = Peer(replies(b""))
    result = cat(f"127.0.0.1:{peer.port}", "-f", "varint", "--file", str(a), "--file", str(b))
    peer.join()
    assert result.returncode == 0, result.stderr
    assert peer.received == b"\x12line one\nline two\n\x00"


def test_count_ends_without_waiting_for_the_peer() -> None:
    stop = threading.Event()
    peer = Peer(lambda conn: (conn.sendall(b"one\ntwo\nthree\n"), stop.wait(20)))
    result = cat(f"127.0.0.1:{peer.port}", "-f", "lines", "-n", "--count", "2")
    stop.set()
    peer.join()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"one\ntwo\n"


def test_listen_serves_one_connection_as_nc_l() -> None:
    with subprocess.Popen(
        [EXE, "cat", "--listen", "0", "-f", "crlf", "-n"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            assert proc.stderr is not None
            first = proc.stderr.readline().decode()
            match = re.fullmatch(r"framekit cat: listening on 127\.0\.0\.1:(\d+)\n", first)
            assert match, first
            with socket.create_connection(("127.0.0.1", int(match[1])), timeout=20) as conn:
                conn.sendall(b"EHLO there\r\nQUIT\r\n")
                conn.shutdown(socket.SHUT_WR)
                assert conn.recv(10) == b""  # cat half-closed at once: it has no input (-n)
            out, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert out == b"EHLO there\nQUIT\n"
    assert b"connection from 127.0.0.1:" in err


def test_cat_talks_to_cat() -> None:
    with subprocess.Popen(
        [EXE, "cat", "-l", "0", "-f", "u24le"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as server:
        try:
            assert server.stderr is not None and server.stdin is not None
            assert server.stdout is not None
            port = server.stderr.readline().decode().rsplit(":", 1)[1].strip()
            server.stdin.write(b"from the server\n")
            server.stdin.close()
            client = cat(f"127.0.0.1:{port}", "-f", "u24le", stdin=b"from the client\nagain\n")
            out, err = server.stdout.read(), server.stderr.read()
            server.wait(20)
        finally:
            server.kill()
    assert client.returncode == 0, client.stderr
    assert client.stdout == b"from the server\n"
    assert server.returncode == 0, err
    assert out == b"from the client\nagain\n"


def test_a_peer_that_breaks_the_framing_is_one_line_and_255() -> None:
    peer = Peer(replies(b"\x7f\xff" + b"x" * 20))
    result = cat(f"127.0.0.1:{peer.port}", "-f", "u16be:max=10", "-n")
    peer.join()
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "over max_frame_size (10 bytes)" in lines[0], lines
    assert "Traceback" not in result.stderr.decode()


def test_input_that_cannot_be_sent_is_exit_1() -> None:
    peer = Peer(replies(b""))
    result = cat(f"127.0.0.1:{peer.port}", "--hex", stdin=b"68 69\nnot hex\n")
    peer.join()
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        "framekit: input line 2 is not hex bytes (e.g. 68 65 6c 6c 6f): not hex"
    )
    assert peer.received == b"\x00\x00\x00\x02hi"  # what came before it was sent


def test_a_line_the_framing_cannot_carry_is_exit_1_after_the_lines_before_it() -> None:
    peer = Peer(replies(b""))
    result = cat(f"127.0.0.1:{peer.port}", "-f", "u8", stdin=b"ok\n" + b"x" * 300 + b"\n")
    peer.join()
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        "framekit: cannot send this input as a u8 frame: cannot send a 300-byte frame: "
        "max_frame_size is 255 bytes"
    )
    assert peer.received == b"\x02ok"


def test_a_silent_peer_times_out() -> None:
    stop = threading.Event()
    peer = Peer(lambda conn: stop.wait(20))
    result = cat(f"127.0.0.1:{peer.port}", "-n", "-w", "0.3", "--json")
    stop.set()
    peer.join()
    assert result.returncode == 255
    assert json.loads(result.stdout)["error"]["code"] == "timeout"


def test_refused_is_255_with_a_json_code() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cat(f"127.0.0.1:{port}", "-n", "--json")
    assert result.returncode == 255
    assert json.loads(result.stdout)["error"]["code"] == "refused"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["127.0.0.1:1", "-f", "bogus"], "unknown framing 'bogus'"),
        (["127.0.0.1:1", "-k"], "--keep-open applies to --listen only"),
        (["localhost"], "give HOST:PORT"),
        (["127.0.0.1:1", "--hex", "--json"], "choose --hex or --json"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = cat(*args)
    assert result.returncode == 2
    assert message in result.stderr.decode()


_ESCAPE = re.compile(rb"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|n|r|t|\\)")


def unescape(line: str) -> bytes:
    def back(m: re.Match[bytes]) -> bytes:
        code = m.group(1)
        named = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"\\": b"\\"}
        if code in named:
            return named[code]
        value = int(code[1:], 16)
        return bytes([value]) if code[:1] == b"x" else chr(value).encode()

    return _ESCAPE.sub(back, line.encode())


@given(
    st.binary(max_size=64) | st.text(max_size=32).map(lambda t: t.encode("utf-8", "surrogatepass"))
)
def test_escaped_frames_are_one_safe_line_that_undoes(frame: bytes) -> None:
    line = escape_frame(frame)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "\u202e" not in line and "\u2028" not in line
    assert unescape(line) == frame


def test_hexdump_matches_hexdump_c_for_an_empty_frame() -> None:
    assert hexdump(b"") == ["00000000"]


def test_listen_on_a_taken_port_names_it_and_exits_71() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = cat("--listen", str(port), "-n", "--json")
    assert result.returncode == 71
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "listen_failed"
    assert error["message"] == (
        f"cannot listen on tcp://127.0.0.1:{port}: Address already in use; is another server "
        "running there? choose another port"
    )


def test_documented_json_fields_match_the_output() -> None:
    page = (Path(__file__).parents[2] / "docs" / "reference" / "cli.md").read_text()
    section = page[page.index("### `framekit cat --json`") :]
    peer = Peer(replies(b"\x00\x00\x00\x01a\x00\x00\x00\x01\xff"))
    result = cat(f"127.0.0.1:{peer.port}", "--json", "-n")
    peer.join()
    keys = {key for line in result.stdout.splitlines() for key in json.loads(line)}
    assert keys == {"frame", "length", "text", "base64"}
    for key in [*keys, "peer", "bad_input", "listen_failed", "timeout"]:
        assert f"`{key}`" in section, f"{key} is not documented"
