"""``framekit send``: commands (like ssh, or pssh for many hosts), datagrams and files."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import trio
import typer
import typer.core

import framekit

from . import _render
from ._app import app, console, read_token_file, usage
from ._exit import (
    EXIT_FAILURE,
    EXIT_FRAMEKIT,
    EXIT_HOSTS_FRAMEKIT,
    EXIT_HOSTS_KILLED,
    EXIT_HOSTS_NONZERO,
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    EXIT_OK,
    describe,
    run_trio,
)
from ._hosts import parse_hosts
from ._output import Grouped, JsonLines, Prefixed, Raw, host_json, print_json_line
from ._stdin import stdin_chunks
from ._transfer import transfer

__all__ = ["send"]


class _SendCommand(typer.core.TyperCommand):
    """Reads the command line as ssh does: options before and after HOST, and from the
    first argument after HOST on, the command with its own options untouched
    (``send HOST ls -la``). It also remembers how many arguments followed a ``--``
    (click drops the ``--`` itself), so hosts before it and the command after it can be
    told apart."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "--" in args:
            ctx.meta["after_separator"] = len(args) - args.index("--") - 1
        else:
            args = self._command_after_host(args)
        return super().parse_args(ctx, args)

    def _command_after_host(self, args: list[str]) -> list[str]:
        takes_value = {
            opt for p in self.params if getattr(p, "is_flag", None) is False for opt in p.opts
        }
        positional = 0
        i = 0
        while i < len(args):
            token = args[i]
            if token.startswith("-") and token != "-":
                i += 2 if token in takes_value else 1
                continue
            positional += 1
            if positional == 2:  # the command starts here: no option parsing past it
                return [*args[:i], "--", *args[i:]]
            i += 1
        return args


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach the servers: what every mode of ``send`` shares."""

    token: str | None
    ssl_context: Any
    retry: framekit.Retry


def _split_targets(
    ctx: typer.Context, args: list[str], hosts: list[str], host_files: list[Path], port: int
) -> tuple[list[tuple[str, int]], list[str]]:
    """(targets, command), as ssh and pssh read them.

    * ``send HOST [--] CMD...``: the first argument is the host (ssh).
    * ``send -H A -H B -- CMD...``: with ``-H`` / ``-h FILE``, the command comes after
      ``--``; arguments before ``--`` are hosts too. Without ``--`` the line is
      ambiguous (is ``send B -H A uptime`` a host B?), and refused.
    """
    after = ctx.meta.get("after_separator")
    if hosts or host_files:
        if args and after is None:
            usage("with -H or -h, put the command after --  (send -H A -H B -- uptime)")
        named = list(hosts) + (args[: len(args) - after] if after is not None else [])
        command = args[len(args) - after :] if after is not None else []
    elif args:
        named, command = [args[0]], args[1:]
        if after is not None and after > len(args) - 1:
            usage("give HOST before --  (send HOST -- uptime)")
    else:
        usage("give HOST[:PORT], -H HOST or -h HOSTS_FILE")
    try:
        targets = parse_hosts(named, host_files, port)
    except ValueError as exc:
        usage(str(exc))
    if not targets:
        usage("the hosts file names no host")
    return targets, command


@app.command(
    cls=_SendCommand,
    context_settings={"help_option_names": ["--help"]},  # -h is pssh's hosts file
)
def send(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[HOST] [--] [COMMAND]...",
            help="HOST[:PORT], then the command to run (after --, or right after HOST).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            "-H",
            metavar="HOST[:PORT]",
            help="Send to this host (repeat, or a comma list); the command goes after --.",
            show_default=False,
        ),
    ] = None,
    hosts_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--hosts",
            "-h",
            metavar="FILE",
            help="Hosts file, pssh style: one [user@]HOST[:PORT] a line, # comments.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            "--port",
            "-p",
            metavar="PORT",
            help="Port for hosts given without one (TCP for commands and files, UDP for "
            "datagrams).",
            min=0,
            max=65535,
        ),
    ] = framekit.DEFAULT_PORT,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="FRAMEKIT_TOKEN",
            metavar="SECRET",
            help="Shared secret (visible in ps: prefer FRAMEKIT_TOKEN or --token-file).",
            show_default=False,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            envvar="FRAMEKIT_TOKEN_FILE",
            metavar="FILE",
            help="Read the shared secret from this file's first line.",
            show_default=False,
        ),
    ] = None,
    tls: Annotated[bool, typer.Option("--tls", help="Connect with TLS (system CAs).")] = False,
    ca_cert: Annotated[
        Path | None,
        typer.Option(
            "--ca-cert",
            metavar="FILE",
            help="Trust this CA file for TLS (implies --tls).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    tls_no_verify: Annotated[
        bool,
        typer.Option("--tls-no-verify", help="TLS without checking the server (testing only)."),
    ] = False,
    shell: Annotated[
        bool,
        typer.Option(
            "--shell", help="Send the command as one shell string (if the server allows)."
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Seconds before the server kills the command (its own limit may be lower).",
            min=0.001,
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            help="Keep retrying a refused TCP connection this long (not for datagrams: use "
            "--count).",
            min=0,
        ),
    ] = 0,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            metavar="N",
            help="Most hosts at once (pssh -p).",
            min=1,
        ),
    ] = framekit.DEFAULT_PARALLEL,
    deadline: Annotated[
        float | None,
        typer.Option(
            "--deadline",
            metavar="SECONDS",
            help="Most seconds each host gets, connecting included (pssh -t).",
            min=0.001,
            show_default=False,
        ),
    ] = None,
    group: Annotated[
        bool,
        typer.Option(
            "--group", help="Many hosts: print identical outputs once, with their hosts (dshbak)."
        ),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per host, a line each.")
    ] = False,
    no_stdin: Annotated[
        bool, typer.Option("-n", "--no-stdin", help="Do not forward stdin (as ssh -n).")
    ] = False,
    datagram: Annotated[
        str | None,
        typer.Option("--datagram", metavar="TEXT", help="Send this text as UDP datagram(s)."),
    ] = None,
    datagram_file: Annotated[
        Path | None,
        typer.Option(
            "--datagram-file",
            metavar="FILE",
            help="Send this file's bytes as one UDP datagram.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", metavar="N", help="Datagrams to send (like ping).", min=1)
    ] = 1,
    interval: Annotated[
        float,
        typer.Option("--interval", metavar="SECONDS", help="Seconds between datagrams.", min=0),
    ] = 0.2,
    put: Annotated[
        str | None,
        typer.Option(
            "--put",
            metavar="FILE",
            help="Upload this file (- reads stdin; then --name is needed).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Name on the server for --put."),
    ] = None,
    get: Annotated[
        str | None,
        typer.Option("--get", metavar="NAME", help="Download this file from the server."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="Where --get writes: a file, a directory (DIR/), or - for stdout.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a command on framekit servers, send datagrams, or transfer files.

    One host works like ssh: output streams back as it is produced, stdin is forwarded
    (unless -n), and the exit code is the remote command's own (255 when framekit
    itself fails). Many hosts (-H, -h FILE) work like pssh: each output line prefixed
    by its host (or --group, or --json), a summary on stderr, --parallel at once.

    Examples:

    \b
      framekit send 127.0.0.1 ls -la
      echo hi | framekit send 127.0.0.1 -- cat
      framekit send -H web1 -H web2:9000 -- uptime
      framekit send -h hosts.txt --group -- cat /etc/os-release
      framekit send 127.0.0.1 --datagram hello --count 5
      framekit send 127.0.0.1 --put report.csv
      framekit send 127.0.0.1 --get report.csv -o copies/
    """
    targets, command = _split_targets(ctx, args or [], host or [], hosts_file or [], port)
    modes = [
        name
        for name, given in (
            ("a command", bool(command)),
            ("--datagram", datagram is not None or datagram_file is not None),
            ("--put", put is not None),
            ("--get", get is not None),
        )
        if given
    ]
    if len(modes) != 1:
        usage(
            "give exactly one of: a command, --datagram / --datagram-file, --put, --get"
            + (f" (got {', '.join(modes)})" if modes else "")
        )
    if group and json_out:
        usage("--group and --json are two ways of printing: choose one")
    if token_file is not None:
        token = read_token_file(token_file)
    ssl_context = None
    if tls or ca_cert or tls_no_verify:
        ssl_context = framekit.client_ssl_context(ca_cert, verify=not tls_no_verify)
    link = Connection(
        token, ssl_context, framekit.Retry.for_seconds(wait) if wait else framekit.Retry.once()
    )
    if datagram is not None or datagram_file is not None:
        payload = datagram.encode() if datagram is not None else Path(datagram_file).read_bytes()  # type: ignore[arg-type]
        _send_datagrams(targets, payload, count, interval, json_out)
    elif put is not None or get is not None:
        transfer(targets, link, put, name, get, output, json_out, parallel, deadline)
    elif len(targets) == 1 and not (host or hosts_file):  # -H / -h: pssh's ways, even for one
        _run_one(targets[0], command, shell, link, timeout, json_out, no_stdin)
    else:
        _run_many(targets, command, shell, link, timeout, json_out, group, parallel, deadline)


