"""Where ``send`` writes what comes back: raw bytes for one host, pssh/pdsh modes for many.

Command output is written as bytes, unchanged (as ssh does). A reader that goes away
(``| head``) raises :class:`BrokenStdout`, which ends the run quietly.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable
from typing import IO, Any, Final

import framekit

from ._exit import BrokenStdout, describe, error_code

__all__ = ["Grouped", "Prefixed", "Raw", "host_json", "print_json_line", "write_bytes"]

#: A line longer than this is written out without waiting for its newline, so one host
#: that never prints "\n" cannot grow memory.
MAX_PENDING_LINE: Final = 64 * 1024


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


class Grouped:
    """Many hosts, dshbak -c style: each host's output kept, then identical outputs
    printed once under the list of hosts that produced them."""

    def __init__(self) -> None:
        self.outputs: dict[str, list[bytes]] = {}

    def feed(self, label: str, chunk: framekit.OutputChunk) -> None:
        self.outputs.setdefault(label, []).append(chunk.data)

    def write(self, labels: list[str]) -> None:
        groups: dict[bytes, list[str]] = {}
        for label in labels:
            groups.setdefault(b"".join(self.outputs.get(label, [])), []).append(label)
        out = sys.stdout.buffer
        for output, hosts in groups.items():
            names = ", ".join(hosts).encode()
            rule = b"-" * min(max(len(names), 16), 78)
            write_bytes(out, rule + b"\n" + names + b"\n" + rule + b"\n")
            write_bytes(out, output if not output or output.endswith(b"\n") else output + b"\n")


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
