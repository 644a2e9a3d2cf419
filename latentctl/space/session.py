"""A loaded model plus the workspace and store around it: what sample, interp, apply, the demo and
the explorer share. Library code: it never prints; warnings go to the ``warn`` callback it is given."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentctl.errors import UsageError
from latentctl.files.checkpoint import CheckpointInfo
from latentctl.files.workspace import Workspace, made_folder
from latentctl.space.store import (
    LatentEntry,
    LatentStore,
    compatibility_warning,
    resolve_latents,
    write_entry,
)


@dataclass
class ModelSession:
    ws: Workspace
    path: Path
    info: CheckpointInfo
    loaded: Any  # checkpoint.Loaded: the generator, and an AE/VAE's encoder
    device: Any
    store: LatentStore
    precision: str = "fp32"  # for rendering images: fp32 | bf16 (autocast)
    warned: set[str] = field(default_factory=set)
    warn: Callable[[str], None] = lambda message: None  # how a warning reaches the user
    allow_other_model: bool = False  # latents made by a different model: an error unless this is set

    @property
    def generator(self) -> Any:
        return self.loaded.generator

    def images(self, z: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Images (n, S, S, C) uint8 for latents (n, latent_dim), in this session's precision."""
        from latentctl.space.generate import generate

        z = np.asarray(z, dtype=np.float32).reshape(-1, self.info.model.latent_dim)
        return generate(self.generator, z, device=self.device, precision=self.precision, batch_size=batch_size)

    def seed_latents(self, seeds: list[int]) -> np.ndarray:
        """(len(seeds), latent_dim) float32: each seed's latent, drawn from this model's prior."""
        from latentctl.models.interface import seed_latents

        return seed_latents(self.generator, seeds)

    def sample(self, seeds: list[int] | str) -> np.ndarray:
        """The images of ``seeds`` (a list, or text such as "0-8,42"): the same pictures
        `latentctl sample --seeds` draws, since a seed always gives the same latent."""
        from latentctl.seeds import parse_seeds

        seeds = parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]
        return self.images(self.seed_latents(seeds))

    def entry(
        self, z: np.ndarray, *, seeds: list[int] | None = None, kind: str = "points", meta: dict | None = None
    ) -> LatentEntry:
        """A store entry for latents this model produced, stamped with its identity."""
        meta = {  # the store stamps "created" and "latentctl_version"
            "checkpoint": str(self.path),
            **(meta or {}),
        }
        return LatentEntry(
            z=np.asarray(z, dtype=np.float32).reshape(-1, self.info.model.latent_dim),
            kind=kind,
            seeds=None if seeds is None else np.asarray(seeds, dtype=np.int64),
            model_id=self.info.model_id,
            run_id=self.info.run_id,
            meta=meta,
            space=self.info.model.latent_space,
        )

    def latents(self, spec: str) -> LatentEntry:
        """Latents from user text (store name, .npz path, seeds:..., with @rows).

        Latents a different model made are an error unless ``allow_other_model`` (then a warning):
        they decode to unrelated pictures, which looks like a bug rather than a mistake. Another
        checkpoint of the same run (training went on) is only a warning: its meaning drifts slowly."""
        model = self.info.model
        entry = resolve_latents(
            spec, self.store, model.latent_dim, self.seed_latents, space=model.latent_space, own_space=model.own_space
        )
        message = compatibility_warning(entry, model_id=self.info.model_id, run_id=self.info.run_id, source=spec)
        same_run = bool(entry.run_id and self.info.run_id and entry.run_id == self.info.run_id)
        if message and not same_run and not self.allow_other_model:
            raise UsageError(f"{message}; pass --allow-other-model to use them anyway")
        if message and spec not in self.warned:
            self.warned.add(spec)
            self.warn(message)
        return entry


def open_model(
    model: Path | None,
    device: str = "auto",
    workspace: Path | None = None,
    precision: str = "fp32",
    *,
    warn: Callable[[str], None] | None = None,
    ema: bool = True,
    allow_other_model: bool = False,
    space: str | None = None,
    noise: str | None = None,
) -> ModelSession:
    """Load a checkpoint for rendering (and encoding). ``precision`` is what images are rendered in
    (``auto`` resolves per device); encoding always runs in float32. ``allow_other_model`` lets
    ``latents`` accept latents another model made (with a warning). ``space`` is the latent space
    to explore (z, w or w+; None: the model's own) and ``noise`` a StyleGAN2's noise mode; both
    are checked against the header before the weights load."""
    from latentctl.device import resolve_device, resolve_precision
    from latentctl.files import checkpoint
    from latentctl.models.interface import use_noise, use_space
    from latentctl.perf import cpu_speedups, prepare_for_sampling

    ws = Workspace.resolve(workspace)
    path = ws.resolve_checkpoint(model)
    if space is not None or noise is not None:  # a wrong --space or --noise fails before any loading
        header = checkpoint.read_header(path).model
        header.in_space(space)
        header.check_noise(noise)
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    cpu_speedups(dev)
    loaded = checkpoint.load(path, device=dev, ema=ema)
    use_space(loaded.generator, space)
    use_noise(loaded.generator, noise)
    prepare_for_sampling(loaded.generator, dev)
    # The session's header describes the space explored, so every latent size checked is that one's.
    info = dataclasses.replace(loaded.info, model=loaded.generator.config)
    session = ModelSession(
        ws, path, info, loaded, dev, LatentStore(ws.store), precision, allow_other_model=allow_other_model
    )
    if warn is not None:
        session.warn = warn
    return session


