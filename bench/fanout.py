"""Fan-out: one command on 200 framekit servers, ``framekit send --parallel 32`` beside a
pssh-style thread pool doing the same protocol work.

Usage:
    .venv/bin/python bench/fanout.py [--quick] [--repeat N] [--servers N] [--parallel N]
                                     [--token] [--ways framekit,fan_out,threads]
                                     [--profile N] [--json OUT] [--markdown] [--load JSON]

Servers: one worker process runs all ``--servers`` framekit servers (default 200; quick 50):
that many ``framekit.serve`` instances in one Trio nursery, each on its own loopback port
(127.0.0.1, port 0), UDP echo off, no token (``--token``: one random token for all of
them, passed to every client as ``FRAMEKIT_TOKEN``), every limit at its default. One
process, not 200, keeps memory sane on a small machine; the report gives its memory.
Each server gets its own environment variable ``FANOUT_HOST`` (a label made of its index
and a random suffix), so the one command every way runs, ``printenv FANOUT_HOST`` (no
shell), prints something that tells which server ran it: each host's stdout is checked
against the label of the server on that port.

Ways (each a fresh process, timed as a whole from ``Popen`` to ``wait4``: wall clock,
and the CPU (user + system) and peak RSS the kernel reports for the process):

* ``framekit``: the installed CLI, ``framekit send -h HOSTS --parallel 32 --json --
  printenv FANOUT_HOST``, exactly as a user runs it.
* ``fan_out``: ``python fanout.py peer fan_out ...``: ``framekit.fan_out`` (parallel 32)
  from Python, each host's JSON line written as it ends: the library without the CLI.
* ``threads``: ``python fanout.py peer threads ...``: the pssh / parallel-ssh shape in its
  strongest honest form. A ``ThreadPoolExecutor(max_workers=32)``; each task connects a
  blocking socket (TCP_NODELAY, as Trio sets it), reads the ``hello`` (answers the HMAC
  challenge when there is a token), sends the ``run`` request encoded with
  ``framekit.MessageEncoder``, reads messages with ``framekit.MessageDecoder`` (keeping
  stdout and stderr) until ``exit``, and closes; the main thread writes each host's JSON
  line as it ends. It imports only the codec (``import framekit`` loads no Trio).

Every way writes one JSON object per host (the ``send --json`` fields the check needs),
and every run is checked: exactly one line per host, status ``exited``, exit code 0,
stdout the label of that host's server, nothing on stderr, no error, and the process
exit code 0. One wrong result anywhere stops the benchmark with an error.

Start-up floors, measured the same way in every repetition: each way's own process with a
hosts file of one host whose port refuses connections (a socket bound and never
listening): its imports, argument parsing and set-up, one failed connect and one error
line, and nothing else. That is each way's floor. For context also ``python -c pass``,
``python -c 'import framekit'`` and ``framekit --version`` (which exits before ``send``
parses its options, so it is not the CLI's floor). Per-host overhead is wall / N, and net
of start-up (wall - that way's floor in the same repetition) / N; the same for CPU.

Bytecode: the timed processes get a private bytecode cache (``PYTHONPYCACHEPREFIX`` in a
temporary directory, filled by the warm-up runs), as an installed framekit has ``.pyc``
files; this checkout is not written to. ``--bytecode-as-is`` keeps the environment's own
settings instead (here ``PYTHONDONTWRITEBYTECODE=1``, so framekit's modules, not being
installed, are compiled from source at every start).

Repetitions (``--repeat``, default 5; quick 2) run every way once and every floor
``--floor-runs`` times (default 3; their median is the repetition's floor: a start-up
varies by tens of ms on this machine), in an order that rotates; the ratios framekit /
threads (and the others) are paired per repetition, and given as the median with
min..max. Before each repetition the driver waits (up to ``--quiet-wait``) for other
work to leave the CPUs quiet; a run during
which other work took more than ``--max-interference`` CPUs is redone (``--retries``),
and marked disturbed if it still was. ``--profile N`` then runs the CLI once more under
cProfile (not measured) and lists its N most expensive functions.

Every wait has a deadline; the server worker exits when its stdin closes (and dies of
SIGALRM after ``WORKER_LIFETIME`` whatever happens); a timed process that overruns
``--timeout`` is killed. RLIMIT_NOFILE is raised to the hard limit (children inherit
it). Linux only (``pidfd_open``, ``/proc``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # the driver's imports are made where they are used (see peer_main)
    import argparse

    from _common import Worker

SCRIPT = os.path.abspath(__file__)
HOST = "127.0.0.1"
LABEL_VAR = "FANOUT_HOST"
COMMAND = ["printenv", LABEL_VAR]
#: Lifetime of the server worker, whatever happens.
WORKER_LIFETIME = 3600
#: Per-operation socket timeout of the threads peer (the driver's --timeout bounds all).
PEER_SOCKET_TIMEOUT = 60.0
TICKS = os.sysconf("SC_CLK_TCK")
WAYS = ("framekit", "fan_out", "threads")
#: Each way's start-up floor: the same process with one host, whose port refuses.
FLOOR = {way: f"{way}, 1 refused host" for way in WAYS}
STARTUP_PROBES = ("python", "import framekit", "framekit --version", *FLOOR.values())
RATIOS = (("framekit", "threads"), ("fan_out", "threads"), ("framekit", "fan_out"))
DESCRIPTIONS = {
    "framekit": "`framekit send -h HOSTS --parallel P --json -- printenv FANOUT_HOST` (the CLI)",
    "fan_out": "`framekit.fan_out(targets, argv, parallel=P)` in a fresh python process",
    "threads": "ThreadPoolExecutor(P) of blocking sockets + framekit's sans-IO codec "
    "(pssh / parallel-ssh style), a fresh python process",
    "python": "`python -c pass`",
    "import framekit": "`python -c 'import framekit'` (codec only; Trio loads lazily)",
    "framekit --version": "`framekit --version`: the CLI's imports, nothing sent",
    **{
        floor: f"the {way} way's process with one host, a loopback port that refuses: "
        "its imports and set-up, one failed connect, one error line"
        for way, floor in FLOOR.items()
    },
}


# -- the peers: fresh processes that import only what they need ------------------------------


def read_hosts(path: str) -> list[tuple[str, int]]:
    targets = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                host, _, port = line.rpartition(":")
                targets.append((host, int(port)))
    return targets


def output_text(data: bytes) -> tuple[str, str]:
    """As ``send --json`` gives output: the text if it is UTF-8, else base64."""
    try:
        return data.decode(), "utf-8"
    except UnicodeDecodeError:
        import base64

        return base64.b64encode(data).decode(), "base64"


def result_line(label: str, fields: dict[str, Any], stdout: bytes, stderr: bytes) -> bytes:
    doc: dict[str, Any] = {"host": label, **fields}
    doc["stdout"], doc["stdout_encoding"] = output_text(stdout)
    doc["stderr"], doc["stderr_encoding"] = output_text(stderr)
    return json.dumps(doc).encode() + b"\n"


def error_line(label: str, exc: BaseException) -> bytes:
    error = {"code": type(exc).__name__, "message": str(exc)}
    return json.dumps({"host": label, "error": error}).encode() + b"\n"


def peer_threads(targets: list[tuple[str, int]], parallel: int, argv: list[str]) -> int:
    import hashlib
    import hmac
    import socket
    from concurrent.futures import ThreadPoolExecutor, as_completed

    import framekit  # loads the codec only

    token = os.environ.get("FRAMEKIT_TOKEN")
    need_data, end_of_stream = framekit.NEED_DATA, framekit.END_OF_STREAM
    header_type, body_type, end_type = framekit.Header, framekit.BodyChunk, framekit.EndOfMessage

    def messages(sock: socket.socket, decoder: Any) -> Any:
        """Each whole message, as (header, body)."""
        header = None
        body = bytearray()
        while True:
            event = decoder.next_event()
            if event is need_data:
                decoder.receive_data(sock.recv(65536))
            elif event is end_of_stream:
                raise ConnectionError("the server closed the connection")
            elif isinstance(event, header_type):
                header, body = event, bytearray()
            elif isinstance(event, body_type):
                body += event.data
            elif isinstance(event, end_type):
                yield header, bytes(body)

    def one(host: str, port: int) -> bytes:
        label = f"{host}:{port}"
        start = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=PEER_SOCKET_TIMEOUT) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                encoder = framekit.MessageEncoder()
                incoming = messages(sock, framekit.MessageDecoder())
                hello, _ = next(incoming)
                if hello.get("type") != "hello" or hello.get("protocol") != 1:
                    raise ConnectionError(f"unexpected greeting {hello.fields}")
                if hello.get("auth") == "hmac-sha256":
                    if token is None:
                        raise PermissionError("the server wants a token")
                    nonce = bytes.fromhex(hello["nonce"])
                    mac = hmac.new(token.encode(), b"framekit-auth-v1:" + nonce, hashlib.sha256)
                    sock.sendall(encoder.message({"type": "auth", "mac": mac.hexdigest()}))
                    ready, _ = next(incoming)
                    if ready.get("type") != "ready":
                        raise PermissionError(f"authentication failed: {ready.fields}")
                elif hello.get("auth") != "none":
                    raise ConnectionError(f"unknown auth {hello.get('auth')!r}")
                sock.sendall(encoder.message({"type": "run", "id": 1, "argv": argv}))
                output = {"stdout": bytearray(), "stderr": bytearray()}
                for header, body in incoming:
                    kind = header.get("type")
                    if kind == "output":
                        output[header["stream"]] += body
                    elif kind == "exit":
                        break
                    elif kind == "error":
                        raise RuntimeError(f"{header.get('code')}: {header.get('message')}")
                    else:
                        raise ConnectionError(f"unexpected reply {header.fields}")
        except Exception as exc:  # one host's failure is that host's line alone
            return error_line(label, exc)
        status, returncode = header.get("status"), header.get("returncode")
        fields = {
            "argv": argv,
            "status": status,
            "returncode": returncode,
            "signal": header.get("signal"),
            "exit_code": returncode if status == "exited" else None,
            "duration": time.monotonic() - start,
        }
        return result_line(label, fields, bytes(output["stdout"]), bytes(output["stderr"]))

    out = sys.stdout.buffer
    failed = False
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for future in as_completed([pool.submit(one, host, port) for host, port in targets]):
            line = future.result()
            failed = failed or b'"exit_code": 0,' not in line
            out.write(line)
            out.flush()
    return 4 if failed else 0


def peer_fan_out(targets: list[tuple[str, int]], parallel: int, argv: list[str]) -> int:
    from functools import partial

    import trio

    import framekit

    fan_out = framekit.fan_out  # loads framekit.remote now, even with no host
    token = os.environ.get("FRAMEKIT_TOKEN")
    out = sys.stdout.buffer
    failed = []

    def done(r: Any) -> None:
        if r.result is None:
            line = error_line(r.label, r.error)
            failed.append(r.label)
        else:
            res = r.result
            fields = {
                "argv": argv,
                "status": res.status,
                "returncode": res.returncode,
                "signal": res.signal,
                "exit_code": res.exit_code,
                "duration": r.duration,
            }
            line = result_line(r.label, fields, res.stdout, res.stderr)
            if not res.ok:
                failed.append(r.label)
        out.write(line)
        out.flush()

    trio.run(partial(fan_out, targets, argv, token=token, parallel=parallel, on_done=done))
    return 4 if failed else 0


def peer_main(argv: list[str]) -> int:
    """``peer threads|fan_out HOSTS_FILE PARALLEL -- COMMAND...``"""
    way, hosts_file, parallel = argv[0], argv[1], int(argv[2])
    command = argv[argv.index("--") + 1 :]
    run = {"threads": peer_threads, "fan_out": peer_fan_out}[way]
    return run(read_hosts(hosts_file), parallel, command)


# -- the servers -----------------------------------------------------------------------------


def memory_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes (empty without /proc)."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return found


def raise_nofile(need: int) -> dict[str, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, need, 65536)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    if soft < need:
        raise SystemExit(f"RLIMIT_NOFILE is {soft} (hard {hard}); {need} descriptors needed")
    return {"soft": soft, "hard": hard, "need": need}


def run_servers(count: int) -> None:
    """``count`` framekit servers in one Trio nursery; ``SERVERS {json}`` once all listen."""
    import secrets

    import trio
    from _common import emit, limit_lifetime, serve_control

    import framekit

    limit_lifetime(WORKER_LIFETIME)
    raise_nofile(count + 512)
    token = os.environ.get("FRAMEKIT_TOKEN") or None
    base_env = {k: v for k, v in os.environ.items() if k != "FRAMEKIT_TOKEN"}

    async def main() -> None:
        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            hosts = []
            for i in range(count):
                label = f"host{i:03d}-{secrets.token_hex(4)}"
                config = framekit.ServerConfig(
                    host=HOST,
                    tcp_port=0,
                    udp_port=None,
                    token=token,
                    env={**base_env, LABEL_VAR: label},
                )
                addresses = await nursery.start(framekit.serve, config)
                hosts.append({"port": addresses.tcp[0][1], "label": label})
            report = {
                "hosts": hosts,
                "seconds": time.monotonic() - started,
                "memory": memory_status(),
            }
            emit("SERVERS " + json.dumps(report))

    serve_control({"MEMORY": lambda: json.dumps(memory_status())})  # exits on stdin EOF
    trio.run(main)


# -- the driver ------------------------------------------------------------------------------


class FanoutError(Exception):
    """A run failed, timed out, or gave a wrong result."""


def timed_process(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run ``argv`` (stdin from /dev/null, stdout and stderr to files); wall clock from
    ``Popen`` to ``wait4``, and the kernel's CPU and peak RSS figures for the process.
    Killed if it runs past ``timeout`` seconds."""
    import select
    import subprocess
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            pidfd = os.pidfd_open(proc.pid)
            try:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                if not poller.poll(timeout * 1000):
                    raise FanoutError(f"{' '.join(argv[:4])}... ran past {timeout:g} s")
            finally:
                os.close(pidfd)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if proc.returncode is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        return {
            "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "user": usage.ru_utime,
            "system": usage.ru_stime,
            "maxrss": usage.ru_maxrss * 1024,
            "returncode": proc.returncode,
            "stdout": out.read(),
            "stderr": err.read(),
        }


