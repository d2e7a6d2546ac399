"""Exit codes and the one-line error reporting every command shares."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final, NoReturn, TypeVar

import trio
import typer

import framekit

T = TypeVar("T")

#: sysexits(3) codes, so scripts can tell failures apart (ssh-style mirroring uses 0-255
#: for the remote command's own code when one ran).
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNAVAILABLE: Final = getattr(os, "EX_UNAVAILABLE", 69)  # connection refused/unreachable
EXIT_SOFTWARE: Final = getattr(os, "EX_SOFTWARE", 70)  # a bug
EXIT_IOERR: Final = getattr(os, "EX_IOERR", 74)  # a local file could not be read/written
EXIT_PROTOCOL: Final = getattr(os, "EX_PROTOCOL", 76)  # the server answered with an error
EXIT_NOPERM: Final = getattr(os, "EX_NOPERM", 77)  # authentication failed

EXIT_CODES: Final = {
    EXIT_OK: "success (for `send` of a command: the remote command's own exit code)",
    EXIT_FAILURE: "some hosts of a multi-host `send` failed, or datagrams were lost",
    EXIT_USAGE: "bad usage: unknown option, bad address, conflicting options",
    EXIT_UNAVAILABLE: "could not connect: refused, unreachable, no answer, TLS failure",
    EXIT_SOFTWARE: "internal error (a bug: run again with --debug and report it)",
    EXIT_IOERR: "a local file could not be read or written",
    EXIT_PROTOCOL: "the server answered with an error (not_allowed, busy, not_found, ...)",
    EXIT_NOPERM: "authentication failed: wrong or missing token",
}


class CliState:
    """Options of the root command that every subcommand sees."""

    debug: bool = False


STATE = CliState()


def fail(message: str, code: int) -> NoReturn:
    """Print one clear line on stderr and exit with ``code``."""
    typer.echo(f"framekit: error: {message}", err=True)
    raise typer.Exit(code)


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an exception that ended a command."""
    if isinstance(exc, framekit.AuthenticationError):
        return EXIT_NOPERM
    if isinstance(exc, framekit.RemoteError):
        return EXIT_PROTOCOL
    if isinstance(exc, framekit.ConnectError | framekit.DatagramTimeout):
        return EXIT_UNAVAILABLE
    if isinstance(exc, framekit.InsecureBindError):
        return EXIT_USAGE
    if isinstance(exc, framekit.FramekitError | trio.BrokenResourceError | trio.EndOfChannel):
        return EXIT_PROTOCOL
    if isinstance(exc, OSError):
        return EXIT_IOERR
    return EXIT_SOFTWARE


def describe(exc: BaseException) -> str:
    """A one-line description of an exception for the error line."""
    if isinstance(exc, trio.BrokenResourceError | trio.EndOfChannel):
        return "the server closed the connection unexpectedly"
    if isinstance(exc, OSError) and not isinstance(exc, framekit.FramekitError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}".strip()
    return str(exc) or type(exc).__name__


def run_trio(fn: Callable[[], T]) -> T:
    """Run ``fn`` (which calls trio.run); turn expected failures into an error line."""
    try:
        return fn()
    except typer.Exit:
        raise
    except Exception as exc:
        if STATE.debug:
            raise
        inner = exc
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]  # type: ignore[assignment]
        code = exit_code_for(inner)
        if code == EXIT_SOFTWARE:
            fail(f"{type(inner).__name__}: {inner} (run with --debug for the traceback)", code)
        fail(describe(inner), code)
