"""``serve`` and ``serve_until_signal``: every stop signal is a graceful stop, no orphans."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import process_gone
from .server_helpers import ServerProcess


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_each_stop_signal_stops_gracefully_and_kills_running_commands(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # SIGHUP is a closed terminal or a dropped ssh session: it once killed the server at
    # once and left its commands running, orphaned.
    with ServerProcess(tmp_path, "--shutdown-grace", "2") as server:
        client = subprocess.Popen(
            [str(server.exe), "send", server.tcp, "--", "sh", "-c", "echo $$; sleep 60"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert client.stdout is not None
            pid = int(client.stdout.readline())  # the command runs now
            assert server.stop(signum) == 0
            assert process_gone(pid)
        finally:
            client.kill()
            client.wait()
            if client.stdout is not None:
                client.stdout.close()
    log = "".join(server.log)
    assert f"received {signum.name}; shutting down" in log
    assert "stopped: the server is shutting down" in log


def _peak_rss_mib(argv: list[str]) -> tuple[int, float]:
    """Run ``argv`` (stdout to /dev/null) in a fresh parent; its exit code, peak RSS."""
    probe = (
        "import resource, subprocess, sys;"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode;"
        "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120
    )
    code, rss = out.stdout.split()
    return int(code), float(rss)


def test_send_streams_big_output_in_bounded_memory(tmp_path: Path) -> None:
    # `framekit send` once kept all the output it streamed: 2 GiB took it past 1.5 GiB.
    size = 256 * 1024 * 1024
    with ServerProcess(tmp_path, "--max-output", str(2 * size)) as server:
        code, rss = _peak_rss_mib(
            [str(server.exe), "send", server.tcp, "--", "head", "-c", str(size), "/dev/zero"]
        )
    assert code == 0
    assert rss < 100, f"the client peaked at {rss:.0f} MiB streaming {size >> 20} MiB"
