"""What a run folder holds besides its checkpoint, drawn by listeners of the training loop.

The loop (``training.py``) trains and saves checkpoints; at the end of each epoch it hands an
``EpochEnd`` to its listeners, before and after the checkpoint. ``standard()`` is what every run
gets (``runs.execute`` attaches it): progress grids, the loss curve, generator snapshots, and the
quality score that keeps the best generator. None of them draws a random number, so a run with or
without them trains to the same weights, and resume stays exact.

Listeners are plain picklable objects: worker processes (``--devices N``) receive them with the
rest of the run, and only rank 0 calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentctl.errors import DataError
from latentctl.train.events import NoticeEvent

SCORE_SAMPLES = 1000  # generated and real images per score during training (about 10 s at 32 px on 2 cores)
BEST_NAME = "best.safetensors"
GRID_SEEDS = list(range(36))  # progress grids show seeds 0-35: `sample --seeds 0-35` shows the same faces


@dataclass
class EpochEnd:
    """What the loop shows its listeners when an epoch ends (rank 0 only)."""

    epoch: int
    global_step: int
    last: bool  # the run's last epoch (its epoch count or step budget reached)
    checkpointed: bool  # the loop saved the training checkpoint at this epoch
    run_dir: Path
    sampler: Any  # the generator that samples (the EMA one when kept), in its training mode
    model_config: Any
    train_config: Any
    dataset: Any
    device: Any
    health: Any  # the loop's HealthMonitor: a grid's images are one of its signals
    save_generator: Callable[[Path, dict], Path]  # a generator checkpoint of the run as it is now
    record: Callable[[dict], None]  # one line into metrics.jsonl
    notify: Callable[[NoticeEvent], None]
    kept: dict[str, Any]  # state saved with training checkpoints (resume restores it): best_fd
    grid: Path | None = None  # the grid drawn at this epoch, if any (EpochEvent carries it)
    # --grow-steps: the size the next step trains at while the model grows (None: full size). The
    # generator's own larger stages are still untrained, so no snapshot or best is kept from it.
    growing: str | None = None  # the stage in words (growing.describe), None at full size


class Listener:
    def before_checkpoint(self, end: EpochEnd) -> None:
        """Called before the epoch's checkpoint (whose EpochEvent carries ``end.grid``)."""

    def after_checkpoint(self, end: EpochEnd) -> None:
        """Called after it."""


@dataclass
class ProgressGrids(Listener):
    """RUN/grids/epoch-NNNN.png: seeds 0-35 every ``sample_every`` epochs and at the end."""

    def before_checkpoint(self, end: EpochEnd) -> None:
        from latentctl.pictures.grid import make_grid, save_png
        from latentctl.seeds import latents_from_seeds
        from latentctl.space.generate import generate

        cfg = end.train_config
        if not (end.epoch % cfg.sample_every == 0 or end.last):
            return
        z = latents_from_seeds(GRID_SEEDS, end.model_config.latent_dim)
        images = generate(end.sampler, z, device=end.device, precision=cfg.precision)
        end.grid = save_png(
            make_grid(images, caption=f"epoch {end.epoch}, step {end.global_step}"),
            end.run_dir / "grids" / f"epoch-{end.epoch:04d}.png",
        )
        for kind, message in end.health.on_grid(images, end.epoch):
            end.notify(NoticeEvent(message, kind))


@dataclass
class LossCurve(Listener):
    """RUN/loss.png, redrawn with each checkpoint: often enough to watch, rare enough to cost nothing."""

    def after_checkpoint(self, end: EpochEnd) -> None:
        from latentctl.pictures.plot import loss_curve

        if not end.checkpointed:
            return
        try:
            loss_curve(end.run_dir / "metrics.jsonl", end.run_dir / "loss.png")
        except DataError as err:
            end.notify(NoticeEvent(f"loss curve not drawn: {err}"))


@dataclass
class Snapshots(Listener):
    """RUN/generator-epoch-NNNN.safetensors every ``snapshot_every`` epochs (the seed saved every 20)."""

    def after_checkpoint(self, end: EpochEnd) -> None:
        if end.epoch % end.train_config.snapshot_every:
            return
        if end.growing:
            end.notify(NoticeEvent(f"epoch {end.epoch}: no snapshot while the model grows (now {end.growing})"))
        else:
            end.save_generator(end.run_dir / f"generator-epoch-{end.epoch:04d}.safetensors", {})


@dataclass
class QualityScore(Listener):
    """Every ``score_every`` epochs: the Fréchet distance beside the real-vs-real floor, into the
    metrics; the best generator so far is kept as RUN/best.safetensors."""

    reference: Any = field(default=None, repr=False)  # the real images' features, computed once

    def after_checkpoint(self, end: EpochEnd) -> None:
        from latentctl.quality import score

        cfg = end.train_config
        if not cfg.score_every or not (end.epoch % cfg.score_every == 0 or end.last):
            return
        n = min(SCORE_SAMPLES, len(end.dataset) // 2)  # as many samples as real images in the reference half
        if self.reference is None:
            self.reference = score.reference(np.asarray(end.dataset.images), n=n, seed=cfg.seed)
        report = score.score_generator(end.sampler, self.reference, n=n, device=end.device, precision=cfg.precision)
        fd, floor = report.score.fd, report.floor.fd
        end.record(
            {
                "epoch": end.epoch,
                "global_step": end.global_step,
                "score_fd": round(fd, 4),
                "score_floor": round(floor, 4),
                "score_recall": round(report.score.recall, 4),
            }
        )
        message = f"epoch {end.epoch}: Fréchet distance {fd:.3g} (real vs real: {floor:.3g})"
        best = end.kept.get("best_fd")
        if end.growing:  # scored at the size it trains at, enlarged: not a generator to keep
            message += f" while growing (now {end.growing}; not kept)"
        elif best is None or fd < best:
            end.kept["best_fd"] = fd
            end.save_generator(end.run_dir / BEST_NAME, {"score_fd": fd})
            message += f"; best so far, kept as {BEST_NAME}"
        end.notify(NoticeEvent(message))


def standard() -> list[Listener]:
    """What every run folder gets, in the order they run."""
    return [ProgressGrids(), LossCurve(), Snapshots(), QualityScore()]