def check_results(way: str, run: dict[str, Any], expected: dict[str, str]) -> list[str]:
    """Every problem with one run's output: each host once, exit 0, its own label."""
    problems = []
    seen: set[str] = set()
    for raw in run["stdout"].splitlines():
        try:
            doc = json.loads(raw)
        except ValueError:
            problems.append(f"not a JSON line: {raw[:100]!r}")
            continue
        host = doc.get("host")
        if host not in expected:
            problems.append(f"a line for an unknown host {host!r}")
        elif host in seen:
            problems.append(f"{host}: two lines")
        elif doc.get("error"):
            problems.append(f"{host}: error {doc['error']}")
        elif doc.get("status") != "exited" or doc.get("exit_code") != 0:
            problems.append(f"{host}: status {doc.get('status')}, exit {doc.get('exit_code')}")
        elif (doc.get("stdout"), doc.get("stdout_encoding")) != (expected[host] + "\n", "utf-8"):
            problems.append(f"{host}: stdout {doc.get('stdout')!r}, not {expected[host]!r}")
        elif doc.get("stderr"):
            problems.append(f"{host}: stderr {doc['stderr'][:100]!r}")
        seen.add(host)
    missing = sorted(set(expected) - seen)
    if missing:
        problems.append(f"{len(missing)} hosts without a line, e.g. {missing[:3]}")
    if run["returncode"] != 0:
        problems.append(f"{way} exited {run['returncode']}")
    return problems


