"""`latentctl import`: a generator written by another tool in, a run of the workspace out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import PANEL_OUTPUT, WorkspaceOpt, handles_errors, note, result

P_SOURCE = "What to take from the file"


@handles_errors
def import_model(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="The generator: Keras .h5/.keras, a PyTorch state dict (.pt .pth .bin .tar), a safetensors state dict, or an NVIDIA StyleGAN2 or StyleGAN3 .pkl.",
            show_default=False,
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(help="Name of the run it becomes \\[default: the file's name].", rich_help_panel=PANEL_OUTPUT),
    ] = None,
    part: Annotated[
        str | None,
        typer.Option(
            "--part",
            metavar="NAME",
            help="The generator inside a file that holds several networks (a combined Keras GAN, netG in a training checkpoint, G or G_ema in a StyleGAN snapshot); a file with several lists them.",
            rich_help_panel=P_SOURCE,
            show_default=False,
        ),
    ] = None,
    latent: Annotated[
        str,
        typer.Option(
            "--latent",
            metavar="normal|uniform",
            help="The latent prior the model was trained with: z ~ N(0, I), or U(-1, 1) as some Keras tutorials draw it.",
            rich_help_panel=P_SOURCE,
        ),
    ] = "normal",
    architecture: Annotated[
        Path | None,
        typer.Option(
            "--architecture",
            metavar="JSON",
            help="For a PyTorch state dict of a layout latentctl does not recognise: the layer sequence, as docs/tutorial-import.md describes.",
            rich_help_panel=P_SOURCE,
            show_default=False,
        ),
    ] = None,
    class_index: Annotated[
        int | None,
        typer.Option(
            "--class",
            min=0,
            metavar="N",
            help="For a conditional StyleGAN (trained with class labels): the class its samples draw \\[default: 0].",
            rich_help_panel=P_SOURCE,
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an earlier import of the same name.", rich_help_panel=PANEL_OUTPUT),
    ] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Open a generator another tool wrote, without running any code from its file, and make it a
    run of the workspace: sample, interp, attr-vector, apply, directions, explore, encode and score
    then work on it as on a model latentctl trained.

    Examples:

      latentctl import generator_model_128x128_100.h5        # the blog's own Keras generator

      latentctl import dcgan.pth --part netG --name mnist-dcgan

      latentctl import network-snapshot-000800.pkl --name ffhq
    """
    from latentctl.files.workspace import Workspace
    from latentctl.importers import STYLEGAN_LICENCE, import_generator

    done = import_generator(
        Workspace.resolve(workspace),
        file,
        name=name,
        part=part,
        architecture=architecture,
        prior=latent.strip().lower(),
        class_index=class_index,
        force=force,
    )
    cfg, src = done.config, done.source
    what = f"{src['format']} generator" + (f" (part {src['part']})" if src.get("part") else "")
    note(
        f"{'replaced' if done.replaced else 'imported'} {what}: {cfg.image_size}px, {cfg.channels} channel"
        f"{'s' if cfg.channels > 1 else ''}, latent {cfg.latent_dim} ({cfg.latent_prior}); run {done.run_dir.name} "
        "is now current"
    )
    if cfg.arch.startswith("stylegan"):
        note(STYLEGAN_LICENCE)
    note("next: latentctl sample -n 9")
    result(str(done.checkpoint))
