"""The tutorial's steps are scripts that run, in order, and print what the page says.

Each ``docs/tutorial/stepN_*.py`` is run as a reader would run it, from the repository
root. The tutorial page includes every step, in order, from its file (the include rules
themselves are checked by ``test_docs_examples.py``), and each ``console`` block that
starts with ``$ python docs/tutorial/<step>.py`` must match what that step printed:
line for line, where ``...`` in a documented line stands for any text (timings, counts
that vary from run to run).
"""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL_DIR = ROOT / "docs" / "tutorial"
PAGE = TUTORIAL_DIR / "index.md"
STEPS = sorted(TUTORIAL_DIR.glob("*.py"), key=lambda path: path.name)
STEP_NAME = re.compile(r"^step(?P<number>\d+)_[a-z0-9_]+\.py$")
#: A step must finish well within this (they take about a second each).
TIME_LIMIT = 20.0
#: ```console blocks that show a step's output: the command line, then the output.
OUTPUT_BLOCK = re.compile(
    r"^```console\n\$ python (?P<script>docs/tutorial/\S+\.py)\n(?P<output>.*?)^```$", re.M | re.S
)


@cache
def run_step(script: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run one step (once per test session) as a reader would; -W error: no warnings."""
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-W", "error", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.monotonic() - start


def step_number(path: Path) -> int:
    match = STEP_NAME.match(path.name)
    assert match, f"{path.name}: name tutorial scripts stepN_what.py"
    return int(match["number"])


def test_steps_are_numbered_from_one_without_gaps() -> None:
    assert STEPS, f"no tutorial steps in {TUTORIAL_DIR}"
    numbers = sorted(step_number(path) for path in STEPS)
    assert numbers == list(range(1, len(STEPS) + 1)), numbers


def test_the_page_includes_every_step_once_in_order() -> None:
    included = re.findall(r'^-{1,3}8<-{1,3}\s+"docs/tutorial/([^"]+)"$', PAGE.read_text(), re.M)
    assert included == [path.name for path in sorted(STEPS, key=step_number)]


@pytest.mark.parametrize("step", STEPS, ids=lambda path: path.name)
def test_step_runs_standalone(step: Path) -> None:
    result, elapsed = run_step(step.relative_to(ROOT).as_posix())
    assert result.returncode == 0, (
        f"{step.name} exited with {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    assert elapsed < TIME_LIMIT, f"{step.name} took {elapsed:.1f} s"
    assert result.stdout.strip(), f"{step.name} should say what it showed"


@pytest.mark.parametrize("step", STEPS, ids=lambda path: path.name)
def test_step_stays_on_loopback(step: Path) -> None:
    # Every address a step names is 127.0.0.1 (with port 0); nothing leaves the machine.
    text = step.read_text()
    assert set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text)) <= {"127.0.0.1"}
    assert "localhost" not in text and "0.0.0.0" not in text
    for port in re.findall(r'"127\.0\.0\.1", (\w+)\)', text):
        assert port == "0", f"{step.name} binds a fixed port {port}"


def documented_outputs() -> list[tuple[str, list[str]]]:
    return [
        (match["script"], match["output"].splitlines())
        for match in OUTPUT_BLOCK.finditer(PAGE.read_text())
    ]


def test_every_step_shows_its_output() -> None:
    shown = [script for script, _ in documented_outputs()]
    assert shown == [step.relative_to(ROOT).as_posix() for step in sorted(STEPS, key=step_number)]


@pytest.mark.parametrize(
    ("script", "lines"),
    documented_outputs(),
    ids=[Path(script).name for script, _ in documented_outputs()],
)
def test_documented_output_matches(script: str, lines: list[str]) -> None:
    if "struct_i_trap" in script and sys.byteorder != "little":
        pytest.skip("the page shows what step 5 prints on a little-endian machine")
    if "lifecycle" in script and not sys.platform.startswith("linux"):
        pytest.skip("the page shows what step 9 prints on Linux; elsewhere TCP states are hidden")
    result, _ = run_step(script)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    assert len(printed) == len(lines), f"{script} printed:\n{result.stdout}"
    for documented, actual in zip(lines, printed, strict=True):
        pattern = ".*".join(re.escape(part) for part in documented.split("..."))
        assert re.fullmatch(pattern, actual), f"documented {documented!r}, printed {actual!r}"


def test_from_here_to_a_real_server_works_as_typed(tmp_path: Path) -> None:
    """The block is typed literally in a fresh clone's root: here a directory that holds
    what a clone's root holds for it (scripts, pyproject.toml, and the .venv the
    suite runs in, which ``scripts/compare`` reuses as it would a second time)."""
    page = PAGE.read_text()
    section = page[page.index("### From here to a real server") :]
    block = re.search(r"^```sh\n(?P<body>.*?)^```$", section, re.M | re.S)
    assert block is not None
    with socket.socket() as probe:  # the block uses framekit's default port
        if probe.connect_ex(("127.0.0.1", 9999)) == 0:
            pytest.skip("something already listens on 127.0.0.1:9999")
    for name in ("scripts", "pyproject.toml", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    venv = Path(sys.prefix)
    if venv.resolve() != (ROOT / ".venv").resolve():
        pytest.skip("the suite does not run from the repository's .venv")
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamps = [venv / ".installed-base", venv / ".installed-dev"]
    if not any(s.exists() and s.read_text().strip() == want for s in stamps):
        pytest.skip("pyproject.toml changed since .venv was installed: run ./scripts/check")
    result = subprocess.run(
        # the trap stops the server even when a line fails before the block's kill
        [
            "bash",
            "-e",
            "-c",
            "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + block["body"] + "wait\n",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "framekit compare" in result.stdout  # the first line showed the lesson
    assert "report.csv" in result.stdout and "(verified)" in result.stdout
    assert (tmp_path / "files" / "report.csv").read_text() == "id,total\n"