class Load:
    """CPU other work took while a run ran, in CPUs: all busy CPU time on the machine
    minus this driver's (and the children it reaped: the timed process), and the server
    worker's (and the commands it ran). Kernel work for the run (softirq) counts as other
    work, so expect a few hundredths even on a quiet machine."""

    def __init__(self, server_pid: int) -> None:
        from _common import _busy_jiffies, _own_seconds, cpu_seconds

        self.busy, self.own, self.own_self = _busy_jiffies, _own_seconds, cpu_seconds
        self.server_pid = server_pid
        self.cpus: float | None = None
        self.other_seconds: float | None = None
        self.server_cpu: float | None = None
        self.server_self_cpu: float | None = None

    def ours(self) -> tuple[float, float]:
        t = os.times()
        server = self.own(self.server_pid)
        return t.user + t.system + t.children_user + t.children_system + server, server

    def __enter__(self) -> Self:
        self.busy0 = self.busy()
        self.ours0, self.server0 = self.ours()
        self.self0 = self.own_self(self.server_pid)
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        busy1 = self.busy()
        ours1, server1 = self.ours()
        wall = time.monotonic() - self.t0
        self.server_cpu = server1 - self.server0
        self_cpu = self.own_self(self.server_pid)
        if self_cpu is not None and self.self0 is not None:
            self.server_self_cpu = self_cpu - self.self0
        if busy1 is None or self.busy0 is None or wall <= 0:
            return
        machine = (busy1[0] - self.busy0[0]) / TICKS
        self.other_seconds = max(0.0, machine - (ours1 - self.ours0))
        self.cpus = self.other_seconds / wall