def seeds_function(info: CheckpointInfo, open_session: Callable[[], ModelSession]) -> Callable[[list[int]], np.ndarray]:
    """seeds -> latents for a model known by its header alone (commands that need no network for
    anything else): the prior's draw, or, where the network maps its prior (StyleGAN's W), the
    session ``open_session`` opens, once and only when seeds are asked for."""
    from latentctl.seeds import latents_from_seeds

    if not info.model.mapped:
        return lambda seeds: latents_from_seeds(seeds, info.model.latent_dim, info.model.latent_prior)
    opened: list[ModelSession] = []

    def mapped(seeds: list[int]) -> np.ndarray:
        if not opened:
            opened.append(open_session())
        return opened[0].seed_latents(seeds)

    return mapped


def output_dir(ws: Workspace, out: Path | None, command: str, force: bool) -> Path:
    if out is None:
        return ws.new_output_dir(command)
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    missing = [p for p in [out, *out.parents] if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    for folder in reversed(missing):  # outermost first, so a failure removes the innermost first
        made_folder(folder)
    return out


def _refuse_overwrites(paths: list[Path], force: bool) -> None:
    if force:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise UsageError(f"{existing[0]}{more} already exist; pass --force to replace them or choose another --out")


def render(
    session: ModelSession,
    z: np.ndarray,
    out_dir: Path,
    *,
    names: list[str] | None,
    labels: list[str] | None,
    grid: bool = True,
    grid_max: int = 400,
    cols: int | None = None,
    batch_size: int = 64,
    force: bool = False,
    grid_name: str = "grid.png",
    tile_size: int | None = None,
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    caption: str | None = None,
    check_latents_file: bool = True,
) -> Path | None:
    """Generate images for ``z`` batch by batch: one PNG per name (at the model's size: data), and
    a grid of the first ``grid_max`` for people to look at, its tiles enlarged to ``tile_size``
    [default: ``grid.DEFAULT_TILE_SIZE``] with the labels in margins. Every target is checked
    before any work, so nothing is overwritten half-way."""
    from latentctl.pictures.grid import DEFAULT_TILE_SIZE, make_grid, save_png
    from latentctl.space.generate import generate_batches

    targets = [out_dir / f"{nm}.png" for nm in names or []] + ([out_dir / grid_name] if grid else [])
    if check_latents_file:  # the latents file the caller writes next
        targets.append(out_dir / "latents.npz")
    _refuse_overwrites(targets, force)
    if not names and not grid:
        return None  # nothing to draw: no generator pass at all
    tiles: list[np.ndarray] = []
    i = 0
    for batch in generate_batches(
        session.generator, z, device=session.device, batch_size=batch_size, precision=session.precision
    ):
        for img in batch:
            if names:
                save_png(img, out_dir / f"{names[i]}.png")
            if grid and len(tiles) < grid_max:
                tiles.append(img)
            i += 1
    if not grid or not tiles:
        return None
    shown = labels[: len(tiles)] if labels else None
    img = make_grid(
        np.stack(tiles),
        cols=cols,
        labels=shown,
        row_labels=row_labels,
        col_labels=col_labels,
        caption=caption,
        tile_size=DEFAULT_TILE_SIZE if tile_size is None else tile_size,
    )
    return save_png(img, out_dir / grid_name)


def file_stems(seeds: list[int] | None, count: int) -> list[str]:
    """How rendered latents' PNGs are named: by seed (``seed0042``) when every row has a distinct
    one, by row (``row000``) otherwise. One rule for apply, render and the explorer's commands."""
    if seeds is not None and len(seeds) == count and len(set(seeds)) == count:
        return [f"seed{s:04d}" for s in seeds]
    return [f"row{i:03d}" for i in range(count)]


def save_latents(path: Path, entry: LatentEntry, *, force: bool) -> Path:
    return write_entry(path, entry, force=force)
