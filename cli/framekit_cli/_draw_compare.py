"""Drawing ``framekit compare``'s result objects with rich. No behaviour lives here.

Every drawing fits 80 columns whatever the run's size: long runs show their first
messages cell by cell and summarise the rest ("+N more"), and big figures are shortened
(``263k``).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

import framekit

__all__ = ["compact", "describe_sizes", "framing_report", "repeat_report", "seconds"]

#: Colours cycle per message, so a merged or split message shows at a glance.
PALETTE = ("cyan", "magenta", "yellow", "green", "blue", "red", "bright_white", "bright_cyan")
#: Cells for the messages drawn one by one (the first :data:`SHOWN` of a long run).
STRIP_WIDTH = 44
#: Widest a strip may get, suffix included (80 columns less the panel and the labels).
STRIP_MAX = 62
#: Messages drawn cell by cell; later ones are summarised.
SHOWN = 12

#: What each column of the figures table means (also in ``compare --help``).
LEGEND = (
    "recv: receives that returned data · bounds: each receive one whole message · "
    "merged: receives with >1 message · split: messages over >1 receive · cut / lost: "
    "datagrams truncated / never arrived · reads: socket reads, the final EOF read "
    "included · time: first send to last byte · msg/s: runs over 0.1 s only"
)


def compact(n: float) -> str:
    """A count in at most 5 characters: 9,999 / 12.3k / 263k / 1.2M."""
    if n < 10_000:
        return f"{n:,.0f}"
    for unit, scale in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if n / scale < 999.5:
            return f"{n / scale:.1f}{unit}" if n / scale < 99.95 else f"{n / scale:.0f}{unit}"
    return f"{n / 1e9:.0f}G"


def seconds(s: float) -> str:
    """A duration in at most 6 characters: 0.4ms / 143ms / 20.7s."""
    if s < 0.01:
        return f"{s * 1000:.1f}ms"
    if s < 1:
        return f"{s * 1000:.0f}ms"
    return f"{s:.1f}s" if s < 100 else f"{s:.0f}s"


def describe_sizes(sizes: Sequence[int]) -> str:
    """The message sizes in one short phrase, however many there are."""
    n = len(sizes)
    if n <= SHOWN:
        return f"{n} messages of {', '.join(map(str, sizes))} bytes"
    if len(set(sizes)) == 1:
        return f"{n:,} messages of {sizes[0]} bytes each"
    for period in range(2, SHOWN + 1):  # a pattern repeated (--count)
        if all(sizes[i] == sizes[i % period] for i in range(n)):
            pattern = ", ".join(map(str, sizes[:period]))
            return f"{n:,} messages of {pattern} bytes in turn"
    low, mid, high = min(sizes), statistics.median(sizes), max(sizes)
    return f"{n:,} messages of {low}-{high} bytes (median {mid:g})"


def _block(message: int, cells: int, char: str = "█") -> Text:
    return Text(char * cells, style=PALETTE[message % len(PALETTE)])


def _strip(groups: Sequence[list[Text]], unit: str) -> Text:
    """Groups of cells (a message, a receive) separated by spaces; as many as fit in
    :data:`STRIP_MAX` with "… +N more" after them when not all do."""
    widths = [sum(len(p) for p in parts) for parts in groups]
    count = len(groups)
    if sum(widths) + count - 1 > STRIP_MAX:
        used = 0
        for count, width in enumerate(widths):
            suffix = len(f" … +{len(groups) - count:,} {unit}s")
            if used + width + (1 if count else 0) + suffix > STRIP_MAX:
                break
            used += width + (1 if count else 0)
    out = Text()
    for i, parts in enumerate(groups[:count]):
        if i:
            out.append(" ")
        for part in parts:
            out.append_text(part)
    if count < len(groups):
        out.append(f" … +{len(groups) - count:,} {unit}s", style="dim")
    return out


def _scale(sizes: Sequence[int]) -> float:
    """Bytes per cell: the first :data:`SHOWN` messages fill :data:`STRIP_WIDTH`."""
    return max(1.0, sum(sizes[:SHOWN]) / STRIP_WIDTH)


def _cells(length: int, scale: float) -> int:
    return max(1, round(length / scale))


def strip_sent(sent: Sequence[int], scale: float) -> Text:
    """The messages as sent: one coloured block each, separated by spaces."""
    shown = sent[: STRIP_MAX // 2]  # no more than could ever fit
    groups = [[_block(i, _cells(size, scale))] for i, size in enumerate(shown)]
    return _strip(groups + [[]] * (len(sent) - len(shown)), "message")


def strip_received(way: framekit.WayResult, scale: float) -> Text:
    """What each receive returned: blocks coloured by the message they came from;
    receives separated by a space; a truncated datagram's lost tail drawn as ░."""
    groups: list[list[Text]] = []
    for read in way.pieces:
        if len(groups) > STRIP_MAX // 2:
            groups.append([])  # never drawn: counted in "+N more"
            continue
        parts = [_block(p.message, _cells(p.length, scale)) for p in read]
        if way.transport == "udp" and read:
            lost = way.sent[read[0].message] - read[0].length
            if lost > 0:
                parts.append(_block(read[0].message, _cells(lost, scale), "░"))
        groups.append(parts)
    return _strip(groups, "receive")


