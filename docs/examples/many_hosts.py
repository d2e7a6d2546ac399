"""Run one command on many hosts at once with framekit.fan_out.

Three servers run in this process on loopback, standing in for three machines, and a
fourth "host" is down. fan_out connects to all of them concurrently, streams their
output as it arrives, and reports each host's result or error separately: one host that
fails does not cancel the others.
"""

from __future__ import annotations

import socket
import sys

import trio

import framekit

TOKEN = "shared by every server"


async def main() -> None:
    async with trio.open_nursery() as nursery:
        targets: list[tuple[str, int]] = []
        for _ in range(3):
            config = framekit.ServerConfig(tcp_port=0, udp_port=None, token=TOKEN)
            addresses = await nursery.start(framekit.serve, config)
            targets.append(addresses.tcp[0])

        with socket.socket() as down:  # a port that is bound but not listening: refused
            down.bind(("127.0.0.1", 0))
            targets.append(down.getsockname())

            lines: list[str] = []
            partial: dict[str, bytes] = {}

            def show(label: str, chunk: framekit.OutputChunk) -> None:
                # Called as output arrives, from whichever host sent it. A chunk is what
                # the command's pipe delivered, not a line: keep each host's unfinished
                # line until the rest of it arrives.
                data = partial.pop(label, b"") + chunk.data
                *complete, partial[label] = data.split(b"\n")
                lines.extend(f"{label} | {line.decode()}" for line in complete)

            results = await framekit.fan_out(
                targets,
                [sys.executable, "-c", "import os; print('pid', os.getpid())"],
                token=TOKEN,
                timeout=10,  # seconds before each server kills the command
                retry=framekit.Retry(attempts=2, initial_delay=0.05),  # per host
                on_output=show,
            )
        nursery.cancel_scope.cancel()

    print("\n".join(lines))  # in the order the output arrived
    # One HostResult per target, in the order of `targets`.
    for host_result in results:
        if host_result.result is not None:
            print(f"{host_result.label}: exit {host_result.result.exit_code}")
        else:
            print(f"{host_result.label}: {type(host_result.error).__name__}")
    assert [r.result is not None and r.result.ok for r in results] == [True, True, True, False]
    assert isinstance(results[3].error, framekit.ConnectError)
    assert len(lines) == 3 and all(" | pid " in line for line in lines)


trio.run(main)
