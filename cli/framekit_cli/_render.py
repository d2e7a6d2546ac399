"""Drawing framekit's result objects with rich. No behaviour lives here."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

import framekit

from ._exit import describe, error_code

#: Colours cycle per message, so a merged or split message shows at a glance.
PALETTE = ("cyan", "magenta", "yellow", "green", "blue", "red", "bright_white", "bright_cyan")
#: Width, in cells, of the sent-message strip; every strip uses the same scale.
STRIP_WIDTH = 44


def _cells(length: int, scale: float) -> int:
    return max(1, round(length / scale))


def _block(message: int, cells: int, char: str = "█") -> Text:
    return Text(char * cells, style=PALETTE[message % len(PALETTE)])


def strip_sent(sent: tuple[int, ...], scale: float) -> Text:
    """The messages as sent: one coloured block each, separated by spaces."""
    out = Text()
    for i, size in enumerate(sent):
        if i:
            out.append(" ")
        out.append_text(_block(i, _cells(size, scale)))
    return out


def strip_received(way: framekit.WayResult, scale: float) -> Text:
    """What each receive returned: blocks coloured by the message they came from.

    Receives are separated by a space; a truncated datagram's lost tail is drawn as ░.
    """
    out = Text()
    for r, read in enumerate(way.pieces):
        if r:
            out.append(" ")
        for piece in read:
            out.append_text(_block(piece.message, _cells(piece.length, scale)))
        if way.transport == "udp" and read:
            lost = way.sent[read[0].message] - read[0].length
            if lost > 0:
                out.append_text(_block(read[0].message, _cells(lost, scale), "░"))
    return out


def compare_report(report: framekit.CompareReport) -> RenderableType:
    """The picture of ``framekit compare``: a strip per way, then a table of figures."""
    opts = report.options
    scale = max(1.0, sum(opts.sizes) / STRIP_WIDTH)
    strips = Table.grid(padding=(0, 2))
    strips.add_column(justify="right", style="bold")
    strips.add_column()
    strips.add_row("sent", strip_sent(opts.sizes, scale))
    for way in report.ways:
        strips.add_row(way.title, strip_received(way, scale))

    figures = Table(show_edge=False, header_style="bold", pad_edge=False)
    columns = ("way", "got", "bounds", "merged", "split", "lost B", "reads", "ms", "msg/s")
    for column in columns:
        left = column in ("way", "bounds")
        figures.add_column(column, justify="left" if left else "right", no_wrap=column == "way")
    for way in report.ways:
        kept = Text("kept", style="green") if way.boundaries_kept else Text("broken", style="red")
        figures.add_row(
            way.title,
            f"{len(way.received)}/{len(way.sent)}",
            kept,
            str(way.merged),
            str(way.split),
            str(way.bytes_lost),
            str(way.transport_reads),
            f"{way.elapsed * 1000:.1f}",
            f"{way.messages_per_second:,.0f}",
        )

    notes = Table.grid(padding=(0, 1))
    notes.add_column(style="bold", justify="right")
    notes.add_column()
    for way in report.ways:
        notes.add_row(way.title + ":", way.note)
    parts: list[RenderableType] = [
        Text(
            f"{len(opts.sizes)} messages of {', '.join(map(str, opts.sizes))} bytes; receiver "
            f"reads {opts.read_size} B at a time; one cell ≈ {scale:.0f} B; receives are "
            "separated by spaces, colours are messages",
            style="dim",
        ),
        strips,
        Text(),
        figures,
        Text(),
        notes,
    ]
    if report.burst is not None:
        b = report.burst
        style = "red" if b.lost else "green"
        parts += [
            Text(),
            Text.assemble(
                ("UDP burst: ", "bold"),
                f"{b.sent} datagrams of {b.size} B sent with nobody reading; a "
                f"{b.rcvbuf:,}-byte receive buffer kept {b.received}, ",
                (f"{b.lost} lost", style),
                " (each one whole or not at all)",
            ),
        ]
    return Panel(Group(*parts), title="framekit compare: what the receiver got", expand=False)


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