def _figures(report: framekit.CompareReport) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    columns = ("way", "recv", "bounds", "merged", "split", "cut", "lost", "reads", "time")
    for column in (*columns, "msg/s"):
        left = column in ("way", "bounds")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for way in report.ways:
        kept = Text("kept", style="green") if way.boundaries_kept else Text("broken", style="red")
        rate = way.messages_per_second
        table.add_row(
            way.title,
            compact(len(way.received)),
            kept,
            compact(way.merged),
            compact(way.split),
            Text(compact(way.truncated), style="red" if way.truncated else ""),
            Text(compact(way.lost), style="red" if way.lost else ""),
            compact(way.transport_reads),
            seconds(way.elapsed),
            "-" if rate is None else compact(rate),
        )
    return table


def framing_report(report: framekit.CompareReport) -> RenderableType:
    """The framing lesson: a strip per way, a table of figures, then notes."""
    opts = report.options
    scale = _scale(opts.sizes)
    strips = Table.grid(padding=(0, 1))
    strips.add_column(justify="right", style="bold", no_wrap=True)
    strips.add_column(no_wrap=True)
    strips.add_row("sent", strip_sent(opts.sizes, scale))
    for way in report.ways:
        strips.add_row(way.title, strip_received(way, scale))

    notes = Table.grid(padding=(0, 1))
    notes.add_column(style="bold", justify="right", no_wrap=True)
    notes.add_column()
    for way in report.ways:
        notes.add_row(way.title + ":", way.note)
    for key, why in report.skipped.items():
        notes.add_row(key + ":", Text(f"skipped: {why}", style="yellow"))
    reader = (
        "once the sender is done or stalled"
        if opts.reader == "late"
        else "from the start, as fast as it can"
    )
    parts: list[RenderableType] = [
        *conditions(report.conditions),
        Text(
            f"{describe_sizes(opts.sizes)}; the receiver reads {opts.read_size} B at a time, "
            f"{reader} (--reader {opts.reader}); one cell ≈ {scale:,.0f} B; receives are "
            "separated by spaces, colours are messages",
            style="dim",
        ),
        strips,
        Text(),
        _figures(report),
        Text(LEGEND, style="dim"),
        Text(),
        notes,
    ]
    if report.burst is not None:
        b = report.burst
        parts += [
            Text(),
            Text.assemble(
                ("UDP burst: ", "bold"),
                f"{b.sent:,} datagrams of {b.size} B sent with nobody reading; a "
                f"{b.rcvbuf:,}-byte receive buffer kept {b.received:,}, ",
                (f"{b.lost:,} lost", "red" if b.lost else "green"),
                " (each one whole or not at all)",
            ),
        ]
    return Panel(Group(*parts), title="framekit compare: what the receiver got", expand=False)


def conditions(found: framekit.Conditions | None) -> list[RenderableType]:
    """The OS and socket settings behind the figures, two dim lines (none if unknown)."""
    if found is None:
        return []
    return [Text(line, style="dim") for line in found.describe()]


def _runs(n: int, runs: int, style: str) -> Text:
    return Text(f"{n}/{runs}", style=style if n else "")


def repeat_report(report: framekit.RepeatReport) -> RenderableType:
    """``--repeat``: how often each way kept, merged or split, with the spread of times."""
    opts = report.options
    runs = report.runs
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    for column in ("way", "exact", "bounds", "merged", "split", "lossy", "min", "median", "max"):
        table.add_column(column, justify="left" if column == "way" else "right", no_wrap=True)
    lines = []
    for way in report.ways:
        low, mid, high = way.elapsed_spread
        table.add_row(
            way.title,
            _runs(way.exact, runs, "green"),
            _runs(way.kept, runs, "green"),
            _runs(way.merged, runs, "red"),
            _runs(way.split, runs, "red"),
            _runs(way.lossy, runs, "red"),
            seconds(low),
            seconds(mid),
            seconds(high),
        )
        happened = [
            f"{verb} in {n}/{runs}"
            for verb, n in (
                ("exact", way.exact),
                ("merged", way.merged),
                ("split", way.split),
                ("cut or lost datagrams", way.lossy),
            )
            if n
        ]
        if way.lossy and way.kept:
            happened.append(f"boundaries kept in {way.kept}/{runs}")
        lines.append(f"{way.title} {', '.join(happened) or 'nothing to report'}")
    for key, why in report.skipped.items():
        lines.append(f"{key}: skipped: {why}")
    return Panel(
        Group(
            *conditions(report.conditions),
            Text(
                f"{describe_sizes(opts.sizes)}, {runs} runs, read {opts.read_size} B at a "
                f"time (--reader {opts.reader})",
                style="dim",
            ),
            table,
            Text(
                "runs in which: exact, every message came whole in its own receive; bounds, "
                "no receive held more or less than one message (UDP: always); merged, split, "
                "lossy: some receive merged, some message split, some datagram cut or "
                "lost. min / median / max: first send to last byte",
                style="dim",
            ),
            Text(),
            Text("; ".join(lines)),
        ),
        title=f"framekit compare: {runs} runs",
        expand=False,
    )