def _argv(command: list[str], shell: bool) -> tuple[list[str] | None, str | None]:
    return (None, " ".join(command)) if shell else (command, None)


def exit_code(result: framekit.CommandResult) -> int:
    """The remote command's code, as ``CommandResult.exit_code`` (0-254 as ssh)."""
    return result.exit_code


def _refusal_code(exc: BaseException) -> int:
    """A run refused before it started: 127/126 as a shell would say, else 255."""
    if isinstance(exc, framekit.RemoteError):
        if exc.code == "not_found":
            return EXIT_NOT_FOUND
        if exc.code == "not_executable":
            return EXIT_NOT_EXECUTABLE
    return EXIT_FRAMEKIT


def _run_one(
    target: tuple[str, int],
    command: list[str],
    shell: bool,
    link: Connection,
    timeout: float | None,
    json_out: bool,
    no_stdin: bool,
) -> None:
    argv, shell_cmd = _argv(command, shell)
    label = framekit.format_address(*target)
    writer = Raw()
    lines = JsonLines() if json_out else None
    forward_stdin = not no_stdin and sys.stdin is not None and not sys.stdin.isatty()

    async def main() -> framekit.CommandResult:
        async with await framekit.Client.connect(
            target[0], target[1], token=link.token, ssl_context=link.ssl_context, retry=link.retry
        ) as client:
            return await client.run(
                argv,
                shell=shell_cmd,
                stdin=stdin_chunks() if forward_stdin else b"",
                timeout=timeout,
                # written as it comes, or for --json kept on disk once big: never whole
                # in memory
                on_output=writer if lines is None else partial(lines.feed, label),
                collect=False,
            )

    def json_error(exc: Exception) -> None:
        if json_out:  # a result object even when there is no result
            print_json_line(host_json(label, None, exc))

    try:
        result = run_trio(lambda: trio.run(main), failure_code=_refusal_code, on_error=json_error)
        code = _report_ending(result, timeout)
        if lines is not None:
            lines.write(label, result, None)
    finally:
        if lines is not None:
            lines.close()
    raise typer.Exit(code)


