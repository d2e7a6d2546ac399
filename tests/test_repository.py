"""The README's promises about the repository hold."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_starts_with_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None and readme.index("```sh") < readme.index("framekit is")
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["./scripts/compare", "./scripts/check"]
    for command in commands:
        assert (ROOT / command).stat().st_mode & 0o111


def test_ci_runs_exactly_the_readme_check_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [ln for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[-1] == "exec ./scripts/check"


def test_no_bare_cli_package_is_installed() -> None:
    import framekit_cli

    assert Path(framekit_cli.__file__).parent == ROOT / "cli" / "framekit_cli"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'packages = ["framekit", "cli/framekit_cli"]' in pyproject