# -- the recv lesson ------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"


def _call_strip(call: framekit.RecvCall, scale: float) -> Text:
    if call.eof:
        return Text("b''", style="bold red")
    out = Text()
    for piece in call.pieces:
        out.append_text(_block(piece.message, _cells(piece.length, scale)))
    return out


def recv_lesson(lesson: framekit.RecvLesson) -> RenderableType:
    """``compare recv``: every ``recv`` call of each step, drawn and measured."""
    largest = max(c.length for step in lesson.steps for c in step.calls)
    scale = max(1.0, largest / 24)
    parts: list[RenderableType] = [
        *conditions(lesson.conditions),
        Text(
            "each recv(n) call: the bytes it returned (one colour per message, b'' for the "
            f"end of the stream; one cell ≈ {scale:,.0f} B), the bytes still unread after "
            "it, and how long it blocked",
            style="dim",
        ),
    ]
    for step in lesson.steps:
        calls = Table.grid(padding=(0, 1))
        for justify in ("right", "left", "right", "left", "right", "right"):
            calls.add_column(justify=justify, no_wrap=True)
        for call in step.calls:
            calls.add_row(
                call.by,
                f"recv({call.max_bytes})",
                f"{call.length:,} B",
                _call_strip(call, scale),
                f"left {call.left:,}",
                _ms(call.blocked),
            )
        parts += [
            Text(),
            Text.assemble((f"{step.key}: ", "bold"), step.title),
            calls,
            Text(step.note, style="italic"),
        ]
    return Panel(Group(*parts), title="framekit compare recv: what recv does", expand=False)


# -- the lifecycle lesson -------------------------------------------------------------

#: Colours of the TCP states a learner meets.
STATE_STYLE = {
    "ESTABLISHED": "green",
    "FIN_WAIT1": "yellow",
    "FIN_WAIT2": "yellow",
    "CLOSE_WAIT": "magenta",
    "LAST_ACK": "magenta",
    "TIME_WAIT": "bold red",
    "CLOSED": "dim",
}


def _state(states: framekit.TcpStates, role: str) -> Text:
    value = states.client if role == "client" else states.server
    if value is None:
        return Text("not observable", style="dim")
    text = Text(value, style=STATE_STYLE.get(value, ""))
    if value == "TIME_WAIT" and states.time_wait_left is not None:
        text.append(f" {states.time_wait_left:.0f} s", style="dim")
    return text


def lifecycle_lesson(lesson: framekit.LifecycleLesson) -> RenderableType:
    """``compare lifecycle``: the handshake's cost, both closing orders, the rebind."""
    hs = lesson.handshake
    rtt = f"; kernel RTT estimate {hs.rtt_us} µs" if hs.rtt_us is not None else ""
    handshake = Text.assemble(
        ("handshake: ", "bold"),
        f"connect() took {hs.min_us:.0f} / {hs.median_us:.0f} / {hs.max_us:.0f} µs "
        f"(min / median / max of {len(hs.samples_us)}){rtt}; before accept(): client ",
        _state(hs.before_accept, "client"),
        ", server ",
        _state(hs.before_accept, "server"),
    )
    closes = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    for column in ("closed first", "moment", "client", "server"):
        closes.add_column(column, no_wrap=True)
    for run in lesson.closes:
        for i, states in enumerate((run.established, run.half_closed, run.closed)):
            moment = {"half_closed": "after 1st close", "closed": "both closed"}.get(
                states.moment, states.moment
            )
            closes.add_row(
                run.first_closer if i == 0 else "",
                moment,
                _state(states, "client"),
                _state(states, "server"),
            )
    binds = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    for column in ("old server", "new socket", "bind()"):
        binds.add_column(column, no_wrap=True)
    for attempt in lesson.rebind.attempts:
        result = (
            Text("bound", style="green")
            if attempt.ok
            else Text(f"{attempt.errno_name or attempt.errno}: {attempt.error}", style="red")
        )
        binds.add_row(
            "SO_REUSEADDR" if attempt.old_reuseaddr else "no SO_REUSEADDR",
            "SO_REUSEADDR" if attempt.reuseaddr else "no SO_REUSEADDR",
            result,
        )
    notes = Group(
        *(Text(run.note, style="italic") for run in lesson.closes),
        Text(lesson.rebind.note, style="italic"),
    )
    reasons = {s.reason for run in lesson.closes for s in (run.established, run.closed) if s.reason}
    parts: list[RenderableType] = [*conditions(lesson.conditions), handshake]
    parts += [Text(hs.note, style="italic"), Text(), closes]
    parts += [Text(f"not observable: {r}", style="yellow") for r in sorted(reasons)]
    parts += [Text(), Text("rebinding the port of a server that closed first:", style="bold")]
    parts += [binds, Text(), notes]
    return Panel(
        Group(*parts),
        title=f"framekit compare lifecycle: a connection's life ({lesson.platform})",
        expand=False,
    )
