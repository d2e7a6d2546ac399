"""The docs show only Python that runs: every example is a file, and every file is run.

Pages include examples with the snippets syntax (``--8<-- "docs/examples/x.py"`` inside a
python fence), so the code a reader sees is the code executed here. The tutorial's step
scripts (``docs/tutorial/*.py``) follow the same rules; they are run, with their documented
output checked, by ``test_tutorial_steps.py``. This module also checks the site around
them: the ``compare`` picture, the generated CLI reference and the set-up commands.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from xml.etree import ElementTree

import pytest

import framekit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES_DIR = DOCS / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
TUTORIAL_DIR = DOCS / "tutorial"
TUTORIAL_STEPS = sorted(TUTORIAL_DIR.glob("*.py"))
#: Directories whose scripts pages may include: every script in them is run by a test.
TESTED_DIRS = (EXAMPLES_DIR, TUTORIAL_DIR)
PAGES = sorted(DOCS.rglob("*.md"))
API_REFERENCE = DOCS / "reference" / "api.md"

#: Fence info strings that mean Python (Pygments' names for Python and its console).
PYTHON_LANGUAGES = {"python", "python3", "py", "py3", "pycon", "pyi"}
#: An opening fence: indent, 3+ backticks or tildes, then the info string.
FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
#: The only line a python fence may hold: a snippets include of an example file,
#: optionally narrowed to lines or a section (``"docs/examples/x.py:3:10"``), or of a
#: tutorial step (``"docs/tutorial/step1_x.py"``).
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
    """Why each python fence in ``text`` is not solely includes of tested scripts."""
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
                    f'of a tested script (--8<-- "docs/examples/x.py"): {line!r}'
                )
                continue
            path = (ROOT / match["path"]).resolve()
            if path.parent not in TESTED_DIRS or path.suffix != ".py" or not path.is_file():
                problems.append(
                    f"line {line_number}: {match['path']!r} is not a tested script in "
                    "docs/examples/ or docs/tutorial/ (only those are run by the tests)"
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


def test_every_example_and_tutorial_step_is_shown() -> None:
    # A script no page includes is tested but invisible: probably a forgotten include.
    included = {
        (ROOT / match["path"]).resolve()
        for page in PAGES
        for _, body in python_fences(page.read_text(encoding="utf-8"))
        for line in body
        if (match := INCLUDE.match(line.strip()))
    }
    unused = [
        str(path.relative_to(DOCS))
        for path in [*EXAMPLES, *TUTORIAL_STEPS]
        if path.resolve() not in included
    ]
    assert not unused, f"scripts not included by any page: {unused}"


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
    assert "'README.md' is not a tested script" in problems[1]
    assert "line 17: empty python fence" in problems[2]


# -- the site around the examples ------------------------------------------------------

CLI_REFERENCE = DOCS / "reference" / "cli.md"
CLI_HOOK = DOCS / "hooks" / "cli_reference.py"


def load_cli_hook() -> ModuleType:
    """The mkdocs hook, loaded by path as mkdocs loads it (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("cli_reference_hook", CLI_HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Each picture of ``framekit compare`` in the docs, the lesson that draws it, and the
#: pages that show it. ``./scripts/figures`` makes them all.
PICTURES = {
    "compare.svg": ([], {"index.md", "tutorial/index.md"}),
    "compare-recv.svg": (["recv"], {"tutorial/index.md"}),
    "compare-lifecycle.svg": (["lifecycle"], {"tutorial/index.md"}),
}


def svg_lines(path: Path) -> list[str]:
    """The text of a rich SVG, line by line, with what varies between runs and machines
    folded away: the OS / Python / Trio line, buffer sizes, every digit is ``#``, every
    strip of blocks one ``▮``, spaces dropped (rich places
    each run of text by position, so spacing is not in the text itself)."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("class") == "rich-terminal"  # saved by rich, as `compare --svg` does
    rows: dict[float, list[tuple[float, str]]] = {}
    for text in root.iter("{http://www.w3.org/2000/svg}text"):
        if text.text and text.get("y"):
            rows.setdefault(float(text.get("y", 0)), []).append(
                (float(text.get("x", 0)), text.text)
            )
    lines = []
    for y in sorted(rows):
        line = "".join(t for _, t in sorted(rows[y])).replace("\xa0", "").replace(" ", "")
        # the machine line and buffer sizes name this machine (its kernel, its defaults)
        line = re.sub(r"^│?[A-Za-z]\S*,Python\S+,Trio[\d.]+", "<machine>", line)
        line = re.sub(r"[\d.]+(?:MiB|KiB)", "<size>", line)
        line = re.sub(r"[█░]+", "▮", re.sub(r"\d", "#", line))
        lines.append(line)
    return lines


def svg_text(path: Path) -> str:
    """:func:`svg_lines` as one text, borders and line breaks dropped and every number
    one ``#``: a timing with one digit more may wrap a line elsewhere, not change it."""
    text = "".join(svg_lines(path)).replace("│", "").replace("\n", "")
    return re.sub(r"#+", "#", text)


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_compare_pictures_are_current_and_shown(name: str, tmp_path: Path) -> None:
    args, pages = PICTURES[name]
    if args == ["lifecycle"] and not sys.platform.startswith("linux"):
        pytest.skip("the picture shows the TCP states Linux lists; elsewhere they are hidden")
    from typer.testing import CliRunner

    from framekit_cli.app import app

    fresh = tmp_path / name
    result = CliRunner().invoke(app, ["compare", *args, "--svg", str(fresh)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert svg_text(DOCS / "images" / name) == svg_text(fresh), (
        f"docs/images/{name} is out of date: run ./scripts/figures"
    )
    showing = {
        page.relative_to(DOCS).as_posix()
        for page in PAGES
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+\.svg)\)", page.read_text())
        if (page.parent / target).resolve() == (DOCS / "images" / name).resolve()
    }
    assert pages <= showing, showing


def test_cli_reference_is_generated_from_the_typer_app() -> None:
    # The page holds only a marker; the hook (registered in mkdocs.yml) renders the app.
    assert "docs/hooks/cli_reference.py" in (ROOT / "mkdocs.yml").read_text()
    page = CLI_REFERENCE.read_text()
    hook = load_cli_hook()
    assert len(hook.MARKER.findall(page)) == 1, "the CLI page needs exactly one marker"
    rendered = hook.on_page_markdown(page)
    assert not hook.MARKER.search(rendered)

    import typer.main

    from framekit_cli.app import app

    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name="framekit")
    commands = group.list_commands(ctx)  # type: ignore[attr-defined]
    assert set(commands) >= {"compare", "serve", "send"}
    for name in commands:
        command = group.get_command(ctx, name)  # type: ignore[attr-defined]
        section = rendered.split(f"## `framekit {name}`", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            for option in [*param.opts, *param.secondary_opts]:
                if param.param_type_name == "option":
                    assert f"{option}" in section, f"framekit {name}: {option} is not documented"
        assert (command.help or "").splitlines()[0] in section


def test_cli_reference_renders_help_details() -> None:
    rendered = load_cli_hook().on_page_markdown(CLI_REFERENCE.read_text())
    # Defaults and ranges come from click's help records, env vars too.
    assert "`default: 1024`, `x>=1`" in rendered
    assert "`env var: FRAMEKIT_TOKEN`" in rendered
    # Examples from the docstrings become shell blocks; exit codes a table.
    assert "```sh\nframekit compare\n" in rendered
    assert "| 255 | send, cat: framekit failed" in rendered and "| 141 |" in rendered
    assert "\b" not in rendered


def test_home_states_the_same_setup_commands_as_the_readme() -> None:
    def setup_block(text: str) -> str:
        block = re.search(r"```sh\n(.*?)```", text, re.S)
        assert block is not None
        return block.group(1)

    readme = (ROOT / "README.md").read_text()
    home = (DOCS / "index.md").read_text()
    assert setup_block(home) == setup_block(readme)


#: ```console blocks that show a framekit command and what it printed.
CLI_SESSION = re.compile(
    r"^```console\n\$ (?P<command>framekit [^\n]*)\n(?P<output>.*?)^```$", re.M | re.S
)
CLI_SESSIONS = [
    (page, match["command"], match["output"].splitlines())
    for page in PAGES
    for match in CLI_SESSION.finditer(page.read_text())
]


@pytest.mark.parametrize(
    ("page", "command", "lines"),
    CLI_SESSIONS,
    ids=[f"{page.relative_to(DOCS)}: {command}" for page, command, _ in CLI_SESSIONS],
)
def test_documented_cli_sessions_match(page: Path, command: str, lines: list[str]) -> None:
    # A documented `$ framekit ...` session is run (it must end by itself) and what it
    # printed, stdout then stderr, must match line for line; "..." stands for any text.
    args = [sys.executable, "-m", "framekit", *shlex.split(command)[1:]]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    printed = (result.stdout + result.stderr).splitlines()
    assert len(printed) == len(lines), f"{command} printed:\n{result.stdout}{result.stderr}"
    for documented, actual in zip(lines, printed, strict=True):
        pattern = ".*".join(re.escape(part) for part in documented.split("..."))
        assert re.fullmatch(pattern, actual), f"documented {documented!r}, printed {actual!r}"
