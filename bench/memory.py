"""Peak memory of framekit's clients and server while they move big data: bounded or not.

Usage:
    .venv/bin/python bench/memory.py [--quick] [--repeat N] [--only CASE,...]
                                     [--output-bytes N] [--file-bytes N] [--run-stdout pipe|devnull]
                                     [--no-tty] [--extras] [--extra-bytes N]
                                     [--json OUT] [--markdown] [--load JSON]

It measures the framekit that ``.venv/bin/framekit`` imports: the working tree. To measure
a commit instead, export it and put it first on the path (the report records where
framekit and the CLI were imported from)::

    git archive HEAD | tar -x -C /tmp/fk-head
    PYTHONPATH=/tmp/fk-head:/tmp/fk-head/cli .venv/bin/python bench/memory.py --quick

The issue: "``framekit send`` keeps the whole command output in memory: 2 GiB of output
took the client past 1.5 GiB. Stream with bounded memory everywhere a user's data flows:
client and server stay under 100 MiB RSS for 2 GiB of output, 1 GiB put and get."

Cases (``--quick``: 256 MiB for every one of them):

* ``cli-run``: ``framekit send HOST:PORT -- head -c 2147483648 /dev/zero``.
* ``cli-put``: ``framekit send HOST:PORT --put SRC --name NAME`` of a 1 GiB random file.
* ``cli-get``: ``framekit send HOST:PORT --get NAME -o DST`` of that file.
* ``api-run`` / ``api-put`` / ``api-get``: the same through the Python API
  (``Client.run(argv, on_output=..., collect=False)``, ``put(path)``, ``get(name, path)``)
  in a worker process of this script that imports only framekit, Trio and the standard
  library.
* ``cli-idle`` / ``api-idle``: ``true``, for the floor: what importing, connecting and
  starting cost, without data.
* Extras (``--extras``, or by name with ``--only``), other ways ``framekit send`` passes
  output on, at ``--extra-bytes`` per host (default 16 MiB, the server's default
  ``--max-output``): ``cli-run-json`` (``--json``), ``cli-fanout`` (two hosts, lines
  prefixed), ``cli-group`` (two hosts, ``--group``). The two hosts are ``127.0.0.1:P``
  and ``localhost:P``, two connections to the one server.

How it is measured:

* Every case gets a **fresh** ``framekit serve`` process (``--host 127.0.0.1 --tcp-port 0
  --no-udp``, an upload directory in a temporary directory, ``--max-output`` twice the
  output, ``--max-upload`` the file size), so its ``VmHWM`` (the kernel's high-water mark of
  its resident set, from ``/proc/PID/status``) is the peak of that case alone. It is read
  after the client has exited, before the server is stopped.
* The client runs as a child of this driver, reaped with ``os.wait4``, whose
  ``ru_maxrss`` is the kernel's high-water mark of that one process: exact, not sampled
  (the same figure ``tests/test_serve.py`` reads as ``RUSAGE_CHILDREN`` of a fresh parent).
* While a case runs, both processes' ``VmRSS`` is also sampled every 20 ms; the peak
  samples are kept as a cross-check of the two high-water marks.
* ``MB/s`` (1 MB = 10**6 bytes) is the data moved over the client process's wall time,
  Python start-up included (the ``idle`` rows show that floor); the details table has the
  API worker's own timing of the operation alone.
* The data is checked: the exit code; for ``run`` every output byte is counted and must be
  zero (``--run-stdout pipe``, the default: the CLI's stdout is a pipe this driver drains;
  ``devnull`` sends it to ``/dev/null`` and checks only the exit code and the server's
  count of bytes it sent); for ``put`` the stored file's size and SHA-256 against the
  source; for ``get`` the downloaded file's. The source is random bytes.
* The CLI's stderr is a pseudo-terminal (unless ``--no-tty``), so ``--put`` and ``--get``
  draw their progress bar as they do for a user.
* Every wait has a deadline (``--timeout``; default 60 s + 1 s per 5 MB). Children die
  with this driver (``PR_SET_PDEATHSIG``), are killed at the end of each case whatever
  happened, and the temporary directory (source file, uploads, downloads) is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import ipaddress
import json
import os
import pty
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    CaseError,
    cpu_seconds,
    emit,
    limit_lifetime,
    load_report,
    publish,
    selected,
    source_state,
    wait_for_quiet,
)

SCRIPT = str(Path(__file__).resolve())
FRAMEKIT = str(Path(sys.executable).with_name("framekit"))
MiB = 1024 * 1024
GiB = 1024 * MiB
#: The issue's goal for every process, every case.
GOAL_MIB = 100.0
#: How often VmRSS is sampled while a case runs.
SAMPLE_EVERY = 0.02
#: Seconds for a server to start listening, and to stop once told to.
SERVER_START = 30.0
SERVER_STOP = 10.0
#: Chunk read when counting output or hashing files.
CHUNK = 1 << 20
GET_NAME = "get-source.bin"


@dataclass(frozen=True)
class Case:
    name: str
    client: str  # "cli" or "api"
    op: str  # "idle", "run", "put", "get"; extras: "json", "fanout"
    description: str
    default: bool = True  # run without --only / --extras


CASES = {
    c.name: c
    for c in [
        Case("cli-idle", "cli", "idle", "`framekit send H:P -- true` (floor: start-up, no data)"),
        Case("cli-run", "cli", "run", "`framekit send H:P -- head -c N /dev/zero`"),
        Case("cli-put", "cli", "put", "`framekit send H:P --put SRC --name NAME`"),
        Case("cli-get", "cli", "get", "`framekit send H:P --get NAME -o DST`"),
        Case("api-idle", "api", "idle", "`Client.run(['true'])` (floor: start-up, no data)"),
        Case(
            "api-run",
            "api",
            "run",
            "`Client.run(['head', '-c', N, '/dev/zero'], on_output=count, collect=False)`",
        ),
        Case("api-put", "api", "put", "`Client.put(SRC, NAME)`"),
        Case("api-get", "api", "get", "`Client.get(NAME, DST)`"),
        # Extras (--extras): other ways `framekit send` passes output on. Their size is
        # --extra-bytes (default 16 MiB, the server's default --max-output).
        Case(
            "cli-run-json",
            "cli",
            "json",
            "`framekit send --json H:P -- head -c M /dev/zero` (output kept: it goes in the JSON)",
            default=False,
        ),
        Case(
            "cli-fanout",
            "cli",
            "fanout",
            "`framekit send -H 127.0.0.1:P -H localhost:P -- head -c M /dev/zero` "
            "(2 connections; data = both)",
            default=False,
        ),
        Case(
            "cli-group",
            "cli",
            "group",
            "`framekit send --group -H 127.0.0.1:P -H localhost:P -- head -c M /dev/zero` "
            "(identical outputs printed once; data = both)",
            default=False,
        ),
    ]
}


# -- the Python API worker (what it imports is what it measures) ------------------------------


def api_worker(argv: list[str]) -> None:
    """``worker LIFETIME OP HOST PORT [ARG...]``: one operation, then ``RESULT {json}``."""
    limit_lifetime(int(argv[0]))
    op, host, port, rest = argv[1], argv[2], int(argv[3]), argv[4:]

    import trio

    import framekit

    async def main() -> dict[str, Any]:
        t0 = time.monotonic()
        out: dict[str, Any] = {}
        async with await framekit.Client.connect(host, port) as client:
            if op == "idle":
                r = await client.run(["true"])
                out.update(ok=r.ok, exit_code=r.exit_code)
            elif op == "run":
                counted = [0, 0]  # bytes, of which zero bytes

                def count(chunk: framekit.OutputChunk) -> None:
                    if chunk.stream == "stdout":
                        counted[0] += len(chunk.data)
                        counted[1] += chunk.data.count(0)

                r = await client.run(
                    ["head", "-c", rest[0], "/dev/zero"], on_output=count, collect=False
                )
                out.update(
                    ok=r.ok,
                    exit_code=r.exit_code,
                    truncated=r.truncated,
                    stdout_bytes=r.stdout_bytes,
                    counted=counted[0],
                    zeros=counted[1],
                    collected=len(r.stdout) + len(r.stderr),
                )
            elif op == "put":
                info = await client.put(rest[0], rest[1])
                out.update(ok=True, name=info.name, size=info.size, sha256=info.sha256)
            elif op == "get":
                info = await client.get(rest[0], rest[1])
                out.update(ok=True, name=info.name, size=info.size, sha256=info.sha256)
            else:
                raise ValueError(f"unknown op {op!r}")
            out["op_seconds"] = time.monotonic() - t0
        return out

    result = trio.run(main)
    result["self_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    emit("RESULT " + json.dumps(result))


# -- processes -------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it if this driver dies (even by SIGKILL)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def proc_status(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in MiB (empty once it is gone or a zombie)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) / 1024
    except (OSError, ValueError):
        pass
    return out


class Server:
    """A ``framekit serve`` process for one case; ``stop()`` always leaves it dead."""

    def __init__(self, workdir: Path, upload_dir: Path, max_output: int, max_upload: int) -> None:
        self.address_file = workdir / "server-address.json"
        self.address_file.unlink(missing_ok=True)
        self.log_path = workdir / "server.log"
        self.log_file = open(self.log_path, "w")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [
                FRAMEKIT,
                "serve",
                "--host",
                "127.0.0.1",
                "--tcp-port",
                "0",
                "--no-udp",
                "--address-file",
                str(self.address_file),
                "--upload-dir",
                str(upload_dir),
                "--max-output",
                str(max_output),
                "--max-upload",
                str(max_upload),
                "--idle-timeout",
                "60",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
            preexec_fn=_die_with_parent,
        )
        self.pid = self.proc.pid
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        self.idle = proc_status(self.pid)

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + SERVER_START
        while "framekit serving" not in self.log():
            if self.proc.poll() is not None:
                raise CaseError(f"the server exited ({self.proc.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise CaseError(f"the server did not start in {SERVER_START:g} s")
            time.sleep(0.05)
        try:
            host, port = json.loads(self.address_file.read_text())["tcp"][0]
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise CaseError(f"no address in {self.address_file}: {exc}") from None
        if host != "127.0.0.1":
            raise CaseError(f"the server listens on {host}, not loopback")
        self.host, self.port = host, int(port)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 12) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``SERVER_STOP``."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(SERVER_STOP)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode


class Drain:
    """A thread that reads a file descriptor to its end: counts bytes (and zero bytes),
    keeps the tail for error messages."""

    def __init__(self, fd: int, count_zeros: bool = False) -> None:
        self.fd = fd
        self.count_zeros = count_zeros
        self.bytes = 0
        self.zeros = 0
        self.tail = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while data := os.read(self.fd, CHUNK):
                self.bytes += len(data)
                if self.count_zeros:
                    self.zeros += data.count(0)
                self.tail = (self.tail + data)[-4096:]
        except OSError:  # EIO: a pseudo-terminal whose other side is closed
            pass
        finally:
            os.close(self.fd)

    def join(self, deadline: float) -> None:
        self.thread.join(max(0.1, deadline - time.monotonic()))
        if self.thread.is_alive():
            raise CaseError("the client's output did not end in time")

    def text(self) -> str:
        return self.tail.decode(errors="replace")


def open_tty() -> tuple[int, int]:
    """A pseudo-terminal (master, slave), 30 rows x 100 columns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    return master, slave


