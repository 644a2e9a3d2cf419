"""Docs that cannot drift: the CLI reference is generated from the commands' own help."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = [sys.executable, "-m", "typer", "latentctl.cli.app", "utils", "docs", "--name", "latentctl", "--title", "latentctl CLI reference"]


def test_cli_reference_matches_the_help():
    fresh = subprocess.run(REGENERATE, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert fresh.strip() == committed.strip(), (
        "docs/cli.md is out of date; regenerate it with:\n  " + " ".join(REGENERATE[1:]) + " --output docs/cli.md"
    )


def test_readme_set_up_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e '.[test]' && .venv/bin/python -m pytest"
    assert test_cmd in readme and test_cmd in ci
    assert "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e . && .venv/bin/latentctl demo" in readme


def test_every_command_is_documented():
    from latentctl.cli.app import app

    reference = (ROOT / "docs" / "cli.md").read_text()
    for cmd in app.registered_commands:
        assert f"latentctl {cmd.name}`" in reference
