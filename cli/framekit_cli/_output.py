"""Where ``send`` writes what comes back: raw bytes for one host, pssh/pdsh modes for many.

Command output is written as bytes, unchanged (as ssh does). A reader that goes away
(``| head``) raises :class:`BrokenStdout`, which ends the run quietly.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final

import framekit

from ._exit import BrokenStdout, describe, error_code

__all__ = ["Grouped", "JsonLines", "Prefixed", "Raw", "host_json", "print_json_line", "write_bytes"]

#: A line longer than this is written out without waiting for its newline, so one host
#: that never prints "\n" cannot grow memory.
MAX_PENDING_LINE: Final = 64 * 1024
#: Output that --json and --group must keep stays in memory up to this much per host,
#: then goes to a file in a temporary directory: memory stays flat whatever is printed.
SPOOL_IN_MEMORY: Final = 64 * 1024
#: Bytes read back from a spool at a time (a multiple of 3, so base64 pieces join up).
_READ_BACK: Final = 3 * 256 * 1024


def write_bytes(stream: IO[bytes], data: bytes) -> None:
    """Write and flush; a reader that went away becomes :class:`BrokenStdout`."""
    try:
        stream.write(data)
        stream.flush()
    except BrokenPipeError:
        raise BrokenStdout from None


def _colour(stream: IO[bytes]) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


class Raw:
    """One host: stdout to stdout and stderr to stderr, byte for byte, as they arrive."""

    def __init__(self) -> None:
        self.out, self.err = sys.stdout.buffer, sys.stderr.buffer

    def __call__(self, chunk: framekit.OutputChunk) -> None:
        write_bytes(self.err if chunk.stream == "stderr" else self.out, chunk.data)


class Prefixed:
    """Many hosts, pssh -i / pdsh style: each line as ``host | line``, stdout lines on
    stdout and stderr lines on stderr, a line at a time so hosts never interleave
    inside a line."""

    def __init__(self) -> None:
        self.out, self.err = sys.stdout.buffer, sys.stderr.buffer
        self.pending: dict[tuple[str, str], bytes] = {}
        self.bold = {id(s): _colour(s) for s in (self.out, self.err)}

    def feed(self, label: str, chunk: framekit.OutputChunk) -> None:
        key = (label, chunk.stream)
        data = self.pending.pop(key, b"") + chunk.data
        *lines, rest = data.split(b"\n")
        for line in lines:
            self._emit(label, chunk.stream, line)
        if len(rest) > MAX_PENDING_LINE:
            self._emit(label, chunk.stream, rest)
        elif rest:
            self.pending[key] = rest

    def close(self, label: str | None = None) -> None:
        """Write out unterminated last lines (of one host, or of all)."""
        for key in [k for k in self.pending if label is None or k[0] == label]:
            self._emit(key[0], key[1], self.pending.pop(key))

    def _emit(self, label: str, stream_name: str, line: bytes) -> None:
        stream = self.err if stream_name == "stderr" else self.out
        name = label.encode()
        if self.bold[id(stream)]:
            name = b"\x1b[1m" + name + b"\x1b[0m"
        write_bytes(stream, name + b" | " + line + b"\n")


class _Spools:
    """Where kept output goes past :data:`SPOOL_IN_MEMORY`: one temporary directory,
    made when first needed and removed by :meth:`close`."""

    def __init__(self) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._count = 0

    def new_path(self) -> Path:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="framekit-send-")
        self._count += 1
        return Path(self._folder.name, str(self._count))

    def close(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


class _Spool:
    """One host's kept output: in memory while small, else in a file that is open only
    while the host runs. Its SHA-256, and whether it is UTF-8, are learnt as it comes."""

    def __init__(self, spools: _Spools) -> None:
        self._spools = spools
        self._memory = bytearray()
        self._path: Path | None = None
        self._file: IO[bytes] | None = None
        self.size = 0
        self.digest = hashlib.sha256()
        self._utf8: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8")()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.digest.update(data)
        if self._utf8 is not None:
            try:
                self._utf8.decode(data)
            except UnicodeDecodeError:
                self._utf8 = None
        if self._path is None and len(self._memory) + len(data) <= SPOOL_IN_MEMORY:
            self._memory += data
            return
        if self._path is None:
            self._path = self._spools.new_path()
            self._file = self._path.open("wb")
            self._file.write(self._memory)
            self._memory = bytearray()
        assert self._file is not None
        self._file.write(data)

    def finish(self) -> None:
        """The host is done: close the file (so a thousand hosts need no thousand fds)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def is_utf8(self) -> bool:
        if self._utf8 is None:
            return False
        try:
            self._utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            self._utf8 = None
            return False
        return True

    def pieces(self) -> Iterator[bytes]:
        """The output again, a piece at a time."""
        self.finish()
        if self._path is None:
            for start in range(0, len(self._memory), _READ_BACK):
                yield bytes(self._memory[start : start + _READ_BACK])
            return
        with self._path.open("rb") as f:
            while piece := f.read(_READ_BACK):
                yield piece

    def discard(self) -> None:
        self.finish()
        self._memory = bytearray()
        if self._path is not None:
            self._path.unlink(missing_ok=True)


