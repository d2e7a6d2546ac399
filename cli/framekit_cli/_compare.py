"""``framekit compare``: the measured lesson, drawn with rich or dumped as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import trio
import typer
from rich.console import Console

import framekit

from . import _render
from ._app import address, app, usage
from ._exit import run_trio

__all__ = ["compare"]

_DEFAULTS = framekit.CompareOptions()


@app.command()
def compare(
    size: Annotated[
        list[int] | None,
        typer.Option(
            "--size",
            "-s",
            metavar="BYTES",
            help="A message size (repeat; default 5 12 3000 7 40 600 1).",
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Send this many messages, going round the sizes.",
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
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    svg: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Also save the picture as an SVG file.", dir_okay=False),
    ] = None,
) -> None:
    """Show why TCP needs framing: the same messages sent five ways, and what arrived.

    Runs its own receivers on free loopback ports: raw TCP read in 1024-byte chunks,
    raw TCP with a sleep between sends, raw TCP with an ack per message, framekit
    framed TCP, and UDP datagrams (plus a burst larger than the receive buffer).

    Examples:

    \b
      framekit compare
      framekit compare --size 100 --size 5000 --nagle
      framekit compare --size 100 --count 1000 --sleep 0
      framekit compare --json > result.json
      framekit compare --tcp-echo 127.0.0.1:7777 --udp-echo 127.0.0.1:9999
    """
    if svg is not None and not svg.parent.is_dir():  # before the run, not after it
        usage(f"--svg {svg}: no directory {svg.parent} to write it in")
    try:
        sizes = tuple(size) if size else _DEFAULTS.sizes
        options = framekit.CompareOptions(
            sizes=framekit.cycle_sizes(sizes, count) if count else sizes,
            read_size=read_size,
            sleep=sleep,
            nodelay=not nagle,
            burst=burst,
            burst_size=burst_size,
            tcp_echo=address(tcp_echo, framekit.DEFAULT_PORT) if tcp_echo else None,
            udp_echo=address(udp_echo, framekit.DEFAULT_PORT) if udp_echo else None,
        )
    except ValueError as exc:
        usage(str(exc))
    report = run_trio(lambda: trio.run(framekit.run_compare, options), failure_code=1)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    console = Console(record=svg is not None, highlight=False)
    console.print(_render.compare_report(report))
    if svg is not None:
        try:
            console.save_svg(str(svg), title="framekit compare")
        except OSError as exc:
            usage(f"--svg {svg}: {exc.strerror or exc}")
