from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

import framekit
from framekit_cli.app import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"framekit {framekit.__version__}"


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_demo_shows_raw_merging_and_framed_exact() -> None:
    result = runner.invoke(app, ["demo", "--size", "5", "--size", "3000", "--size", "7"])
    assert result.exit_code == 0, result.output
    assert "5 3000 7" in result.output  # sent, and framed received the same
    assert "1024 1024" in result.output  # raw recv(1024) cut the stream differently


def test_demo_rejects_negative_size() -> None:
    result = runner.invoke(app, ["demo", "--size", "-1"])
    assert result.exit_code == 2


async def test_run_demo_result() -> None:
    from framekit._demo import run_demo

    result = await run_demo((5, 12, 3000, 7, 40))
    assert result.framed == (5, 12, 3000, 7, 40)
    assert result.framed_exact
    assert not result.raw_boundaries_kept
    assert sum(result.raw_reads) == sum(result.sent)
    assert max(result.raw_reads) <= 1024


def test_python_dash_m_framekit() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framekit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "Usage" in proc.stdout
