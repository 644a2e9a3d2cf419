"""`latentctl encode` and `latentctl map`: real photos into the latent space."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import (
    PANEL_OUTPUT,
    LabelsOpt,
    MaxImagesOpt,
    PatternOpt,
    DeviceOpt,
    ForceOpt,
    WorkspaceOpt,
    err_console,
    handles_errors,
    note,
    result,
    warn,
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

    from latentctl.cli.latent_cmds import check_save
    from latentctl.session import open_model, output_dir, save_latents
    from latentctl.encode import encode_images
    from latentctl.grid import make_grid, save_png
    from latentctl.parse import MAX_ENCODE_STEPS, MAX_RESTARTS, check_count, check_float

    check_float(lr, "--lr", minimum=0.0)
    check_count(steps, "--steps", MAX_ENCODE_STEPS, "more steps rarely improve the fit")
    check_count(restarts, "--restarts", MAX_RESTARTS, "each restart multiplies the batch the generator runs")
    check_save(save, workspace, force)
    session = open_model(model, device, workspace, warn=warn)
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


def labelled_latents(session, images_dir: Path, column: str, labels_csv: Path | None, pattern: str | None,
                     max_images: int, *, steps: int = 300) -> tuple["np.ndarray", "np.ndarray"]:  # noqa: F821
    """Encode a labelled image folder: (latents (n, d), label values (n,)), unlabelled files dropped."""
    import numpy as np

    from latentctl.cli.common import warn
    from latentctl.data import prepare_dataset
    from latentctl.encode import encode_images
    from latentctl.labels import UTKFACE_PATTERN, compile_pattern, labels_from_names, read_labels_csv

    images_dir = Path(images_dir).expanduser()
    csv = labels_csv or (images_dir / "labels.csv" if (images_dir / "labels.csv").exists() and pattern is None else None)
    # The labels and the column are checked before the images are read, which is the slow part.
    if csv:
        labels = read_labels_csv(csv, images_dir)
        labels.column([], column)  # UsageError naming the columns there are
    else:
        groups = list(compile_pattern(pattern or UTKFACE_PATTERN).groupindex)
        if column not in groups:
            raise UsageError(f"no label column {column!r}; the name pattern gives: {', '.join(groups)}")
    ds = prepare_dataset(images_dir, session.info.model.image_size, session.ws.cache, max_images=max_images)
    if not csv:
        labels = labels_from_names(ds.files, pattern or UTKFACE_PATTERN)
    note(labels.summary())
    values = labels.column(ds.files, column)
    keep = np.isfinite(values)
    if not keep.any():
        raise DataError(f"no image in {images_dir} has a '{column}' label")
    if session.loaded.encoder is None:
        warn(f"this GAN has no encoder: finding latents for {int(keep.sum())} images by optimisation will be slow")
    with _bar() as (bar, task):
        enc = encode_images(session.loaded, np.asarray(ds.images)[keep], session.device, steps=steps,
                            on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    note(f"encoded {len(enc.z)} labelled images by {enc.method}: mean reconstruction error {enc.errors.mean():.1f} (RMS, 0-255)")
    return enc.z, values[keep]


class _bar:
    def __enter__(self):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("encoding"), BarColumn(), TimeRemainingColumn(), console=err_console, transient=True)
        self.progress.__enter__()
        return self.progress, self.progress.add_task("encode", total=None)

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)


@handles_errors
def map_latents(
    images: Annotated[Path, typer.Argument(metavar="DIR", help="Folder of labelled images.", show_default=False)],
    column: Annotated[str, typer.Option("--column", "-c", metavar="NAME", help="The label that colours the points, e.g. gender.", show_default=False)],
    models: Annotated[list[Path] | None, typer.Option("--model", "-m", metavar="MODEL", help="Run folder or checkpoint; repeat to draw models side by side (e.g. an AE and a VAE) [default: the current run].", show_default=False)] = None,
    labels: LabelsOpt = None,
    name_pattern: PatternOpt = None,
    max_images: MaxImagesOpt = 2000,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="FILE", help="PNG to write [default: map.png in a new outputs/ folder].", rich_help_panel=PANEL_OUTPUT, show_default=False)] = None,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
    workspace: WorkspaceOpt = None,
) -> None:
    """Draw the latent space: labelled images encoded and plotted, coloured by a label.

    2-D latents are drawn directly, others projected to 2-D with PCA. Given an AE and a VAE, the
    two maps stand side by side, as in the seed's figure.

    Example:

      latentctl map mnist-png/ -c digit -m runs/0001-mnist-ae-32px -m runs/0002-mnist-vae-32px
    """
    from latentctl.session import open_model
    from latentctl.plot import Panel, pca_2d, scatter_png
    from latentctl.workspace import Workspace

    ws = Workspace.resolve(workspace)
    target = Path(out).expanduser() if out else ws.new_output_dir("map") / "map.png"
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to replace it")
    panels = []
    for model in models or [None]:
        session = open_model(model, device, workspace, warn=warn)
        z, values = labelled_latents(session, images, column, labels, name_pattern, max_images)
        dim = z.shape[1]
        title = f"{session.info.model.family.upper()}: {session.path.parent.name if session.path.name == 'checkpoint.safetensors' else session.path.stem}"
        title += "" if dim == 2 else f"\nPCA of {dim}-d latents"
        panels.append(Panel(points=pca_2d(z), labels=values, title=title, label_name=column))
    scatter_png(panels, target)
    note(f"{sum(len(p.points) for p in panels)} points in {len(panels)} panel(s)")
    result(str(target))
