"""`latentctl train`: a folder of pictures in, a run folder with a checkpoint out."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

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
    result,
    warn,
)
from latentctl.config import (
    RESUMABLE_KEYS,
    ModelConfig,
    TrainConfig,
    config_differences,
    to_dict,
)
from latentctl.errors import ConfigMismatchError, LatentctlError, TrainingInterrupted, UsageError

P_DATA, P_MODEL, P_TRAIN = "Data", "Model", "Training"
AUTOENCODER_LR = 1e-3  # the seed's 2e-4 suits the adversarial game; reconstruction learns faster at 1e-3


@handles_errors
def train(
    data: Annotated[
        Path | None,
        typer.Argument(
            metavar="[DIR]",
            help="Folder of images (jpg, png, webp, bmp; searched recursively). Not needed with --resume.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", metavar="RUN", help="Continue the run in this folder from its last checkpoint.", rich_help_panel=P_DATA),
    ] = None,
    max_images: Annotated[
        int | None,
        typer.Option(min=1, help="Train on a reproducible random subset of this many images (the seed used 15000).", rich_help_panel=P_DATA),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on the first unusable image instead of skipping it.", rich_help_panel=P_DATA)
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", metavar="gan|vae|ae", help="Model family: the seed's GAN, a variational or a plain autoencoder [default: gan].", rich_help_panel=P_MODEL)
    ] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", "-s", metavar="32|64|128|256", help="Image size in pixels [default: 128].", rich_help_panel=P_MODEL)
    ] = None,
    latent_dim: Annotated[int | None, typer.Option(min=1, max=4096, help="Latent dimension [default: 100].", rich_help_panel=P_MODEL)] = None,
    width: Annotated[int | None, typer.Option(min=1, max=1024, help="Channels of every hidden layer [default: 128].", rich_help_panel=P_MODEL)] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs to train; may be raised when resuming [default: 100].", rich_help_panel=P_TRAIN)] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=2, help="Batch: D sees half real and half generated images, G the whole batch [default: 128].", rich_help_panel=P_TRAIN),
    ] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Adam learning rate [default: 0.0002 for a GAN (the seed), 0.001 for an AE or VAE].", rich_help_panel=P_TRAIN)] = None,
    beta1: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Adam beta1 [default: 0.5].", rich_help_panel=P_TRAIN)] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed for weights, data order and latents [default: 0].", rich_help_panel=P_TRAIN)] = None,
    kl_weight: Annotated[float | None, typer.Option(min=0.0, help="VAE: weight of the KL term against the summed squared error [default: 1.0].", rich_help_panel=P_TRAIN)] = None,
    sample_every: Annotated[int | None, typer.Option(min=1, help="Epochs between progress grids [default: 1].", rich_help_panel=PANEL_OUTPUT)] = None,
    checkpoint_every: Annotated[int | None, typer.Option(min=1, help="Epochs between checkpoints; one is also written at the end and on Ctrl-C [default: 5].", rich_help_panel=PANEL_OUTPUT)] = None,
    snapshot_every: Annotated[int | None, typer.Option(min=1, help="Epochs between kept generator snapshots [default: 20].", rich_help_panel=PANEL_OUTPUT)] = None,
    name: Annotated[str | None, typer.Option(help="Name for the run folder [default: from DIR and size].", rich_help_panel=PANEL_OUTPUT)] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option("--run-dir", metavar="DIR", help="Write the run here instead of a new folder in the workspace (must be new or empty).", rich_help_panel=PANEL_OUTPUT),
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    channels_last: Annotated[
        bool | None,
        typer.Option("--channels-last/--no-channels-last", help="Channels-last memory layout [default: on for CPU and CUDA].", rich_help_panel=PANEL_DEVICE, show_default=False),
    ] = None,
    tune_allocator: Annotated[
        bool, typer.Option("--tune-allocator/--no-tune-allocator", help="On Linux CPUs, keep large buffers between steps instead of re-mapping them (about 1.5-2x faster; more resident memory).", rich_help_panel=PANEL_DEVICE)
    ] = True,
    devices: Annotated[
        int, typer.Option(min=1, help="Data-parallel worker processes: one per GPU on CUDA, or CPU processes sharing the cores (gloo).", rich_help_panel=PANEL_DEVICE)
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

      latentctl train photos/ -s 64 --model vae --latent-dim 32

      latentctl train --resume ~/.latentctl/runs/0001-utkface-128px --epochs 150
    """
    from latentctl import checkpoint
    from latentctl.device import resolve_device, resolve_precision
    from latentctl.workspace import Workspace

    ws = Workspace.resolve(workspace)
    given_model = {"family": model, "image_size": image_size, "latent_dim": latent_dim, "width": width}
    given_train = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "beta1": beta1, "seed": seed, "kl_weight": kl_weight,
        "max_images": max_images, "sample_every": sample_every,
        "checkpoint_every": checkpoint_every, "snapshot_every": snapshot_every,
    }
    dev = resolve_device(device)
    from latentctl import perf as _perf

    _perf.cpu_speedups(dev, allocator=tune_allocator)
    from latentctl.distributed import LaunchedGroup, check_devices

    group = LaunchedGroup.from_environment()  # started by torchrun as one of several processes
    if group is not None and devices > 1:
        raise UsageError(
            f"--devices {devices}: this process is one of {group.size} started by torchrun, which already "
            "runs one process per device; leave --devices out"
        )
    if devices > 1:
        check_devices(devices, dev)
    perf = {
        "precision": resolve_precision(precision, dev),
        "channels_last": (dev.type in ("cpu", "cuda")) if channels_last is None else channels_last,
    }
    if resume is not None:
        if run_dir is not None:
            raise UsageError("--run-dir and --resume both name a run folder; give only --resume")
        ckpt_path = ws.resolve_checkpoint(resume)
        info = checkpoint.read_header(ckpt_path)
        if info.kind != checkpoint.KIND_TRAINING or info.train is None:
            raise UsageError(f"{ckpt_path} holds only a generator and cannot be resumed")
        model_cfg, train_cfg = _merge([(info.model, given_model), (info.train, {**given_train, **perf})])
        stored_root = Path(info.state["data"]["root"])
        if data is not None and Path(data).expanduser().resolve() != stored_root:
            raise ConfigMismatchError(
                f"--resume: the run trained on {stored_root}, not {data}; leave DIR out to continue on its data"
            )
        data = stored_root
        target = ckpt_path.parent
    else:
        if data is None:
            raise UsageError("say which folder of images to train on: latentctl train DIR")
        model_cfg = ModelConfig(**{k: v for k, v in given_model.items() if v is not None})
        if model_cfg.family != "gan" and lr is None:
            given_train["lr"] = AUTOENCODER_LR
        train_cfg = TrainConfig(**{k: v for k, v in given_train.items() if v is not None}, **perf)
        target = run_dir

    if dry_run:
        result(json.dumps({"model": to_dict(model_cfg), "train": to_dict(train_cfg), "device": str(dev), "data": str(data)}, indent=2))
        return
    if group is not None:
        dev = group.join(dev)
    finished = False
    try:
        _run(ws, Path(data), target, model_cfg, train_cfg, dev, devices, strict, name, resume, info if resume is not None else None, group)
        finished = True
    finally:
        if group is not None:
            group.leave(finished)


