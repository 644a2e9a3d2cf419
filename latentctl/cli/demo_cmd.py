"""`latentctl demo`: the whole journey on built-in synthetic faces, in a few minutes on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import DeviceOpt, PrecisionOpt, WorkspaceOpt, err_console, handles_errors, note, result, warn


@handles_errors
def demo(
    epochs: Annotated[
        int, typer.Option(min=1, help="Training epochs (each about 30 steps of 64 images at the defaults).")
    ] = 40,
    images: Annotated[int, typer.Option(min=64, help="How many synthetic faces to draw.")] = 2000,
    image_size: Annotated[int, typer.Option("--image-size", "-s", metavar="32|64", help="Face size in pixels.")] = 32,
    width: Annotated[int, typer.Option(min=8, help="Channels of the model's hidden layers (the seed: 128).")] = 32,
    seed: Annotated[int, typer.Option(min=0, help="Seed for the faces, the weights and the training order.")] = 0,
    reuse: Annotated[
        Path | None,
        typer.Option("--reuse", metavar="RUN", help="Skip training and run the experiments on this finished demo run."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Gallery folder \\[default: a new folder in the workspace's outputs/].",
            show_default=False,
        ),
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    workspace: WorkspaceOpt = None,
) -> None:
    """Train on built-in synthetic faces, then sample, build and apply attribute directions,
    interpolate, and write a gallery (index.html) showing each step. No download needed.

    The faces are drawn with known attributes (glasses, smile, dark hair, dark skin) and pixel
    detectors label the generated samples, so the demo reports how often adding a direction makes
    the detector find its attribute.

    Example:

      latentctl demo            # about 3 minutes on 2 CPU cores
    """
    from latentctl import perf
    from latentctl.cli.progress import TrainingProgress
    from latentctl.demo import DemoConfig, run_demo
    from latentctl.device import resolve_device, resolve_precision
    from latentctl.files.workspace import Workspace

    ws = Workspace.resolve(workspace)
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    cfg = DemoConfig(image_size=image_size, images=images, width=width, epochs=epochs, seed=seed, precision=precision)
    out_dir = Path(out).expanduser() if out else ws.new_output_dir("demo")
    perf.cpu_speedups(dev)
    note(f"demo: {images} synthetic {image_size}px faces, {epochs} epochs on {dev} ({precision}); workspace {ws.root}")
    with TrainingProgress(err_console) as progress:
        report = run_demo(ws, out_dir, cfg, device=dev, on_event=progress.update, run_dir=reuse)
    note(f"run folder: {report.run_dir}")
    like = report.likeness
    note(
        f"samples vs training faces: Fréchet distance {like.fd:.2f} ({like.fd / like.floor:.0f}x the real-vs-real "
        f"{like.floor:.2f}), recall {like.recall:.2f}; detector rate "
        + ", ".join(f"{a} {like.sample_rates[a]:.0%} (data {like.data_rates[a]:.0%})" for a in like.data_rates)
    )
    if like.off():
        apart = ", ".join(f"{a} {100 * g:+.0f}" for a, g in like.off().items())
        warn(
            f"the samples are not yet like the training faces (points apart: {apart}); "
            f"more training usually brings them closer: latentctl demo --epochs {2 * epochs}"
        )
    for r in report.attributes:
        rates = ", ".join(f"{k}: {v:.0%}" for k, v in r.rates.items())
        note(f"{r.attribute:>10}: {r.n_pos} with / {r.n_neg} without; detector rate by strength {rates or '-'}")
    note(f"gallery: {report.gallery}")
    result(str(report.gallery))
