"""`latentctl train`: a folder of pictures in, a run folder with a checkpoint out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import (
    PANEL_DEVICE,
    PANEL_OUTPUT,
    DeviceOpt,
    PrecisionOpt,
    WorkspaceOpt,
    err_console,
    handles_errors,
    note,
    peak_memory,
    renamed,
    result,
    warn,
)
from latentctl.errors import LatentctlError, TrainingInterrupted

P_DATA, P_MODEL, P_TRAIN = "Data", "Model", "Training"


@handles_errors
def train(
    data: Annotated[
        Path | None,
        typer.Argument(
            metavar="DIR",
            help="Folder of images (jpg, png, webp, bmp; searched recursively). Not needed with --resume.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="RUN",
            help="Continue the run in this folder from its last checkpoint.",
            rich_help_panel=P_DATA,
        ),
    ] = None,
    max_images: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Train on a reproducible random subset of this many images (the seed used 15000).",
            rich_help_panel=P_DATA,
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Fail on the first unusable image instead of skipping it.", rich_help_panel=P_DATA
        ),
    ] = False,
    family: Annotated[
        str | None,
        typer.Option(
            "--family",
            metavar="gan|vae|ae",
            help="Model family: the seed's GAN, a variational or a plain autoencoder \\[default: gan].",
            rich_help_panel=P_MODEL,
        ),
    ] = None,
    # --model names a checkpoint in every other command; here it was the family (the old spelling)
    old_model: Annotated[str | None, typer.Option("--model", metavar="gan|vae|ae", hidden=True)] = None,
    image_size: Annotated[
        int | None,
        typer.Option(
            "--image-size",
            "-s",
            metavar="32|64|128|256",
            help="Image size in pixels \\[default: 128].",
            rich_help_panel=P_MODEL,
        ),
    ] = None,
    latent_dim: Annotated[
        int | None, typer.Option(min=1, max=4096, help="Latent dimension \\[default: 100].", rich_help_panel=P_MODEL)
    ] = None,
    width: Annotated[
        int | None,
        typer.Option(min=1, max=1024, help="Channels of every hidden layer \\[default: 128].", rich_help_panel=P_MODEL),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch",
            metavar="seed|lite",
            help="seed: the blog post's DCGAN, exactly; lite: resize-conv G with pixel norm, spectral-norm D, hinge loss, adaptive augmentation and an EMA generator, for small folders on a CPU \\[default: seed].",
            rich_help_panel=P_MODEL,
        ),
    ] = None,
    skip_excitation: Annotated[
        bool | None,
        typer.Option(
            "--skip-excitation/--no-skip-excitation",
            help="--arch lite: FastGAN's skip-layer excitation, the 8x8 features gating the last stage's channels (docs/quality.md) \\[default: off].",
            rich_help_panel=P_MODEL,
            show_default=False,
        ),
    ] = None,
    d_reconstruct: Annotated[
        bool | None,
        typer.Option(
            "--d-reconstruct/--no-d-reconstruct",
            help="--arch lite: lightweight-gan's self-supervised discriminator, which also decodes its coarsest features back into each real picture (docs/quality.md) \\[default: off].",
            rich_help_panel=P_MODEL,
            show_default=False,
        ),
    ] = None,
    channels: Annotated[
        str,
        typer.Option(
            "--channels",
            metavar="auto|1|3|4",
            help="Image channels: auto makes a grey model for a folder of grey pictures, else RGB; 4 keeps transparency.",
            rich_help_panel=P_MODEL,
        ),
    ] = "auto",
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1, help="Epochs to train; may be raised when resuming \\[default: 100].", rich_help_panel=P_TRAIN
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            min=1,
            help="Budget in steps: stop after this many, even mid-epoch (with --epochs, whichever comes first).",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    kimg: Annotated[
        float | None,
        typer.Option(
            "--kimg",
            min=0.001,
            help="Budget in thousands of real images shown to the model (StyleGAN's unit); converted to --steps.",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Batch: D sees half real and half generated images, G the whole batch \\[default: 128; 32 for --arch lite, whose steps are measured for a CPU].",
            rich_help_panel=P_TRAIN,
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Adam learning rate \\[default: 0.0002 for the seed's GAN, 0.0016 x 32 / width for --arch lite (0.0016 at most), 0.001 for an AE or VAE].",
            rich_help_panel=P_TRAIN,
        ),
    ] = None,
    beta1: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Adam beta1 \\[default: 0.5].", rich_help_panel=P_TRAIN)
    ] = None,
    lr_d: Annotated[
        float | None,
        typer.Option(
            "--lr-d",
            min=0.0,
            help="The discriminator's learning rate, when it should differ from --lr \\[default: --lr].",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    loss: Annotated[
        str | None,
        typer.Option(
            "--loss",
            metavar="bce|hinge|rpgan",
            help="GAN loss; rpgan: R3GAN's relativistic pairing (lite only), with R2 beside --r1-gamma's R1 \\[default: bce for seed, hinge for lite].",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    augment: Annotated[
        str | None,
        typer.Option(
            "--augment",
            metavar="off|ada|P",
            help="Augment what D sees (colour, translation, cutout), real and fake alike: ada adapts the probability to the data, P fixes it \\[default: off for seed, ada for lite].",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    augment_ops: Annotated[
        str | None,
        typer.Option(
            "--augment-ops",
            metavar="OPS",
            help="Which transforms --augment applies, comma-separated: colour, translation, cutout \\[default: all three].",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    mirror: Annotated[
        bool | None,
        typer.Option(
            "--mirror/--no-mirror",
            help="Flip half the real images left-right: for pictures whose sides mean the same (faces, not text) \\[default: off].",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    ema: Annotated[
        bool | None,
        typer.Option(
            "--ema/--no-ema",
            help="Keep an exponential moving average of the generator, which sample, interp, apply and explore then use \\[default: off for seed, on for lite].",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    ema_kimg: Annotated[
        float | None,
        typer.Option(
            "--ema-kimg",
            min=0.001,
            help="EMA half-life in thousands of images, ramped up early in a run \\[default: 10].",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    r1_gamma: Annotated[
        float | None,
        typer.Option(
            "--r1-gamma",
            min=0.0,
            help="R1 gradient penalty on real images, every 16 steps (0: off) \\[default: 0].",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    grow_steps: Annotated[
        int | None,
        typer.Option(
            "--grow-steps",
            min=0,
            metavar="N",
            help="Lite only: start at 16 px and grow to --image-size, each doubling fading in over N steps and then training alone for N; a 16 px step takes half the time of a 32 px one (0: off) \\[default: 0].",
            rich_help_panel=P_TRAIN,
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(min=0, help="Seed for weights, data order and latents \\[default: 0].", rich_help_panel=P_TRAIN),
    ] = None,
    kl_weight: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="VAE: weight of the KL term against the summed squared error \\[default: 1.0].",
            rich_help_panel=P_TRAIN,
        ),
    ] = None,
    sample_every: Annotated[
        int | None,
        typer.Option(min=1, help="Epochs between progress grids \\[default: 1].", rich_help_panel=PANEL_OUTPUT),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Epochs between checkpoints; one is also written at the end and on Ctrl-C \\[default: 5].",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = None,
    snapshot_every: Annotated[
        int | None,
        typer.Option(
            min=1, help="Epochs between kept generator snapshots \\[default: 20].", rich_help_panel=PANEL_OUTPUT
        ),
    ] = None,
    score_every: Annotated[
        int | None,
        typer.Option(
            "--score-every",
            min=0,
            help="Epochs between quality scores (Fréchet distance beside the real-vs-real floor, `latentctl score`) recorded in metrics.jsonl; the best generator is kept as best.safetensors (0: never) \\[default: 0].",
            rich_help_panel=PANEL_OUTPUT,
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Name for the run folder \\[default: from DIR and size].", rich_help_panel=PANEL_OUTPUT),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            metavar="DIR",
            help="Write the run here instead of a new folder in the workspace (must be new or empty).",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    channels_last: Annotated[
        bool | None,
        typer.Option(
            "--channels-last/--no-channels-last",
            help="Channels-last memory layout \\[default: on for CPU and CUDA].",
            rich_help_panel=PANEL_DEVICE,
            show_default=False,
        ),
    ] = None,
    tune_allocator: Annotated[
        bool,
        typer.Option(
            "--tune-allocator/--no-tune-allocator",
            help="On Linux CPUs, keep large buffers between steps instead of re-mapping them (about 1.5-2x faster; more resident memory).",
            rich_help_panel=PANEL_DEVICE,
        ),
    ] = True,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=0,
            help="CPU threads for this process, fixed (0: every available core). The choice is printed in the run's header \\[default: measured as the run goes: 1 or every core, whichever steps faster].",
            rich_help_panel=PANEL_DEVICE,
            show_default=False,
        ),
    ] = None,
    tensorboard: Annotated[
        bool,
        typer.Option(
            "--tensorboard",
            help="Also write TensorBoard event files to RUN/tensorboard/ (needs: pip install 'latentctl\\[tensorboard]').",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = False,
    devices: Annotated[
        int,
        typer.Option(
            min=1,
            help="Data-parallel worker processes: one per GPU on CUDA, or CPU processes sharing the cores (gloo).",
            rich_help_panel=PANEL_DEVICE,
        ),
    ] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved configuration and exit.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Train the seed's GAN (or a VAE or autoencoder) on a folder of images.

    Writes a run folder (checkpoint, progress grids, metrics) and makes it the current run, so that
    `latentctl sample` works without arguments afterwards. Ctrl-C saves a checkpoint; resume with
    --resume RUN.

    Examples:

      latentctl train utkface/ --max-images 15000      # the seed's experiment

      latentctl train photos/ -s 64 --epochs 30

      latentctl train photos/ -s 64 --family vae --latent-dim 32

      latentctl train --resume ~/.latentctl/runs/0001-utkface-128px --epochs 150
    """
    from latentctl.files.workspace import Workspace
    from latentctl.train import runs
    from latentctl.train import train_launch as launch
    from latentctl.train.distributed import LaunchedGroup

    ws = Workspace.resolve(workspace)
    request = runs.Request.from_options(
        data=data,
        resume=resume,
        run_dir=run_dir,
        name=name,
        device=device,
        precision=precision,
        channels=channels,
        channels_last=channels_last,
        kimg=kimg,
        family=renamed(family, old_model, new="--family", old="--model", default=None),
        arch=arch,
        image_size=image_size,
        latent_dim=latent_dim,
        width=width,
        skip_excitation=skip_excitation,
        d_reconstruct=d_reconstruct,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        beta1=beta1,
        seed=seed,
        kl_weight=kl_weight,
        max_images=max_images,
        sample_every=sample_every,
        checkpoint_every=checkpoint_every,
        snapshot_every=snapshot_every,
        lr_d=lr_d,
        loss=loss,
        augment=augment,
        augment_ops=augment_ops,
        mirror=mirror,
        ema=ema,
        ema_kimg=ema_kimg,
        r1_gamma=r1_gamma,
        grow_steps=grow_steps,
        steps=steps,
        score_every=score_every,
    )
    plan, dev = runs.resolve(ws, request)
    group = LaunchedGroup.from_environment()  # started by torchrun as one of several processes
    launch.check_processes(plan, dev, devices, group)
    if dry_run:
        result(json.dumps(launch.dry_run(plan, ws, dev, strict=strict), indent=2))
        return
    launch.prepare_process(dev, threads=threads, allocator=tune_allocator, tensorboard=tensorboard)
    with launch.joined(group, dev) as dev:
        _run(plan, ws, dev, devices, strict, group, tensorboard, threads)