def _run(ws, data: Path, target: Path | None, model_cfg: ModelConfig, train_cfg: TrainConfig, dev, devices: int,
         strict: bool, name: str | None, resume: Path | None, info, group=None) -> None:
    """Everything `train` does after its options are settled: data, run folder, training, report.
    With ``group`` (torchrun) rank 0 alone writes files and speaks; every rank trains its share."""
    from latentctl import checkpoint
    from latentctl.data import write_skipped_list
    from latentctl.workspace import CHECKPOINT_NAME, slug

    main = group is None or group.is_main
    say = note if main else (lambda *a, **k: None)
    first = group.main_first if group is not None else (lambda fn, rest=True: fn())
    dataset = first(lambda: _load_data(data, model_cfg, train_cfg, ws, strict, quiet=not main))
    if resume is not None:
        expected = info.state["data"]["fingerprint"]
        if dataset.fingerprint != expected:
            raise ConfigMismatchError(
                f"--resume: the images in {data} changed since the run started (fingerprint "
                f"{expected} -> {dataset.fingerprint}); start a new run to train on the new set"
            )
        loaded = checkpoint.load(ws.resolve_checkpoint(resume), device=dev, training=True)
    else:
        loaded = None
        run_name = name or f"{slug(data.resolve().name)}-{'' if model_cfg.family == 'gan' else model_cfg.family + '-'}{model_cfg.image_size}px"
        target = first(lambda: _new_run_dir(ws, target, run_name), rest=False)

    if main and dataset.skipped:
        skipped_file = write_skipped_list(target, dataset.skipped)
        warn(f"{dataset.skipped_summary}; the list is in {skipped_file}")
    say(f"run folder: {target}")
    say(
        f"{len(dataset)} images, {model_cfg.image_size}px, {train_cfg.epochs} epochs of "
        f"{len(dataset) // train_cfg.batch_size} steps, device {dev}, {train_cfg.precision}"
        + (", channels-last" if train_cfg.channels_last else "")
    )

    from latentctl.cli.progress import TrainingProgress, stderr_progress
    from latentctl.training import CheckpointEvent
    from latentctl.training import train as run_training

    def make_current() -> None:
        # Only a run with a checkpoint becomes current: one that failed before its first save
        # would leave a bare `latentctl sample` with nothing to load.
        if main and (target / CHECKPOINT_NAME).exists():
            ws.set_current(target)

    def listen(progress):
        def on_event(event) -> None:
            progress.update(event)
            if isinstance(event, CheckpointEvent):
                make_current()
        return on_event

    try:
        if devices > 1:
            from latentctl.distributed import train_parallel

            note(f"training on {devices} worker processes")
            path = train_parallel(devices, dev, listener=stderr_progress, run_dir=target, dataset=dataset,
                                  model_config=model_cfg, train_config=train_cfg, resume=loaded)
        else:
            from latentctl.training import World

            world = World() if group is None else World(group.rank, group.size)
            if group is not None:
                say(f"training as {group.size} processes started by torchrun")
            if main:
                with TrainingProgress(err_console) as progress:
                    path = run_training(target, dataset, model_cfg, train_cfg, dev, resume=loaded, on_event=listen(progress), world=world)
            else:
                path = run_training(target, dataset, model_cfg, train_cfg, dev, resume=loaded, world=world)
    except TrainingInterrupted as stop:
        make_current()
        if not main:
            raise
        note(str(stop))
        note(f"resume with: latentctl train --resume {target}")
        raise
    except LatentctlError:
        make_current()
        if main and (target / CHECKPOINT_NAME).exists():
            note(f"resume with: latentctl train --resume {target}")
        raise
    make_current()
    say(f"done: {path} ({peak_memory()} in this process)")
    if main:
        result(str(target / CHECKPOINT_NAME))


