"""The typer application behind the ``framekit`` console script."""

from __future__ import annotations

from typing import Annotated

import trio
import typer
from rich.console import Console
from rich.table import Table

import framekit
from framekit._demo import DEFAULT_DEMO_SIZES, run_demo

app = typer.Typer(
    name="framekit",
    help="Message framing over TCP, with UDP as the contrast: a Trio toolkit.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"framekit {framekit.__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Message framing over TCP, with UDP as the contrast: a Trio toolkit."""


@app.command()
def demo(
    sizes: Annotated[
        list[int] | None,
        typer.Option("--size", "-s", help="Message sizes to send (repeat the option).", min=0),
    ] = None,
) -> None:
    """Send the same messages raw and framed over loopback TCP; show what arrived.

    Example: [bold]framekit demo --size 5 --size 3000 --size 7[/bold]
    """
    result = trio.run(run_demo, tuple(sizes) if sizes else DEFAULT_DEMO_SIZES)
    console = Console()
    table = Table(title="What the receiver got (sizes in bytes)")
    table.add_column("way")
    table.add_column("pieces")
    table.add_column("boundaries kept")
    table.add_row("sent", " ".join(map(str, result.sent)), "")
    table.add_row(
        "raw TCP, recv(1024)",
        " ".join(map(str, result.raw_reads)),
        "[green]yes[/]" if result.raw_boundaries_kept else "[red]no[/]",
    )
    table.add_row(
        "framekit framed",
        " ".join(map(str, result.framed)),
        "[green]yes[/]" if result.framed_exact else "[red]no[/]",
    )
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    app()
