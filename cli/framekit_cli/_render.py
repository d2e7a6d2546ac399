"""Drawing framekit's result objects with rich. No behaviour lives here."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

import framekit

from ._exit import describe, error_code


def fan_out_summary(results: list[framekit.HostResult[framekit.CommandResult]]) -> Table:
    """A table of each host's outcome after a multi-host ``send`` (printed on stderr)."""
    table = Table(title="summary", header_style="bold")
    table.add_column("host")
    table.add_column("status")
    table.add_column("exit", justify="right")
    table.add_column("time", justify="right")
    table.add_column("error")
    for r in results:
        if r.result is not None:
            style = "green" if r.result.ok else "red"
            table.add_row(
                r.label,
                Text(r.result.status, style=style),
                Text(str(r.result.exit_code), style=style),
                f"{r.result.duration * 1000:.1f} ms",
                "",
            )
        else:
            assert r.error is not None
            table.add_row(
                r.label,
                Text(error_code(r.error), style="red"),
                "-",
                f"{r.duration * 1000:.1f} ms",
                describe(r.error),
            )
    return table


def transfer_summary(
    results: list[framekit.HostResult[tuple[framekit.FileInfo, str | None]]],
) -> Table:
    """A table of each host's transfer after a multi-host ``--put`` / ``--get``."""
    table = Table(title="summary", header_style="bold")
    table.add_column("host")
    table.add_column("status")
    table.add_column("bytes", justify="right")
    table.add_column("error")
    for r in results:
        if r.result is not None:
            table.add_row(r.label, Text("ok", style="green"), f"{r.result[0].size:,}", "")
        else:
            assert r.error is not None
            table.add_row(r.label, Text(error_code(r.error), style="red"), "-", describe(r.error))
    return table
