"""Exit codes, stable error codes, and the one-line error every command prints.

`send` follows ssh: a command's own exit code passes through, and framekit's own
failures exit 255 so they cannot be mistaken for it. With many hosts it follows pssh.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Final, NoReturn, TypeVar

import trio
import typer

import framekit

T = TypeVar("T")

EXIT_OK: Final = 0
#: send --datagram: some datagrams got no echo; send --put/--get: a local file failed.
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
#: Many hosts (pssh's codes): a command timed out or was killed by a signal somewhere...
EXIT_HOSTS_KILLED: Final = 3
#: ... framekit failed on some host (connection, authentication, a refusal) ...
EXIT_HOSTS_FRAMEKIT: Final = 4
#: ... or a command exited non-zero somewhere.
EXIT_HOSTS_NONZERO: Final = 5
#: serve: the command server does not run on this platform (Windows): EX_UNAVAILABLE.
EXIT_UNSUPPORTED: Final = 69
#: serve: an address could not be listened on (in use, not permitted): EX_OSERR.
EXIT_LISTEN: Final = 71
#: The remote program exists but cannot be run, as a shell says.
EXIT_NOT_EXECUTABLE: Final = 126
#: The remote program was not found, as a shell says.
EXIT_NOT_FOUND: Final = 127
#: Ctrl-C.
EXIT_INTERRUPTED: Final = 130
#: Our stdout was closed by its reader (`| head`): 128 + SIGPIPE, quietly, as cat does.
EXIT_BROKEN_PIPE: Final = 141
#: framekit's own failure on a single host: ssh's 255.
EXIT_FRAMEKIT: Final = 255

EXIT_CODES: Final = {
    EXIT_OK: "success",
    EXIT_FAILURE: "lost datagrams; a local file failed (--put, --get); cat: bad input",
    EXIT_USAGE: "bad usage: unknown option, bad address, conflicting options",
    EXIT_HOSTS_KILLED: "many hosts: a command timed out or was killed on one",
    EXIT_HOSTS_FRAMEKIT: "many hosts: framekit failed on one (connect, auth, refused)",
    EXIT_HOSTS_NONZERO: "many hosts: a command exited non-zero on one",
    EXIT_UNSUPPORTED: "serve: not supported on this platform (Windows: no process groups)",
    EXIT_LISTEN: "serve, cat -l: could not listen on an address (in use, not permitted)",
    EXIT_NOT_EXECUTABLE: "send: the remote program cannot be executed",
    EXIT_NOT_FOUND: "send: the remote program was not found",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_BROKEN_PIPE: "stdout closed by its reader (| head), quietly",
    EXIT_FRAMEKIT: "send, cat: framekit failed (connect, auth, lost, refused, bad framing)",
}
#: Commands that mirror the remote command's exit code use the rest (0-254).
EXIT_MIRRORED = "send: else the remote command's own code (124 timeout, 128+N signal)"


class CliState:
    """Options of the root command that every subcommand sees."""

    debug: bool = False


STATE = CliState()


class BadInput(framekit.FramekitError):
    """Our own input cannot be sent (``cat``: a line that is not hex, or too large for the
    framing)."""


class BrokenStdout(Exception):
    """Our stdout's reader went away (``| head``): stop quietly."""


def fail(message: str, code: int) -> NoReturn:
    """Print one clear line on stderr and exit with ``code``."""
    typer.echo(f"framekit: {message}", err=True)
    raise typer.Exit(code)


def quiet_broken_pipe() -> NoReturn:
    """Exit 141 without a word; stdout is pointed at /dev/null so the interpreter's
    final flush cannot complain either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    raise typer.Exit(EXIT_BROKEN_PIPE)


def error_code(exc: BaseException) -> str:
    """A stable, machine-readable word for what went wrong (``--json``'s ``error.code``)."""
    if isinstance(exc, framekit.RemoteError):
        return str(exc.code)
    if isinstance(exc, framekit.ConnectError):
        return exc.reason
    if isinstance(exc, framekit.HostTimeout):
        return "host_timeout"
    if isinstance(exc, framekit.ProtocolError):
        return "protocol_error"
    if isinstance(exc, framekit.StreamTimeout):
        return "timeout"
    if isinstance(exc, trio.BrokenResourceError | trio.EndOfChannel | trio.ClosedResourceError):
        return "connection_lost"
    if isinstance(exc, framekit.DatagramTimeout):
        return "no_echo"
    if isinstance(exc, framekit.InsecureBindError):
        return "insecure_bind"
    if isinstance(exc, framekit.ListenError):
        return "listen_failed"
    if isinstance(exc, framekit.UnsupportedPlatform):
        return "unsupported_platform"
    if isinstance(exc, BadInput):
        return "bad_input"
    if isinstance(exc, framekit.FramekitError):
        return "error"
    if isinstance(exc, OSError):
        return "local_file"
    return "internal"


def describe(exc: BaseException) -> str:
    """One line, in the CLI's words (no Python reprs), for an exception that ended a run."""
    if isinstance(exc, framekit.AuthenticationError):
        if "requires a token" in exc.message:
            return "the server requires a token: set FRAMEKIT_TOKEN, --token-file or --token"
        return f"authentication failed: {exc.message}"
    if isinstance(exc, framekit.ConnectError):
        if exc.reason == "tls_required":
            return f"{exc.where}: the server speaks TLS; add --tls (and --ca-cert for a private CA)"
        if exc.reason == "not_tls":
            return f"{exc.where}: the server does not speak TLS; drop --tls"
        return str(exc)
    if isinstance(exc, framekit.RemoteError):
        return f"the server refused: {exc.message} ({exc.code})"
    if isinstance(exc, framekit.ListenError):
        return exc.strerror or str(exc)  # str() would lead with Python's "[Errno 98]"
    if isinstance(exc, trio.BrokenResourceError | trio.EndOfChannel | trio.ClosedResourceError):
        return "connection closed by the remote host"
    if isinstance(exc, framekit.InsecureBindError):
        return (
            f"refusing to serve commands on {exc.host} without a token: anyone who can reach "
            "it could run programs as this user. Set FRAMEKIT_TOKEN, FRAMEKIT_TOKEN_FILE or "
            "--token-file, or pass --insecure if you really mean it"
        )
    if isinstance(exc, OSError) and not isinstance(exc, framekit.FramekitError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc) or type(exc).__name__


def unwrap(exc: BaseException) -> BaseException:
    """The single exception inside nested one-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def run_trio(
    fn: Callable[[], T],
    *,
    failure_code: int | Callable[[BaseException], int] = EXIT_FRAMEKIT,
    on_error: Callable[[Exception], object] | None = None,
) -> T:
    """Run ``fn`` (which calls ``trio.run``); an expected failure becomes one error line
    and ``failure_code`` (or what it returns for the exception), after ``on_error`` saw
    it; Ctrl-C exits 130; a closed stdout exits 141 quietly."""
    try:
        return fn()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BaseException as exc:
        inner = unwrap(exc)
        if isinstance(inner, BrokenStdout | BrokenPipeError):
            quiet_broken_pipe()
        if isinstance(inner, KeyboardInterrupt):
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if STATE.debug or not isinstance(inner, Exception):
            raise
        code = failure_code(inner) if callable(failure_code) else failure_code
        if on_error is not None:
            on_error(inner)
        if error_code(inner) == "internal":
            fail(
                f"internal error: {type(inner).__name__}: {inner} "
                "(a bug: run again with --debug and report it)",
                code,
            )
        fail(describe(inner), code)