class Bench:
    """The server worker, the hosts file and the command line of every way and probe."""

    def __init__(self, args: argparse.Namespace, server: Worker, hosts: list[dict[str, Any]]):
        self.args = args
        self.server = server
        self.count = len(hosts)
        self.expected = {f"{HOST}:{h['port']}": h["label"] for h in hosts}
        folder = os.path.join(args.tmp, "hosts")
        os.makedirs(folder, exist_ok=True)
        self.hosts_file = os.path.join(folder, "hosts.txt")
        self.refused_file = os.path.join(folder, "refused.txt")
        with open(self.hosts_file, "w") as f:
            f.writelines(f"{host}\n" for host in self.expected)
        # A port that refuses connections: bound, never listening, held until the end.
        self.closed_port = socket.socket()
        self.closed_port.bind((HOST, 0))
        self.refused = f"{HOST}:{self.closed_port.getsockname()[1]}"
        with open(self.refused_file, "w") as f:
            f.write(self.refused + "\n")
        py = sys.executable
        cli = os.path.join(os.path.dirname(py), "framekit")
        par = str(args.parallel)

        def way(name: str, hosts: str) -> list[str]:
            if name == "framekit":
                return [cli, "send", "-h", hosts, "--parallel", par, "--json", "--", *COMMAND]
            return [py, SCRIPT, "peer", name, hosts, par, "--", *COMMAND]

        self.argv = {name: way(name, self.hosts_file) for name in WAYS}
        self.argv |= {floor: way(name, self.refused_file) for name, floor in FLOOR.items()}
        self.argv |= {
            "python": [py, "-c", "pass"],
            "import framekit": [py, "-c", "import framekit"],
            "framekit --version": [cli, "--version"],
        }

    def close(self) -> None:
        self.closed_port.close()

    def shown(self, name: str) -> str:
        """The command line, with the temporary paths and the interpreter named plainly."""
        words = [
            "HOSTS"
            if w == self.hosts_file
            else "REFUSED"
            if w == self.refused_file
            else ".venv/bin/" + os.path.basename(w)
            if os.path.dirname(w) == os.path.dirname(sys.executable)
            else os.path.relpath(w)
            if w == SCRIPT
            else w
            for w in self.argv[name]
        ]
        return " ".join(w if " " not in w else repr(w) for w in words)

    def once(self, name: str) -> dict[str, Any]:
        """One run of a way or probe; a way's output must be right for every host."""
        with Load(self.server.proc.pid) as load:
            run = timed_process(self.argv[name], self.args.timeout)
        if self.server.proc.poll() is not None:
            raise FanoutError(f"the server worker exited ({self.server.proc.returncode})")
        if name in WAYS:
            problems = check_results(name, run, self.expected)
            if problems:
                err = run["stderr"].decode(errors="replace").strip()[-2000:]
                raise FanoutError(
                    f"{name}: {len(problems)} problem(s) over {self.count} hosts:\n  "
                    + "\n  ".join(problems[:10])
                    + (f"\nits stderr:\n{err}" if err else "")
                )
            run["hosts_ok"] = self.count
        elif name in FLOOR.values():
            lines = run["stdout"].splitlines()
            doc = json.loads(lines[0]) if len(lines) == 1 else {}
            if doc.get("host") != self.refused or not doc.get("error") or not run["returncode"]:
                raise FanoutError(f"{name}: exit {run['returncode']}, output {lines[:3]}")
        elif run["returncode"] != 0:
            raise FanoutError(f"{name} exited {run['returncode']}: {run['stderr'][-500:]!r}")
        del run["stdout"], run["stderr"]
        run["interference"] = load.cpus
        # /proc/stat counts in ticks: two ticks of other work in a 20 ms run is no sign
        run["disturbed"] = load.other_seconds is not None and load.other_seconds > max(
            2 / TICKS, self.args.max_interference * run["wall"]
        )
        run["server_cpu"] = load.server_cpu  # the server process and the commands it reaped
        run["server_self_cpu"] = load.server_self_cpu  # the server process alone
        return run

    def guarded(self, name: str) -> dict[str, Any]:
        """A run, redone (after waiting for quiet) while other work disturbed it."""
        from _common import wait_for_quiet

        for attempt in range(self.args.retries + 1):
            run = self.once(name)
            run["redone"] = attempt
            if not run["disturbed"] or attempt == self.args.retries:
                return run
            wait_for_quiet(self.args.quiet, min(60.0, self.args.quiet_wait))
        raise AssertionError("unreachable")


