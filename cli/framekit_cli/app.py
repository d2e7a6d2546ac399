"""The ``framekit`` console script: a typer app with four commands.

Commands parse their options, call :mod:`framekit`, and render; each lives in its own
module. Expected failures end in one line on stderr and a documented exit code (see
``framekit --help``).
"""

from __future__ import annotations

from . import _cat, _compare, _send, _serve
from ._app import app

__all__ = ["app", "main"]

del _cat, _compare, _send, _serve  # imported for their @app.command() registrations


def main() -> None:
    """Console-script entry point."""
    app()