def _report_ending(result: framekit.CommandResult, asked: float | None) -> int:
    """One stderr line when the command did not simply exit (ssh says nothing then);
    the exit code to use."""
    if result.status == "cancelled" and result.reason == "shutdown":
        typer.echo(
            "framekit: connection closed by the remote host: the server was stopped, and "
            "the command cancelled",
            err=True,
        )
        return EXIT_FRAMEKIT
    if result.truncated:
        typer.echo(
            "framekit: output was cut at the server's output limit, and the command killed",
            err=True,
        )
    elif result.status == "timeout":
        limit = result.timeout_limit
        whose = ""
        if limit is not None and (asked is None or limit < asked):
            whose = " (the server's limit" + (f"; you asked for {asked:g} s)" if asked else ")")
        after = f" after {limit:g} s" if limit is not None else ""
        typer.echo(f"framekit: the command timed out{after}{whose} and was killed", err=True)
    return exit_code(result)


def _run_many(
    targets: list[tuple[str, int]],
    command: list[str],
    shell: bool,
    link: Connection,
    timeout: float | None,
    json_out: bool,
    group: bool,
    parallel: int,
    deadline: float | None,
) -> None:
    argv, shell_cmd = _argv(command, shell)
    prefixed = Prefixed() if not (group or json_out) else None
    grouped = Grouped() if group else None
    lines = JsonLines() if json_out else None

    def done(result: framekit.HostResult[framekit.CommandResult]) -> None:
        if prefixed is not None:
            prefixed.close(result.label)
        if grouped is not None:
            grouped.finish(result.label)
        if lines is not None:
            lines.write(result.label, result.result, result.error)

    async def main() -> list[framekit.HostResult[framekit.CommandResult]]:
        on_output = prefixed.feed if prefixed is not None else None
        if grouped is not None:
            on_output = grouped.feed
        if lines is not None:
            on_output = lines.feed
        return await framekit.fan_out(
            targets,
            argv,
            shell=shell_cmd,
            token=link.token,
            ssl_context=link.ssl_context,
            retry=link.retry,
            timeout=timeout,
            on_output=on_output,
            collect=False,  # kept output goes to spools, on disk once it is big
            parallel=parallel,
            deadline=deadline,
            on_done=done,
        )

    try:
        results = run_trio(lambda: trio.run(main))
        if grouped is not None:
            grouped.write([r.label for r in results])
    finally:
        for kept in (grouped, lines):
            if kept is not None:
                kept.close()
    if not json_out:
        console(stderr=True).print(_render.fan_out_summary(results))
    raise typer.Exit(hosts_exit_code(results))


