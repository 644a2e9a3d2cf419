"""What `interp`, `apply` and `render` do with a loaded model between parsing and printing: gather the
latents given, walk between them, add directions to them, and write a walk's animations.

The arithmetic itself is ``latents`` (pure numpy); this module adds the model session around it
(latents by name, checked against the model) and the names of what the commands write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentctl.errors import UsageError
from latentctl.space import latents as L
from latentctl.space.session import ModelSession, file_stems
from latentctl.space.store import LatentEntry


@dataclass(frozen=True)
class Rows:
    """Latents gathered from several specs, with a label a person can read for each row."""

    z: np.ndarray  # (n, latent_dim) float32
    labels: list[str]  # "seed 16", or ENTRY@ROW
    seeds: list[int] | None  # the seed of every row, or None when any row has none


def gather_rows(session: ModelSession, specs: Sequence[str], *, limit: int, what: str) -> Rows:
    """The rows of every spec, stopping as soon as they exceed ``limit`` (each spec alone may hold
    up to 100,000 latents, so many of them could fill the memory before anything is checked)."""
    parts, labels, seeds, total = [], [], [], 0
    for spec in specs:
        entry = session.latents(spec)
        total += entry.count
        if total > limit:
            raise UsageError(f"{what}: the latents given hold more than {limit:,} rows; use fewer or pick rows with @")
        parts.append(entry.z)
        for i in range(entry.count):
            if entry.seeds is not None:
                labels.append(f"seed {int(entry.seeds[i])}")
                seeds.append(int(entry.seeds[i]))
            else:
                labels.append(spec if entry.count == 1 else f"{spec}@{i}")
                seeds.append(None)
    known = None if any(s is None for s in seeds) else seeds
    return Rows(np.concatenate(parts), labels, known)


def file_names(rows: Rows, suffixes: Sequence[str]) -> list[str]:
    """One PNG name per (row, suffix), named as ``session.file_stems`` says."""
    return [f"{stem}{suffix}" for stem in file_stems(rows.seeds, len(rows.labels)) for suffix in suffixes]


# ---- interp -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Walk:
    """A path through latents, ready to render and save."""

    path: np.ndarray  # (frames, latent_dim)
    segments: int
    names: list[str]  # frame000, frame001, ...
    labels: list[str]  # the first and last point's spec on the end frames, "" between
    entry: LatentEntry  # the path's latents, stamped with the model


def walk(session: ModelSession, points: Sequence[str], steps: int, method: str) -> Walk:
    """The ``method`` path (lerp or slerp) through ``points`` in order, ``steps`` frames per segment."""
    rows = gather_rows(session, points, limit=L.MAX_PATH_FRAMES, what="interp").z
    if len(rows) < 2:
        raise UsageError("interp needs at least two latents, e.g. 'latentctl interp seeds:16 seeds:37'")
    L.path_frames(len(rows), steps)
    path = L.interpolate_path(rows, steps, method)
    last = len(path) - 1
    return Walk(
        path=path,
        segments=len(rows) - 1,
        names=[f"frame{i:03d}" for i in range(len(path))],
        labels=[points[0] if i == 0 else (points[-1] if i == last else "") for i in range(len(path))],
        entry=session.entry(path, meta={"command": "interp", "points": list(points), "steps": steps, "method": method}),
    )


def write_animations(
    out_dir: Path,
    names: list[str],
    *,
    gif: bool,
    webp: bool,
    mp4: bool,
    frame_ms: int,
    force: bool,
    tile_size: int | None = None,
) -> None:
    """interp.gif / interp.webp (forth and back) and interp.mp4 from the frames ``names`` in ``out_dir``."""
    from PIL import Image

    if gif or webp:
        _animate(out_dir, names, gif=gif, webp=webp, frame_ms=frame_ms, force=force, tile_size=tile_size)
    if mp4:
        from latentctl.pictures.grid import write_mp4

        target = out_dir / "interp.mp4"
        if target.exists() and not force:
            raise UsageError(f"{target} already exists; pass --force to replace it")
        write_mp4(
            [np.asarray(Image.open(out_dir / f"{n}.png")) for n in names],
            target,
            fps=1000 / frame_ms,
            tile_size=tile_size,
        )


def _animate(
    out_dir: Path, names: list[str], *, gif: bool, webp: bool, frame_ms: int, force: bool, tile_size: int | None
) -> None:
    from PIL import Image

    from latentctl.files.fsutil import atomic_writer
    from latentctl.pictures.grid import DEFAULT_TILE_SIZE, upscale

    # enlarged like the grids: a 32 px animation is too small to watch
    size = DEFAULT_TILE_SIZE if tile_size is None else tile_size
    frames = [
        Image.fromarray(upscale(np.asarray(Image.open(out_dir / f"{n}.png").convert("RGB")), size)) for n in names
    ]
    # forth and back, so the loop has no jump
    sequence = frames + frames[-2:0:-1]
    for enabled, name, fmt in ((gif, "interp.gif", "GIF"), (webp, "interp.webp", "WEBP")):
        if not enabled:
            continue
        target = out_dir / name
        if target.exists() and not force:
            raise UsageError(f"{target} already exists; pass --force to replace it")
        with atomic_writer(target) as f:
            extra = {"lossless": True} if fmt == "WEBP" else {}
            sequence[0].save(
                f, format=fmt, save_all=True, append_images=sequence[1:], duration=frame_ms, loop=0, **extra
            )


# ---- apply ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """Latents moved along weighted directions, at each strength."""

    inputs: Rows  # the latents given
    base: np.ndarray  # what is edited: the inputs, or their mean as one row
    row_names: list[str]  # one per row of ``base``
    seeds: list[int] | None  # of the rows of ``base``, when each has one
    combined: np.ndarray  # (latent_dim,) float64: the sum of weight x direction
    directions: list[LatentEntry]  # the entries added, in order
    strengths: list[float]
    sweep: np.ndarray  # (rows, strengths, latent_dim) float32

    @property
    def flat(self) -> np.ndarray:
        """The sweep's latents row by row: (rows x strengths, latent_dim)."""
        return self.sweep.reshape(-1, self.sweep.shape[-1])

    @property
    def flat_seeds(self) -> list[int] | None:
        return None if self.seeds is None else [s for s in self.seeds for _ in self.strengths]

    def file_names(self) -> list[str]:
        rows = Rows(self.base, self.row_names, self.seeds)
        return file_names(rows, [f"_scale{s:+g}" for s in self.strengths])


