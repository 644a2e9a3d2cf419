"""Start-up: `latentctl --help` lists the commands without importing them, and the commands that only
read files never import torch. Timings are in docs/startup.md (benchmarks/startup.py), not here."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import typer

from latentctl.cli.app import COMMANDS, app

HEAVY = ("torch", "numpy", "matplotlib")


def imported_by(argv: list[str], env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running the CLI in-process with ``argv``."""
    code = (
        "import sys\nfrom latentctl.cli.app import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
        "sys.__stderr__.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return set(proc.stderr.rsplit("MODULES ", 1)[1].split())


def test_help_imports_no_command_module_and_nothing_heavy():
    modules = imported_by(["--help"])
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    assert not {m for m in modules if m.startswith("latentctl.cli.")} - {"latentctl.cli.app", "latentctl.cli.listing"}
    # typer's help renderer imports rich's Markdown (markdown-it) and traceback renderers: a quarter
    # of --help's time, for a page that uses neither (latentctl/cli/listing.py draws it instead).
    assert "typer.rich_utils" not in modules and "markdown_it" not in modules


def test_version_imports_no_command_module():
    modules = imported_by(["--version"])
    assert not {m for m in modules if m.startswith("latentctl.cli.") and m != "latentctl.cli.app"}


@pytest.mark.parametrize("argv", [["info", "RUN"], ["runs"], ["latents", "list"]])
def test_commands_that_read_files_import_no_torch(argv, tiny_run, workspace):
    import os

    argv = [str(tiny_run) if a == "RUN" else a for a in argv]
    modules = imported_by(argv, env=dict(os.environ, LATENTCTL_HOME=str(workspace)))
    assert "torch" not in modules
    assert "numpy" not in modules and "matplotlib" not in modules


def test_top_level_help_lists_every_command_in_its_panel():
    from typer.testing import CliRunner

    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    for panel in ("Train", "Use a model", "Models", "Latent store"):
        assert f"─ {panel} ─" in out
    for name, entry in COMMANDS.items():
        assert f"│ {name} " in out and entry.summary[:50] in out, name


def test_the_listing_says_what_each_command_says_of_itself():
    """The table the top-level help is drawn from matches each command's own help and panel."""
    group = typer.main.get_command(app)
    assert list(group.commands) == list(COMMANDS)
    for name, entry in COMMANDS.items():
        command = group.commands[name]
        first = inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0]
        assert " ".join(first.split()) == " ".join(entry.summary.split()), name
        assert command.rich_help_panel == entry.panel, name


def test_the_command_set_is_the_one_users_know():
    assert list(COMMANDS) == [
        "train",
        "demo",
        "sample",
        "encode",
        "map",
        "interp",
        "attr-vector",
        "apply",
        "render",
        "explore",
        "directions",
        "steer",
        "score",
        "import",
        "info",
        "export",
        "classifier",
        "latents",
        "runs",
    ]


def _every_command() -> list[list[str]]:
    group = typer.main.get_command(app)
    paths = []
    for name in group.commands:
        paths.append([name])
        sub = group.commands[name]
        paths += [[name, s] for s in getattr(sub, "commands", {})]
    return paths


@pytest.mark.parametrize("path", _every_command(), ids=" ".join)
def test_every_command_help_works(path):
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output and "--help" in res.output


def test_a_mistyped_command_is_still_answered_with_the_close_one():
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["sampel"])
    assert res.exit_code == 2
    assert "sample" in res.output


def test_an_option_not_given_is_not_validated_but_a_given_one_is(tiny_run, workspace):
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["sample", str(tiny_run), "-n", "0"], env={"LATENTCTL_HOME": str(workspace)})
    assert res.exit_code == 2 and "-n" in res.output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("model", "runs/0001-faces-32px"),
        ("model", "."),
        ("out", "-"),
        ("n", "9"),
        ("n", "-3"),
        ("truncation", "0.5"),
        ("truncation", "1"),
        ("truncation", 1.0),
        ("seeds", "0-8,42"),
        ("batch_size", 64),
        ("batch_size", "8"),
        ("device", "auto"),
    ],
)
def test_a_plain_value_comes_out_as_typer_itself_gives_it(option, value):
    """latentctl reads plain values without building typer's pydantic validator; the result must
    be the validator's own (and a value outside an option's range still gets typer's message)."""
    from latentctl.cli import app as app_module
    from latentctl.cli import sample_cmd

    holder = typer.Typer()
    holder.command()(sample_cmd.sample)
    command = typer.main.get_command(holder)  # built by typer alone: its own validators
    ctx = typer.Context(command)
    param = next(p for p in command.params if p.name == option)
    try:
        expected = param.get_runtime_param().coerce(value, param=param, ctx=ctx)
    except Exception as err:  # out of range: latentctl must leave it to typer
        assert app_module._plain_value(value, param, ctx) is app_module._DEFER, err
        return
    got = app_module._plain_value(value, param, ctx)
    assert got is app_module._DEFER or (got == expected and type(got) is type(expected))


def test_a_typer_of_another_shape_validates_everything_itself():
    from latentctl.cli import app as app_module

    class Other:  # a parameter without typer 0.2x's type descriptor
        multiple, nargs = False, 1

    assert app_module._plain_value("9", Other(), None) is app_module._DEFER


def test_top_level_help_fits_80_columns_with_nothing_cut():
    from typer.testing import CliRunner

    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    assert max(len(line) for line in out.splitlines()) <= 80
    for option in ("--version", "--install-completion", "--show-completion", "--help", "-h"):
        assert f" {option} " in out, option
    text = " ".join(" ".join(line.strip("│ ") for line in out.splitlines()).split())
    for name, entry in COMMANDS.items():
        assert f"│ {name} " in out, name
        # the summary, wrapped over lines but whole: every word, in order, nothing elided
        assert " ".join(entry.summary.split()) in text, name