def hosts_exit_code(results: list[framekit.HostResult[framekit.CommandResult]]) -> int:
    """pssh's: 3 killed or timed out somewhere, else 4 framekit failed somewhere, else 5
    a command exited non-zero somewhere, else 0."""
    if any(
        (r.result is not None and r.result.status in ("timeout", "signaled", "cancelled"))
        or isinstance(r.error, framekit.HostTimeout)
        for r in results
    ):
        return EXIT_HOSTS_KILLED
    if any(r.error is not None for r in results):
        return EXIT_HOSTS_FRAMEKIT
    if any(r.result is not None and not r.result.ok for r in results):
        return EXIT_HOSTS_NONZERO
    return EXIT_OK


def _send_datagrams(
    targets: list[tuple[str, int]], payload: bytes, count: int, interval: float, json_out: bool
) -> None:
    if len(payload) > framekit.MAX_UDP6_PAYLOAD:
        usage(f"a datagram holds at most {framekit.MAX_UDP6_PAYLOAD} bytes, not {len(payload)}")
    out = console()
    reports: dict[str, framekit.PingReport] = {}
    errors: dict[str, Exception] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for host, port in targets:
                nursery.start_soon(one, framekit.format_address(host, port), host, port)

    async def one(label: str, host: str, port: int) -> None:
        def show(seq: int, reply: bytes | None, rtt: float | None) -> None:
            if json_out:
                return
            if reply is None or rtt is None:
                out.print(f"{label} seq={seq}: no echo (lost)", style="red")
                return
            text = reply.decode(errors="replace")
            shown = text if len(text) <= 60 else text[:57] + "..."
            out.print(f"{label} seq={seq}: {len(reply)} bytes {shown!r} rtt={rtt * 1000:.3f} ms")

        try:
            reports[label] = await framekit.ping(
                host, port, payload, count=count, interval=interval, on_reply=show
            )
        except (OSError, ValueError) as exc:  # no such host, an unusable address
            errors[label] = exc

    run_trio(lambda: trio.run(main))
    for label in (framekit.format_address(*t) for t in targets):
        if label in errors:
            if json_out:
                print_json_line(host_json(label, None, errors[label]))
            else:
                typer.echo(f"framekit: {label}: {describe(errors[label])}", err=True)
            continue
        r = reports[label]
        if json_out:
            print_json_line(
                {
                    "host": label,
                    "sent": r.sent,
                    "received": r.received,
                    "loss": r.loss,
                    "rtts": list(r.rtts),
                    "echo_matches": all(x == payload for x in r.replies if x is not None),
                }
            )
        else:
            summary = r.rtt_summary()
            line = f"--- {label}: {r.sent} sent, {r.received} echoed, {r.loss:.0%} loss"
            if summary:
                line += " rtt min/avg/max = " + "/".join(f"{x * 1000:.3f}" for x in summary) + " ms"
            out.print(line)
    if errors:
        raise typer.Exit(EXIT_FRAMEKIT)
    if any(r.received < r.sent for r in reports.values()):
        raise typer.Exit(EXIT_FAILURE)
