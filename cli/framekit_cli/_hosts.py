"""Which hosts a ``send`` goes to: ``-H`` lists and pssh-style hosts files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import framekit

__all__ = ["parse_hosts"]


def _one(spec: str, default_port: int, where: str) -> tuple[str, int]:
    # pssh's [user@]host[:port]: framekit has one token per server and no users, so a
    # user is accepted (hosts files can be shared with pssh) and ignored.
    text = spec.strip().rsplit("@", 1)[-1]
    try:
        return framekit.parse_address(text, default_port)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


def _file_lines(path: Path) -> Iterable[tuple[str, str]]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read hosts file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"hosts file {path} is not text (UTF-8)") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            yield line, f"{path}:{number}: "


def parse_hosts(
    specs: Sequence[str], files: Sequence[Path], default_port: int
) -> list[tuple[str, int]]:
    """``(host, port)`` for every host named, in order, each once.

    ``specs`` are ``-H`` values and the like: ``HOST[:PORT]`` or comma-separated lists of
    them. ``files`` are pssh hosts files: one ``[user@]HOST[:PORT]`` a line, ``#``
    comments and blank lines ignored.

    Raises:
        ValueError: a malformed address (the message names the file and line) or an
            unreadable file.
    """
    found: list[tuple[str, int]] = []
    for spec in specs:
        for part in spec.split(","):
            if part.strip():
                found.append(_one(part, default_port, ""))
    for path in files:
        for line, where in _file_lines(path):
            found.append(_one(line, default_port, where))
    return list(dict.fromkeys(found))  # each host once, first mention first
