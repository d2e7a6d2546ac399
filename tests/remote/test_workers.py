"""``ServerConfig.workers`` / ``framekit serve --workers``: one port, several processes.

Workers are real processes here: the supervisor's ports, limits, restarts and shutdown
are checked from outside, through commands that report their own and their worker's pid
(``sh -c 'echo $$ $PPID'``: a worker is the parent of the commands it runs).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import trio
import trustme
from typer.testing import CliRunner

import framekit
from framekit import RemoteError, ServerConfig, UnsupportedPlatform
from framekit.remote import _workers
from framekit.remote._workers import share, worker_config
from framekit_cli._exit import EXIT_UNSUPPORTED
from framekit_cli.app import app

from ..helpers import process_gone, wait_gone
from ..server_helpers import start_server

runner = CliRunner()
#: A command that prints its own pid and its worker's, then runs until killed.
REPORT_AND_WAIT = ["sh", "-c", "echo $$ $PPID; exec sleep 60"]


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


async def _worker_of_each(port: int, connections: int) -> tuple[set[int], list[Exception]]:
    """Run ``echo $PPID`` once on each of ``connections`` new connections at once: the
    pids of the workers that served them, and what failed."""
    workers: set[int] = set()
    failures: list[Exception] = []

    async def one() -> None:
        try:
            with trio.fail_after(30):
                async with await framekit.Client.connect("127.0.0.1", port) as client:
                    result = await client.run(["sh", "-c", "echo $PPID"])
            assert result.ok, result
            workers.add(int(result.stdout))
        except Exception as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(one)
    return workers, failures


# -- dividing the limits ---------------------------------------------------------------


@pytest.mark.parametrize(("total", "workers"), [(256, 2), (32, 3), (64, 64), (5, 4), (7, 7)])
def test_each_divided_limit_adds_up_to_the_configured_total(total: int, workers: int) -> None:
    parts = [share(total, workers, i) for i in range(workers)]
    assert sum(parts) == total and max(parts) - min(parts) <= 1 and min(parts) >= 1
    config = ServerConfig(
        workers=workers, max_connections=total, max_unauthenticated=total, max_processes=total
    )
    own = [worker_config(config, i) for i in range(workers)]
    for name in ("max_connections", "max_unauthenticated", "max_processes"):
        assert sum(getattr(c, name) for c in own) == total
    # the rest is the same in every worker; the echoes run in the supervisor
    assert {(c.workers, c.udp_port, c.tcp_echo_port) for c in own} == {(1, None, None)}
    assert {c.max_auth_failures for c in own} == {config.max_auth_failures}  # per worker


def test_a_limit_below_the_number_of_workers_is_refused() -> None:
    with pytest.raises(ValueError, match=r"max_processes \(3\) must be at least workers \(4\)"):
        ServerConfig(workers=4, max_processes=3)
    for workers in (0, 65):
        with pytest.raises(ValueError, match="workers must be between 1 and 64"):
            ServerConfig(workers=workers)


# -- TLS: a context cannot cross processes, files can -----------------------------------


@pytest.fixture
def cert_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert("127.0.0.1")
    chain, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    for blob in cert.cert_chain_pems:
        blob.write_to_path(chain, append=True)
    cert.private_key_pem.write_to_path(key)
    return chain, key


def test_tls_for_workers_comes_from_files(
    cert_files: tuple[Path, Path], server_ssl_context: object
) -> None:
    chain, key = cert_files
    config = ServerConfig(tls_cert=chain, tls_key=key, workers=2)
    assert config.ssl_context is not None  # loaded at once: serve_commands uses it as is
    assert replace(config, workers=3).ssl_context is config.ssl_context
    with pytest.raises(ValueError, match="cannot be handed to worker processes"):
        ServerConfig(ssl_context=server_ssl_context, workers=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        ServerConfig(ssl_context=server_ssl_context, tls_cert=chain)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tls_key needs tls_cert"):
        ServerConfig(tls_key=key)


async def test_workers_serve_tls(
    nursery: trio.Nursery, cert_files: tuple[Path, Path], client_ssl_context: object
) -> None:
    chain, key = cert_files
    addrs = await start_server(nursery, tls_cert=chain, tls_key=key, workers=2, udp_port=None)
    host, port = addrs.tcp[0]
    async with await framekit.Client.connect(
        host,
        port,
        ssl_context=client_ssl_context,  # type: ignore[arg-type]
    ) as client:
        assert (await client.run(["echo", "over tls"])).stdout == b"over tls\n"


# -- serving -------------------------------------------------------------------------------


async def test_two_workers_share_one_port(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    addrs = await start_server(nursery, workers=2)
    [(host, port)] = addrs.tcp  # port 0: one port, for every worker
    assert host == "127.0.0.1" and port != 0 and len(addrs.udp) == 1
    workers, failures = await _worker_of_each(port, 24)
    assert failures == []
    assert len(workers) == 2  # the kernel spread the connections (all on one: 2**-23)
    assert {_parent(pid) for pid in workers} == {os.getpid()}  # this process supervises
    # each worker's log, through the supervisor's, names the worker
    lines = [r.getMessage() for r in caplog.records if r.name == "framekit.server"]
    for pid in workers:
        assert any(line.startswith("worker=") and f" pid={pid}: " in line for line in lines)
    assert any(line.endswith("2 worker processes") for line in lines)


async def test_the_process_and_connection_limits_hold_across_workers(
    nursery: trio.Nursery,
) -> None:
    addrs = await start_server(
        nursery, workers=2, max_processes=2, max_connections=4, queue_timeout=0.3
    )
    port = addrs.tcp[0][1]
    outcomes: list[str] = []

    async def one() -> None:
        try:
            async with await framekit.Client.connect("127.0.0.1", port) as client:
                result = await client.run(["sleep", "1.5"])
                outcomes.append("ran" if result.ok else result.status)
        except RemoteError as exc:
            outcomes.append(exc.code)

    with trio.fail_after(20):
        async with trio.open_nursery() as clients:
            for _ in range(8):
                clients.start_soon(one)
    # 2 process slots in all (one a worker), 4 connections in all (two a worker)
    assert len(outcomes) == 8 and set(outcomes) <= {"ran", "busy"}
    assert 1 <= outcomes.count("ran") <= 2, outcomes


async def test_a_killed_worker_is_restarted_and_the_server_keeps_serving(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    addrs = await start_server(nursery, workers=2, udp_port=None)
    port = addrs.tcp[0][1]
    before, failures = await _worker_of_each(port, 16)
    assert failures == [] and len(before) == 2
    victim, survivor = sorted(before)
    os.kill(victim, signal.SIGKILL)
    # The connections the kernel gives the dead worker's socket wait there for its
    # successor: none fails, whatever the timing.
    after, failures = await _worker_of_each(port, 16)
    assert failures == []
    assert survivor in after and victim not in after and len(after) == 2
    [successor] = after - {survivor}
    assert _parent(successor) == os.getpid()
    assert process_gone(victim)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        f"(pid {victim}) exited unexpectedly (killed by SIGKILL); restarting it in" in w
        for w in warnings
    ), warnings


async def test_a_worker_that_cannot_start_fails_the_server_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_workers, "_BOOT", "import sys; sys.exit(3)")
    config = ServerConfig(tcp_port=0, udp_port=None, workers=2)
    with pytest.raises(RuntimeError, match=r"worker \d failed to start \(exit code 3\)"):
        await framekit.serve(config)


async def test_a_worker_reports_why_it_could_not_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The folder goes between the supervisor's check and the workers' own: each says why.
    real_create = _workers.SharedState.create

    async def create_then_remove(config: ServerConfig) -> object:
        shared = await real_create(config)
        (tmp_path / "files").rmdir()
        return shared

    (tmp_path / "files").mkdir()
    monkeypatch.setattr(_workers.SharedState, "create", create_then_remove)
    config = ServerConfig(tcp_port=0, udp_port=None, workers=2, upload_dir=tmp_path / "files")
    with pytest.raises(FileNotFoundError):
        await framekit.serve(config)


async def test_a_port_in_use_is_refused_as_with_one_worker(nursery: trio.Nursery) -> None:
    # SO_REUSEPORT would let a second server of the same user share the port quietly.
    first = await start_server(nursery, udp_port=None)
    port = first.tcp[0][1]
    config = ServerConfig(tcp_port=port, udp_port=None, workers=2)
    with pytest.raises(framekit.ListenError, match=f"cannot listen on tcp://127.0.0.1:{port}"):
        await framekit.serve(config)


# -- the platform ----------------------------------------------------------------------------


def test_the_balancing_option_is_found_here() -> None:
    assert socket.SO_REUSEPORT == _workers.REUSEPORT
    _workers.require_worker_sockets()  # Linux: nothing to refuse


@pytest.fixture
def macos(monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform whose SO_REUSEPORT does not balance (macOS): the import-time choice."""
    monkeypatch.setattr(_workers, "REUSEPORT", None)
    monkeypatch.setattr(sys, "platform", "darwin")
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)


