"""What `latentctl sample` makes of a model: the latents of some seeds (pulled in by truncation),
one PNG per sample, a grid to look at, the latents file beside them and, if asked, a store entry.
Library code: it writes files and returns where they went; the command prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentctl.errors import StoreError


@dataclass(frozen=True)
class Samples:
    """Where one `sample` went: the answer to its ``--json``."""

    folder: Path
    grid: Path | None  # None with --no-grid
    images: list[Path]  # one per seed, empty with --no-pngs
    seeds: list[int]
    latents: Path
    store_entry: str | None
    store_path: Path | None
    model: Path
    model_id: str
    truncation: float

    def as_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "grid": str(self.grid) if self.grid else None,
            "images": [str(p) for p in self.images],
            "seeds": self.seeds,
            "latents": str(self.latents),
            "store_entry": self.store_entry,
            "store_path": str(self.store_path) if self.store_path else None,
            "model": str(self.model),
            "model_id": self.model_id,
            "truncation": self.truncation,
        }


def grid_caption(truncation: float) -> str | None:
    """The grid's caption: the truncation ψ when it is not 1, so that a grid shared later still says
    how it was drawn (issue 29). Spelt "psi", as the option is: the grid's font has no Greek letters
    and would draw a box. A grid drawn without truncation has no caption."""
    return None if truncation == 1 else f"psi = {truncation:g}"


def draw_samples(
    session: Any,
    seeds: list[int],
    out_dir: Path,
    *,
    truncation: float = 1.0,
    pngs: bool = True,
    captions: bool = True,
    grid: bool = True,
    grid_max: int = 400,
    cols: int | None = None,
    batch_size: int = 64,
    tile_size: int | None = None,
    save: str | None = None,
    force: bool = False,
) -> Samples:
    """Draw ``seeds`` from ``session`` (a session.ModelSession) into ``out_dir``: seedNNNN.png
    each (``pngs``), grid.png of the first ``grid_max`` with each tile's seed under it
    (``captions``), and latents.npz; with ``save``, the latents also go to the store as that name.
    Every file is checked before any is written, so nothing is replaced without ``force``."""
    from latentctl.models.interface import truncate
    from latentctl.space.session import render, save_latents

    if save and not force and session.store.exists(save):  # before any file is drawn, as render's own checks
        raise StoreError(f"{session.store.path_for(save)} already exists; pass --force to replace it")
    z = truncate(session.generator, session.seed_latents(seeds), truncation)
    names = [f"seed{s:04d}" for s in seeds] if pngs else None
    written = render(
        session,
        z,
        out_dir,
        names=names,
        labels=[str(s) for s in seeds] if captions else None,
        grid=grid,
        grid_max=grid_max,
        cols=cols,
        batch_size=batch_size,
        force=force,
        tile_size=tile_size,
        caption=grid_caption(truncation),
    )
    entry = session.entry(z, seeds=seeds, meta={"command": "sample", "truncation": truncation})
    latents_file = save_latents(out_dir / "latents.npz", entry, force=force)
    stored = session.store.save(save, entry, force=force) if save else None
    return Samples(
        folder=out_dir,
        grid=written,
        images=[out_dir / f"{nm}.png" for nm in names or []],
        seeds=seeds,
        latents=latents_file,
        store_entry=save,
        store_path=stored,
        model=session.path,
        model_id=session.info.model_id,
        truncation=truncation,
    )
