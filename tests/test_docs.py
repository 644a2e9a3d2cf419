"""Docs that cannot drift: the CLI reference is generated from the commands' own help."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = [sys.executable, "-m", "latentctl.cli.reference"]


def test_cli_reference_matches_the_help():
    fresh = subprocess.run(REGENERATE, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert fresh.strip() == committed.strip(), (
        "docs/cli.md is out of date; regenerate it with:\n  python -m latentctl.cli.reference --output docs/cli.md"
    )


def test_cli_reference_shows_every_default_and_no_html_entities():
    reference = (ROOT / "docs" / "cli.md").read_text()
    # rich markup eats a literal "[default: ...]" in help text and leaves "text ." behind
    lost = [line for line in reference.splitlines() if line.startswith("* `") and line.rstrip().endswith(" .")]
    assert not lost, f"help text lost its default (write \\\\[default: ...]): {lost[:3]}"
    for entity in ("&#x27;", "&gt;", "&lt;", "&amp;", "&quot;"):
        assert entity not in reference, entity


def test_train_help_shows_size_and_epochs_defaults():
    from typer.testing import CliRunner

    from latentctl.cli.app import app

    text = " ".join(CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output.split())
    for default in ("[default: 128]", "[default: 100]", "[default: seed]"):
        assert default in text, default


def test_readme_set_up_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e '.[test]' && .venv/bin/python -m pytest"
    assert test_cmd in readme and test_cmd in ci
    assert "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e . && .venv/bin/latentctl demo" in readme


def test_every_command_is_documented():
    import typer

    from latentctl.cli.app import app

    reference = (ROOT / "docs" / "cli.md").read_text()
    names = list(typer.main.get_command(app).commands)  # the lazy group names every command and group
    assert len(names) >= 19
    for name in names:
        assert f"latentctl {name}`" in reference


def test_no_help_text_has_brackets_that_rich_would_eat():
    """rich reads "[word...]" as a markup tag and drops it: "pip install 'latentctl[video]'" showed
    as "pip install 'latentctl'". Such brackets must be written "\\\\[" in the help source."""
    import re

    import typer

    from latentctl.cli.app import app

    tag = re.compile(r"(?<!\\)\[[a-z#/@]", re.IGNORECASE)

    def walk(cmd, path):
        yield path, cmd.help or ""
        for p in cmd.params:
            yield f"{path} {p.name}", getattr(p, "help", None) or ""
        if hasattr(cmd, "commands"):  # a group (typer may carry its own click)
            for name, sub in cmd.commands.items():
                yield from walk(sub, f"{path} {name}")

    bad = [(where, text) for where, text in walk(typer.main.get_command(app), "latentctl") if tag.search(text)]
    assert len(list(walk(typer.main.get_command(app), "latentctl"))) > 250  # every command's options
    assert not bad, bad[:3]
