"""``serve`` and ``serve_until_signal``: every stop signal is a graceful stop, no orphans."""

from __future__ import annotations

import signal
import subprocess
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
