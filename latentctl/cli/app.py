"""The Typer application. Commands live in their own modules and import torch only when they run."""

from __future__ import annotations

from typing import Annotated

import typer

from latentctl import __version__
from latentctl.cli import (
    demo_cmd,
    directions_cmd,
    encode_cmd,
    explore_cmd,
    import_cmd,
    latent_cmds,
    runs_cmd,
    sample_cmd,
    score_cmd,
    steer_cmd,
    train_cmd,
)

app = typer.Typer(
    name="latentctl",
    help=(
        "Train an image generative model on your own pictures, then explore what it learned: "
        "sample, interpolate, and build and apply attribute directions from latents you saved."
    ),
    rich_markup_mode="rich",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"latentctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Train an image generative model on your own pictures, then explore its latent space."""


app.command("train", rich_help_panel="Train")(train_cmd.train)
app.command("demo", rich_help_panel="Train")(demo_cmd.demo)
app.command("sample", rich_help_panel="Use a model")(sample_cmd.sample)
app.command("encode", rich_help_panel="Use a model")(encode_cmd.encode)
app.command("map", rich_help_panel="Use a model")(encode_cmd.map_latents)
app.command("interp", rich_help_panel="Use a model")(latent_cmds.interp)
app.command("attr-vector", rich_help_panel="Use a model")(latent_cmds.attr_vector)
app.command("apply", rich_help_panel="Use a model")(latent_cmds.apply)
app.command("render", rich_help_panel="Use a model")(latent_cmds.render_latents)
app.command("explore", rich_help_panel="Use a model")(explore_cmd.explore)
app.command("directions", rich_help_panel="Use a model")(directions_cmd.directions)
app.command("steer", rich_help_panel="Use a model")(steer_cmd.steer)
app.command("score", rich_help_panel="Use a model")(score_cmd.score)
app.add_typer(steer_cmd.classifier_app, name="classifier", rich_help_panel="Use a model")
app.add_typer(latent_cmds.latents_app, name="latents", rich_help_panel="Latent store")
app.command("import", rich_help_panel="Models")(import_cmd.import_model)
app.command("info", rich_help_panel="Models")(sample_cmd.info)
app.command("export", rich_help_panel="Models")(sample_cmd.export)
app.add_typer(runs_cmd.runs_app, name="runs", rich_help_panel="Models")


def main() -> None:
    # OpenMP reads its wait policy once, when torch loads it: set latentctl's choice (unless the
    # user set their own) before any command imports torch. Why: docs/performance.md, "Busy machine".
    from latentctl import perf

    perf.openmp_env()
    app()
