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

P_SCORE = "Scoring"


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
    import time

    from latentctl.cli.common import warn
    from latentctl.cli.progress import step
    from latentctl.files.workspace import Workspace
    from latentctl.parse import MAX_BATCH_SIZE, check_count
    from latentctl.quality import score as sc
    from latentctl.quality import scoring
    from latentctl.seeds import MAX_SEED_COUNT
    from latentctl.space.session import open_model

    # Everything typed is checked before any image is read or model loaded.
    check_count(
        n, "-n", MAX_SEED_COUNT, "score a subset; 2,000 samples already pin FD down well", minimum=sc.MIN_IMAGES
    )
    check_count(batch_size, "--batch-size", MAX_BATCH_SIZE, "larger batches only use more memory")
    # The feature space (and an Inception weights file, read and checked here) before any image.
    space = sc.feature_space(features, inception_weights=inception_weights)

    ws = Workspace.resolve(workspace)
    plan = scoring.plan_score(ws, model, images, n)
    with step(f"decoding the images in {plan.images}", lazy=True) as advance:  # silent when they are cached
        ds = scoring.decode_real_images(plan, ws, progress=advance)

    started = time.perf_counter()
    session = open_model(plan.checkpoint, device, workspace, precision)
    space = scoring.space_on(space, session.device)
    n = plan.n  # as given, or settled by the plan from the number of real images
    half = sc.half_size(len(ds.images), n)
    with step(f"{space.name} features of {2 * half:,} real images (reference and floor)", 2 * half) as advance:
        ref = sc.reference(ds.images, n, kind=space, on_batch=advance.add)
    with step(f"generating {n:,} samples and their {space.name} features", n) as advance:
        report = sc.score_generator(
            session.generator, ref, n, session.device, session.precision, batch_size, on_batch=advance.add
        )
    scored = scoring.keep_score(ws, plan, report, ds.root, time.perf_counter() - started, warn=warn)
    if as_json:
        result(json.dumps(scored.to_dict(), indent=2))
        return
    s, f = report.score, report.floor
    # Both lines measure against the same reference half of the real images; the floor's other
    # side is the held-out half, which shares no image with it.
    result(f"score  {_line(s)}   ({report.n_generated} generated vs {report.n_reference} real, the reference half)")
    result(f"floor  {_line(f)}   ({report.n_holdout} other real images vs that reference half)")
    note(
        f"features {report.features} ({report.feature_dim} numbers per image at {report.feature_size} px); "
        f"lower FD and KID are better; a model as good as its data scores about the floor; {scored.seconds:.1f} s"
    )
    share = report.saturation_share
    if share is not None:
        colour = (
            f"colour: the samples' mean saturation is {share:.0%} of the real images' "
            f"({report.saturation:.3f} vs {report.saturation_real:.3f})"
        )
        # FD barely moves with a pale cast; a fifth of the colour gone is plain to see
        (warn if share < PALE_SHARE else note)(
            colour + (": the samples are paler than the data" if share < PALE_SHARE else "")
        )
    if scored.recorded:
        note(f"recorded for 'latentctl runs show': {scored.recorded}")


PALE_SHARE = 0.8  # samples below this share of the data's saturation get a warning, not a note


def _line(m) -> str:
    return f"FD {m.fd:10.4f}   KID {m.kid:9.5f} ± {m.kid_std:.5f}   precision {m.precision:.3f}   recall {m.recall:.3f}"
