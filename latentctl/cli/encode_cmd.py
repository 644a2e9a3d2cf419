"""`latentctl encode` and `latentctl map`: real photos into the latent space."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import (
    PANEL_OUTPUT,
    DeviceOpt,
    ForceOpt,
    WorkspaceOpt,
    err_console,
    handles_errors,
    note,
    result,
)
from latentctl.cli.latent_cmds import ModelOpt, OutOpt
from latentctl.errors import DataError, UsageError

P_PROJ = "GAN projection"


def load_photos(paths: list[Path], size: int) -> tuple["np.ndarray", list[Path]]:  # noqa: F821
    """Images from files and folders (folders searched recursively); unusable files are errors."""
    import numpy as np

    from latentctl.images import IMAGE_EXTENSIONS, find_images, load_rgb

    files: list[Path] = []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            files += find_images(p)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(f"{p}: not an image file this tool reads ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            files.append(p)
        else:
            raise DataError(f"no file or folder at {p}")
    if not files:
        raise DataError("no images found in " + ", ".join(map(str, paths)))
    return np.stack([load_rgb(f, size) for f in files]), files


@handles_errors
def encode(
    photos: Annotated[list[Path], typer.Argument(metavar="PHOTOS...", help="Image files or folders.", show_default=False)],
    save: Annotated[str | None, typer.Option("--save", metavar="NAME", help="Save the latents to the store under NAME.", show_default=False)] = None,
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps per image.", rich_help_panel=P_PROJ)] = 300,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate of the latent.", rich_help_panel=P_PROJ)] = 0.05,
    restarts: Annotated[int, typer.Option(min=1, help="Random starting latents per image; the best is kept.", rich_help_panel=P_PROJ)] = 4,
    model: ModelOpt = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
    workspace: WorkspaceOpt = None,
) -> None:
    """Put real photos into the latent space, to edit them like samples.

    AE and VAE models use their encoder; a GAN's latent is found by optimisation (slower: a
    progress bar shows it). Writes each reconstruction beside its original (NAME-compare.png), the
    latents, and prints each image's reconstruction error.

    Examples:

      latentctl encode me.jpg --save me

      latentctl apply me --add glasses-dir --scales 0,1,2         # "my photo with glasses"
    """
    import numpy as np
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from latentctl.cli.session import open_model, output_dir, save_latents
    from latentctl.encode import encode_images
    from latentctl.grid import make_grid, save_png

    session = open_model(model, device, workspace)
    images, files = load_photos(photos, session.info.model.image_size)
    out_dir = output_dir(session.ws, out, "encode", force)
    with Progress(TextColumn("encoding"), BarColumn(), TimeRemainingColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("encode", total=None)
        enc = encode_images(session.loaded, images, session.device, steps=steps, lr=lr, restarts=restarts,
                            on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    for f, img, rec in zip(files, images, enc.reconstructions):
        save_png(make_grid(np.stack([img, rec]), cols=2), out_dir / f"{f.stem}-compare.png")
        save_png(rec, out_dir / f"{f.stem}-recon.png")
    entry = session.entry(enc.z, meta={"command": "encode", "method": enc.method, "files": [str(f) for f in files],
                                       "rms_error": [round(float(e), 3) for e in enc.errors]})
    save_latents(out_dir / "latents.npz", entry, force=force)
    for f, e in zip(files, enc.errors):
        note(f"{f}: reconstruction error {e:.1f} (RMS, 0-255)")
    note(f"{len(files)} image(s) encoded by {enc.method}; originals beside reconstructions in {out_dir}")
    if save:
        note(f"saved as '{save}' ({session.store.save(save, entry, force=force)})")
    result(str(out_dir))