def edit_latents(
    session: ModelSession,
    latents: Sequence[str],
    weighted: Sequence[tuple[str, float]],
    strengths: Sequence[float],
    *,
    mean: bool = False,
    report: Callable[[str], None] = lambda line: None,
) -> Edit:
    """``latents`` (or their mean) plus each strength times the sum of the ``weighted`` directions;
    ``report`` hears each direction's length and what strength 1 means for it."""
    inputs = gather_rows(
        session, latents, limit=L.MAX_SWEEP // len(strengths), what=f"apply with {len(strengths)} strength(s)"
    )
    base, row_names, seeds = inputs.z, inputs.labels, inputs.seeds
    if mean:
        base = inputs.z.mean(axis=0, keepdims=True)
        row_names, seeds = [f"mean of {len(inputs.z)}"], None
    combined = np.zeros(base.shape[1], dtype=np.float64)
    used = []
    for name, weight in weighted:
        entry = session.latents(name)
        used.append(entry)
        if entry.kind != "direction":
            raise UsageError(
                f"--add {name}: holds {entry.count} point(s), not a direction; make one with 'latentctl attr-vector'"
            )
        vec = entry.z.mean(axis=0, dtype=np.float64)
        combined += weight * vec
        report(f"{name}: {L.scale_text(entry.meta, float(np.linalg.norm(vec)))}; weight {weight:g}")
    sweep = L.strength_sweep(base, combined, strengths)  # refuses inf before rendering
    return Edit(inputs, base, row_names, seeds, combined, used, list(strengths), sweep)


def arithmetic_tiles(session: ModelSession, edit: Edit) -> tuple[np.ndarray, list[str]]:
    """The seed's figure, arithmetic.png, as (tiles, titles): the inputs, their mean, each direction's
    two group means when its provenance names them (mean(glasses), mean(no glasses)), and mean +
    direction at each strength."""
    mean = edit.base[0]
    tiles, titles = [], []
    for i, z in enumerate(edit.inputs.z[:8]):
        tiles.append(z)
        titles.append(f"input {i + 1}")
    tiles.append(mean)
    titles.append("mean")
    for entry in edit.directions:
        for side in ("pos", "neg"):
            specs = entry.meta.get(side)
            if not isinstance(specs, list) or not specs:
                continue
            try:
                group = np.concatenate([session.latents(str(spec)).z for spec in specs])
            except Exception:  # noqa: BLE001 - the provenance names an entry that is gone: leave it out
                continue
            tiles.append(group.mean(axis=0))
            titles.append(f"mean({','.join(map(str, specs))})")
    for s in edit.strengths:
        if s:
            tiles.append(mean + s * edit.combined)
            titles.append(f"mean {'+' if s > 0 else '-'} {abs(s):g} x direction")
    return np.stack(tiles).astype(np.float32), titles
