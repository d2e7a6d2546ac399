"""Import framekit as Windows would, on this machine, and report what it chose.

Run by ``tests/test_platforms.py`` in a subprocess of its own (it changes the
interpreter for good). Every dependency is imported first, on the real platform; then
``sys.platform`` says ``win32``, what Windows lacks is removed (process groups, POSIX-only
signals, epoll, ``pidfd_open``, ``sendmsg``/``recvmsg``, the POSIX-only modules), and
framekit and its CLI are imported afresh: so only framekit's own import-time choices see
Windows. It prints one JSON object: those choices, what ``framekit serve`` said, the
exit codes of ``framekit compare``'s three lessons, the results of round trips (framed
over TCP, through a UDP echo, through a raw TCP echo) and, given a server's addresses,
what ``framekit send`` did against it. A platform call that was not guarded at import
fails here, as it would on Windows.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pkgutil
import select
import signal
import socket
import sys
from functools import partial
from pathlib import Path
from typing import Any

import trio
import typer.testing

import framekit
import framekit_cli
import framekit_cli.app

#: What Windows' Python does not have, by where it would be.
MISSING: list[tuple[Any, list[str]]] = [
    (os, ["killpg", "setsid", "getpgid", "setpgid", "pidfd_open", "fork", "getuid", "geteuid"]),
    (os, ["set_blocking", "get_blocking"]),  # for pipes: only from Python 3.12 on Windows
    (os, ["readv", "writev"]),
    (signal, ["SIGKILL", "SIGHUP", "SIGQUIT", "SIGPIPE", "SIGCHLD", "SIGUSR1", "SIGUSR2"]),
    (select, ["epoll"]),
    (trio.socket.SocketType, ["sendmsg", "recvmsg", "recvmsg_into"]),
    (type(trio.socket.from_stdlib_socket(socket.socket())), ["sendmsg", "recvmsg"]),
]
POSIX_ONLY_MODULES = ["fcntl", "termios", "tty", "pty", "resource", "grp", "pwd"]


class _Absent:
    """A class attribute that is not there (``hasattr`` is False), even on a C base."""

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        raise AttributeError("not on Windows")


class _WindowsSocket(socket.socket):
    sendmsg = recvmsg = recvmsg_into = _Absent()


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(framekit.__path__, "framekit.")]
    names += [m.name for m in pkgutil.walk_packages(framekit_cli.__path__, "framekit_cli.")]
    return ["framekit", "framekit_cli", *(n for n in names if not n.endswith("__main__"))]


def import_as_windows() -> None:
    names = _modules()
    for name in names:  # every dependency, on the real platform
        importlib.import_module(name)
    # ... and what typer and click import only once a command line is parsed.
    typer.testing.CliRunner().invoke(framekit_cli.app.app, ["serve", "--print-config"])
    logging.getLogger().handlers.clear()
    for name in list(sys.modules):
        if name.partition(".")[0] in ("framekit", "framekit_cli"):
            del sys.modules[name]
    epoll = select.epoll  # Trio's own loop (chosen already) needs it to run
    real_socket = socket.socket
    sys.platform = "win32"
    for where, attributes in MISSING:
        for attribute in attributes:
            if attribute in vars(where):
                delattr(where, attribute)
    for module in POSIX_ONLY_MODULES:
        sys.modules[module] = None  # type: ignore[assignment]  # import now fails
    socket.socket = _WindowsSocket  # type: ignore[misc]
    try:
        for name in names:
            importlib.import_module(name)
    finally:
        socket.socket = real_socket  # type: ignore[misc]
        select.epoll = epoll  # type: ignore[misc]


async def round_trips() -> dict[str, Any]:
    from framekit import (
        FramedStream,
        UdpEchoStats,
        send_datagram,
        serve_tcp_echo,
        serve_udp_echo,
    )

    sizes = [100, 16 * 1024, 64 * 1024 + 3, 1024 * 1024 - 1]
    received: list[int] = []
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def accept() -> None:
            async with listeners[0], FramedStream(await listeners[0].accept()) as channel:
                received.extend([len(frame) async for frame in channel])

        nursery.start_soon(accept)
        async with FramedStream(await trio.open_tcp_stream("127.0.0.1", port)) as channel:
            for size in sizes:
                await channel.send(b"f" * size)
    stats = UdpEchoStats()
    echoed = b""
    async with trio.open_nursery() as nursery:
        [(host, udp_port)] = await nursery.start(partial(serve_udp_echo, 0, stats=stats))
        echo = await send_datagram(host, udp_port, b"d" * 1500)
        short = await send_datagram(host, udp_port, b"t" * 2000, max_size=1024)
        [(host, tcp_port), *_] = await nursery.start(partial(serve_tcp_echo, 0))
        async with await trio.open_tcp_stream(host, tcp_port) as stream:
            await stream.send_all(b"e" * 100_000)
            await stream.send_eof()
            while data := await stream.receive_some():
                echoed += data
        nursery.cancel_scope.cancel()
    return {
        "framed_sizes": [sizes, received],
        "udp_echo": [len(echo.data), len(short.data), stats.datagrams],
        "tcp_echo": len(echoed),
    }


def client_commands(tcp: str, udp: str, folder: Path) -> dict[str, Any]:
    """``framekit send`` against a real server (the test's, on Linux): a command, a
    datagram series, a file up and back."""
    from framekit_cli.app import app

    runner = typer.testing.CliRunner()
    source, copy = folder / "up.bin", folder / "down.bin"
    source.write_bytes(bytes(range(256)) * 1000)  # 250 KiB: frames over 16 KiB
    runs = {
        "command": ["send", tcp, "-n", "--", "echo", "hi"],
        "datagrams": ["send", udp, "--datagram", "hello", "--count", "2", "--interval", "0"],
        "put": ["send", tcp, "--put", str(source)],
        "get": ["send", tcp, "--get", "up.bin", "-o", str(copy)],
    }
    report: dict[str, Any] = {}
    for name, argv in runs.items():
        result = runner.invoke(app, argv)
        report[name] = [result.exit_code, result.stdout]
    report["same_file"] = copy.exists() and copy.read_bytes() == source.read_bytes()
    return report


def main(argv: list[str]) -> None:
    import_as_windows()
    from framekit import _serve
    from framekit.datagram import _client, _echo, _socket
    from framekit.remote import _processes
    from framekit.streams import _framed
    from framekit_cli.app import app

    report: dict[str, Any] = {
        "process_groups": _processes.PROCESS_GROUPS,
        "pipes": _processes._Pipes.__name__,
        "wait_process": _processes._wait_process.__name__,
        "gather": _framed._CAN_GATHER,
        "direct_read": _framed.DIRECT_READ,
        "echo_receive": _echo._receive.__name__,
        "client_receive": _client._receive.__name__,
        "buffer_force": [_socket.SO_RCVBUFFORCE, _socket.SO_SNDBUFFORCE],
        "stop_signals": [signal.Signals(s).name for s in _serve.STOP_SIGNALS],
    }
    runner = typer.testing.CliRunner()
    result = runner.invoke(app, ["serve", "--tcp-port", "0", "--udp-port", "0"])
    logging.getLogger().handlers.clear()  # serve logged to the runner's stream, now closed
    report["serve"] = [result.exit_code, result.stdout, result.stderr]
    lessons = [["compare"], ["compare", "recv"], ["compare", "lifecycle"]]
    report["compare"] = [runner.invoke(app, argv).exit_code for argv in lessons]
    report.update(trio.run(round_trips))
    if argv:  # the test's server: HOST:PORT (TCP), HOST:PORT (UDP), a scratch folder
        tcp, udp, folder = argv
        report["client"] = client_commands(tcp, udp, Path(folder))
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
