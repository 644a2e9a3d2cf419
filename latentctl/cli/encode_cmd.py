"""`latentctl encode` and `latentctl map`: real photos into the latent space."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import (
    PANEL_OUTPUT,
    DeviceOpt,
    EmaOpt,
    ForceOpt,
    LabelsOpt,
    MaxImagesOpt,
    ModelOpt,
    NoiseOpt,
    OutOpt,
    PatternOpt,
    SpaceOpt,
    WorkspaceOpt,
    handles_errors,
    note,
    result,
    warn,
)
from latentctl.cli.encoding import encode_labelled, encoding_label, gan_encoder_for
from latentctl.errors import UsageError

P_PROJ = "GAN projection"


@handles_errors
def encode(
    photos: Annotated[
        list[Path], typer.Argument(metavar="PHOTOS...", help="Image files or folders.", show_default=False)
    ],
    save: Annotated[
        str | None,
        typer.Option("--save", metavar="NAME", help="Save the latents to the store under NAME.", show_default=False),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps per image.", rich_help_panel=P_PROJ)] = 300,
    lr: Annotated[
        float, typer.Option(min=0.0, help="Adam learning rate of the latent.", rich_help_panel=P_PROJ)
    ] = 0.05,
    restarts: Annotated[
        int, typer.Option(min=1, help="Random starting latents per image; the best is kept.", rich_help_panel=P_PROJ)
    ] = 4,
    train_encoder: Annotated[
        bool,
        typer.Option(
            "--train-encoder",
            help="GAN: (re)train a fast encoder on the GAN's own samples, stored as RUN/gan-encoder.safetensors, and encode with it.",
            rich_help_panel=P_PROJ,
        ),
    ] = False,
    use_encoder: Annotated[
        bool,
        typer.Option(
            "--use-encoder",
            help="GAN: encode with the stored fast encoder (trained first if there is none) instead of projecting from random starts.",
            rich_help_panel=P_PROJ,
        ),
    ] = False,
    refine: Annotated[
        int,
        typer.Option(
            min=0,
            help="With the GAN encoder: L-BFGS steps on projection's loss started from its guess (0: the encoder "
            "alone; the default 30 fit as well as a full 300-step projection at about 40-50x its speed) \\[default: 30].",
            rich_help_panel=P_PROJ,
            show_default=False,
        ),
    ] = 30,
    encoder_steps: Annotated[
        int,
        typer.Option(
            min=1,
            help="Training steps of the GAN encoder (64 samples each) \\[default: 500].",
            rich_help_panel=P_PROJ,
            show_default=False,
        ),
    ] = 500,
    model: ModelOpt = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
    ema: EmaOpt = True,
    workspace: WorkspaceOpt = None,
    space: SpaceOpt = None,
    noise: NoiseOpt = None,
) -> None:
    """Put real photos into the latent space, to edit them like samples.

    AE and VAE models use their encoder; a GAN's latent is found by optimisation (slower: a
    progress bar shows it), or, with --use-encoder/--train-encoder, by a fast encoder learned from
    the GAN's own samples plus a short refinement (--refine). Writes each reconstruction beside its original (NAME-compare.png), the
    latents, and prints each image's reconstruction error.

    Examples:

      latentctl encode me.jpg --save me

      latentctl apply me --add glasses-dir --scales 0,1,2         # "my photo with glasses"
    """
    from latentctl.cli.common import check_save
    from latentctl.cli.progress import step
    from latentctl.parse import MAX_ENCODE_STEPS, MAX_REFINE, MAX_RESTARTS, check_count, check_float
    from latentctl.space.encode import encode_images
    from latentctl.space.gan_encoder import MAX_STEPS as GE_MAX_STEPS
    from latentctl.space.photos import load_photos, save_encoded
    from latentctl.space.session import open_model, output_dir

    check_float(lr, "--lr", minimum=0.0)
    check_count(steps, "--steps", MAX_ENCODE_STEPS, "more steps rarely improve the fit")
    check_count(restarts, "--restarts", MAX_RESTARTS, "each restart multiplies the batch the generator runs")
    check_count(encoder_steps, "--encoder-steps", GE_MAX_STEPS, "500 steps fit the encoder")
    check_save(save, workspace, force)
    if refine > MAX_REFINE:
        raise UsageError(
            f"--refine {refine}: at most {MAX_REFINE} steps after the encoder (30 already match a full projection); "
            "for a longer one leave out --use-encoder and set --steps"
        )
    session = open_model(model, device, workspace, warn=warn, ema=ema, space=space, noise=noise)
    images, files = load_photos(photos, session.info.model.image_size, session.info.model.channels)
    out_dir = output_dir(session.ws, out, "encode", force)
    net = None
    if (train_encoder or use_encoder) and session.loaded.encoder is None:
        net = gan_encoder_for(session, train_new=train_encoder, steps=encoder_steps)
    label = encoding_label(session, f"{len(images)} image(s)", net, steps=steps, restarts=restarts, refine=refine)
    with step(label) as advance:
        enc = encode_images(
            session.loaded,
            images,
            session.device,
            steps=steps,
            lr=lr,
            restarts=restarts,
            gan_encoder=net,
            refine_steps=refine if net is not None else 0,
            on_progress=advance,
        )
    entry = save_encoded(session, enc, images, files, out_dir, force=force)
    for f, e in zip(files, enc.errors):
        note(f"{f}: reconstruction error {e:.1f} (RMS, 0-255)")
    note(f"{len(files)} image(s) encoded by {enc.method}; originals beside reconstructions in {out_dir}")
    if save:
        note(f"saved as '{save}' ({session.store.save(save, entry, force=force)})")
    result(str(out_dir))


@handles_errors
def map_latents(
    images: Annotated[Path, typer.Argument(metavar="DIR", help="Folder of labelled images.", show_default=False)],
    column: Annotated[
        str,
        typer.Option(
            "--column", "-c", metavar="NAME", help="The label that colours the points, e.g. gender.", show_default=False
        ),
    ],
    models: Annotated[
        list[Path] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            help="Run folder or checkpoint; repeat to draw models side by side (e.g. an AE and a VAE) \\[default: the current run].",
            show_default=False,
        ),
    ] = None,
    labels: LabelsOpt = None,
    name_pattern: PatternOpt = None,
    max_images: MaxImagesOpt = 2000,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="PNG to write \\[default: map.png in a new outputs/ folder].",
            rich_help_panel=PANEL_OUTPUT,
            show_default=False,
        ),
    ] = None,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
    ema: EmaOpt = True,
    workspace: WorkspaceOpt = None,
    space: SpaceOpt = None,
) -> None:
    """Draw the latent space: labelled images encoded and plotted, coloured by a label.

    2-D latents are drawn directly, others projected to 2-D with PCA. Given an AE and a VAE, the
    two maps stand side by side, as in the seed's figure.

    Example:

      latentctl map mnist-png/ -c digit -m runs/0001-mnist-ae-32px -m runs/0002-mnist-vae-32px
    """
    from latentctl.files.workspace import Workspace
    from latentctl.pictures.plot import UTKFACE_NAMES, map_figure, map_panel
    from latentctl.space.session import open_model

    ws = Workspace.resolve(workspace)
    target = Path(out).expanduser() if out else ws.new_output_dir("map") / "map.png"
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to replace it")
    panels = []
    for model in models or [None]:
        session = open_model(model, device, workspace, warn=warn, ema=ema, space=space)
        z, values = encode_labelled(session, images, column, labels, name_pattern, max_images)
        dim = z.shape[1]
        title = f"{session.info.model.family.upper()}: {session.path.parent.name if session.path.name == 'checkpoint.safetensors' else session.path.stem}"
        title += "" if dim == 2 else f"\nPCA of {dim}-d latents"
        # UTKFace's codes get their names (gender 0/1 -> male/female) when the labels come from its file names
        names = UTKFACE_NAMES.get(column) if labels is None and name_pattern is None else None
        panels.append(map_panel(z, values, title, column, value_names=names))
    png, csv_path = map_figure(panels, target)
    note(f"{sum(len(p.points) for p in panels)} points in {len(panels)} panel(s); their coordinates are in {csv_path}")
    result(str(png))
