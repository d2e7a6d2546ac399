"""Griffe extension: render the reST roles in framekit's docstrings as Markdown.

framekit's docstrings are Google style but cross-reference with Sphinx roles
(:class:`FrameFormat`, :meth:`receive`, :data:`NEED_DATA`). mkdocstrings renders Markdown,
where those roles would show up literally as ":class:FrameFormat". This rewrites each role,
before the docstring is parsed, into an autorefs link when it names something the API
reference renders (a name in ``framekit.__all__``, or a member of one), and into inline
code otherwise (``trio.abc.Channel``, ``struct.Struct``), so ``mkdocs build --strict``
never meets an unresolvable link.

A ``Raises:`` entry that is a sentence rather than ``Type: description`` ("The same errors
as :meth:`receive`.") would make griffe warn once its role is gone, so it is moved out of
the section into a paragraph ("Raises the same errors as receive().") instead.
Docstrings without roles are left alone.

Loaded by path from mkdocs.yml (``extensions: [docs/griffe_rst_roles.py]``).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(class|meth|func|data|attr|exc|mod|obj):`(~?)([\w.]+)`")
_CALLABLE_ROLES = {"meth", "func"}


class RstRoles(griffe.Extension):
    """Rewrite ``:role:`target``` in every docstring of the package as Markdown."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "framekit":
            return
        public = {str(name) for name in pkg.exports or ()}
        for obj in _walk(pkg):
            if obj.docstring is not None and _ROLE.search(obj.docstring.value):
                rewrite = functools.partial(_rewrite, obj=obj, pkg=pkg, public=public)
                text = _ROLE.sub(rewrite, obj.docstring.value)
                obj.docstring.value = _move_sentences_out_of_raises(text)


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def _move_sentences_out_of_raises(docstring: str) -> str:
    lines = docstring.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() != "Raises:":
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        items: list[list[str]] = []  # each item: its first line and continuation lines
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            stripped = lines[i].strip()
            is_item_start = len(lines[i]) - len(lines[i].lstrip()) == indent + 4
            if stripped and (is_item_start or not items):
                items.append([lines[i]])
            elif stripped:
                items[-1].append(lines[i])
            i += 1
        # griffe splits an item at its first colon ("Type: description"); none, it warns.
        kept = [item for item in items if ":" in item[0]]
        sentences = [" ".join(s.strip() for s in item) for item in items if item not in kept]
        for sentence in sentences:
            verb = "Also raises" if kept else "Raises"
            if sentence[:1].isupper() and sentence[1:2].islower():  # "The same ..."
                sentence = sentence[:1].lower() + sentence[1:]
            out += [" " * indent + f"{verb} {sentence}", ""]
        if kept:
            out.append(line)
            out += [text for item in kept for text in item]
        if i < len(lines):
            out.append("")  # the blank line that ended the section
    return "\n".join(out)


def _rewrite(match: re.Match[str], obj: griffe.Object, pkg: griffe.Module, public: set[str]) -> str:
    role, short, target = match.groups()
    text = target.rsplit(".", 1)[-1] if short else target
    if role in _CALLABLE_ROLES:
        text += "()"
    path = _public_path(target.removeprefix("framekit."), obj, pkg, public)
    return f"[`{text}`][{path}]" if path else f"`{text}`"


def _public_path(
    target: str, obj: griffe.Object, pkg: griffe.Module, public: set[str]
) -> str | None:
    """``framekit.Name[.member]`` if the API reference renders it, else ``None``."""
    head, _, member = target.partition(".")
    if head not in public:
        # A bare member name (:meth:`receive`) refers to the enclosing class.
        cls = obj if obj.is_class else obj.parent
        if cls is None or not cls.is_class or cls.name not in public or "." in target:
            return None
        head, member = cls.name, target
    if not member:
        return f"framekit.{head}"
    owner = pkg[head]
    if member.startswith("_") or member not in owner.members:
        return None
    return f"framekit.{head}.{member}"
