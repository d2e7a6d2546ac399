"""The docs show only Python that runs: every example is a file, and every file is run.

Pages include examples with the snippets syntax (``--8<-- "docs/examples/x.py"`` inside a
python fence), so the code a reader sees is the code executed here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import framekit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES_DIR = DOCS / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
PAGES = sorted(DOCS.rglob("*.md"))
API_REFERENCE = DOCS / "reference" / "api.md"

#: Fence info strings that mean Python (Pygments' names for Python and its console).
PYTHON_LANGUAGES = {"python", "python3", "py", "py3", "pycon", "pyi"}
#: An opening fence: indent, 3+ backticks or tildes, then the info string.
FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
#: The only line a python fence may hold: a snippets include of an example file,
#: optionally narrowed to lines or a section (``"docs/examples/x.py:3:10"``).
INCLUDE = re.compile(r"""^-{1,3}8<-{1,3}\s+(["'])(?P<path>[^"':]+)(?::[\w-]+)*\1$""")


def python_fences(text: str) -> list[tuple[int, list[str]]]:
    """(line number, body lines) of every python fenced code block in a Markdown text."""
    fences: list[tuple[int, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE_OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        fence = match["fence"]
        # "python", "{.python}", "python title="x.py"", "py linenums="1"" ...
        language = re.sub(r"^\{?\s*\.?", "", match["info"]).split(" ")[0].split("}")[0]
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not close.match(lines[i]):
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence
        if language.lower() in PYTHON_LANGUAGES:
            fences.append((start + 1, body))
    return fences


def fence_problems(text: str) -> list[str]:
    """Why each python fence in ``text`` is not solely includes of existing examples."""
    problems = []
    for line_number, body in python_fences(text):
        lines = [line.strip() for line in body if line.strip()]
        if not lines:
            problems.append(f"line {line_number}: empty python fence")
        for line in lines:
            match = INCLUDE.match(line)
            if match is None:
                problems.append(
                    f"line {line_number}: python fence contains code instead of an include "
                    f'of a tested example (--8<-- "docs/examples/x.py"): {line!r}'
                )
                continue
            path = (ROOT / match["path"]).resolve()
            if path.parent != EXAMPLES_DIR or path.suffix != ".py" or not path.is_file():
                problems.append(
                    f"line {line_number}: {match['path']!r} is not an example file in "
                    "docs/examples/ (only those are run by this test module)"
                )
    return problems


def test_there_are_examples_and_pages() -> None:
    # Guards the parametrised tests below against silently collecting nothing.
    assert EXAMPLES, f"no examples in {EXAMPLES_DIR}"
    assert PAGES, f"no pages in {DOCS}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(example: Path) -> None:
    # As a reader would run it, from the repository root. -W error: an example that
    # triggers a warning (a deprecation, say) is out of date.
    result = subprocess.run(
        [sys.executable, "-W", "error", str(example.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (
        f"{example.name} exited with {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda path: str(path.relative_to(DOCS)))
def test_python_in_docs_is_only_included_examples(page: Path) -> None:
    problems = fence_problems(page.read_text(encoding="utf-8"))
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_every_example_is_shown() -> None:
    # An example no page includes is tested but invisible: probably a forgotten include.
    included = {
        (ROOT / match["path"]).resolve()
        for page in PAGES
        for _, body in python_fences(page.read_text(encoding="utf-8"))
        for line in body
        if (match := INCLUDE.match(line.strip()))
    }
    unused = [path.name for path in EXAMPLES if path.resolve() not in included]
    assert not unused, f"examples not included by any page: {unused}"


def test_api_reference_documents_every_public_name() -> None:
    # mkdocstrings renders what the page asks for, so a name added to __all__ but not to
    # the page would be missing from the reference without any build warning.
    documented = set(re.findall(r"^::: framekit\.(\w+)\s*$", API_REFERENCE.read_text(), re.M))
    missing = sorted(set(framekit.__all__) - documented)
    assert not missing, f"add these to {API_REFERENCE.relative_to(ROOT)}: {missing}"
    stale = sorted(documented - set(framekit.__all__))
    assert not stale, f"no longer in framekit.__all__, remove from the API page: {stale}"


def test_scripts_named_in_the_docs_exist() -> None:
    named = {
        name for page in PAGES for name in re.findall(r"\./scripts/([\w.-]+)", page.read_text())
    }
    missing = sorted(name for name in named if not (ROOT / "scripts" / name).is_file())
    assert not missing, f"the docs name scripts that do not exist: {missing}"


def test_fence_check_catches_untested_python() -> None:
    page = (
        "Text.\n\n"
        '```python\n--8<-- "docs/examples/framed_echo.py"\n```\n\n'
        "```py title=\"inline.py\"\nprint('not run by any test')\n```\n\n"
        '=== "Tab"\n\n    ```python\n    --8<-- "README.md"\n    ```\n\n'
        "~~~~{.python}\n~~~~\n\n"
        "```console\n$ python -c 'ignored: not a python fence'\n```\n"
    )
    problems = fence_problems(page)
    assert len(problems) == 3, problems
    assert "line 7: python fence contains code" in problems[0]
    assert "'README.md' is not an example file" in problems[1]
    assert "line 17: empty python fence" in problems[2]
