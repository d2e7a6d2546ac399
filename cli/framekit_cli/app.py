"""The typer application behind the ``framekit`` console script.

Commands parse their options, call :mod:`framekit`, and render. Expected failures end
in one line on stderr and a documented exit code (see ``framekit --help``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import trio
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

import framekit

from . import _render
from ._exit import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    STATE,
    fail,
    run_trio,
)

_SERVER_DEFAULTS = framekit.ServerConfig()
_COMPARE_DEFAULTS = framekit.CompareOptions()

EPILOG = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."

app = typer.Typer(
    name="framekit",
    help="Message framing over TCP, with UDP as the contrast: a Trio toolkit.",
    epilog=EPILOG,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"framekit {framekit.__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and debug logs on errors.")
    ] = False,
) -> None:
    """Message framing over TCP, with UDP as the contrast: a Trio toolkit."""
    STATE.debug = debug


def _console(stderr: bool = False) -> Console:
    # rich colours only on a terminal and honours NO_COLOR by itself. soft_wrap: a line
    # is never cut at the (assumed 80-column) width, so scripts can parse it.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _address(text: str, default_port: int) -> tuple[str, int]:
    try:
        return framekit.parse_address(text, default_port)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# -- compare ---------------------------------------------------------------------------


@app.command()
def compare(
    size: Annotated[
        list[int] | None,
        typer.Option(
            "--size", "-s", help="A message size in bytes (repeat; default 5 12 3000 7 40 600 1)."
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            help="Send this many messages, going round the sizes.", min=1, show_default=False
        ),
    ] = None,
    read_size: Annotated[
        int, typer.Option(help="The receiver's read size (the tutorials' recv(1024)).", min=1)
    ] = _COMPARE_DEFAULTS.read_size,
    sleep: Annotated[
        float, typer.Option(help="Seconds slept after each send in the sleep hack.", min=0)
    ] = _COMPARE_DEFAULTS.sleep,
    burst: Annotated[
        int, typer.Option(help="Datagrams in the UDP burst (0: skip it).", min=0)
    ] = _COMPARE_DEFAULTS.burst,
    burst_size: Annotated[
        int, typer.Option(help="Bytes per burst datagram.", min=1, max=65507)
    ] = _COMPARE_DEFAULTS.burst_size,
    nagle: Annotated[
        bool,
        typer.Option(
            "--nagle/--no-nagle", help="Nagle's algorithm on the raw TCP senders (TCP_NODELAY off)."
        ),
    ] = False,
    tcp_echo: Annotated[
        str | None,
        typer.Option(
            help="Run the TCP ways through this echo server (HOST:PORT), "
            "e.g. `framekit serve --tcp-echo-port`.",
            show_default=False,
        ),
    ] = None,
    udp_echo: Annotated[
        str | None,
        typer.Option(
            help="Send the datagrams to this UDP echo server (HOST:PORT), e.g. `framekit serve`'s.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    svg: Annotated[
        Path | None, typer.Option(help="Also save the picture as an SVG file.", dir_okay=False)
    ] = None,
) -> None:
    """Show why TCP needs framing: the same messages sent five ways, and what arrived.

    Runs its own receivers on free loopback ports: raw TCP read in 1024-byte chunks,
    raw TCP with sleep between sends, raw TCP with an ack per message, framekit framed
    TCP, and UDP datagrams (plus a burst larger than the receive buffer).

    Examples:

      framekit compare

      framekit compare --size 100 --size 5000 --nagle

      framekit compare --size 100 --count 1000 --sleep 0

      framekit compare --json > result.json

      framekit compare --tcp-echo 127.0.0.1:7777 --udp-echo 127.0.0.1:9999
    """
    try:
        sizes = tuple(size) if size else _COMPARE_DEFAULTS.sizes
        options = framekit.CompareOptions(
            sizes=framekit.cycle_sizes(sizes, count) if count else sizes,
            read_size=read_size,
            sleep=sleep,
            nodelay=not nagle,
            burst=burst,
            burst_size=burst_size,
            tcp_echo=_address(tcp_echo, framekit.DEFAULT_PORT) if tcp_echo else None,
            udp_echo=_address(udp_echo, framekit.DEFAULT_PORT) if udp_echo else None,
        )
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    report = run_trio(lambda: trio.run(framekit.run_compare, options))
    if json_out:
        _print_json(report.to_dict())
    else:
        console = Console(record=svg is not None, highlight=False)
        console.print(_render.compare_report(report))
        if svg is not None:
            console.save_svg(str(svg), title="framekit compare")


# -- serve -----------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (TCP and UDP).")] = "127.0.0.1",
    tcp_port: Annotated[
        int, typer.Option(help="Command server port (0: any free port).", min=0, max=65535)
    ] = framekit.DEFAULT_PORT,
    udp_port: Annotated[
        int, typer.Option(help="UDP echo port (0: any free port).", min=0, max=65535)
    ] = framekit.DEFAULT_PORT,
    no_udp: Annotated[bool, typer.Option("--no-udp", help="Do not run the UDP echo.")] = False,
    tcp_echo_port: Annotated[
        int | None,
        typer.Option(
            help="Also run a raw TCP echo on this port (for `compare --tcp-echo`).",
            min=0,
            max=65535,
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FRAMEKIT_TOKEN",
            help="Shared secret clients must prove (never printed).",
            show_default=False,
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Allow a non-loopback --host without a token.")
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="Serve TLS with this certificate (PEM).", exists=True, dir_okay=False),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            help="Private key for --tls-cert (if not in the same file).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    allow: Annotated[
        list[str] | None, typer.Option(help="Only these programs may run (repeat).")
    ] = None,
    allow_shell: Annotated[
        bool, typer.Option(help="Accept shell command strings (run by /bin/sh -c).")
    ] = False,
    upload_dir: Annotated[
        Path | None,
        typer.Option(help="Enable put/get in this directory.", exists=True, file_okay=False),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Working directory of commands.", exists=True, file_okay=False),
    ] = None,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Simultaneous connections.")
    ] = _SERVER_DEFAULTS.max_connections,
    max_unauthenticated: Annotated[
        int,
        typer.Option(min=1, help="Connections still authenticating; a new one drops the oldest."),
    ] = _SERVER_DEFAULTS.max_unauthenticated,
    max_processes: Annotated[
        int, typer.Option(min=1, help="Simultaneous commands.")
    ] = _SERVER_DEFAULTS.max_processes,
    queue_timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a command waits for a process slot.")
    ] = _SERVER_DEFAULTS.queue_timeout,
    command_timeout: Annotated[
        float, typer.Option(min=0.001, help="Longest a command may run, seconds.")
    ] = _SERVER_DEFAULTS.command_timeout,
    max_output: Annotated[
        int, typer.Option(min=1, help="Output bytes per command before it is cut.")
    ] = _SERVER_DEFAULTS.max_output,
    max_stdin: Annotated[
        int, typer.Option(min=0, help="Largest stdin of a command, bytes.")
    ] = _SERVER_DEFAULTS.max_stdin,
    max_upload: Annotated[
        int, typer.Option(min=0, help="Largest upload, bytes.")
    ] = _SERVER_DEFAULTS.max_upload,
    handshake_timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds to authenticate.")
    ] = _SERVER_DEFAULTS.handshake_timeout,
    idle_timeout: Annotated[
        float,
        typer.Option(min=0.001, help="Seconds a connection may wait, or stall, after auth."),
    ] = _SERVER_DEFAULTS.idle_timeout,
    auth_failure_delay: Annotated[
        float, typer.Option(min=0, help="Seconds before answering a wrong token.")
    ] = _SERVER_DEFAULTS.auth_failure_delay,
    max_auth_failures: Annotated[
        int, typer.Option(min=1, help="Wrong tokens from one address before it is blocked.")
    ] = _SERVER_DEFAULTS.max_auth_failures,
    auth_block_time: Annotated[
        float, typer.Option(min=0, help="Seconds an address stays blocked.")
    ] = _SERVER_DEFAULTS.auth_block_time,
    shutdown_grace: Annotated[
        float, typer.Option(min=0, help="Seconds commands get after SIGTERM at shutdown.")
    ] = _SERVER_DEFAULTS.shutdown_grace,
    address_file: Annotated[
        Path | None,
        typer.Option(help="Write the bound addresses here as JSON (for scripts).", dir_okay=False),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run the framed command server (TCP) and the UDP echo server side by side.

    Binds loopback by default. Binding another address needs a token (or --insecure).
    Ctrl-C, SIGTERM or SIGHUP (a closed terminal) stops it: running commands get
    SIGTERM, a grace period, then SIGKILL for their whole process group.

    Examples:

      framekit serve

      FRAMEKIT_TOKEN=s3cret framekit serve --host 0.0.0.0 --allow uptime --allow df

      framekit serve --tcp-port 0 --udp-port 0 --address-file addr.json --upload-dir ./files
    """
    logging.basicConfig(
        level=logging.DEBUG if STATE.debug else log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        ssl_context = framekit.server_ssl_context(tls_cert, tls_key) if tls_cert else None
        config = framekit.ServerConfig(
            host=host,
            tcp_port=tcp_port,
            udp_port=None if no_udp else udp_port,
            tcp_echo_port=tcp_echo_port,
            token=token,
            insecure=insecure,
            ssl_context=ssl_context,
            allow=frozenset(allow) if allow else None,
            allow_shell=allow_shell,
            upload_dir=upload_dir,
            workdir=workdir,
            max_connections=max_connections,
            max_unauthenticated=max_unauthenticated,
            max_processes=max_processes,
            queue_timeout=queue_timeout,
            command_timeout=command_timeout,
            max_output=max_output,
            max_stdin=max_stdin,
            max_upload=max_upload,
            handshake_timeout=handshake_timeout,
            idle_timeout=idle_timeout,
            auth_failure_delay=auth_failure_delay,
            max_auth_failures=max_auth_failures,
            auth_block_time=auth_block_time,
            shutdown_grace=shutdown_grace,
        )
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    console = _console(stderr=True)

    def started(addresses: framekit.ServerAddresses) -> None:
        scheme = "tls" if ssl_context else "tcp"
        tcp = ", ".join(f"{scheme}://{_fmt(h, p)}" for h, p in addresses.tcp)
        udp = ", ".join(f"udp://{_fmt(h, p)}" for h, p in addresses.udp) or "off"
        auth = "token required" if token else "no token"
        if address_file is not None:  # written first: once the banner shows, it exists
            address_file.write_text(json.dumps(asdict(addresses)) + "\n")
        console.print(f"framekit serving commands on {tcp} ({auth}); UDP echo on {udp}")
        console.print("press Ctrl-C to stop", style="dim")

    signum = run_trio(
        lambda: trio.run(lambda: framekit.serve_until_signal(config, on_started=started))
    )
    console.print(f"stopped (signal {signum})", style="dim")


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- send ------------------------------------------------------------------------------


class _LinePrefixer:
    """Writes output from many hosts line by line, each line prefixed by its host."""

    def __init__(self, console: Console, err_console: Console) -> None:
        self.pending: dict[tuple[str, str], bytes] = {}
        self.out = console
        self.err = err_console

    def feed(self, label: str, chunk: framekit.OutputChunk) -> None:
        key = (label, chunk.stream)
        data = self.pending.pop(key, b"") + chunk.data
        *lines, rest = data.split(b"\n")
        for line in lines:
            self._emit(label, chunk.stream, line)
        if rest:
            self.pending[key] = rest

    def close(self) -> None:
        for (label, stream), rest in self.pending.items():
            self._emit(label, stream, rest)
        self.pending.clear()

    def _emit(self, label: str, stream: str, line: bytes) -> None:
        console = self.err if stream == "stderr" else self.out
        console.print(f"[bold]{label}[/bold] | ", end="")
        console.print(line.decode(errors="replace"), markup=False, highlight=False)


def _client_tls(tls: bool, ca_cert: Path | None, tls_no_verify: bool) -> Any:
    if not (tls or ca_cert or tls_no_verify):
        return None
    return framekit.client_ssl_context(ca_cert, verify=not tls_no_verify)


def _progress_bar(console: Console) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _result_json(label: str, result: framekit.CommandResult) -> dict[str, Any]:
    return {
        "host": label,
        "argv": list(result.argv) if isinstance(result.argv, tuple) else result.argv,
        "status": result.status,
        "returncode": result.returncode,
        "signal": result.signal,
        "exit_code": result.exit_code,
        "duration": result.duration,
        "truncated": result.truncated,
        "stdout": result.stdout.decode(errors="backslashreplace"),
        "stderr": result.stderr.decode(errors="backslashreplace"),
    }


@app.command()
def send(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="HOST[:PORT] then the command (after --), unless --host is given.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            "-H",
            help="HOST[:PORT] to send to (repeat to run on many hosts).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            help="Default port (TCP for commands and files, UDP for datagrams).", min=0, max=65535
        ),
    ] = framekit.DEFAULT_PORT,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FRAMEKIT_TOKEN", help="Shared secret (never printed).", show_default=False
        ),
    ] = None,
    tls: Annotated[bool, typer.Option(help="Connect with TLS (system CAs).")] = False,
    ca_cert: Annotated[
        Path | None,
        typer.Option(
            help="Trust this CA file for TLS (implies --tls).", exists=True, dir_okay=False
        ),
    ] = None,
    tls_no_verify: Annotated[
        bool, typer.Option(help="TLS without verifying the server (testing only).")
    ] = False,
    shell: Annotated[
        bool, typer.Option(help="Send the command as one shell string (server must allow it).")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before the server kills the command.", min=0.001)
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Keep retrying the connection for up to this many seconds.", min=0)
    ] = 0,
    datagram: Annotated[
        str | None, typer.Option(help="Send this text as UDP datagram(s) instead.")
    ] = None,
    datagram_file: Annotated[
        Path | None,
        typer.Option(help="Send this file's bytes as one datagram.", exists=True, dir_okay=False),
    ] = None,
    count: Annotated[int, typer.Option(help="Datagrams to send (a ping-like series).", min=1)] = 1,
    interval: Annotated[float, typer.Option(help="Seconds between datagrams.", min=0)] = 0.2,
    put: Annotated[
        Path | None, typer.Option(help="Upload this file.", exists=True, dir_okay=False)
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name on the server for --put.")] = None,
    get: Annotated[str | None, typer.Option(help="Download this file from the server.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where --get writes (default: its name).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Run a command on framekit servers, send datagrams, or transfer files.

    The local exit code mirrors the remote command's (like ssh).

    Examples:

      framekit send 127.0.0.1 -- ls -la

      framekit send -H web1 -H web2:9000 -- uptime

      framekit send 127.0.0.1 --datagram hello --count 5

      framekit send 127.0.0.1 --put report.csv

      framekit send 127.0.0.1 --get report.csv -o copy.csv

      framekit send 127.0.0.1 --wait 10 -- true
    """
    positional = list(args or [])
    if "--" in positional:  # click passes a second "--" through; it only separates
        positional.remove("--")
    if host:
        targets = [_address(h, port) for h in host]
    elif positional:
        targets = [_address(positional.pop(0), port)]
    else:
        fail("give HOST[:PORT] (or --host)", EXIT_USAGE)
    command = positional
    modes = sum(bool(x) for x in (command, datagram is not None or datagram_file, put, get))
    if modes != 1:
        fail(
            "give exactly one of: a command after --, --datagram/--datagram-file, --put, --get",
            EXIT_USAGE,
        )
    if shell and command:
        command = [" ".join(command)]
    ssl_context = _client_tls(tls, ca_cert, tls_no_verify)
    retry = framekit.Retry.for_seconds(wait) if wait else framekit.Retry.once()
    if datagram is not None or datagram_file is not None:
        payload = datagram.encode() if datagram is not None else datagram_file.read_bytes()  # type: ignore[union-attr]
        _send_datagrams(targets, payload, count, interval, json_out)
        return
    if len(targets) > 1 and (put or get):
        fail("--put and --get take one host", EXIT_USAGE)
    if put or get:
        _transfer(targets[0], token, ssl_context, retry, put, name, get, output, json_out)
        return
    argv = None if shell else command
    shell_cmd = command[0] if shell else None
    if len(targets) == 1:
        _run_one(targets[0], argv, shell_cmd, token, ssl_context, retry, timeout, json_out)
    else:
        _run_many(targets, argv, shell_cmd, token, ssl_context, retry, timeout, json_out)


def _run_one(
    target: tuple[str, int],
    argv: list[str] | None,
    shell_cmd: str | None,
    token: str | None,
    ssl_context: Any,
    retry: framekit.Retry,
    timeout: float | None,
    json_out: bool,
) -> None:
    out, err = sys.stdout.buffer, sys.stderr.buffer

    def stream(chunk: framekit.OutputChunk) -> None:
        target_file = err if chunk.stream == "stderr" else out
        target_file.write(chunk.data)
        target_file.flush()

    async def main() -> framekit.CommandResult:
        return await framekit.run_command(
            target[0],
            target[1],
            argv,
            shell=shell_cmd,
            token=token,
            ssl_context=ssl_context,
            retry=retry,
            timeout=timeout,
            on_output=None if json_out else stream,
            collect=json_out,  # streamed output is written as it comes, never kept
        )

    result = run_trio(lambda: trio.run(main))
    if json_out:
        _print_json(_result_json(_fmt(*target), result))
    elif result.truncated:
        typer.echo("framekit: output was truncated by the server's limit", err=True)
    if result.status == "timeout" and not json_out:
        typer.echo("framekit: the command timed out and was killed", err=True)
    raise typer.Exit(result.exit_code)


def _run_many(
    targets: list[tuple[str, int]],
    argv: list[str] | None,
    shell_cmd: str | None,
    token: str | None,
    ssl_context: Any,
    retry: framekit.Retry,
    timeout: float | None,
    json_out: bool,
) -> None:
    console, err_console = _console(), _console(stderr=True)
    prefixer = _LinePrefixer(console, err_console)

    async def main() -> list[framekit.HostResult]:
        return await framekit.fan_out(
            targets,
            argv,
            shell=shell_cmd,
            token=token,
            ssl_context=ssl_context,
            retry=retry,
            timeout=timeout,
            on_output=None if json_out else prefixer.feed,
            collect=json_out,
        )

    results = run_trio(lambda: trio.run(main))
    prefixer.close()
    if json_out:
        _print_json(
            [
                _result_json(r.label, r.result)
                if r.result is not None
                else {"host": r.label, "error": str(r.error)}
                for r in results
            ]
        )
    else:
        console.print(_render.fan_out_summary(results))
    ok = all(r.result is not None and r.result.ok for r in results)
    raise typer.Exit(0 if ok else EXIT_FAILURE)


def _send_datagrams(
    targets: list[tuple[str, int]], payload: bytes, count: int, interval: float, json_out: bool
) -> None:
    if len(payload) > framekit.MAX_UDP_PAYLOAD:
        fail(
            f"a datagram holds at most {framekit.MAX_UDP_PAYLOAD} bytes, not {len(payload)}",
            EXIT_USAGE,
        )
    console = _console()
    reports: dict[str, framekit.PingReport] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for host, port in targets:
                nursery.start_soon(one, _fmt(host, port), host, port)

    async def one(label: str, host: str, port: int) -> None:
        def show(seq: int, reply: bytes | None, rtt: float | None) -> None:
            if json_out:
                return
            if reply is None or rtt is None:
                console.print(f"{label} seq={seq}: no echo (lost)", style="red")
                return
            text = reply.decode(errors="replace")
            shown = text if len(text) <= 60 else text[:57] + "..."
            console.print(
                f"{label} seq={seq}: {len(reply)} bytes {shown!r} rtt={rtt * 1000:.3f} ms"
            )

        reports[label] = await framekit.ping(
            host, port, payload, count=count, interval=interval, on_reply=show
        )

    run_trio(lambda: trio.run(main))
    labels = [_fmt(*t) for t in targets]
    if json_out:
        _print_json(
            [
                {
                    "host": label,
                    "sent": reports[label].sent,
                    "received": reports[label].received,
                    "loss": reports[label].loss,
                    "rtts": list(reports[label].rtts),
                    "echo_matches": all(
                        x == payload for x in reports[label].replies if x is not None
                    ),
                }
                for label in labels
            ]
        )
    else:
        for label in labels:
            r = reports[label]
            summary = r.rtt_summary()
            line = f"--- {label}: {r.sent} sent, {r.received} echoed, {r.loss:.0%} loss"
            if summary:
                line += " rtt min/avg/max = " + "/".join(f"{x * 1000:.3f}" for x in summary) + " ms"
            console.print(line)
    if not any(r.received for r in reports.values()):
        raise typer.Exit(EXIT_UNAVAILABLE)
    if any(r.received < r.sent for r in reports.values()):
        raise typer.Exit(EXIT_FAILURE)


def _transfer(
    target: tuple[str, int],
    token: str | None,
    ssl_context: Any,
    retry: framekit.Retry,
    put: Path | None,
    name: str | None,
    get: str | None,
    output: Path | None,
    json_out: bool,
) -> None:
    console = _console(stderr=True)
    progress = _progress_bar(console) if not json_out else None

    async def main() -> framekit.FileInfo:
        async with await framekit.Client.connect(
            target[0], target[1], token=token, ssl_context=ssl_context, retry=retry
        ) as client:
            callback: Callable[[int, int], None] | None = None
            if progress is not None:
                task = progress.add_task("put" if put else "get", total=None)

                def callback(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

            if put is not None:
                return await client.put(put, name, progress=callback)
            assert get is not None
            return await client.get(get, output or Path(Path(get).name), progress=callback)

    if progress is not None:
        with progress:
            info = run_trio(lambda: trio.run(main))
    else:
        info = run_trio(lambda: trio.run(main))
    if json_out:
        _print_json(asdict(info))
    else:
        verb = "stored" if put else "saved"
        where = f"{_fmt(*target)}:{info.name}" if put else str(output or Path(info.name).name)
        _console().print(f"{verb} {where}: {info.size} bytes, sha256 {info.sha256} (verified)")


def main() -> None:
    """Console-script entry point."""
    app()
