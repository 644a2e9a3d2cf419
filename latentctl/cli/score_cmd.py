"""`latentctl score`: one quality number for a model, with the real-vs-real floor beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import (
    DeviceOpt,
    ModelArg,
    PrecisionOpt,
    WorkspaceOpt,
    handles_errors,
    note,
    result,
)
from latentctl.errors import DataError, UsageError

P_SCORE = "Scoring"
DEFAULT_N = 2000


@handles_errors
def score(
    model: ModelArg = None,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            metavar="DIR",
            help="Real images to compare with \\[default: the folder the run trained on].",
            rich_help_panel=P_SCORE,
            show_default=False,
        ),
    ] = None,
    n: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--count",
            help="Generated samples (seeds 0..N-1) \\[default: 2000, or the number of real images if fewer].",
            rich_help_panel=P_SCORE,
            show_default=False,
        ),
    ] = None,
    features: Annotated[
        str,
        typer.Option(
            "--features",
            metavar="builtin|inception",
            help="Feature space: builtin (offline, fixed random conv net at 64 px) or inception (needs --inception-weights).",
            rich_help_panel=P_SCORE,
        ),
    ] = "builtin",
    inception_weights: Annotated[
        Path | None,
        typer.Option(
            "--inception-weights",
            metavar="FILE",
            help="pt_inception-2015-12-05 converted to .safetensors (see docs/quality.md).",
            rich_help_panel=P_SCORE,
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    batch_size: Annotated[
        int, typer.Option(help="Samples generated at once (bounds memory).", rich_help_panel="Device and speed")
    ] = 64,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    workspace: WorkspaceOpt = None,
) -> None:
    """Score a model: Fréchet distance, KID and precision/recall of its samples against real images.

    Prints the score and, beside it, the floor: the same numbers for two halves of the real images, about what a generator as good as the data would get. Lower FD and KID are better; see docs/quality.md.

    Examples:

      latentctl score

      latentctl score runs/0001-faces-64px --images ~/faces -n 1000 --json
    """
    import dataclasses
    import time

    from latentctl import checkpoint
    from latentctl import score as sc
    from latentctl.cli.progress import step
    from latentctl.data import prepare_dataset
    from latentctl.images import find_images
    from latentctl.parse import MAX_BATCH_SIZE, check_count
    from latentctl.seeds import MAX_SEED_COUNT
    from latentctl.workspace import Workspace

    # Everything typed is checked before any image is read or model loaded.
    check_count(
        n, "-n", MAX_SEED_COUNT, "score a subset; 2,000 samples already pin FD down well", minimum=sc.MIN_IMAGES
    )
    check_count(batch_size, "--batch-size", MAX_BATCH_SIZE, "larger batches only use more memory")
    # The feature space (and an Inception weights file, read and checked here) before any image.
    space = sc.feature_space(features, inception_weights=inception_weights)

    ws = Workspace.resolve(workspace)
    path = ws.resolve_checkpoint(model)
    hdr = checkpoint.read_header(path)
    max_images, subset_seed = None, 0
    if images is None:
        root = (hdr.state.get("data") or {}).get("root")
        if not root:
            raise UsageError(f"{path} does not record the images it was trained on; pass --images DIR")
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}, the folder {path.name} was trained on, is not there any more; pass --images DIR")
        if hdr.train is not None:
            # The training run's own subset, so the decoded images come from its cache.
            max_images, subset_seed = hdr.train.max_images, hdr.train.seed
    else:
        root = Path(images).expanduser()
        if not root.is_dir():
            raise DataError(f"--images {images}: not a folder of images")
    count = len(find_images(root))
    if max_images is not None:
        count = min(count, max_images)
    if count < 2 * sc.MIN_IMAGES:
        raise DataError(
            f"{root} has {count} images; scoring needs at least {2 * sc.MIN_IMAGES} (two halves of {sc.MIN_IMAGES})"
        )
    n = n if n is not None else min(DEFAULT_N, count)
    if images is not None and count > 2 * n:
        max_images = 2 * n  # the score uses at most n reference and n held-out images; decode no more
    # Decoded as the model's training data was (grey, RGB or RGBA), so both sides are alike.
    with step(f"decoding the images in {root}", lazy=True) as advance:  # silent when they are cached
        ds = prepare_dataset(
            root,
            hdr.model.image_size,
            ws.cache,
            max_images=max_images,
            seed=subset_seed,
            channels=hdr.model.channels,
            progress=advance,
        )

    from latentctl.session import open_model

    started = time.perf_counter()
    session = open_model(path, device, workspace, precision)
    if space.name == "inception" and session.device.type == "cuda":
        space = dataclasses.replace(space, device=str(session.device))  # 5.7 GFLOP an image: use the GPU
    half = sc.half_size(len(ds.images), n)
    with step(f"{space.name} features of {2 * half:,} real images (reference and floor)", 2 * half) as advance:
        ref = sc.reference(ds.images, n, kind=space, on_batch=advance.add)
    with step(f"generating {n:,} samples and their {space.name} features", n) as advance:
        report = sc.score_generator(
            session.generator, ref, n, session.device, session.precision, batch_size, on_batch=advance.add
        )
    seconds = time.perf_counter() - started
    recorded = _record(ws, path, hdr, report, ds.root, n)
    if as_json:
        out = report.to_dict()
        out.update(checkpoint=str(path), images=str(ds.root), seeds=f"0-{n - 1}", seconds=round(seconds, 2))
        result(json.dumps(out, indent=2))
        return
    s, f = report.score, report.floor
    # Both lines measure against the same reference half of the real images; the floor's other
    # side is the held-out half, which shares no image with it.
    result(f"score  {_line(s)}   ({report.n_generated} generated vs {report.n_reference} real, the reference half)")
    result(f"floor  {_line(f)}   ({report.n_holdout} other real images vs that reference half)")
    note(
        f"features {report.features} ({report.feature_dim} numbers per image at {report.feature_size} px); "
        f"lower FD and KID are better; a model as good as its data scores about the floor; {seconds:.1f} s"
    )
    if recorded:
        note(f"recorded for 'latentctl runs show': {recorded}")


def _line(m) -> str:
    return f"FD {m.fd:10.4f}   KID {m.kid:9.5f} ± {m.kid_std:.5f}   precision {m.precision:.3f}   recall {m.recall:.3f}"


def _record(ws, path: Path, hdr, report, images: Path, n: int) -> Path | None:
    """Keep a run checkpoint's score in the workspace's scores.jsonl, where `runs` and `runs show`
    read it. Other checkpoints (best.safetensors, a file of one's own) are not a run's score. A
    workspace that cannot be written loses only the record, never the score printed."""
    from datetime import datetime

    from latentctl.runlist import record_score
    from latentctl.workspace import CHECKPOINT_NAME

    if path.name != CHECKPOINT_NAME:
        return None
    record = {
        "checkpoint": str(path.resolve()),
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
        "seeds": f"0-{n - 1}",
        "measured_at": datetime.now().isoformat(timespec="minutes"),
    }
    try:
        return record_score(ws, record)
    except OSError as err:
        from latentctl.cli.common import warn

        warn(f"the score was not recorded for 'latentctl runs show' ({err.strerror or err})")
        return None