@pytest.mark.usefixtures("macos")
async def test_more_than_one_worker_is_refused_without_a_balanced_port() -> None:
    config = ServerConfig(host="0.0.0.0", tcp_port=0, udp_port=0, workers=2)  # no token too
    for serving in (framekit.serve, framekit.serve_until_signal):
        with pytest.raises(UnsupportedPlatform) as refused:
            await serving(config)
        assert (refused.value.feature, refused.value.platform) == ("worker processes", "darwin")
        assert str(refused.value).startswith(
            "worker processes are not supported on macOS: they need a port the kernel "
            "balances across processes (SO_REUSEPORT on Linux"
        )


@pytest.mark.usefixtures("macos")
def test_cli_refuses_workers_in_one_line_with_its_exit_code() -> None:
    result = runner.invoke(app, ["serve", "--workers", "2", "--tcp-port", "0", "--no-udp"])
    assert result.exit_code == EXIT_UNSUPPORTED
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("framekit: worker processes are not supported on macOS")


# -- the CLI ---------------------------------------------------------------------------------


def test_workers_in_print_config_and_config_files(tmp_path: Path) -> None:
    printed = runner.invoke(app, ["serve", "--workers", "3", "--print-config"]).stdout
    assert "\nworkers = 3\n" in printed
    again = tmp_path / "again.toml"
    again.write_text(printed)
    assert runner.invoke(app, ["serve", "--config", str(again), "--print-config"]).stdout == (
        printed
    )
    auto = tmp_path / "auto.toml"
    auto.write_text('workers = "auto"\n')
    result = runner.invoke(app, ["serve", "--config", str(auto), "--print-config"])
    cpus = min(len(os.sched_getaffinity(0)), 64)
    assert f"\nworkers = {cpus}\n" in result.stdout
    for bad in ("0", "65", "many"):
        refused = runner.invoke(app, ["serve", "--workers", bad, "--print-config"])
        assert refused.exit_code == 2 and "--workers" in refused.stderr
    refused = runner.invoke(
        app, ["serve", "--workers", "4", "--max-processes", "3", "--print-config"]
    )
    assert refused.exit_code == 2 and "must be at least workers (4)" in refused.stderr


