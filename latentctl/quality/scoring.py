"""Scoring a checkpoint: what `latentctl score` decides and keeps around the numbers ``score``
computes.

``plan_score`` settles what a checkpoint is compared with (the folder its run trained on and that
run's own subset of it, or a folder the caller names) and how many samples, and checks it all
before any image is decoded. ``keep_score`` records a run checkpoint's score in the workspace's
scores.jsonl, where `latentctl runs` and `runs show` read it, and returns what the command shows.

Library code: it never prints; the one warning (a workspace that cannot be written) goes to the
``warn`` callback it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentctl.errors import DataError, UsageError
from latentctl.files.checkpoint import CheckpointInfo, read_header
from latentctl.quality.score import MIN_IMAGES, FeatureSpace, ScoreReport

if TYPE_CHECKING:
    from latentctl.files.workspace import Workspace
    from latentctl.pictures.data import ImageDataset

DEFAULT_N = 2000  # samples scored when no count is given (fewer when there are fewer real images)


@dataclass(frozen=True)
class ScorePlan:
    """What a checkpoint is scored against, settled and checked before any image is decoded."""

    checkpoint: Path
    header: CheckpointInfo
    images: Path  # the folder of real images
    n: int  # generated samples: seeds 0..n-1
    max_images: int | None  # real images decoded at most (None: all of them)
    subset_seed: int  # which subset max_images keeps (the training run's own, when it is its folder)


def plan_score(ws: Workspace, model: Path | None, images: Path | None = None, n: int | None = None) -> ScorePlan:
    """The checkpoint ``model`` names (None: the current run) scored with ``n`` samples (None:
    ``DEFAULT_N``, or the number of real images if fewer) against ``images`` (None: the folder
    its run trained on)."""
    from latentctl.pictures.images import find_images

    path = ws.resolve_checkpoint(model)
    hdr = read_header(path)
    root, max_images, subset_seed = _real_images(path, hdr, images)
    count = len(find_images(root))
    if max_images is not None:
        count = min(count, max_images)
    if count < 2 * MIN_IMAGES:
        raise DataError(
            f"{root} has {count} images; scoring needs at least {2 * MIN_IMAGES} (two halves of {MIN_IMAGES})"
        )
    n = n if n is not None else min(DEFAULT_N, count)
    if images is not None and count > 2 * n:
        max_images = 2 * n  # the score uses at most n reference and n held-out images; decode no more
    return ScorePlan(path, hdr, root, n, max_images, subset_seed)


def _real_images(path: Path, hdr: CheckpointInfo, images: Path | None) -> tuple[Path, int | None, int]:
    """(folder, max_images, subset seed): the folder to compare with and the subset of it to decode."""
    if images is not None:
        root = Path(images).expanduser()
        if not root.is_dir():
            raise DataError(f"--images {images}: not a folder of images")
        return root, None, 0
    recorded = (hdr.state.get("data") or {}).get("root")
    if not recorded:
        raise UsageError(f"{path} does not record the images it was trained on; pass --images DIR")
    root = Path(recorded)
    if not root.is_dir():
        raise DataError(f"{root}, the folder {path.name} was trained on, is not there any more; pass --images DIR")
    if hdr.train is None:
        return root, None, 0
    # The training run's own subset, so the decoded images come from its cache.
    return root, hdr.train.max_images, hdr.train.seed


def decode_real_images(
    plan: ScorePlan, ws: Workspace, *, progress: Callable[[int, int], None] | None = None
) -> ImageDataset:
    """The plan's real images, decoded as the model's training data was (grey, RGB or RGBA), so
    both sides are alike; a folder decoded before comes from the workspace's cache."""
    from latentctl.pictures.data import prepare_dataset

    model = plan.header.model
    return prepare_dataset(
        plan.images,
        model.image_size,
        ws.cache,
        max_images=plan.max_images,
        seed=plan.subset_seed,
        channels=model.channels,
        progress=progress,
    )


def space_on(space: FeatureSpace, device: Any) -> FeatureSpace:
    """``space`` computed where it is best run: Inception (5.7 GFLOP an image) on the model's
    GPU when it has one; the built-in network is small and stays on the CPU."""
    if space.name == "inception" and device.type == "cuda":
        return dataclasses.replace(space, device=str(device))
    return space


@dataclass(frozen=True)
class ScoreResult:
    """What `latentctl score` shows: the report, what it measured, and where it was recorded."""

    report: ScoreReport
    checkpoint: Path
    images: Path  # the folder the real images were decoded from
    n: int  # generated samples: seeds 0..n-1
    seconds: float  # loading the model, the features and the samples
    recorded: Path | None  # the scores.jsonl it was added to; None: not a run's checkpoint, or not written

    @property
    def seeds(self) -> str:
        return f"0-{self.n - 1}"

    def to_dict(self) -> dict[str, Any]:
        """The report's numbers with what was scored (`latentctl score --json`)."""
        out = self.report.to_dict()
        out.update(
            checkpoint=str(self.checkpoint), images=str(self.images), seeds=self.seeds, seconds=round(self.seconds, 2)
        )
        return out


def keep_score(
    ws: Workspace,
    plan: ScorePlan,
    report: ScoreReport,
    images: Path,
    seconds: float,
    *,
    warn: Callable[[str], None] | None = None,
) -> ScoreResult:
    """The result of scoring ``plan`` against ``images`` (the decoded folder), recorded first in
    the workspace's scores.jsonl when the checkpoint is a run's."""
    recorded = _record(ws, plan, report, images, warn or (lambda message: None))
    return ScoreResult(report, plan.checkpoint, images, plan.n, seconds, recorded)


def _record(
    ws: Workspace, plan: ScorePlan, report: ScoreReport, images: Path, warn: Callable[[str], None]
) -> Path | None:
    """Keep a run checkpoint's score in the workspace's scores.jsonl, where `runs` and `runs show`
    read it. Other checkpoints (best.safetensors, a file of one's own) are not a run's score. A
    workspace that cannot be written loses only the record, never the score shown."""
    from datetime import datetime

    from latentctl.files.runlist import record_score
    from latentctl.files.workspace import CHECKPOINT_NAME

    if plan.checkpoint.name != CHECKPOINT_NAME:
        return None
    hdr = plan.header
    record = {
        "checkpoint": str(plan.checkpoint.resolve()),
        "run_id": hdr.run_id,
        "epoch": hdr.state.get("epoch"),
        "global_step": hdr.state.get("global_step"),
        "score_fd": round(report.score.fd, 4),
        "floor_fd": round(report.floor.fd, 4),
        "kid": round(report.score.kid, 6),
        "precision": round(report.score.precision, 4),
        "recall": round(report.score.recall, 4),
        "features": report.features,
        "n_generated": report.n_generated,
        "n_reference": report.n_reference,
        "images": str(images),
        "seeds": f"0-{plan.n - 1}",
        "measured_at": datetime.now().isoformat(timespec="minutes"),
    }
    try:
        return record_score(ws, record)
    except OSError as err:
        warn(f"the score was not recorded for 'latentctl runs show' ({err.strerror or err})")
        return None
