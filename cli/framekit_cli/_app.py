"""The typer application object, its root options, and what every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

import framekit

from ._exit import EXIT_CODES, EXIT_MIRRORED, EXIT_USAGE, STATE, fail

__all__ = ["app", "console", "read_token_file", "usage"]

EPILOG = "Exit codes:\n\n\b\n" + "\n".join(
    [f"  {code:<4} {text}" for code, text in EXIT_CODES.items()] + [f"  {'*':<4} {EXIT_MIRRORED}"]
)

app = typer.Typer(
    name="framekit",
    help="Message framing over TCP, with UDP as the contrast: a Trio toolkit.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    # click's own help layout: it wraps to the terminal and never cuts an option name.
    rich_markup_mode=None,
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


def console(stderr: bool = False) -> Console:
    """rich output: colours only on a terminal (and never with NO_COLOR), and
    ``soft_wrap`` so a line is never cut at the terminal's width for scripts."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def usage(message: str) -> NoReturn:
    """A usage error: one line, exit 2."""
    fail(f"usage: {message}", EXIT_USAGE)


def address(text: str, default_port: int) -> tuple[str, int]:
    """``HOST[:PORT]`` or a usage error."""
    try:
        return framekit.parse_address(text, default_port)
    except ValueError as exc:
        usage(str(exc))


def read_token_file(path: Path) -> str:
    """The token in ``path``'s first line (so it never appears in ``ps``)."""
    try:
        token = path.read_text().splitlines()[0].strip() if path.stat().st_size else ""
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        usage(f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}")
    if not token:
        usage(f"the token file {path} is empty")
    return token