def _merge(pairs: list[tuple[Any, dict[str, Any]]]) -> list[Any]:
    """Each stored config with the user's explicit options applied; a change to any key that alters
    what a step computes is refused, listing every such key at once."""
    merged, diffs = [], []
    for stored, given in pairs:
        new = dataclasses.replace(stored, **{k: v for k, v in given.items() if v is not None})
        diffs += config_differences(
            {k: v for k, v in to_dict(stored).items() if k not in RESUMABLE_KEYS},
            {k: v for k, v in to_dict(new).items() if k not in RESUMABLE_KEYS},
        )
        merged.append(new)
    if diffs:
        raise ConfigMismatchError(
            f"--resume: these settings differ from the run being resumed: {'; '.join(diffs)}. "
            "Leave them out to keep the run's values, or start a new run"
        )
    return merged


def _load_data(root: Path, model_cfg: ModelConfig, train_cfg: TrainConfig, ws, strict: bool, quiet: bool = False):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from latentctl.data import prepare_dataset

    with Progress(
        TextColumn("decoding images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, transient=True, disable=quiet,
    ) as bar:
        task = bar.add_task("decode", total=None)
        return prepare_dataset(
            root, model_cfg.image_size, ws.cache, max_images=train_cfg.max_images, seed=train_cfg.seed,
            strict=strict, progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


def _new_run_dir(ws, explicit: Path | None, name: str) -> Path:
    if explicit is None:
        return ws.new_run_dir(name)
    explicit = Path(explicit).expanduser()
    if explicit.exists() and any(explicit.iterdir()):
        raise UsageError(f"--run-dir {explicit} is not empty; pick a new folder or resume it with --resume")
    explicit.mkdir(parents=True, exist_ok=True)
    return explicit
