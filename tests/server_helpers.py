"""Starting a framekit server inside a test's nursery."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any, Self

import trio

import framekit


async def start_server(nursery: trio.Nursery, **options: Any) -> framekit.ServerAddresses:
    """Start ``framekit.serve`` on free loopback ports; returns the bound addresses."""
    options.setdefault("tcp_port", 0)
    options.setdefault("udp_port", 0)
    config = framekit.ServerConfig(**options)
    addresses: framekit.ServerAddresses = await nursery.start(partial(framekit.serve, config))
    return addresses


async def connect(addresses: framekit.ServerAddresses, **kwargs: Any) -> framekit.Client:
    host, port = addresses.tcp[0]
    return await framekit.Client.connect(host, port, **kwargs)


class ServerProcess:
    """``framekit serve`` as a real process (console script), for signals and exits.

    ``with ServerProcess(tmp_path, "--upload-dir", ...) as server:`` waits for its banner
    (it is listening then); ``server.tcp`` is ``host:port``. Leaving the block kills it if
    it still runs.
    """

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.exe = Path(sys.executable).with_name("framekit")
        self.address_file = tmp_path / "addresses.json"
        self.args = args
        self.log: list[str] = []

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            [
                str(self.exe),
                "serve",
                "--tcp-port",
                "0",
                "--no-udp",
                "--address-file",
                str(self.address_file),
                *self.args,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        for _ in range(50):  # log lines may come first; the banner means it is listening
            line = self.proc.stderr.readline()
            self.log.append(line)
            if "framekit serving" in line or not line:
                break
        assert "framekit serving" in self.log[-1], "".join(self.log)
        host, port = json.loads(self.address_file.read_text())["tcp"][0]
        self.tcp = f"{host}:{port}"
        return self

    def stop(self, signum: int, timeout: float = 20) -> int:
        """Send ``signum``; wait for the exit; keep the rest of its log in ``self.log``."""
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=timeout)
        assert self.proc.stderr is not None
        self.log += self.proc.stderr.readlines()
        return code

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
