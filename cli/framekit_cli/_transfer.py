"""``send --put`` / ``--get``: scp's habits, to one host or many (pscp / pslurp)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

import framekit

from . import _render
from ._app import console, usage
from ._exit import EXIT_FAILURE, EXIT_FRAMEKIT, EXIT_HOSTS_FRAMEKIT, EXIT_OK, run_trio
from ._output import host_json, print_json_line, write_bytes

if TYPE_CHECKING:
    from ._send import Connection

__all__ = ["transfer"]

#: What one host's transfer gives: the file's details, and where it was saved (a get).
Done = tuple[framekit.FileInfo, str | None]


def _failure_code(exc: BaseException) -> int:
    """A local file that cannot be read or written is 1 (as cp and scp); the rest 255."""
    if isinstance(exc, OSError) and not isinstance(exc, framekit.FramekitError):
        return EXIT_FAILURE
    return EXIT_FRAMEKIT


@contextmanager
def _progress(json_out: bool) -> Iterator[Progress | None]:
    """A progress bar on stderr, only on a terminal; gone (not left half drawn) when
    the transfer ends, so an error line never lands inside it."""
    if json_out or not sys.stderr.isatty():
        yield None
        return
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        transient=True,
    )
    with progress:
        yield progress


def _callback(progress: Progress | None, description: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return update


@contextmanager
def _stdin_spooled() -> Iterator[Path]:
    """stdin copied to a temporary file: a ``put`` announces its size and SHA-256 before
    its body, so a pipe is read to its end first (on disk, never in memory)."""
    with tempfile.TemporaryDirectory(prefix="framekit-put-") as folder:
        path = Path(folder) / "stdin"
        with path.open("wb") as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool, 1024 * 1024)
        yield path


def _host_folder(label: str) -> str:
    """A directory name for one host's download (pslurp's layout): ``host_port``."""
    return label.replace("[", "").replace("]", "").replace(":", "_")


def transfer(
    targets: list[tuple[str, int]],
    link: Connection,
    put: str | None,
    name: str | None,
    get: str | None,
    output: str | None,
    json_out: bool,
    parallel: int,
    deadline: float | None,
) -> None:
    """Upload or download, and print what was stored or saved."""
    many = len(targets) > 1
    if put == "-" and not name:
        usage("--put - reads stdin: give the name on the server with --name")
    if get is not None and output == "-" and many:
        usage("-o - writes one file to stdout: give one host")
    if (
        get is not None
        and many
        and output is not None
        and not output.endswith("/")
        and not Path(output).is_dir()
    ):
        usage("with many hosts, -o is a directory: each host's file goes in DIR/HOST_PORT/")
    if put is not None and put != "-" and not Path(put).is_file():
        usage(f"no such file to upload: {put}")

    def job_for(local: Path | None) -> Callable[[framekit.Client, str], Any]:
        async def job(client: framekit.Client, label: str) -> Done:
            with _progress(json_out or many) as progress:
                if local is not None:
                    callback = _callback(progress, f"put {label}")
                    return await client.put(local, name, progress=callback), None
                assert get is not None
                callback = _callback(progress, f"get {label}")
                if output == "-":
                    return await client.download(get, _stdout_writer(), progress=callback), "-"
                target = Path(output) if output else Path(Path(get).name)
                if many:
                    target = target / _host_folder(label)
                if many or (output is not None and output.endswith("/")):
                    await trio.Path(target).mkdir(parents=True, exist_ok=True)
                if await trio.Path(target).is_dir():
                    target = target / Path(get).name
                return await client.get(get, target, progress=callback), str(target)

        return job

    def run(local: Path | None) -> list[framekit.HostResult[Done]]:
        async def main() -> list[framekit.HostResult[Done]]:
            return await framekit.for_each_host(
                targets,
                job_for(local),
                token=link.token,
                ssl_context=link.ssl_context,
                retry=link.retry,
                parallel=parallel,
                deadline=deadline,
            )

        return run_trio(lambda: trio.run(main), failure_code=_failure_code)

    if put == "-":
        with _stdin_spooled() as spooled:
            results = run(spooled)
    else:
        results = run(Path(put) if put is not None else None)
    _report(results, put is not None, output, json_out, many)


def _stdout_writer() -> Callable[[bytes], None]:
    out = sys.stdout.buffer
    return lambda data: write_bytes(out, data)


def _report(
    results: list[framekit.HostResult[Done]],
    stored: bool,
    output: str | None,
    json_out: bool,
    many: bool,
) -> None:
    if not many and results[0].error is not None:
        # One host: its error is the command's error, with an exit code of its own.
        error = results[0].error
        run_trio(lambda: _raise(error), failure_code=_failure_code)
    for r in results:
        if json_out:
            doc: dict[str, Any] = {"host": r.label}
            if r.result is not None:
                info, saved = r.result
                doc |= {"name": info.name, "size": info.size, "sha256": info.sha256}
                if saved is not None:
                    doc["saved"] = saved
            if r.error is not None:
                doc["error"] = host_json(r.label, None, r.error)["error"]
            print_json_line(doc)
        elif r.result is not None:
            info, saved = r.result
            if saved == "-":
                continue  # the file itself went to stdout
            where = f"stored {r.label}:{info.name}" if stored else f"saved {saved}"
            typer.echo(f"{where}: {info.size} bytes, sha256 {info.sha256} (verified)")
    if many:
        if not json_out:
            console(stderr=True).print(_render.transfer_summary(results))
        raise typer.Exit(EXIT_HOSTS_FRAMEKIT if any(r.error for r in results) else EXIT_OK)


def _raise(error: BaseException) -> None:
    raise error