def _run(
    plan, ws, dev, devices: int, strict: bool, group=None, tensorboard: bool = False, threads: int | None = None
) -> None:
    """Everything `train` does after its options are settled: data, run folder, training, report.
    With ``group`` (torchrun) rank 0 alone writes files and speaks; every rank trains its share."""
    from latentctl.cli.progress import TrainingProgress, stderr_progress
    from latentctl.files.workspace import CHECKPOINT_NAME
    from latentctl.train import runs
    from latentctl.train import train_launch as launch

    main = group is None or group.is_main
    say = note if main else (lambda *a, **k: None)
    first = group.main_first if group is not None else (lambda fn, rest=True: fn())
    dataset = first(lambda: _load_data(plan, ws, strict, quiet=not main))
    # rank 0 creates the folder; under torchrun the other ranks receive its path
    target = plan.target = first(lambda: runs.start(plan, ws, dataset), rest=False)
    if main and dataset.skipped:
        warn(f"{dataset.skipped_summary}; the list is in {target / 'skipped.txt'}")
    say(f"run folder: {target}")
    say(launch.describe(plan, dataset, dev))
    tuner, threads_line = launch.cpu_threads(dev, threads, group=group, devices=devices)
    if threads_line:
        say(threads_line)
    tb = None
    if tensorboard and main:
        from latentctl.train.tb import TensorBoardListener

        tb = TensorBoardListener(target)
    try:
        if devices > 1:
            note(f"training on {devices} worker processes")
            path = runs.execute(plan, ws, dataset, dev, devices=devices, worker_listener=stderr_progress)
        elif main:
            if group is not None:
                say(f"training as {group.size} processes started by torchrun")
            with TrainingProgress(err_console) as progress:

                def listen(event) -> None:
                    progress.update(event)
                    if tb is not None:
                        tb.update(event)

                path = runs.execute(plan, ws, dataset, dev, group=group, on_event=listen, thread_tuner=tuner)
        else:
            path = runs.execute(plan, ws, dataset, dev, group=group)
    except TrainingInterrupted as stop:
        if not main:
            raise
        note(str(stop))
        note(f"resume with: latentctl train --resume {target}")
        stop.reported = True
        raise
    except LatentctlError:
        if main and (target / CHECKPOINT_NAME).exists():
            note(f"resume with: latentctl train --resume {target}")
        raise
    finally:
        if tb is not None:
            tb.close()
    say(f"done: {path} ({peak_memory()} in this process)")
    if tuner is not None and tuner.measured:
        say(f"threads: {tuner.describe()}")
    if main:
        result(str(target / CHECKPOINT_NAME))


def _load_data(plan, ws, strict: bool, quiet: bool = False):
    from latentctl.cli.progress import step
    from latentctl.train import runs

    # lazy: cached images are read at once, with nothing to say
    with step(f"decoding the images in {plan.data}", lazy=True, quiet=quiet) as advance:
        return runs.open_data(plan, ws, strict=strict, progress=advance)