class _Server:
    """``framekit serve --workers 2`` as a real process (in a session of its own, so
    that a signal can go to its whole process group), its log as JSON lines."""

    def __init__(self, tmp_path: Path) -> None:
        self.address_file = tmp_path / "addresses.json"
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("framekit")),
                "serve",
                "--workers",
                "2",
                "--tcp-port",
                "0",
                "--no-udp",
                "--shutdown-grace",
                "1",
                "--log-format",
                "json",
                "--address-file",
                str(self.address_file),
            ],
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stderr is not None
        self.log: list[str] = []
        for line in self.proc.stderr:  # the banner comes once every worker listens
            self.log.append(line)
            if "framekit serving" in line:
                break
        assert "framekit serving" in self.log[-1], "".join(self.log)
        [(_, self.port)] = json.loads(self.address_file.read_text())["tcp"]

    def rest_of_log(self) -> list[dict[str, str]]:
        assert self.proc.stderr is not None
        self.log += self.proc.stderr.readlines()
        return [json.loads(line) for line in self.log if line.startswith("{")]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stderr is not None
        self.proc.stderr.close()


async def _commands_on_both_workers(
    port: int, then: Callable[[], Awaitable[None]]
) -> tuple[set[int], set[int]]:
    """Start waiting commands on new connections until both workers run some; call
    ``then`` (which stops the server); return the workers' and the commands' pids."""
    workers: set[int] = set()
    commands: set[int] = set()
    both = trio.Event()

    async def one(started: trio.Event) -> None:
        def seen(chunk: framekit.OutputChunk) -> None:
            pid, parent = map(int, chunk.data.split())
            commands.add(pid)
            workers.add(parent)
            started.set()

        try:
            async with await framekit.Client.connect("127.0.0.1", port) as client:
                await client.run(REPORT_AND_WAIT, on_output=seen)
        except (framekit.FramekitError, OSError, trio.BrokenResourceError):
            started.set()  # the server went away under it: expected

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(40):
                started = trio.Event()
                nursery.start_soon(one, started)
                await started.wait()
                if len(workers) == 2:
                    both.set()
                    break
            assert both.is_set(), "40 connections, one worker"
            await then()
    return workers, commands


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGHUP, True)],
    ids=["SIGTERM", "Ctrl-C", "closed-terminal"],
)
def test_a_stop_signal_stops_every_worker_and_kills_their_commands(
    tmp_path: Path, signum: signal.Signals, to_group: bool
) -> None:
    # Ctrl-C and a closed terminal signal the whole process group, workers included:
    # they leave the stopping to the supervisor, which stops them gracefully.
    server = _Server(tmp_path)
    try:

        async def stop() -> None:
            (os.killpg if to_group else os.kill)(server.proc.pid, signum)
            assert await trio.to_thread.run_sync(partial(server.proc.wait, 20)) == 0

        workers, commands = trio.run(_commands_on_both_workers, server.port, stop)
        assert all(process_gone(pid) for pid in workers | commands)
        log = server.rest_of_log()
    finally:
        server.close()
    messages = [entry["message"] for entry in log]
    assert f"received {signum.name}; shutting down" in messages
    for pid in workers:  # each worker's own lines, in JSON, say which worker it is
        assert any(
            m.startswith("worker=") and f" pid={pid}: " in m and "shutting down" in m
            for m in messages
        ), messages
        assert any(m.startswith("worker ") and f"ready (pid {pid})" in m for m in messages)


def test_sigkill_of_the_supervisor_leaves_no_worker_and_no_command(tmp_path: Path) -> None:
    server = _Server(tmp_path)
    try:

        async def kill() -> None:
            os.kill(server.proc.pid, signal.SIGKILL)
            await trio.to_thread.run_sync(server.proc.wait)

        workers, commands = trio.run(_commands_on_both_workers, server.port, kill)
        # the workers see their pipe's end of file and stop gracefully, on their own
        trio.run(wait_gone, [*workers, *commands], 15)
    finally:
        server.close()
