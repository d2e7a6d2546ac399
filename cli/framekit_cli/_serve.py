"""``framekit serve``: every limit a flag, a TOML config file, a log operators can use."""

from __future__ import annotations

import json
import os
import signal
import tomllib
from dataclasses import asdict, fields
from pathlib import Path
from typing import Annotated, Any

import trio
import typer

import framekit

from ._app import app, console, read_token_file, usage
from ._exit import EXIT_LISTEN, EXIT_UNSUPPORTED, EXIT_USAGE, STATE, run_trio
from ._logs import LogFormat, LogLevel, setup_logging

__all__ = ["serve"]

_DEFAULTS = framekit.ServerConfig()
#: Options that are not ServerConfig fields but may still come from --config.
_FILE_ONLY = {
    "token_file",
    "no_udp",
    "address_file",
    "log_level",
    "log_format",
}
#: ServerConfig fields --print-config lists after the others, and only when set.
_PRINTED_LAST = ("token_file", "tls_cert", "tls_key", "address_file")
#: The most worker processes (framekit.ServerConfig's own limit).
_MAX_WORKERS = 64


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (containers)
    except AttributeError:  # not on macOS
        return os.cpu_count() or 1


def _parse_workers(value: object) -> int:
    """``--workers``: a number from 1 to 64, or ``auto``: one per CPU (at most 64)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lower() == "auto":
        return max(1, min(_cpus(), _MAX_WORKERS))
    else:
        try:
            number = int(str(value))
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a number nor 'auto'") from None
    if not 1 <= number <= _MAX_WORKERS:
        raise typer.BadParameter(f"{number} is not in the range 1<=x<={_MAX_WORKERS}")
    return number


def _failure_code(exc: BaseException) -> int:
    if isinstance(exc, framekit.UnsupportedPlatform):
        return EXIT_UNSUPPORTED
    if isinstance(exc, framekit.ListenError):
        return EXIT_LISTEN
    if isinstance(exc, framekit.InsecureBindError):
        return EXIT_USAGE
    return 1


def _apply_config_file(ctx: typer.Context, path: Path) -> None:
    """Fill every option the command line (or the environment) left at its default from
    the TOML file: flags win over the file, the file over the defaults."""
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        usage(f"cannot read the config file {path}: {getattr(exc, 'strerror', None) or exc}")
    except tomllib.TOMLDecodeError as exc:
        usage(f"{path} is not valid TOML: {exc}")
    params = {p.name: p for p in ctx.command.params if p.name}
    settable = sorted(n for n in params if n not in ("config", "print_config"))
    for key, value in document.items():
        name = key.replace("-", "_")
        if name not in params or name in ("config", "print_config"):
            usage(f"{path}: unknown setting {key!r}; known: {', '.join(settable)}")
        source = ctx.get_parameter_source(name)
        if source is not None and source.name != "DEFAULT":
            continue  # given on the command line or in the environment: that wins
        try:
            ctx.params[name] = params[name].process_value(ctx, value)
        except typer.BadParameter as exc:
            usage(f"{path}: {key}: {exc.message}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple | frozenset | set):
        return "[" + ", ".join(_toml_value(v) for v in sorted(value, key=str)) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def _print_config(config: framekit.ServerConfig, extra: dict[str, Any]) -> None:
    """The effective settings, as a TOML file ``--config`` reads back (secret hidden)."""
    lines = ["# framekit serve --print-config: the settings in effect (defaults included)"]
    for field in fields(config):
        value = getattr(config, field.name)
        if field.name in ("ssl_context", "env", *_PRINTED_LAST):
            continue
        if field.name == "token":
            lines.append("# token: set (never printed)" if value else "# token: none")
            continue
        if value is None:
            lines.append(f"# {field.name}: not set")
        else:
            lines.append(f"{field.name} = {_toml_value(value)}")
    extra = {"tls_cert": config.tls_cert, "tls_key": config.tls_key} | extra
    for name, value in sorted(extra.items(), key=lambda item: _order(item[0])):
        if value is not None:
            lines.append(f"{name} = {_toml_value(value)}")
    typer.echo("\n".join(lines))


def _order(name: str) -> int:
    return _PRINTED_LAST.index(name) if name in _PRINTED_LAST else len(_PRINTED_LAST)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to bind, TCP and UDP.")] = (
        _DEFAULTS.host
    ),
    tcp_port: Annotated[
        int,
        typer.Option(
            metavar="PORT", help="Command server port (0: any free port).", min=0, max=65535
        ),
    ] = framekit.DEFAULT_PORT,
    udp_port: Annotated[
        int,
        typer.Option(metavar="PORT", help="UDP echo port (0: any free port).", min=0, max=65535),
    ] = framekit.DEFAULT_PORT,
    no_udp: Annotated[bool, typer.Option("--no-udp", help="Do not run the UDP echo.")] = False,
    workers: Annotated[
        int,
        typer.Option(
            metavar="N|auto",
            parser=_parse_workers,
            help="Processes serving commands on the one port (Linux, FreeBSD); auto: "
            "one per CPU. The connection, command and authenticating limits are divided "
            "among them.",
        ),
    ] = _DEFAULTS.workers,
    tcp_echo_port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            help="Also run a raw TCP echo on this port (for compare --tcp-echo).",
            min=0,
            max=65535,
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FRAMEKIT_TOKEN",
            metavar="SECRET",
            help="Shared secret clients must prove (visible in ps: prefer the environment "
            "variable or --token-file).",
            show_default=False,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="FRAMEKIT_TOKEN_FILE",
            metavar="FILE",
            help="Read the shared secret from this file's first line.",
            show_default=False,
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback --host without a token.")
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Serve TLS with this certificate (PEM).", dir_okay=False),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Private key for --tls-cert, if not in it.", dir_okay=False
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(metavar="PROGRAM", help="Only these programs may run (repeat)."),
    ] = None,
    allow_shell: Annotated[
        bool, typer.Option("--allow-shell", help="Accept shell command strings (/bin/sh -c).")
    ] = False,
    upload_dir: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Enable put/get in this directory.", file_okay=False),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Working directory of commands.", file_okay=False),
    ] = None,
    max_connections: Annotated[
        int, typer.Option(metavar="N", min=1, help="Simultaneous connections.")
    ] = _DEFAULTS.max_connections,
    max_unauthenticated: Annotated[
        int,
        typer.Option(
            metavar="N", min=1, help="Connections still authenticating; more drop the oldest."
        ),
    ] = _DEFAULTS.max_unauthenticated,
    max_processes: Annotated[
        int, typer.Option(metavar="N", min=1, help="Simultaneous commands.")
    ] = _DEFAULTS.max_processes,
    queue_timeout: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=0.001, help="Wait for a free process slot."),
    ] = _DEFAULTS.queue_timeout,
    command_timeout: Annotated[
        float, typer.Option(metavar="SECONDS", min=0.001, help="Longest a command may run.")
    ] = _DEFAULTS.command_timeout,
    max_output: Annotated[
        int, typer.Option(metavar="BYTES", min=1, help="Output per command before it is cut.")
    ] = _DEFAULTS.max_output,
    max_stdin: Annotated[
        int, typer.Option(metavar="BYTES", min=0, help="Largest stdin sent with a command.")
    ] = _DEFAULTS.max_stdin,
    max_upload: Annotated[
        int, typer.Option(metavar="BYTES", min=0, help="Largest upload.")
    ] = _DEFAULTS.max_upload,
    max_header_size: Annotated[
        int, typer.Option(metavar="BYTES", min=1, help="Largest message header.")
    ] = _DEFAULTS.max_header_size,
    udp_buffer: Annotated[
        int | None,
        typer.Option(
            metavar="BYTES",
            min=1,
            help="Kernel buffer for the UDP echo (default 32 MiB; the kernel may cap it).",
            show_default=False,
        ),
    ] = None,
    handshake_timeout: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=0.001, help="For the whole handshake, TLS included."),
    ] = _DEFAULTS.handshake_timeout,
    idle_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            min=0.001,
            help="For a request to arrive, and for any stalled read or write after auth.",
        ),
    ] = _DEFAULTS.idle_timeout,
    auth_failure_delay: Annotated[
        float, typer.Option(metavar="SECONDS", min=0, help="Before answering a wrong token.")
    ] = _DEFAULTS.auth_failure_delay,
    max_auth_failures: Annotated[
        int,
        typer.Option(metavar="N", min=1, help="Wrong tokens from one address before a block."),
    ] = _DEFAULTS.max_auth_failures,
    auth_block_time: Annotated[
        float, typer.Option(metavar="SECONDS", min=0, help="How long an address stays blocked.")
    ] = _DEFAULTS.auth_block_time,
    shutdown_grace: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=0, help="For commands after SIGTERM, at shutdown."),
    ] = _DEFAULTS.shutdown_grace,
    address_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Write the bound addresses here as JSON (for scripts).",
            dir_okay=False,
        ),
    ] = None,
    log_level: Annotated[
        LogLevel, typer.Option(case_sensitive=False, help="Least severe level logged.")
    ] = LogLevel.INFO,
    log_format: Annotated[
        LogFormat, typer.Option(case_sensitive=False, help="text, or json (one object a line).")
    ] = LogFormat.TEXT,
    config: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Read settings from this TOML file (keys as the options, without --); "
            "options given here win.",
            show_default=False,
        ),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option("--print-config", help="Print the settings in effect as TOML, and exit."),
    ] = False,
) -> None:
    """Run the framed command server (TCP) and the UDP echo server side by side.

    Binds loopback by default; another address needs a token (or --insecure). Ctrl-C,
    SIGTERM or SIGHUP (a closed terminal) stops it: running commands get SIGTERM, a
    grace period, then SIGKILL for their whole process group. Process groups are POSIX
    (Linux, macOS): on Windows it refuses to start (exit 69).

    --workers N serves commands from N processes on the one port (Linux, FreeBSD;
    exit 69 elsewhere): a supervisor binds it, runs the UDP echo, restarts a worker
    that dies and stops them all on those signals.

    Examples:

    \b
      framekit serve
      framekit serve --host 0.0.0.0 --token-file ~/.framekit-token --allow uptime
      framekit serve --config /etc/framekit/serve.toml --print-config
      framekit serve --tcp-port 0 --address-file addr.json --upload-dir ./files
      framekit serve --workers auto --host 0.0.0.0 --token-file ~/.framekit-token
    """
    if config is not None:
        _apply_config_file(ctx, config)
    values = ctx.params  # the options, with what --config filled in
    setup_logging(values["log_level"], values["log_format"], debug=STATE.debug)
    secret = values["token"]
    if values["token_file"] is not None:
        secret = read_token_file(Path(values["token_file"]))
    for option in ("upload_dir", "workdir"):
        if values[option] is not None and not Path(values[option]).is_dir():
            usage(f"--{option.replace('_', '-')} {values[option]} is not a directory")
    if values["tls_key"] is not None and values["tls_cert"] is None:
        usage("--tls-key needs --tls-cert")
    try:
        settings = {f.name for f in fields(framekit.ServerConfig)}
        server_config = framekit.ServerConfig(
            **{
                k: v
                for k, v in values.items()
                if k in settings and k not in ("token", "allow", "udp_port")
            },
            token=secret,
            allow=frozenset(values["allow"]) if values["allow"] else None,
            udp_port=None if values["no_udp"] else values["udp_port"],
        )
    except ValueError as exc:
        usage(str(exc))
    except OSError as exc:  # ssl.SSLError included: the certificate, loaded here
        usage(f"cannot use the TLS certificate {values['tls_cert']}: {exc.strerror or exc}")
    ssl_context = server_config.ssl_context
    if print_config:
        extra = {k: values[k] for k in ("token_file", "address_file")}
        logging = {"log_level": str(values["log_level"]), "log_format": str(values["log_format"])}
        _print_config(server_config, extra | logging)
        raise typer.Exit
    out = console(stderr=True)
    address_file = values["address_file"]

    def started(addresses: framekit.ServerAddresses) -> None:
        scheme = "tls" if ssl_context else "tcp"
        if address_file is not None:  # written first: once the banner shows, it exists
            Path(address_file).write_text(json.dumps(asdict(addresses)) + "\n")
        tcp = ", ".join(f"{scheme}://{framekit.format_address(*a)}" for a in addresses.tcp)
        auth = "token required" if secret else "no token"
        udp = ", ".join(f"udp://{framekit.format_address(*a)}" for a in addresses.udp)
        processes = f", {server_config.workers} workers" if server_config.workers > 1 else ""
        out.print(
            f"framekit serving commands on {tcp} ({auth}{processes})"
            + (f", UDP echo on {udp}" if udp else "")
        )
        out.print("press Ctrl-C to stop", style="dim")

    signum = run_trio(
        lambda: trio.run(lambda: framekit.serve_until_signal(server_config, on_started=started)),
        failure_code=_failure_code,
    )
    out.print(f"stopped ({_signal_name(signum)})", style="dim")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