class Grouped:
    """Many hosts, dshbak -c style: each host's output kept (on disk past
    :data:`SPOOL_IN_MEMORY`), then identical outputs printed once under the list of hosts
    that produced them. Outputs are compared by SHA-256, and a host whose output is one
    already kept has its copy dropped when it ends. Call :meth:`close` at the end."""

    def __init__(self) -> None:
        self._spools = _Spools()
        self.outputs: dict[str, _Spool] = {}
        self.first: dict[bytes, _Spool] = {}  # SHA-256 -> the copy kept of that output

    def feed(self, label: str, chunk: framekit.OutputChunk) -> None:
        spool = self.outputs.get(label)
        if spool is None:
            spool = self.outputs[label] = _Spool(self._spools)
        spool.write(chunk.data)

    def finish(self, label: str) -> None:
        """``label`` is done: keep its output only if no other host printed the same."""
        spool = self.outputs.get(label)
        if spool is None:
            return
        kept = self.first.setdefault(spool.digest.digest(), spool)
        if kept is spool:
            spool.finish()
        else:
            spool.discard()

    def write(self, labels: list[str]) -> None:
        groups: dict[bytes, list[str]] = {}
        empty = _Spool(self._spools)
        for label in labels:
            self.finish(label)  # idempotent for hosts already finished
            spool = self.outputs.get(label, empty)
            groups.setdefault(spool.digest.digest(), []).append(label)
        out = sys.stdout.buffer
        for digest, hosts in groups.items():
            names = ", ".join(hosts).encode()
            rule = b"-" * min(max(len(names), 16), 78)
            write_bytes(out, rule + b"\n" + names + b"\n" + rule + b"\n")
            last = b""
            for piece in self.first.get(digest, empty).pieces():
                write_bytes(out, piece)
                last = piece[-1:]
            if last and last != b"\n":
                write_bytes(out, b"\n")

    def close(self) -> None:
        self._spools.close()


class JsonLines:
    """``--json``: each host's output kept as it comes (on disk past
    :data:`SPOOL_IN_MEMORY`), and its JSON line written when it ends, the output read back
    a piece at a time: the very line :func:`host_json` and :func:`print_json_line` give,
    without the output (or its JSON escaping, up to six times its size) ever whole in
    memory. Call :meth:`close` at the end."""

    def __init__(self) -> None:
        self._spools = _Spools()
        self.outputs: dict[tuple[str, str], _Spool] = {}

    def feed(self, label: str, chunk: framekit.OutputChunk) -> None:
        key = (label, chunk.stream)
        spool = self.outputs.get(key)
        if spool is None:
            spool = self.outputs[key] = _Spool(self._spools)
        spool.write(chunk.data)

    def write(
        self, label: str, result: framekit.CommandResult | None, error: Exception | None
    ) -> None:
        """``label``'s line (its kept output is freed)."""
        spools = {
            name: self.outputs.pop((label, name))
            if (label, name) in self.outputs
            else _Spool(self._spools)
            for name in ("stdout", "stderr")
        }
        try:
            doc = host_json(label, result, error)
            marks: dict[str, str] = {}
            if result is not None:
                for name, spool in spools.items():
                    marks[name] = f"framekit-output-{secrets.token_hex(16)}"
                    doc[name] = marks[name]
                    doc[f"{name}_encoding"] = "utf-8" if spool.is_utf8 else "base64"
            text = json.dumps(doc, default=str)
            out = sys.stdout.buffer
            for name, mark in marks.items():  # "stdout" comes before "stderr" in doc
                before, text = text.split(mark, 1)
                write_bytes(out, before.encode())
                _write_json_text(out, spools[name])
            write_bytes(out, text.encode() + b"\n")
        finally:
            for spool in spools.values():
                spool.discard()

    def close(self) -> None:
        self._spools.close()


def _write_json_text(out: IO[bytes], spool: _Spool) -> None:
    """The spooled output as the inside of a JSON string, as :func:`_text` would give it."""
    if not spool.is_utf8:
        for piece in spool.pieces():
            write_bytes(out, base64.b64encode(piece))
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    for piece in spool.pieces():
        # ensure_ascii escapes character by character, so the pieces join up exactly
        write_bytes(out, json.dumps(decoder.decode(piece))[1:-1].encode())


def _text(data: bytes) -> tuple[str, str]:
    """Output as JSON text: itself if it is UTF-8, else base64 (and which it is)."""
    try:
        return data.decode(), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode(), "base64"


def host_json(
    label: str, result: framekit.CommandResult | None, error: Exception | None
) -> dict[str, Any]:
    """One host's result (or error) as the documented ``send --json`` object."""
    doc: dict[str, Any] = {"host": label}
    if result is not None:
        stdout, stdout_encoding = _text(result.stdout)
        stderr, stderr_encoding = _text(result.stderr)
        doc |= {
            "argv": list(result.argv) if isinstance(result.argv, tuple) else result.argv,
            "status": result.status,
            "returncode": result.returncode,
            "signal": result.signal,
            "exit_code": result.exit_code,
            "duration": result.duration,
            "truncated": result.truncated,
            "timeout_limit": result.timeout_limit,
            "reason": result.reason,
            "stdout": stdout,
            "stdout_encoding": stdout_encoding,
            "stderr": stderr,
            "stderr_encoding": stderr_encoding,
        }
    if error is not None:
        doc["error"] = {"code": error_code(error), "message": describe(error)}
    return doc


def print_json_line(doc: Any, default: Callable[[Any], Any] = str) -> None:
    """One compact JSON document and a newline on stdout (JSON lines)."""
    write_bytes(sys.stdout.buffer, json.dumps(doc, default=default).encode() + b"\n")
