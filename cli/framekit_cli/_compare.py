"""``framekit compare``: the measured lesson, drawn with rich or dumped as JSON."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import trio
import typer
from rich.console import Console, RenderableType

import framekit

from . import _draw_compare
from ._app import address, app, usage
from ._exit import run_trio

__all__ = ["compare"]

_DEFAULTS = framekit.CompareOptions()


class Lesson(StrEnum):
    """The lessons ``compare`` can show."""

    framing = "framing"
    recv = "recv"
    lifecycle = "lifecycle"


#: Options that change only some lessons (the rest apply to every lesson).
_APPLIES: dict[str, frozenset[Lesson]] = {
    **dict.fromkeys(
        ["sleep", "reader", "repeat", "nagle", "burst", "burst_size", "tcp_echo", "udp_echo"],
        frozenset({Lesson.framing}),
    ),
    "size": frozenset({Lesson.framing, Lesson.recv}),
    "read_size": frozenset({Lesson.framing, Lesson.recv}),
    "count": frozenset({Lesson.framing, Lesson.lifecycle}),
}


class Reader(StrEnum):
    """When the receivers read (``CompareOptions.reader``)."""

    late = "late"
    eager = "eager"


@app.command()
def compare(
    ctx: typer.Context,
    lesson: Annotated[
        Lesson,
        typer.Argument(
            help="framing: the same messages sent five ways; recv: what recv does, "
            "call by call; lifecycle: connect, close, TIME_WAIT and rebinding a port.",
            show_default=True,
        ),
    ] = Lesson.framing,
    size: Annotated[
        list[int] | None,
        typer.Option(
            "--size",
            "-s",
            metavar="BYTES",
            help="A message size (repeat; framing's default 5 12 3000 7 40 600 1, "
            "recv's 600 300 500).",
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Send this many messages, going round the sizes (lifecycle: time this "
            "many connects, default 20).",
            min=1,
            show_default=False,
        ),
    ] = None,
    read_size: Annotated[
        int,
        typer.Option(
            metavar="BYTES", help="The receiver's read size (the tutorials' 1024).", min=1
        ),
    ] = _DEFAULTS.read_size,
    sleep: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Slept after each send in the sleep hack.", min=0),
    ] = _DEFAULTS.sleep,
    burst: Annotated[
        int, typer.Option(metavar="N", help="Datagrams in the UDP burst (0: skip it).", min=0)
    ] = _DEFAULTS.burst,
    burst_size: Annotated[
        int, typer.Option(metavar="BYTES", help="Bytes per burst datagram.", min=1, max=65507)
    ] = _DEFAULTS.burst_size,
    reader: Annotated[
        Reader,
        typer.Option(
            help="When every receiver reads: late (once the sender is done or stalled) or "
            "eager (from the start, as fast as it can).",
        ),
    ] = Reader.late,
    repeat: Annotated[
        int,
        typer.Option(
            metavar="N",
            help="Run N times and count, per way, the runs that kept, merged or split.",
            min=1,
            max=1000,
        ),
    ] = 1,
    nagle: Annotated[
        bool,
        typer.Option("--nagle", help="Nagle's algorithm on the raw TCP senders (TCP_NODELAY off)."),
    ] = False,
    tcp_echo: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="Run the TCP ways through this echo server (framekit serve --tcp-echo-port).",
            show_default=False,
        ),
    ] = None,
    udp_echo: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="Send the datagrams to this UDP echo server (framekit serve's).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(metavar="ADDRESS", help="The loopback address to run on (or ::1)."),
    ] = _DEFAULTS.host,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    svg: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Also save the picture as an SVG file.", dir_okay=False),
    ] = None,
) -> None:
    """Show why TCP needs framing, measured live on loopback, in three lessons.

    framing (the default) sends the same messages five ways and draws what the receiver
    got. It runs its own receivers on free loopback ports: raw TCP read in 1024-byte chunks,
    raw TCP with a sleep between sends, raw TCP with an ack per message, framekit
    framed TCP, and UDP datagrams (plus a burst larger than the receive buffer).

    Any size completes: messages of 1 B to 16 MiB, at most 100,000 of them and 256 MiB
    in all. The sleep hack is skipped when it would sleep over 10 s, and UDP for
    messages over 65,507 B; the output says so.

    The figures' columns: recv, receives that returned data (framekit: messages);
    bounds, every receive one whole message; merged, receives holding more than one
    message; split, messages cut over several receives; cut and lost, datagrams
    truncated to the read size and datagrams that never arrived; reads, reads of the
    socket, the final one that saw the end included; time, first send to last byte (a
    late receiver's wait included); msg/s, only for runs over 0.1 s.

    recv shows each recv(n) call: how long it blocked with nothing buffered, what it
    returned with more or less buffered than n, b'' after the peer closed, and a
    half-closed peer still receiving. lifecycle times connect(), reads the TCP states of
    both ends as each side closes first (Linux: /proc/net/tcp; elsewhere it says they
    cannot be seen), and rebinds the server's port with and without SO_REUSEADDR.

    Examples:

    \b
      framekit compare
      framekit compare recv
      framekit compare lifecycle --host ::1
      framekit compare --reader eager --sleep 0 --nagle
      framekit compare --size 1000 --count 1000 --sleep 0
      framekit compare --repeat 20
      framekit compare --json > result.json
      framekit compare --tcp-echo 127.0.0.1:7777 --udp-echo 127.0.0.1:9999
    """
    for name, lessons in _APPLIES.items():
        given = ctx.get_parameter_source(name)
        if lesson not in lessons and given is not None and given.name != "DEFAULT":
            flag = "--" + name.replace("_", "-")
            shown = " and ".join(sorted(x.value for x in lessons))
            usage(f"{flag} applies to the {shown} lesson{'s' if len(lessons) > 1 else ''} only")
    if svg is not None and not svg.parent.is_dir():  # before the run, not after it
        usage(f"--svg {svg}: no directory {svg.parent} to write it in")
    doc: dict[str, object]
    drawing: RenderableType
    if lesson is Lesson.recv:
        try:
            recv_options = framekit.RecvOptions(
                read_size=read_size,
                sizes=tuple(size) if size else framekit.RecvOptions().sizes,
                host=host,
            )
        except ValueError as exc:
            usage(str(exc))
        taught = run_trio(lambda: trio.run(framekit.run_recv_lesson, recv_options), failure_code=1)
        doc, drawing = taught.to_dict(), _draw_compare.recv_lesson(taught)
    elif lesson is Lesson.lifecycle:
        try:
            life_options = framekit.LifecycleOptions(connects=count or 20, host=host)
        except ValueError as exc:
            usage(str(exc))
        life = run_trio(
            lambda: trio.run(framekit.run_lifecycle_lesson, life_options), failure_code=1
        )
        doc, drawing = life.to_dict(), _draw_compare.lifecycle_lesson(life)
    else:
        doc, drawing = _framing(
            size,
            count,
            read_size,
            sleep,
            reader,
            repeat,
            nagle,
            burst,
            burst_size,
            host,
            tcp_echo,
            udp_echo,
        )
    if json_out:
        typer.echo(json.dumps(doc, indent=2))
        return
    console = Console(record=svg is not None, highlight=False)
    console.print(drawing)
    if svg is not None:
        try:
            console.save_svg(str(svg), title=f"framekit compare {lesson.value}")
        except OSError as exc:
            usage(f"--svg {svg}: {exc.strerror or exc}")


def _framing(
    size: list[int] | None,
    count: int | None,
    read_size: int,
    sleep: float,
    reader: Reader,
    repeat: int,
    nagle: bool,
    burst: int,
    burst_size: int,
    host: str,
    tcp_echo: str | None,
    udp_echo: str | None,
) -> tuple[dict[str, object], RenderableType]:
    """The framing lesson, once or ``repeat`` times: its document and its drawing."""
    try:
        sizes = tuple(size) if size else _DEFAULTS.sizes
        options = framekit.CompareOptions(
            sizes=framekit.cycle_sizes(sizes, count) if count else sizes,
            read_size=read_size,
            sleep=sleep,
            nodelay=not nagle,
            reader=reader.value,
            burst=burst,
            burst_size=burst_size,
            host=host,
            tcp_echo=address(tcp_echo, framekit.DEFAULT_PORT) if tcp_echo else None,
            udp_echo=address(udp_echo, framekit.DEFAULT_PORT) if udp_echo else None,
        )
    except ValueError as exc:
        usage(str(exc))
    if repeat > 1:
        repeated = run_trio(
            lambda: trio.run(framekit.run_compare_repeated, options, repeat), failure_code=1
        )
        return repeated.to_dict(), _draw_compare.repeat_report(repeated)
    report = run_trio(lambda: trio.run(framekit.run_compare, options), failure_code=1)
    return report.to_dict(), _draw_compare.framing_report(report)