@dataclass
class Watched:
    """What watching one client process to its end gave."""

    returncode: int
    wall: float
    maxrss_mib: float
    cpu_seconds: float
    client_sampled_mib: float
    server_sampled_mib: float
    samples: int


def watch(proc: subprocess.Popen[bytes], server: Server, t0: float, deadline: float) -> Watched:
    """Sample both processes' VmRSS until the client exits; reap it with ``wait4``.

    At the deadline the client is killed and :class:`CaseError` raised.
    """
    client_peak = server_peak = 0.0
    samples = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        if now > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise CaseError(
                f"the client did not finish in {deadline - t0:g} s; killed it (VmRSS peaks "
                f"so far: client {client_peak:.1f} MiB, server {server_peak:.1f} MiB)"
            )
        c, s = proc_status(proc.pid).get("VmRSS"), proc_status(server.pid).get("VmRSS")
        client_peak = max(client_peak, c or 0.0)
        server_peak = max(server_peak, s or 0.0)
        samples += 1
        time.sleep(SAMPLE_EVERY)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Watched(
        returncode=proc.returncode,
        wall=wall,
        maxrss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        client_sampled_mib=client_peak,
        server_sampled_mib=server_peak,
        samples=samples,
    )


def json_zeros(path: Path) -> tuple[dict[str, Any] | None, int | None]:
    """A ``send --json`` line whose stdout is NUL bytes, checked without loading it (it
    is six times the output): the other fields, and how many ``\\u0000`` its stdout holds
    (``None`` if it holds anything else)."""
    key = b'"stdout": "'
    escape = b"\\u0000"
    piece = escape * (CHUNK // len(escape))
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
        start = head.find(key)
        if start < 0:
            return None, None
        f.seek(start + len(key))
        zeros = 0
        while True:
            data = f.read(len(piece))
            if not data:
                return None, None
            end = data.find(b'"')
            body = data if end < 0 else data[:end]
            if len(body) % len(escape) or body != piece[: len(body)]:
                return None, None
            zeros += len(body) // len(escape)
            if end >= 0:
                f.seek(f.tell() - len(data) + end + 1)
                rest = f.read(64 * 1024)
                break
    try:
        doc = json.loads(head[:start] + key + b'"' + rest)
    except ValueError:
        return None, zeros
    return doc, zeros


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def make_source(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


# -- one case --------------------------------------------------------------------------------


@dataclass
class Setup:
    workdir: Path
    upload_dir: Path
    source: Path
    source_sha256: str
    output_bytes: int
    file_bytes: int
    extra_bytes: int
    run_stdout: str  # "pipe" or "devnull"
    tty: bool
    timeout: float | None


def case_bytes(case: Case, setup: Setup) -> int:
    """The data ``case`` moves (both hosts' for ``fanout``)."""
    extra = setup.extra_bytes
    sizes = {
        "idle": 0,
        "run": setup.output_bytes,
        "json": extra,
        "fanout": 2 * extra,
        "group": 2 * extra,
    }
    return sizes.get(case.op, setup.file_bytes)


def case_timeout(case: Case, setup: Setup) -> float:
    if setup.timeout is not None:
        return setup.timeout
    return 60.0 + case_bytes(case, setup) / 5e6


def start_client(
    case: Case,
    setup: Setup,
    server: Server,
    put_name: str,
    target: Path,
    stdout_file: Path,
    lifetime: int,
) -> tuple[subprocess.Popen[bytes], list[Drain]]:
    """The client process of ``case``, its stdout and stderr drained by threads (the
    extras' stdout goes to ``stdout_file`` instead, to be checked afterwards)."""
    address = f"{server.host}:{server.port}"
    n = str(setup.output_bytes)
    head = ["--", "head", "-c", str(setup.extra_bytes), "/dev/zero"]
    env = dict(os.environ)
    env.pop("FRAMEKIT_TOKEN", None)
    if case.client == "cli":
        argv = [FRAMEKIT, "send"]
        argv += {
            "idle": [address, "--", "true"],
            "run": [address, "--", "head", "-c", n, "/dev/zero"],
            "put": [address, "--put", str(setup.source), "--name", put_name],
            "get": [address, "--get", GET_NAME, "-o", str(target)],
            "json": ["--json", address, *head],
            # Two names for the one loopback server: the same one twice counts once.
            "fanout": ["-H", address, "-H", f"localhost:{server.port}", *head],
            "group": ["--group", "-H", address, "-H", f"localhost:{server.port}", *head],
        }[case.op]
        env["TERM"] = env.get("TERM") if env.get("TERM") not in (None, "", "dumb") else "xterm"
    else:
        argv = [sys.executable, SCRIPT, "worker", str(lifetime), case.op, server.host]
        argv += [str(server.port)]
        argv += {
            "idle": [],
            "run": [n],
            "put": [str(setup.source), put_name],
            "get": [GET_NAME, str(target)],
        }[case.op]
    to_file = case.op in ("json", "fanout", "group")
    devnull_stdout = case.op == "run" and case.client == "cli" and setup.run_stdout == "devnull"
    out_read, out_write = (None, None) if devnull_stdout or to_file else os.pipe()
    if case.client == "cli" and setup.tty:
        err_read, err_write = open_tty()
    else:
        err_read, err_write = os.pipe()
    try:
        with open(stdout_file, "wb") if to_file else contextlib.nullcontext() as file:
            stdout: Any = subprocess.DEVNULL if out_write is None else out_write
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=file if file is not None else stdout,
                stderr=err_write,
                env=env,
                preexec_fn=_die_with_parent,
            )
    except BaseException:
        for fd in (out_read, out_write, err_read, err_write):
            if fd is not None:
                os.close(fd)
        raise
    os.close(err_write)
    drains = [Drain(err_read)]
    if out_write is not None and out_read is not None:
        os.close(out_write)
        drains.insert(0, Drain(out_read, count_zeros=case.op == "run"))
    else:
        drains.insert(0, Drain(os.open(os.devnull, os.O_RDONLY)))  # empty: same shape
    return proc, drains


def check_result(
    case: Case,
    setup: Setup,
    watched: Watched,
    out: Drain,
    server: Server,
    stored: Path,
    target: Path,
    stdout_file: Path,
) -> tuple[bool, dict[str, Any], float | None]:
    """Whether the data arrived whole; the details; the API worker's operation seconds."""
    n = case_bytes(case, setup)
    checks: dict[str, Any] = {"exit_code": watched.returncode}
    ok = watched.returncode == 0
    api: dict[str, Any] = {}
    if case.client == "api":
        lines = [x for x in out.text().splitlines() if x.startswith("RESULT ")]
        if not lines:
            return False, {**checks, "error": "no RESULT from the worker"}, None
        api = json.loads(lines[-1][len("RESULT ") :])
        checks["api"] = api
        ok = ok and bool(api.get("ok"))
    if case.op == "idle":
        return ok, checks, api.get("op_seconds")
    if case.op == "json":
        doc, zeros = json_zeros(stdout_file)
        checks.update(zeros=zeros, doc=doc)
        ok = ok and zeros == n and doc is not None and doc.get("exit_code") == 0
        return (
            ok and doc is not None and doc.get("stdout_encoding", "utf-8") == "utf-8",
            checks,
            None,
        )
    if case.op in ("fanout", "group"):
        zeros = 0
        with open(stdout_file, "rb") as f:
            while chunk := f.read(CHUNK):
                zeros += chunk.count(0)
        checks["zeros"] = zeros
        # --group prints the two identical outputs once
        return ok and zeros == (n if case.op == "fanout" else n // 2), checks, None
    if case.op == "run":
        if case.client == "cli" and setup.run_stdout == "devnull":
            # Only the server's word for it: the exit line logs no byte count, so check
            # that the command exited 0 and the output was not cut.
            checks["counted"] = None
            ok = ok and "output truncated" not in server.log()
        else:
            counted = out.bytes if case.client == "cli" else api.get("counted")
            zeros = out.zeros if case.client == "cli" else api.get("zeros")
            checks.update(counted=counted, zeros=zeros)
            ok = ok and counted == n and zeros == n
        if case.client == "api":
            ok = ok and api.get("stdout_bytes") == n and api.get("collected") == 0
            ok = ok and not api.get("truncated")
        return ok, checks, api.get("op_seconds")
    path = stored if case.op == "put" else target
    size = path.stat().st_size if path.exists() else None
    sha = sha256_file(path) if size is not None else None
    checks.update(file=path.name, size=size, sha256_ok=sha == setup.source_sha256)
    ok = ok and size == n and sha == setup.source_sha256
    if case.client == "api":
        checks["reported_sha256_ok"] = api.get("sha256") == setup.source_sha256
        ok = ok and checks["reported_sha256_ok"]
    else:
        # "stored H:P:NAME: N bytes, sha256 X (verified)" / "saved DST: ...": if the CLI
        # names a SHA-256 it must be the source's (the file itself was checked above).
        words = out.text().replace(",", " ").split()
        reported = words[words.index("sha256") + 1] if "sha256" in words[:-1] else None
        checks["reported_sha256_ok"] = None if reported is None else reported == setup.source_sha256
        ok = ok and checks["reported_sha256_ok"] is not False
    return ok, checks, api.get("op_seconds")


def run_case(case: Case, setup: Setup) -> dict[str, Any]:
    """One measured run of ``case`` on a fresh server; always leaves no process behind."""
    n = case_bytes(case, setup)
    put_name = f"put-{case.client}.bin"
    stored = setup.upload_dir / put_name
    target = setup.workdir / f"download-{case.client}.bin"
    stdout_file = setup.workdir / "client-stdout.out"
    stored.unlink(missing_ok=True)
    target.unlink(missing_ok=True)
    timeout = case_timeout(case, setup)
    server = Server(
        setup.workdir,
        setup.upload_dir,
        max_output=2 * max(setup.output_bytes, setup.extra_bytes, 16 * MiB),
        max_upload=max(setup.file_bytes, 1),
    )
    proc: subprocess.Popen[bytes] | None = None
    try:
        server_cpu0 = cpu_seconds(server.pid)
        t0 = time.monotonic()
        deadline = t0 + timeout
        proc, (out, err) = start_client(
            case, setup, server, put_name, target, stdout_file, int(timeout) + 30
        )
        watched = watch(proc, server, t0, deadline)
        out.join(deadline + 5)
        err.join(deadline + 5)
        time.sleep(0.1)  # the server finishes the connection (its close is not data)
        server_status = proc_status(server.pid)
        server_cpu1 = cpu_seconds(server.pid)
        if "VmHWM" not in server_status:
            raise CaseError(f"the server is gone:\n{server.log_tail()}")
        ok, checks, op_seconds = check_result(
            case, setup, watched, out, server, stored, target, stdout_file
        )
        result: dict[str, Any] = {
            "bytes": n,
            # The kernel's high-water marks read its approximate per-CPU RSS counters;
            # a VmRSS sample (an exact sum) can come out a few hundred KiB higher.
            "client_peak_mib": max(watched.maxrss_mib, watched.client_sampled_mib),
            "client_maxrss_mib": watched.maxrss_mib,
            "client_sampled_mib": watched.client_sampled_mib,
            "server_peak_mib": max(server_status["VmHWM"], watched.server_sampled_mib),
            "server_vmhwm_mib": server_status["VmHWM"],
            "server_sampled_mib": watched.server_sampled_mib,
            "server_idle_mib": server.idle.get("VmHWM"),
            "samples": watched.samples,
            "wall_seconds": watched.wall,
            "mbps": n / watched.wall / 1e6 if n else None,
            "op_seconds": op_seconds,
            "op_mbps": n / op_seconds / 1e6 if n and op_seconds else None,
            "client_cpu_seconds": watched.cpu_seconds,
            "server_cpu_seconds": (
                None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
            ),
            "correct": ok,
            "checks": checks,
        }
        result["client_stderr_tail"] = err.text()[-300:]
        if not ok:
            result["server_log_tail"] = server.log_tail()
        return result
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            with contextlib.suppress(ChildProcessError):
                os.wait4(proc.pid, 0)
            proc.returncode = -9
        server.stop()
        stored.unlink(missing_ok=True)
        target.unlink(missing_ok=True)
        stdout_file.unlink(missing_ok=True)
        for leftover in setup.workdir.glob(f".{target.name}.*"):  # an interrupted get's temp
            leftover.unlink(missing_ok=True)


def summarise(case: Case, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A case over its runs: the highest peaks, the median speed, correct only if all were."""

    def highest(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return max(values) if values else None

    def median(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    summary = {
        "case": case.name,
        "client": case.client,
        "op": case.op,
        "bytes": runs[0]["bytes"],
        "runs": runs,
        "client_peak_mib": highest("client_peak_mib"),
        "server_peak_mib": highest("server_peak_mib"),
        "client_maxrss_mib": highest("client_maxrss_mib"),
        "server_vmhwm_mib": highest("server_vmhwm_mib"),
        "client_sampled_mib": highest("client_sampled_mib"),
        "server_sampled_mib": highest("server_sampled_mib"),
        "server_idle_mib": highest("server_idle_mib"),
        "mbps": median("mbps"),
        "op_mbps": median("op_mbps"),
        "wall_seconds": median("wall_seconds"),
        "client_cpu_seconds": median("client_cpu_seconds"),
        "server_cpu_seconds": median("server_cpu_seconds"),
        "correct": all(r["correct"] for r in runs),
    }
    summary["client_under_goal"] = summary["client_peak_mib"] < GOAL_MIB
    summary["server_under_goal"] = summary["server_peak_mib"] < GOAL_MIB
    return summary


# -- report ----------------------------------------------------------------------------------


def size_text(n: int) -> str:
    if n == 0:
        return "-"
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} B"


def mib(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def verdict(x: float | None) -> str:
    if x is None:
        return "-"
    return "yes" if x < GOAL_MIB else "NO"


def main_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    from framing import fmt

    header = [
        "case",
        "data",
        "client peak MiB",
        "server peak MiB",
        "MB/s",
        "correct",
        f"client < {GOAL_MIB:g} MiB",
        f"server < {GOAL_MIB:g} MiB",
    ]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["case"], "-", "ERROR", "ERROR", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                r["case"],
                size_text(r["bytes"]),
                mib(r["client_peak_mib"]),
                mib(r["server_peak_mib"]),
                fmt(r["mbps"]),
                "yes" if r["correct"] else "NO",
                verdict(r["client_peak_mib"]),
                verdict(r["server_peak_mib"]),
            ]
        )
    return header, rows


def detail_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    from framing import fmt

    header = [
        "case",
        "client ru_maxrss MiB",
        "client sampled MiB",
        "server VmHWM MiB",
        "server sampled MiB",
        "server idle MiB",
        "wall s",
        "op MB/s (API)",
        "client CPU s",
        "server CPU s",
    ]
    rows = [
        [
            r["case"],
            mib(r.get("client_maxrss_mib")),
            mib(r.get("client_sampled_mib")),
            mib(r.get("server_vmhwm_mib")),
            mib(r.get("server_sampled_mib")),
            mib(r.get("server_idle_mib")),
            fmt(r.get("wall_seconds")),
            fmt(r.get("op_mbps")),
            fmt(r.get("client_cpu_seconds")),
            fmt(r.get("server_cpu_seconds")),
        ]
        for r in results
        if "error" not in r
    ]
    return header, rows


def render(report: dict[str, Any], markdown: bool) -> str:
    from framing import markdown_table, text_table

    results = report["results"]
    s = report["settings"]
    out = []
    if markdown:
        out.append(markdown_table(*main_rows(results)))
        out.append("")
        out.append(markdown_table(*detail_rows(results)))
    else:
        code = report["environment"].get("code") or {}
        out.append(
            f"Code measured: framekit from {code.get('framekit')}, CLI from "
            f"{code.get('framekit_cli')}; repository at {report['environment'].get('commit')}\n"
        )
        out.append(
            f"Peak RSS of framekit's clients and server moving data (goal: every process under "
            f"{GOAL_MIB:g} MiB; {s['repeat']} run(s) per case,\nthe highest peak and the "
            "median MB/s). Cases:"
        )
        out += [f"  {name}: {what}" for name, what in report["cases"].items()]
        out.append("")
        out.append(text_table(*main_rows(results)))
        out.append(
            "\nclient peak: ru_maxrss of the client process (os.wait4). server peak: VmHWM of "
            "a fresh `framekit serve`\nper case, read after the client exited. Either is "
            "raised to the highest VmRSS sample if that is higher\n(the high-water marks use "
            "approximate counters). MB/s: bytes / client process wall time, start-up\n"
            "included. run: CLI stdout "
            f"{'to a pipe, every byte counted' if s['run_stdout'] == 'pipe' else 'to /dev/null'}"
            f"; CLI stderr {'a pseudo-terminal' if s['tty'] else 'a pipe'}.\n"
        )
        out.append(text_table(*detail_rows(results)))
        out.append(
            "\nsampled: peak of VmRSS polled every 20 ms (a cross-check). server idle: its "
            "VmHWM once listening.\nop MB/s: the API worker's own timing of connect + "
            "operation, without Python start-up."
        )
    errors = [r for r in results if "error" in r]
    wrong = [r for r in results if "error" not in r and not r["correct"]]
    if errors or wrong:
        out.append("\nERRORS")
        out += [f"- {r['case']}: {r['error']}" for r in errors]
        for r in wrong:
            bad = [x for x in r["runs"] if not x["correct"]]
            out.append(f"- {r['case']}: data check failed: {json.dumps(bad[0]['checks'])}")
    return "\n".join(out)


# -- driver ----------------------------------------------------------------------------------


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def code_under_test() -> dict[str, str | None]:
    """Where the measured processes import framekit and the CLI from (``PYTHONPATH`` can
    point them at an exported commit instead of the working tree)."""
    probe = "import framekit, framekit_cli; print(framekit.__file__); print(framekit_cli.__file__)"
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd="/"
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        out = []
    paths = [str(Path(x).parent.parent) for x in out[:2]] if len(out) >= 2 else [None, None]
    return {
        "framekit": paths[0],
        "framekit_cli": paths[1],
        "pythonpath": os.environ.get("PYTHONPATH"),
    }


def localhost_is_loopback() -> bool:
    try:
        infos = socket.getaddrinfo("localhost", None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def parse_size(text: str) -> int:
    units = {"k": 1024, "m": MiB, "g": GiB}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        api_worker(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="256 MiB for every case")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (default 1)")
    parser.add_argument("--only", help="comma-separated cases: " + ", ".join(CASES))
    parser.add_argument(
        "--output-bytes", type=parse_size, help="command output (default 2 GiB; quick 256 MiB)"
    )
    parser.add_argument(
        "--file-bytes", type=parse_size, help="put/get file (default 1 GiB; quick 256 MiB)"
    )
    parser.add_argument(
        "--extras",
        action="store_true",
        help="also run the extra cases ("
        + ", ".join(n for n, c in CASES.items() if not c.default)
        + "): other ways `framekit send` passes output on",
    )
    parser.add_argument(
        "--extra-bytes",
        type=parse_size,
        default=16 * MiB,
        help="output per host of the extra cases (default 16 MiB, the server's default "
        "--max-output)",
    )
    parser.add_argument(
        "--run-stdout",
        choices=("pipe", "devnull"),
        default="pipe",
        help="the CLI's stdout for run: a pipe the driver drains and checks (default), "
        "or /dev/null",
    )
    parser.add_argument(
        "--no-tty", action="store_true", help="the CLI's stderr is a pipe, not a pseudo-terminal"
    )
    parser.add_argument("--tmp", help="directory for the temporary files (default: $TMPDIR)")
    parser.add_argument(
        "--timeout", type=float, help="seconds per case (default 60 s + 1 s per 5 MB)"
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.15,
        metavar="FRACTION",
        help="before each case wait until other work keeps the CPUs below this busy fraction "
        "(default 0.15; 1 disables)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=60.0, help="longest wait for quiet, seconds"
    )
    parser.add_argument("--json", metavar="OUT", help="write the results to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables too")
    parser.add_argument("--load", metavar="JSON", help="render a saved --json file, run nothing")
    args = parser.parse_args()

    if args.load:
        print(render(load_report(args.load), markdown=args.markdown))
        return 0
    if not Path(FRAMEKIT).exists():
        parser.error(f"no framekit console script next to {sys.executable}")
    defaults = [n for n, c in CASES.items() if c.default or args.extras]
    names = selected(parser, args.only, list(CASES), "case") if args.only else defaults
    output_bytes = args.output_bytes or (256 * MiB if args.quick else 2 * GiB)
    file_bytes = args.file_bytes or (256 * MiB if args.quick else GiB)
    needs_file = any(CASES[n].op in ("put", "get") for n in names)
    if any(CASES[n].op in ("fanout", "group") for n in names) and not localhost_is_loopback():
        parser.error("the fan-out cases need `localhost` to name a loopback address only")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_exit)  # so the cleanup below runs
    workdir = Path(tempfile.mkdtemp(prefix="framekit-memory-", dir=args.tmp))
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    try:
        free = shutil.disk_usage(workdir).free
        if needs_file and free < 2 * file_bytes + 256 * MiB:
            raise SystemExit(
                f"{workdir} has {free / GiB:.1f} GiB free; the source file and one copy of it "
                f"need {2 * file_bytes / GiB:.1f} GiB"
            )
        upload_dir = workdir / "uploads"
        upload_dir.mkdir()
        source = workdir / "source.bin"
        source_sha = ""
        if needs_file:
            t = time.monotonic()
            source_sha = make_source(source, file_bytes)
            # get reads this name: a hard link, so the source takes the disk once
            try:
                os.link(source, upload_dir / GET_NAME)
            except OSError:
                shutil.copyfile(source, upload_dir / GET_NAME)
            log(f"wrote {size_text(file_bytes)} of random bytes in {time.monotonic() - t:.1f} s")
        setup = Setup(
            workdir=workdir,
            upload_dir=upload_dir,
            source=source,
            source_sha256=source_sha,
            output_bytes=output_bytes,
            file_bytes=file_bytes,
            extra_bytes=args.extra_bytes,
            run_stdout=args.run_stdout,
            tty=not args.no_tty,
            timeout=args.timeout,
        )
        for name in names:
            case = CASES[name]
            runs = []
            try:
                for i in range(args.repeat):
                    if args.quiet < 1:
                        busy = wait_for_quiet(args.quiet, args.quiet_wait)
                        if busy is not None and busy > args.quiet:
                            log(f"warning: the machine is {busy:.0%} busy with other work")
                    r = run_case(case, setup)
                    runs.append(r)
                    speed = "-" if r["mbps"] is None else f"{r['mbps']:.0f}"
                    log(
                        f"[{i + 1}/{args.repeat}] {name}: client {mib(r['client_peak_mib'])} MiB, "
                        f"server {mib(r['server_peak_mib'])} MiB, {speed} MB/s, "
                        f"{'correct' if r['correct'] else 'WRONG DATA'} "
                        f"[{r['wall_seconds']:.1f} s]"
                    )
            except CaseError as exc:
                log(f"{name}: ERROR: {exc}")
                results.append(
                    {"case": name, "client": case.client, "op": case.op, "error": str(exc)}
                )
                continue
            results.append(summarise(case, runs))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    from framing import environment

    report = {
        "environment": {**environment(), "source": source_state(), "code": code_under_test()},
        "settings": {
            "quick": args.quick,
            "repeat": args.repeat,
            "output_bytes": output_bytes,
            "file_bytes": file_bytes,
            "extra_bytes": args.extra_bytes,
            "goal_mib": GOAL_MIB,
            "run_stdout": args.run_stdout,
            "tty": not args.no_tty,
            "only": names,
            "client_measure": "ru_maxrss from os.wait4 of the client process",
            "server_measure": "VmHWM of a fresh framekit serve process per case",
        },
        "cases": {n: CASES[n].description for n in names},
        "results": results,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    publish(report, render, args.markdown, args.json)
    bad = [
        r
        for r in results
        if "error" in r or not (r["correct"] and r["client_under_goal"] and r["server_under_goal"])
    ]
    return 1 if bad else 0


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