def interleave(names: list[str], rep: int, floor_runs: int) -> list[str]:
    """Repetition ``rep``'s order: the ways rotated by one each repetition, the start-up
    probes (also rotated, the floors ``floor_runs`` times) spread between them."""
    ways = names[rep % len(names) :] + names[: rep % len(names)]
    shift = rep % len(STARTUP_PROBES)
    rotated = STARTUP_PROBES[shift:] + STARTUP_PROBES[:shift]
    probes = [p for _ in range(floor_runs) for p in rotated if p in FLOOR.values()]
    probes += [p for p in rotated if p not in FLOOR.values()]
    per_gap = -(-len(probes) // len(ways))
    order = []
    for way in ways:
        order.append(way)
        order += probes[:per_gap]
        del probes[:per_gap]
    return order


def merged(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure from a probe's runs in one repetition: the median of each."""
    import statistics

    if len(samples) == 1:
        return samples[0]
    run: dict[str, Any] = {
        key: statistics.median(x[key] for x in samples)
        for key in ("wall", "cpu", "user", "system", "maxrss", "server_cpu", "server_self_cpu")
    }
    seen = [x["interference"] for x in samples if x["interference"] is not None]
    run.update(
        interference=max(seen) if seen else None,
        disturbed=any(x["disturbed"] for x in samples),
        redone=sum(x["redone"] for x in samples),
        samples=[{"wall": x["wall"], "cpu": x["cpu"]} for x in samples],
    )
    return run


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_bench(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    from _common import Workers, wait_for_quiet

    workers = Workers()
    bench: Bench | None = None
    try:
        server = workers.start("server worker", SCRIPT, ["worker", "servers", str(args.servers)])
        started = json.loads(server.expect("SERVERS", time.monotonic() + 60 + args.servers * 0.5))
        hosts = started["hosts"]
        if len({h["port"] for h in hosts}) != args.servers:
            raise FanoutError(f"the server worker reported {hosts}")
        log(
            f"{args.servers} servers listening in one process (pid {server.proc.pid}), "
            f"started in {started['seconds']:.2f} s, VmRSS "
            f"{started['memory'].get('VmRSS', 0) / 2**20:.0f} MiB"
        )
        bench = Bench(args, server, hosts)
        items = names + list(STARTUP_PROBES)
        for name in items:  # warm the caches and the servers; checked, not measured
            bench.once(name)
        reps: list[dict[str, Any]] = []
        for rep in range(args.repeat):
            busy = wait_for_quiet(args.quiet, args.quiet_wait) if args.quiet < 1 else None
            if busy is not None and busy > args.quiet:
                log(f"warning: the machine is {busy:.0%} busy with other work")
            order = interleave(names, rep, args.floor_runs)
            samples: dict[str, list[dict[str, Any]]] = {}
            for name in order:
                run = bench.guarded(name)
                samples.setdefault(name, []).append(run)
                flag = " DISTURBED" if run["disturbed"] else ""
                redo = f", redone {run['redone']}x" if run["redone"] else ""
                log(
                    f"[{rep + 1}/{args.repeat}] {name:<24} wall {run['wall']:.3f} s, "
                    f"cpu {run['cpu']:.3f} s (other load {fmt_opt(run['interference'])} "
                    f"CPUs{redo}){flag}"
                )
            reps.append({"order": order, "runs": {k: merged(v) for k, v in samples.items()}})
        server.send("MEMORY")
        memory_after = json.loads(server.expect("MEMORY", time.monotonic() + 10))
        server_log = "".join(server.stderr).strip()
        profile = profile_cli(bench, args.profile) if args.profile else None
        return {
            "servers": {
                "count": args.servers,
                "processes": 1,
                "start_seconds": started["seconds"],
                "memory_started": started["memory"],
                "memory_after": memory_after,
                "log": server_log[-2000:],
            },
            "commands": {name: bench.shown(name) for name in items},
            "repetitions": reps,
            "profile": profile,
        }
    finally:
        if bench is not None:
            bench.close()
        workers.close()


def fmt_opt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def profile_cli(bench: Bench, top: int) -> dict[str, Any]:
    """The CLI once more under cProfile (not measured): its ``top`` costliest functions,
    by own time and by cumulative time, and whether the run was right."""
    import io
    import pstats

    out_file = os.path.join(bench.args.tmp, "cli.prof")
    cli = bench.argv["framekit"]
    argv = [sys.executable, "-m", "cProfile", "-o", out_file, *cli]
    run = timed_process(argv, bench.args.timeout * 3)
    problems = check_results("framekit (profiled)", run, bench.expected)
    listing = {}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(out_file, stream=buf).sort_stats(key).print_stats(top)
        text = buf.getvalue()
        text = text[text.find("   ncalls") :].rstrip()
        for prefix in sorted({*sys.path, os.path.dirname(os.path.dirname(SCRIPT))}, key=len)[::-1]:
            if prefix.startswith("/"):
                text = text.replace(prefix.rstrip("/") + "/", "")
        listing[key] = text
    stats = pstats.Stats(out_file).stats  # type: ignore[attr-defined]

    def cumulative(func: str) -> float:
        return sum(v[3] for k, v in stats.items() if k[2] == func)

    def own(func: str) -> float:
        return sum(v[2] for k, v in stats.items() if k[2] == func)

    return {
        "wall": run["wall"],
        "cpu": run["cpu"],
        "problems": problems,
        "total": sum(v[2] for v in stats.values()),
        "imports": cumulative("_find_and_load"),
        "fan_out": cumulative("_run_many"),
        "waiting": own("<method 'poll' of 'select.epoll' objects>"),
        "by_tottime": listing["tottime"],
        "by_cumulative": listing["cumulative"],
    }


# -- summary and tables ----------------------------------------------------------------------


def spread(values: list[float], digits: int = 3, scale: float = 1.0) -> str:
    """``median (min..max)``."""
    import statistics

    if not values:
        return "-"
    v = [x * scale for x in values]
    f = f"{{:.{digits}f}}"
    return f"{f.format(statistics.median(v))} ({f.format(min(v))}..{f.format(max(v))})"


def summarize(report: dict[str, Any]) -> None:
    """Per-way and per-ratio figures from the repetitions (kept in the report)."""
    import statistics

    reps = report["repetitions"]
    n = report["servers"]["count"]
    names = [w for w in WAYS if all(w in r["runs"] for r in reps)]
    ways = {}
    for name in [*names, *STARTUP_PROBES]:
        runs = [r["runs"][name] for r in reps]
        entry: dict[str, Any] = {
            key: [x[key] for x in runs]
            for key in ("wall", "cpu", "user", "system", "maxrss", "server_cpu", "server_self_cpu")
        }
        if name in WAYS:
            floors = [r["runs"][FLOOR[name]] for r in reps]
            entry["per_host_ms"] = [w / n * 1e3 for w in entry["wall"]]
            entry["net_per_host_ms"] = [
                (w - f["wall"]) / n * 1e3 for w, f in zip(entry["wall"], floors, strict=True)
            ]
            entry["net_cpu_per_host_ms"] = [
                (c - f["cpu"]) / n * 1e3 for c, f in zip(entry["cpu"], floors, strict=True)
            ]
            entry["floor"] = FLOOR[name]
        entry["median_wall"] = statistics.median(entry["wall"])
        entry["disturbed"] = sum(bool(x["disturbed"]) for x in runs)
        ways[name] = entry
    ratios = []
    for a, b in RATIOS:
        if a not in names or b not in names:
            continue
        ratios.append(
            {
                "ratio": f"{a} / {b}",
                "wall": [r["runs"][a]["wall"] / r["runs"][b]["wall"] for r in reps],
                "net_wall": [
                    (r["runs"][a]["wall"] - r["runs"][FLOOR[a]]["wall"])
                    / (r["runs"][b]["wall"] - r["runs"][FLOOR[b]]["wall"])
                    for r in reps
                ],
                "cpu": [r["runs"][a]["cpu"] / r["runs"][b]["cpu"] for r in reps],
                "net_cpu": [
                    (r["runs"][a]["cpu"] - r["runs"][FLOOR[a]]["cpu"])
                    / (r["runs"][b]["cpu"] - r["runs"][FLOOR[b]]["cpu"])
                    for r in reps
                ],
            }
        )
    report["summary"] = {"ways": ways, "ratios": ratios}


def way_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    import statistics

    ways = report["summary"]["ways"]
    header = [
        "way",
        "wall s",
        "CPU s",
        "ms/host (wall/N)",
        "floor wall s",
        "net ms/host",
        "net CPU ms/host",
        "peak RSS MiB",
        "servers' CPU s: all / process",
    ]
    rows = []
    for name in WAYS:
        if name not in ways:
            continue
        w = ways[name]
        rows.append(
            [
                name,
                spread(w["wall"]),
                spread(w["cpu"]),
                spread(w["per_host_ms"], 2),
                spread(ways[w["floor"]]["wall"]),
                spread(w["net_per_host_ms"], 2),
                spread(w["net_cpu_per_host_ms"], 2),
                spread(w["maxrss"], 0, 2**-20),
                f"{statistics.median(w['server_cpu']):.2f} / "
                f"{statistics.median(w['server_self_cpu']):.2f}",
            ]
        )
    return header, rows


def floor_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    ways = report["summary"]["ways"]
    header = ["start-up floor", "wall s", "CPU s", "peak RSS MiB"]
    rows = [
        [
            name,
            spread(ways[name]["wall"]),
            spread(ways[name]["cpu"]),
            spread(ways[name]["maxrss"], 0, 2**-20),
        ]
        for name in STARTUP_PROBES
    ]
    return header, rows


def ratio_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["paired ratio", "wall", "wall net of start-up", "CPU", "CPU net of start-up"]
    rows = [
        [
            r["ratio"],
            spread(r["wall"], 2),
            spread(r["net_wall"], 2),
            spread(r["cpu"], 2),
            spread(r["net_cpu"], 2),
        ]
        for r in report["summary"]["ratios"]
    ]
    return header, rows


def render(report: dict[str, Any], markdown: bool) -> str:
    from framing import markdown_table, text_table

    table = markdown_table if markdown else text_table
    s, servers = report["settings"], report["servers"]
    out = []
    if not markdown:
        out.append(
            f"Fan-out of `{' '.join(COMMAND)}` to {servers['count']} framekit servers on "
            f"loopback, --parallel {s['parallel']}, token: {'yes' if s['token'] else 'no'}; "
            f"each figure the median (min..max) of {s['repeat']} interleaved repetitions\n"
        )
    out.append(table(*way_rows(report)))
    out.append("")
    if not markdown:
        out.append(
            "wall: the whole process, Popen to wait4; CPU: its user + system time (wait4 "
            "rusage); floor: the same process with 1 refused host;\nnet ms/host: (wall - "
            "floor wall, same repetition) / N; net CPU ms/host: (CPU - floor CPU) / N; "
            "servers' CPU: the one server\nprocess and the commands it ran (all), and the "
            "process alone, during the run (medians).\n"
        )
    out.append(table(*floor_rows(report)))
    out.append("")
    out.append(table(*ratio_rows(report), **({"left": 1} if markdown else {})))
    if not markdown:
        out.append("\nRatios are per repetition (same servers, back to back), median (min..max).")
        out += notes(report)
    return "\n".join(out)


def notes(report: dict[str, Any]) -> list[str]:
    servers = report["servers"]
    mib = 2**-20
    rss = {
        "start": servers["memory_started"].get("VmRSS", 0) * mib,
        "after": servers["memory_after"].get("VmRSS", 0) * mib,
        "peak": servers["memory_after"].get("VmHWM", 0) * mib,
    }
    n_runs = sum(len(r["runs"]) for r in report["repetitions"])
    disturbed = [
        f"#{i} {name}"
        for i, r in enumerate(report["repetitions"], 1)
        for name, run in r["runs"].items()
        if run["disturbed"]
    ]
    redone = sum(run["redone"] for r in report["repetitions"] for run in r["runs"].values())
    worst = max(
        (
            run["interference"]
            for r in report["repetitions"]
            for name, run in r["runs"].items()
            if run["interference"] is not None and name in WAYS
        ),
        default=None,
    )
    hosts_ok = [run.get("hosts_ok") for r in report["repetitions"] for run in r["runs"].values()]
    checked = [x for x in hosts_ok if x is not None]
    out = [
        "",
        f"Results: all {len(checked)} measured fan-out runs (and every warm-up and redone "
        f"run) had all {servers['count']} hosts right: one line each, exit 0, its own "
        "server's label on stdout, nothing on stderr.",
        f"Servers: all {servers['count']} in one process (one Trio nursery): started in "
        f"{servers['start_seconds']:.2f} s, VmRSS {rss['start']:.0f} MiB then, "
        f"{rss['after']:.0f} MiB after all runs (peak {rss['peak']:.0f} MiB).",
        f"Disturbance: {len(disturbed)} of {n_runs} runs disturbed by other load (over "
        f"{report['settings']['max_interference']} CPUs) after {redone} redo(s)"
        + (f": {', '.join(disturbed)}" if disturbed else "")
        + f"; the most other work seen during a kept fan-out run: {fmt_opt(worst)} CPUs.",
    ]
    if servers.get("log"):
        out.append(f"The server worker logged:\n{servers['log']}")
    profile = report.get("profile")
    if profile:
        out.append(
            f"\nProfile of one more CLI run (cProfile; wall {profile['wall']:.2f} s, cpu "
            f"{profile['cpu']:.2f} s; problems: {profile['problems'] or 'none'}): "
            f"{profile['total']:.3f} s profiled, of which imports {profile['imports']:.3f} s, "
            f"the fan-out (_run_many) {profile['fan_out']:.3f} s\n(waiting in epoll "
            f"{profile['waiting']:.3f} s of it). By own time:\n"
            + profile["by_tottime"]
            + "\n\nby cumulative time:\n"
            + profile["by_cumulative"]
        )
    out.append(
        "\nCommands (HOSTS: the hosts file, one 127.0.0.1:PORT a line; REFUSED: one line, a "
        "port that refuses):"
    )
    width = max(map(len, report["commands"]))
    out += [f"  {name:<{width}}  {cmd}" for name, cmd in report["commands"].items()]
    return out


def main() -> int:
    if sys.argv[1:2] == ["peer"]:
        return peer_main(sys.argv[2:])
    if sys.argv[1:3] == ["worker", "servers"]:
        run_servers(int(sys.argv[3]))
        return 0

    import secrets
    import tempfile

    from _common import (
        CaseError,
        add_run_options,
        driver_parser,
        load_report,
        publish,
        source_state,
    )
    from framing import environment

    parser = driver_parser(__doc__, "50 servers, 2 repetitions")
    parser.add_argument("--servers", type=int, help="framekit servers (default 200; quick 50)")
    parser.add_argument("--parallel", type=int, default=32, help="hosts at once (default 32)")
    parser.add_argument("--token", action="store_true", help="servers with a token (HMAC)")
    parser.add_argument("--ways", default=",".join(WAYS), help="comma list of " + ", ".join(WAYS))
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="profile one more CLI run: top N"
    )
    parser.add_argument(
        "--bytecode-as-is",
        action="store_true",
        help="keep this environment's bytecode settings for the timed processes, instead of "
        "a private warm bytecode cache (PYTHONPYCACHEPREFIX)",
    )
    parser.add_argument(
        "--floor-runs",
        type=int,
        default=3,
        metavar="K",
        help="runs of each floor per repetition, their median used (default 3)",
    )
    add_run_options(parser, "repetition")
    args = parser.parse_args()
    if args.load:
        print(render(load_report(args.load), markdown=args.markdown))
        return 0
    names = [w.strip() for w in args.ways.split(",") if w.strip()]
    if not names or any(w not in WAYS for w in names):
        parser.error(f"--ways: choose from {', '.join(WAYS)}")
    args.repeat = args.repeat or (2 if args.quick else 5)
    args.servers = args.servers or (50 if args.quick else 200)
    limits = raise_nofile(args.servers + 4 * args.parallel + 512)
    if args.token:
        os.environ["FRAMEKIT_TOKEN"] = secrets.token_hex(16)
    else:
        os.environ.pop("FRAMEKIT_TOKEN", None)
    os.environ.pop("FRAMEKIT_TOKEN_FILE", None)
    bytecode = "as the environment has it: " + (
        f"PYTHONDONTWRITEBYTECODE={os.environ['PYTHONDONTWRITEBYTECODE']}, so modules without "
        "a .pyc (framekit's own, in this checkout) are compiled at every start"
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else "cached .pyc files are written and used"
    )

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        args.tmp = tmp
        if not args.bytecode_as_is:
            # What an installed framekit has: .pyc files for every module. Here they go to a
            # private cache (filled by the warm-up runs), so the checkout is not written to.
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
            os.environ["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
            bytecode = "a private bytecode cache (PYTHONPYCACHEPREFIX), warmed before measuring"
        try:
            measured = run_bench(args, names)
        except (FanoutError, CaseError) as exc:  # a wrong result, a timeout, a dead worker
            log(f"FAILED: {exc}")
            return 1
    report = {
        "environment": {**environment(), "source": source_state()},
        "settings": {
            "servers": args.servers,
            "parallel": args.parallel,
            "repeat": args.repeat,
            "token": args.token,
            "ways": names,
            "command": COMMAND,
            "max_interference": args.max_interference,
            "retries": args.retries,
            "floor_runs": args.floor_runs,
            "quiet": args.quiet,
            "quick": args.quick,
            "bytecode": bytecode,
            "rlimit_nofile": limits,
        },
        "descriptions": {k: v for k, v in DESCRIPTIONS.items() if k in names or k in FLOOR.values()}
        | {p: DESCRIPTIONS[p] for p in STARTUP_PROBES},
        **measured,
        "wall_seconds": round(time.monotonic() - began, 1),
    }
    summarize(report)
    publish(report, render, args.markdown, args.json)
    log(f"\n{args.repeat} repetitions in {report['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
