"""Client strings made safe for one log line: every control or invisible character escaped.

A file name holding ``\\n`` would otherwise forge a second log line, and one holding
``\\x1b[2J`` would clear the operator's terminal.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Final

__all__ = ["escape", "shell_words", "show"]

_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escape(text: str) -> str:
    """``text`` with backslashes, control and non-printable characters (lone surrogates,
    bidirectional overrides) written as escapes; printable text, any script, unchanged."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    return "".join(out)


def show(value: object) -> str:
    """A client value for a log line: strings quoted and escaped, anything else as ``repr``."""
    if isinstance(value, str):
        return '"' + escape(value).replace('"', '\\"') + '"'
    return escape(repr(value))


def shell_words(argv: Sequence[str]) -> str:
    """``argv`` as a shell would read it back, with escapes (``$'a\\nb'``) where needed."""
    words = []
    for arg in argv:
        if arg.isprintable():
            words.append(shlex.quote(arg))
        else:
            words.append("$'" + escape(arg).replace("'", "\\'") + "'")
    return " ".join(words)
