"""MkDocs hook: the CLI reference, rendered from the typer app at build time.

``docs/reference/cli.md`` holds the marker line ``<!-- cli-reference: framekit_cli.app:app
framekit -->`` (module, app object, program name). At build time this hook replaces it
with Markdown made from the app itself: the click command typer builds
(``typer.main.get_command``), its commands, their help and examples, usage lines and
every option with the help text and ``[default: ...]`` that ``--help`` prints. Nothing
is copied by hand, so the page cannot drift from the CLI; ``mkdocs serve`` rebuilds it
when ``cli/`` changes (``watch:`` in mkdocs.yml).

Loaded by path from mkdocs.yml (``hooks: [docs/hooks/cli_reference.py]``); the tests
import it the same way and check that every command and option appears.
"""

from __future__ import annotations

import html
import importlib
import re
from typing import Any

import typer
import typer.main

#: ``<!-- cli-reference: module:attribute program -->``
MARKER = re.compile(
    r"^<!-- cli-reference: (?P<module>[\w.]+):(?P<attr>\w+) (?P<prog>[\w-]+) -->$", re.M
)
#: click appends defaults, ranges and env vars to an option's help as "  [a; b; c]".
_EXTRA = re.compile(r"^(?P<help>.*?)\s*\[(?P<extra>[^\[\]]*)\]$", re.S)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace the marker, if the page has one, with the generated reference."""
    return MARKER.sub(lambda m: render(_load(m["module"], m["attr"]), m["prog"]), markdown)


def _load(module: str, attribute: str) -> typer.Typer:
    app = getattr(importlib.import_module(module), attribute)
    if not isinstance(app, typer.Typer):
        raise TypeError(f"{module}:{attribute} is not a typer.Typer")
    return app


def render(app: typer.Typer, prog: str) -> str:
    """The whole reference: the program, then each of its commands."""
    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name=prog)
    out = [_command(group, ctx, anchor=prog)]
    if hasattr(group, "list_commands"):  # a typer app with several commands
        out += _command_table(group, ctx)
        out += _exit_codes(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            out.append(_command(command, typer.Context(command, info_name=name, parent=ctx)))
    return "\n".join(out)


def _command(command: Any, ctx: typer.Context, anchor: str | None = None) -> str:
    path = ctx.command_path
    lines = [f"## `{path}` {{#{anchor or command.name}}}", ""]
    description, examples = _split_examples(command.help or "")
    if description:
        lines += [_text(description), ""]
    lines += ["```text", f"{path} {' '.join(command.collect_usage_pieces(ctx))}", "```", ""]
    if examples:
        lines += ["Examples:", "", "```sh", *examples, "```", ""]
    lines += _parameters(command, ctx, "argument", "Arguments")
    lines += _parameters(command, ctx, "option", "Options")
    return "\n".join(lines)


def _split_examples(help_text: str) -> tuple[str, list[str]]:
    """The description, and the command lines of an ``Examples:`` section at its end."""
    description, found, examples = help_text.partition("\nExamples:")
    if not found:
        return help_text.strip(), []
    # "\b" lines are click's marks for "do not rewrap the next paragraph".
    lines = [line.strip() for line in examples.splitlines()]
    return description.strip(), [line for line in lines if line and line != "\b"]


def _parameters(command: Any, ctx: typer.Context, kind: str, title: str) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if param.param_type_name != kind or record is None:
            continue
        names, help_text = record
        if kind == "argument" and not help_text:
            help_text = getattr(param, "help", None) or ""
        match = _EXTRA.match(help_text)
        details = match["extra"] if match else ""
        help_text = match["help"] if match else help_text
        rows.append(f"| `{names}` | {_cell(help_text)} | {_cell(_code(details))} |")
    if not rows:
        return []
    return [
        f"{title}:",
        "",
        "| Name | Description | Default, range, env |",
        "|---|---|---|",
        *rows,
        "",
    ]


def _command_table(group: Any, ctx: typer.Context) -> list[str]:
    lines = ["Commands:", "", "| Command | What it does |", "|---|---|"]
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            summary = command.get_short_help_str(limit=200)
            lines.append(f"| [`{name}`](#{name}) | {_cell(summary)} |")
    return [*lines, ""]


def _exit_codes(group: Any) -> list[str]:
    """The epilog's "Exit codes:" list (a "CODE  meaning" line each) as a table."""
    epilog = (group.epilog or "").strip()
    if not epilog.startswith("Exit codes:"):
        return [_text(epilog), ""] if epilog else []
    lines = ["Exit codes:", "", "| Code | Meaning |", "|---|---|"]
    for row in epilog.splitlines()[1:]:
        if match := re.match(r"^\s+(\S+)\s+(.+)$", row):
            lines.append(f"| {match[1]} | {_cell(match[2])} |")
    return [*lines, ""]


def _code(details: str) -> str:
    """Each ``; ``-separated detail ("default: 1024", "x>=1") as inline code."""
    return ", ".join(f"`{part.strip()}`" for part in details.split(";") if part.strip())


def _text(text: str) -> str:
    """Help text as Markdown: HTML special characters escaped outside `code`."""
    parts = text.split("`")
    return "`".join(
        part if i % 2 else html.escape(part, quote=False) for i, part in enumerate(parts)
    )


def _cell(text: str) -> str:
    """Text for a table cell: one line, pipes escaped."""
    return " ".join(_text(text).split()).replace("|", "\\|")
