"""`interp`, `attr-vector`, `apply` and `latents list|show`: the seed's experiments, saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import (
    CAPTIONS,
    P_LABELS,
    PANEL_OUTPUT,
    PNGS,
    AllowOtherOpt,
    DeviceOpt,
    EmaOpt,
    ForceOpt,
    LabelsOpt,
    MaxImagesOpt,
    ModelOpt,
    NoiseOpt,
    OldImagesOpt,
    OldLabelsOpt,
    OutOpt,
    PatternOpt,
    PngsOpt,
    PrecisionOpt,
    SpaceOpt,
    TileSizeOpt,
    WorkspaceOpt,
    check_save,
    handles_errors,
    note,
    renamed,
    result,
    warn,
)
from latentctl.cli.encoding import encode_labelled
from latentctl.errors import StoreError, UsageError

LATENT_HELP = "store entry name, .npz path or seeds:16,37; add @ROWS to pick rows, e.g. glasses@0,2"

SaveOpt = Annotated[
    str | None,
    typer.Option(
        "--save",
        metavar="NAME",
        help="Also save the resulting latents to the latent store under NAME.",
        rich_help_panel=PANEL_OUTPUT,
        show_default=False,
    ),
]


def _gather(session, specs: list[str], *, limit: int, what: str):
    """The rows of every spec, stopping as soon as they exceed ``limit`` (each spec alone may hold
    up to 100,000 latents, so many of them could fill the memory before anything is checked)."""
    return _gather_rows(session, specs, limit=limit, what=what)[0]


def _gather_rows(session, specs: list[str], *, limit: int, what: str):
    """``_gather`` plus, per row, a label a person can read (its seed, or ENTRY@ROW) and the seeds
    when every row has one (None otherwise)."""
    import numpy as np

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
    return np.concatenate(parts), labels, known


def _file_names(labels: list[str], seeds: list[int] | None, suffixes: list[str]) -> list[str]:
    """One PNG name per (row, suffix), named as ``session.file_stems`` says."""
    from latentctl.session import file_stems

    return [f"{stem}{suffix}" for stem in file_stems(seeds, len(labels)) for suffix in suffixes]


@handles_errors
def interp(
    points: Annotated[
        list[str],
        typer.Argument(
            metavar="POINTS...",
            help=f"Two or more latents to walk through, in order ({LATENT_HELP}). An entry with several rows adds each row.",
            show_default=False,
        ),
    ],
    frames: Annotated[int, typer.Option(min=2, help="Images per segment, both ends included (the seed: 6).")] = 6,
    old_steps: Annotated[int | None, typer.Option("--steps", hidden=True)] = None,
    method: Annotated[
        str, typer.Option(metavar="lerp|slerp", help="Straight line, or along the sphere (keeps latent norms typical).")
    ] = "lerp",
    gif: Annotated[
        bool, typer.Option("--gif", help="Also write an animated interp.gif.", rich_help_panel=PANEL_OUTPUT)
    ] = False,
    webp: Annotated[
        bool, typer.Option("--webp", help="Also write an animated interp.webp.", rich_help_panel=PANEL_OUTPUT)
    ] = False,
    mp4: Annotated[
        bool,
        typer.Option(
            "--mp4",
            help="Also write interp.mp4 (needs: pip install 'latentctl\\[video]').",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = False,
    tile_size: TileSizeOpt = None,
    frame_ms: Annotated[
        int, typer.Option(min=10, help="Milliseconds per animation frame.", rich_help_panel=PANEL_OUTPUT)
    ] = 200,
    save: SaveOpt = None,
    model: ModelOpt = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    ema: EmaOpt = True,
    allow_other_model: AllowOtherOpt = False,
    workspace: WorkspaceOpt = None,
    space: SpaceOpt = None,
    noise: NoiseOpt = None,
) -> None:
    """Walk between latents and render each step: strip.png, frame PNGs and the path's latents.

    Examples:

      latentctl interp seeds:16 seeds:37                  # the seed's 6-step walk

      latentctl interp glasses@0 smiling@1 seeds:5 --method slerp --frames 10 --gif
    """
    from latentctl.latents import MAX_PATH_FRAMES, check_steps, interpolate_path, path_frames
    from latentctl.parse import MAX_FRAME_MS, check_count
    from latentctl.session import open_model, output_dir, render, save_latents

    steps = renamed(frames, old_steps, new="--frames", old="--steps", default=6)
    if method not in ("lerp", "slerp"):
        raise UsageError(f"--method must be lerp or slerp, got {method!r}")
    check_steps(steps)
    check_count(frame_ms, "--frame-ms", MAX_FRAME_MS, "GIF frames cannot be longer", minimum=10)
    check_save(save, workspace, force)
    if mp4:
        from latentctl.grid import require_mp4

        require_mp4()
    session = open_model(
        model,
        device,
        workspace,
        precision,
        warn=warn,
        ema=ema,
        allow_other_model=allow_other_model,
        space=space,
        noise=noise,
    )
    rows = _gather(session, points, limit=MAX_PATH_FRAMES, what="interp")
    if len(rows) < 2:
        raise UsageError("interp needs at least two latents, e.g. 'latentctl interp seeds:16 seeds:37'")
    path_frames(len(rows), steps)
    path = interpolate_path(rows, steps, method)
    out_dir = output_dir(session.ws, out, "interp", force)
    names = [f"frame{i:03d}" for i in range(len(path))]
    labels = [f"{points[0]}" if i == 0 else (f"{points[-1]}" if i == len(path) - 1 else "") for i in range(len(path))]
    strip = render(
        session,
        path,
        out_dir,
        names=names,
        labels=labels,
        cols=steps,
        force=force,
        grid_name="strip.png",
        grid_max=len(path),
        tile_size=tile_size,
    )
    entry = session.entry(path, meta={"command": "interp", "points": points, "steps": steps, "method": method})
    save_latents(out_dir / "latents.npz", entry, force=force)
    if gif or webp:
        _animate(out_dir, names, gif=gif, webp=webp, frame_ms=frame_ms, force=force, tile_size=tile_size)
    if mp4:
        import numpy as np
        from PIL import Image

        from latentctl.grid import write_mp4

        target = out_dir / "interp.mp4"
        if target.exists() and not force:
            raise UsageError(f"{target} already exists; pass --force to replace it")
        write_mp4(
            [np.asarray(Image.open(out_dir / f"{n}.png")) for n in names],
            target,
            fps=1000 / frame_ms,
            tile_size=tile_size,
        )
    if save:
        note(f"saved the {len(path)} path latents as '{save}' ({session.store.save(save, entry, force=force)})")
    note(f"{len(path)} frames ({len(rows) - 1} segment(s) of {steps}, {method}) in {out_dir}")
    result(str(strip))


def _animate(
    out_dir: Path, names: list[str], *, gif: bool, webp: bool, frame_ms: int, force: bool, tile_size: int | None = None
) -> None:
    import numpy as np
    from PIL import Image

    from latentctl.fsutil import atomic_writer
    from latentctl.grid import DEFAULT_TILE_SIZE, upscale

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


def _latent_dim_for(model: Path | None, workspace: Path | None, space: str | None) -> tuple[int | None, object | None]:
    """The model's latent size in ``space`` and its header, when a model is given or current
    (read without torch)."""
    import dataclasses

    from latentctl.checkpoint import read_header
    from latentctl.workspace import Workspace

    ws = Workspace.resolve(workspace)
    try:
        info = read_header(ws.resolve_checkpoint(model))
    except UsageError:
        if model is not None:
            raise
        if space is not None:
            raise UsageError(f"--space {space} needs a model (give --model, or train or import one)") from None
        return None, None
    info = dataclasses.replace(info, model=info.model.in_space(space))
    return info.model.latent_dim, info


@handles_errors
def attr_vector(
    pos: Annotated[
        list[str] | None,
        typer.Option(
            "--pos",
            metavar="LATENTS",
            help=f"Latents that show the attribute ({LATENT_HELP}); repeatable.",
            show_default=False,
        ),
    ] = None,
    neg: Annotated[
        list[str] | None,
        typer.Option("--neg", metavar="LATENTS", help="Latents that do not show it; repeatable.", show_default=False),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            metavar="DIR",
            help="Instead of --pos/--neg: encode this labelled image folder and split it by a label.",
            rich_help_panel=P_LABELS,
            show_default=False,
        ),
    ] = None,
    column: Annotated[
        str | None,
        typer.Option(
            "--column",
            "-c",
            metavar="NAME",
            help="With --images: the label to split by, e.g. gender or age.",
            rich_help_panel=P_LABELS,
            show_default=False,
        ),
    ] = None,
    pos_if: Annotated[
        str | None,
        typer.Option(
            "--pos-if",
            metavar="COND",
            help="With --images: which label values count as positive: '==1', '>60', '20-30', or for a text column '==dark', 'in:dark,medium-dark'.",
            rich_help_panel=P_LABELS,
            show_default=False,
        ),
    ] = None,
    neg_if: Annotated[
        str | None,
        typer.Option(
            "--neg-if",
            metavar="COND",
            help="With --images: negative values \\[default: every other labelled image].",
            rich_help_panel=P_LABELS,
            show_default=False,
        ),
    ] = None,
    labels: LabelsOpt = None,
    name_pattern: PatternOpt = None,
    max_images: MaxImagesOpt = 2000,
    method: Annotated[
        str,
        typer.Option(
            metavar="mean|boundary",
            help="mean: mean(pos) - mean(neg), the seed's method. boundary: the normal of a linear classifier (InterFaceGAN). Both are stored so that strength 1 = the groups' mean gap along the direction.",
        ),
    ] = "mean",
    orthogonal_to: Annotated[
        list[str] | None,
        typer.Option(
            "--orthogonal-to",
            metavar="DIRECTION",
            help="Remove these directions' components, so the new one leaves them unchanged (conditional editing); repeatable.",
        ),
    ] = None,
    unit: Annotated[
        bool,
        typer.Option(
            "--unit",
            help="Scale the direction to length 1 (strength then counts in prior standard deviations) instead of the groups' mean gap.",
        ),
    ] = False,
    permutations: Annotated[
        int,
        typer.Option(
            help="Random relabellings for the held-out check's baseline (0: skip the baseline) \\[default: 100].",
            show_default=False,
        ),
    ] = 100,
    seed: Annotated[
        int, typer.Option(help="Seed of the relabellings and folds \\[default: 0].", show_default=False)
    ] = 0,
    fast_encoder: Annotated[
        bool,
        typer.Option(
            "--fast-encoder/--no-fast-encoder",
            help="With --images on a GAN: encode with a fast encoder trained on the GAN's own samples (on first use; stored beside the checkpoint) + 30 L-BFGS steps, instead of 300-step projection from random starts.",
            rich_help_panel=P_LABELS,
        ),
    ] = True,
    save: Annotated[
        str | None,
        typer.Option(
            "--save",
            metavar="NAME",
            help="Store name for the direction \\[default: POS-minus-NEG].",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    force: ForceOpt = False,
    ema: EmaOpt = True,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the direction's report as JSON on stdout (the path stays in it).",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    space: SpaceOpt = None,
    noise: NoiseOpt = None,
) -> None:
    """Build an attribute direction from latents with and without it, and save it to the store.

    Examples:

      latentctl attr-vector --pos glasses --neg noglasses             # saved as glasses-minus-noglasses

      latentctl attr-vector --pos glasses.npz --neg noglasses.npz --method boundary --save glasses

      latentctl attr-vector --pos smiling --neg neutral --orthogonal-to glasses --save smile

      latentctl attr-vector --images utkface/ --column age --pos-if ">60" --save old     # from labels (a GAN trains its fast encoder on first use)

      latentctl attr-vector --images faces/ --column skin --pos-if in:dark,medium-dark --save dark-skin   # a text column
    """
    import numpy as np

    from latentctl import latents as L
    from latentctl.seeds import MAX_SEED_COUNT
    from latentctl.session import open_model, seeds_function
    from latentctl.store import LatentEntry, LatentStore, resolve_latents
    from latentctl.workspace import Workspace

    if method not in ("mean", "boundary"):
        raise UsageError(f"--method must be mean or boundary, got {method!r}")
    if not 0 <= permutations <= 10_000:
        raise UsageError(f"--permutations must be from 0 to 10,000 (0 skips the baseline), got {permutations}")
    if images is not None:
        # The conditions and the pattern are checked before the slow part (encoding every image).
        from latentctl.labels import check_condition, compile_pattern

        for flag, cond in (("--pos-if", pos_if), ("--neg-if", neg_if)):
            if cond is not None:
                try:
                    check_condition(cond)
                except UsageError as e:
                    raise UsageError(f"{flag}: {e}") from None
        if name_pattern is not None:
            compile_pattern(name_pattern)
    check_save(save, workspace, force)
    ws = Workspace.resolve(workspace)
    store = LatentStore(ws.store)
    dim, info = _latent_dim_for(model, workspace, space)
    worked_in = None if info is None else info.model.latent_space
    if info is not None:
        info.model.check_noise(noise)
    from_seeds = (
        None
        if info is None
        else seeds_function(info, lambda: open_model(model, "auto", workspace, "fp32", space=space, noise=noise))
    )

    def gather(specs: list[str], flag: str) -> tuple[np.ndarray, list[LatentEntry]]:
        entries, total = [], 0
        for spec in specs:
            entries.append(resolve_latents(spec, store, dim, from_seeds, space=worked_in))
            total += entries[-1].count
            if total > MAX_SEED_COUNT:
                raise UsageError(
                    f"{flag}: the latents given hold more than {MAX_SEED_COUNT:,} rows; use fewer or pick rows with @"
                )
        dims = {e.latent_dim for e in entries}
        if len(dims) > 1:
            raise StoreError(f"{flag}: the sources have different latent sizes ({sorted(dims)})")
        return np.concatenate([e.z for e in entries]), entries

    if images is not None:
        if pos or neg:
            raise UsageError("give either --pos/--neg latents or --images with --column and --pos-if, not both")
        if not column or not pos_if:
            raise UsageError("--images needs --column NAME and --pos-if CONDITION, e.g. --column gender --pos-if ==1")
        from latentctl.session import open_model

        session = open_model(model, "auto", workspace, warn=warn, ema=ema, space=space, noise=noise)
        dim, info, worked_in = session.info.model.latent_dim, session.info, session.info.model.latent_space
        z_all, values = encode_labelled(session, images, column, labels, name_pattern, max_images, fast=fast_encoder)
        pos_mask = _select(values, pos_if, "--pos-if")
        neg_mask = _select(values, neg_if, "--neg-if") if neg_if else ~pos_mask & _labelled(values)
        p, n, pe, ne = z_all[pos_mask], z_all[neg_mask], [], []
        pos = [f"{images}:{column}{pos_if}"]
        neg = [f"{images}:{column}{neg_if}" if neg_if else f"{images}:not {column}{pos_if}"]
    else:
        if not pos or not neg:
            raise UsageError(
                "give --pos and --neg latents (e.g. --pos glasses --neg noglasses), or --images DIR with --column and --pos-if"
            )
        p, pe = gather(pos, "--pos")
        n, ne = gather(neg, "--neg")
    L.validate_sets(p, n, pos_name="--pos " + ",".join(pos), neg_name="--neg " + ",".join(neg))
    models = {e.model_id for e in pe + ne if e.model_id}
    if len(models) > 1:
        warn(f"--pos and --neg come from different models ({', '.join(sorted(models))}); the direction mixes them")
    others = [resolve_latents(o, store, p.shape[1], from_seeds, space=worked_in) for o in orthogonal_to or []]
    spaces = {e.space for e in pe + ne + others if e.space}
    if len(spaces) > 1:  # only without a model: with one, every entry was checked against its space
        raise UsageError(
            f"the latents given are in different spaces ({', '.join(sorted(spaces))}); give ones of one space"
        )
    built = L.build_direction(
        p,
        n,
        method,
        [o.z[0] if o.count == 1 else o.z.mean(0) for o in others],
        unit,
        permutations=permutations,
        seed=seed,
    )
    direction = built.vector
    name = save or f"{_slug(pos)}-minus-{_slug(neg)}"
    model_id = info.model_id if info is not None else (models.pop() if len(models) == 1 else "")
    run_id = info.run_id if info is not None else next((e.run_id for e in pe if e.run_id), "")
    entry = LatentEntry(
        z=direction[None, :],
        kind="direction",
        space=worked_in or next(iter(spaces), ""),
        model_id=model_id,
        run_id=run_id,
        meta={
            "command": "attr-vector",
            "pos": pos,
            "neg": neg,
            "orthogonal_to": orthogonal_to or [],
            "norm": float(np.linalg.norm(direction)),
            **built.meta,
        },
    )
    path = store.save(name, entry, force=force)
    note(
        f"{method} direction from {len(p)} pos and {len(n)} neg latents: {L.scale_text(built.meta, built.meta['length'])}"
    )
    note("on the picks themselves (optimistic): " + built.report.summary())
    note(built.held_out.summary())
    for w in built.held_out.warnings:
        warn(w)
    note(f"saved as '{name}' ({path}); apply it with: latentctl apply LATENTS --add {name}")
    if as_json:
        result(
            json.dumps(
                {
                    "name": name,
                    "path": str(path),
                    "method": method,
                    "pos": len(p),
                    "neg": len(n),
                    "on_picks": built.report.summary(),
                    "warnings": list(built.held_out.warnings),
                    **{k: v for k, v in entry.meta.items() if k not in ("pos", "neg")},
                },
                default=str,
                sort_keys=True,
            )
        )
        return
    result(str(path))


def _labelled(values):
    import numpy as np

    if values.dtype == object:
        return np.array([v is not None for v in values], dtype=bool)
    return np.isfinite(values)


def _select(values, condition: str, flag: str):
    from latentctl.labels import select

    try:
        mask = select(values, condition)
    except UsageError as e:
        raise UsageError(f"{flag}: {e}") from None
    if not mask.any():
        raise UsageError(
            f"{flag} {condition}: no labelled image matches; check the value (e.g. with a text column, its exact spelling)"
        )
    return mask


def _slug(specs: list[str]) -> str:
    from latentctl.workspace import slug

    return slug("+".join(Path(s.split("@")[0]).stem.replace("seeds:", "seeds") for s in specs))[:30]


@handles_errors
def apply(
    latents: Annotated[
        list[str], typer.Argument(metavar="LATENTS...", help=f"Latents to edit ({LATENT_HELP}).", show_default=False)
    ],
    add: Annotated[
        list[str],
        typer.Option(
            "--add",
            metavar="DIRECTION[=WEIGHT]",
            help="A direction to add, with an optional weight (default 1); repeatable: --add glasses --add smile=-0.5.",
            show_default=False,
        ),
    ],
    mean: Annotated[
        bool, typer.Option("--mean", help="Average the given latents into one first (the seed's mean(smiling)).")
    ] = False,
    scales: Annotated[
        str,
        typer.Option(
            metavar="LIST",
            help="Strengths to render: one column each, one row per latent. 0 shows the unedited latent.",
        ),
    ] = "0,1",
    captions: Annotated[
        bool,
        typer.Option(
            "--captions/--no-captions", help="Write each column's strength on the grid.", rich_help_panel=PANEL_OUTPUT
        ),
    ] = True,
    old_labels: OldLabelsOpt = None,
    score_with: Annotated[
        Path | None,
        typer.Option(
            "--score-with",
            metavar="CLF",
            help="A classifier from 'latentctl classifier train': print its attribute score (mean probability) on the rendered images at each strength.",
            show_default=False,
        ),
    ] = None,
    keep: Annotated[
        list[Path] | None,
        typer.Option(
            "--keep",
            metavar="CLF",
            help="A classifier of an attribute the edit should leave alone: print how much its probability moved from the unedited images at each strength; repeatable.",
            show_default=False,
        ),
    ] = None,
    save: SaveOpt = None,
    model: ModelOpt = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    ema: EmaOpt = True,
    allow_other_model: AllowOtherOpt = False,
    pngs: PngsOpt = True,
    old_images: OldImagesOpt = None,
    grid: Annotated[
        bool,
        typer.Option(
            "--grid/--no-grid", help="Write the grid (rows: latents, columns: strengths).", rich_help_panel=PANEL_OUTPUT
        ),
    ] = True,
    tile_size: TileSizeOpt = None,
    workspace: WorkspaceOpt = None,
    space: SpaceOpt = None,
    noise: NoiseOpt = None,
) -> None:
    """Add weighted directions to latents and render the result (rows: latents, columns: strengths).

    Examples:

      latentctl apply smiling --mean --add glasses-minus-noglasses     # the seed: mean(smiling) + glasses

      latentctl apply seeds:0-7 --add glasses --scales -2,-1,0,1,2     # a strength sweep

      latentctl apply my-photo --add glasses --add smile=0.5 --save me-edited
    """
    import numpy as np

    from latentctl import latents as L
    from latentctl.parse import MAX_GRID_TILES, parse_floats, parse_weighted
    from latentctl.session import open_model, output_dir, render, save_latents

    # Every number first: a bad weight found after loading the model (or after rendering) wastes
    # the work, and NaN would render as garbage.
    captions = renamed(captions, old_labels, **CAPTIONS)
    pngs = renamed(pngs, old_images, **PNGS)
    strengths = parse_floats(scales, "--scales")
    weighted = [parse_weighted(spec, "--add") for spec in add]
    check_save(save, workspace, force)
    assessors = _classifiers(score_with, keep or [], workspace)  # before the model: a wrong name fails first
    session = open_model(
        model,
        device,
        workspace,
        precision,
        warn=warn,
        ema=ema,
        allow_other_model=allow_other_model,
        space=space,
        noise=noise,
    )
    inputs, row_names, seeds = _gather_rows(
        session, latents, limit=L.MAX_SWEEP // len(strengths), what=f"apply with {len(strengths)} strength(s)"
    )
    base = inputs
    if mean:
        base = inputs.mean(axis=0, keepdims=True)
        row_names, seeds = [f"mean of {len(inputs)}"], None
    combined = np.zeros(base.shape[1], dtype=np.float64)
    used = []
    for name, weight in weighted:
        entry = session.latents(name)
        used.append(entry)
        if entry.kind != "direction":
            raise UsageError(
                f"--add {name}: holds {entry.count} point(s), not a direction; make one with 'latentctl attr-vector'"
            )
        combined += weight * entry.z.mean(axis=0, dtype=np.float64)
        vec = entry.z.mean(axis=0, dtype=np.float64)
        note(f"{name}: {L.scale_text(entry.meta, float(np.linalg.norm(vec)))}; weight {weight:g}")
    sweep = L.strength_sweep(base, combined, strengths)  # (n, k, d); refuses inf before rendering
    flat = sweep.reshape(-1, sweep.shape[-1])
    out_dir = output_dir(session.ws, out, "apply", force)
    names = _file_names(row_names, seeds, [f"_scale{s:+g}" for s in strengths]) if pngs else None
    # The grid holds its tiles in memory: show the first whole rows that fit, write every image.
    shown = min(len(flat), MAX_GRID_TILES // len(strengths) * len(strengths))
    weights = " ".join(f"{n}={w:g}" for n, w in weighted)
    grid_path = render(
        session,
        flat,
        out_dir,
        names=names,
        labels=None,
        cols=len(strengths),
        force=force,
        grid_max=shown,
        tile_size=tile_size,
        grid=grid,
        row_labels=row_names[: shown // len(strengths)] if captions else None,
        col_labels=[f"strength {s:+g}" for s in strengths] if captions else None,
        caption=f"+ {weights}",
    )
    if mean and grid:
        _arithmetic_figure(session, inputs, base[0], combined, used, strengths, out_dir, tile_size, force)
    entry = session.entry(
        flat,
        seeds=None if seeds is None else [s for s in seeds for _ in strengths],
        meta={"command": "apply", "latents": latents, "mean": mean, "add": add, "scales": strengths},
    )
    save_latents(out_dir / "latents.npz", entry, force=force)
    if assessors:
        _report_scores(session, base, sweep, strengths, assessors)
    if save:
        note(f"saved {len(flat)} edited latents as '{save}' ({session.store.save(save, entry, force=force)})")
    note(
        f"{len(base)} latent(s) x {len(strengths)} strength(s) in {out_dir}"
        + (f" (the grid shows the first {shown // len(strengths)} rows)" if shown < len(flat) and grid else "")
    )
    result(str(grid_path) if grid_path is not None else str(out_dir / "latents.npz"))


@handles_errors
def render_latents(
    latents: Annotated[
        list[str], typer.Argument(metavar="LATENTS...", help=f"Latents to draw ({LATENT_HELP}).", show_default=False)
    ],
    cols: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=100,
            help="Grid columns \\[default: about square].",
            rich_help_panel=PANEL_OUTPUT,
            show_default=False,
        ),
    ] = None,
    pngs: PngsOpt = True,
    old_images: OldImagesOpt = None,
    grid: Annotated[
        bool,
        typer.Option(
            "--grid/--no-grid",
            help="Write grid.png, each tile labelled with its seed or entry row.",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = True,
    model: ModelOpt = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    ema: EmaOpt = True,
    allow_other_model: AllowOtherOpt = False,
    tile_size: TileSizeOpt = None,
    workspace: WorkspaceOpt = None,
    space: SpaceOpt = None,
    noise: NoiseOpt = None,
) -> None:
    """Draw stored latents as they are: a labelled grid and one PNG per latent.

    Examples:

      latentctl render glasses                 # the picks saved with sample --save glasses

      latentctl render glasses noglasses@0-2 --cols 3
    """
    from latentctl.parse import MAX_GRID_TILES
    from latentctl.session import open_model, output_dir, render

    pngs = renamed(pngs, old_images, **PNGS)
    if not pngs and not grid:
        raise UsageError("--no-pngs and --no-grid together leave nothing to draw; keep one")
    session = open_model(
        model,
        device,
        workspace,
        precision,
        warn=warn,
        ema=ema,
        allow_other_model=allow_other_model,
        space=space,
        noise=noise,
    )
    z, labels, seeds = _gather_rows(session, latents, limit=MAX_RENDER, what="render")
    out_dir = output_dir(session.ws, out, "render", force)
    names = _file_names(labels, seeds, [""]) if pngs else None
    grid_path = render(
        session,
        z,
        out_dir,
        names=names,
        labels=labels,
        grid=grid,
        grid_max=MAX_GRID_TILES,
        cols=cols,
        tile_size=tile_size,
        force=force,
        check_latents_file=False,
    )
    note(
        f"{len(z)} latent(s) drawn in {out_dir}"
        + (f" (the grid shows the first {MAX_GRID_TILES:,})" if grid and len(z) > MAX_GRID_TILES else "")
    )
    result(str(grid_path) if grid_path is not None else str(out_dir))


MAX_RENDER = 100_000  # latents one render draws (the grid shows at most MAX_GRID_TILES)


def _arithmetic_figure(session, inputs, mean, combined, used, strengths, out_dir, tile_size, force) -> None:
    """The seed's figure, arithmetic.png: the inputs, their mean, each direction's two group means
    when its provenance names them (mean(glasses), mean(no glasses)), and mean + direction."""
    import numpy as np

    from latentctl.session import render

    tiles, titles = [], []
    for i, z in enumerate(inputs[:8]):
        tiles.append(z)
        titles.append(f"input {i + 1}")
    tiles.append(mean)
    titles.append("mean")
    for entry in used:
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
    for s in strengths:
        if s:
            tiles.append(mean + s * combined)
            titles.append(f"mean {'+' if s > 0 else '-'} {abs(s):g} x direction")
    render(
        session,
        np.stack(tiles).astype(np.float32),
        out_dir,
        names=None,
        labels=titles,
        cols=len(tiles),
        force=force,
        grid_name="arithmetic.png",
        tile_size=tile_size,
        grid_max=len(tiles),
        check_latents_file=False,
    )


def _classifiers(score_with: Path | None, keep: list[Path], workspace: Path | None) -> list[tuple[str, Path]]:
    """(role, path) of each classifier (a file or a name from 'classifier train'), found before any work."""
    from latentctl.cli.steer_cmd import resolve_classifier
    from latentctl.workspace import Workspace

    given = ([("score", score_with)] if score_with else []) + [("keep", k) for k in keep]
    if not given:
        return []
    ws = Workspace.resolve(workspace)
    out = []
    for role, spec in given:
        try:
            out.append((role, resolve_classifier(Path(spec), ws)))
        except UsageError as e:
            raise UsageError(f"{'--score-with' if role == 'score' else '--keep'}: {e}") from None
    return out


def _report_scores(session, base, grid, strengths, assessors) -> None:
    """Per strength: the --score-with classifier's mean probability, and for each --keep classifier
    the mean absolute change of its probability from the unedited latents (0 = untouched)."""
    import numpy as np

    from latentctl.assessor import load_classifier
    from latentctl.generate import generate

    def prob(clf, z):
        images = generate(session.generator, z, device=session.device, precision=session.precision)
        return 1.0 / (1.0 + np.exp(-clf.score_uint8(images, session.device).astype(np.float64)))

    for role, path in assessors:
        clf = load_classifier(path, session.device)
        ref = prob(clf, base) if role == "keep" else None
        cells = []
        for j, s in enumerate(strengths):
            p = prob(clf, grid[:, j, :])
            cells.append(f"{s:+g}: {p.mean():.2f}" if role == "score" else f"{s:+g}: {np.abs(p - ref).mean():.2f}")
        what = (
            "score (mean probability of the attribute)"
            if role == "score"
            else "change from the unedited images (mean |probability change|; 0 = kept)"
        )
        result(f"{Path(path).name} {what} per strength over {len(base)} row(s): " + ", ".join(cells))


latents_app = typer.Typer(help="Inspect the latent store.", no_args_is_help=True)


@latents_app.command("list")
@handles_errors
def list_entries(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """List the store's entries: name, kind, count, dimension, model."""

    from latentctl.cli.common import out_console
    from latentctl.runlist import names_by_run_id
    from latentctl.store import LatentStore
    from latentctl.workspace import Workspace

    ws = Workspace.resolve(workspace)
    store = LatentStore(ws.store)
    entries = store.list()
    runs = names_by_run_id(ws)  # which run made each entry, by name (the model id alone says little)
    if as_json:
        result(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "kind": e.kind,
                        "count": e.count,
                        "latent_dim": e.latent_dim,
                        "model_id": e.model_id,
                        "run": runs.get(e.run_id or ""),
                        "created": e.created,
                        "error": e.error,
                    }
                    for e in entries
                ]
            )
        )
        return
    if not entries:
        note(f"the latent store {store.root} is empty; save samples with 'latentctl sample --seeds 1,2 --save NAME'")
        return
    table = latents_table(entries, runs)
    out_console.print(table)


def latents_table(entries, runs: dict):
    """The store as a table that keeps every name and date whole in an 80-column terminal: names
    and dates never wrap, only the run column folds; an entry made by a model that is no run of
    this workspace shows its model id's first 8 digits there instead (as git's short hashes)."""
    from rich.table import Table
    from rich.text import Text

    width = max((len(e.name) for e in entries), default=4)
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("name", no_wrap=True, min_width=min(width, 40))
    table.add_column("kind", no_wrap=True)
    table.add_column("rows×dim", justify="right", no_wrap=True)
    table.add_column("run (or model)", overflow="fold", ratio=1)
    table.add_column("created", no_wrap=True, min_width=16)
    # Text cells, not markup: names, ids and error messages come from files anyone can write, and
    # a '[/x]' among them would otherwise stop the whole listing with a markup error.
    for e in entries:
        if e.error:
            table.add_row(Text(e.name), Text("unreadable", style="red"), "", Text(e.error), "")
            continue
        run = runs.get(e.run_id or "") or (f"model {e.model_id[:8]}" if e.model_id else "-")
        table.add_row(
            Text(e.name),
            Text(e.kind or ""),
            f"{e.count}×{e.latent_dim}",
            Text(run),
            Text((e.created or "")[:16].replace("T", " ")),
        )
    return table


@latents_app.command("show")
@handles_errors
def show_entry(
    name: Annotated[str, typer.Argument(help=LATENT_HELP)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON on stdout (with the latents themselves).")
    ] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show one entry: its rows' seeds and norms, and how it was made."""

    import numpy as np

    from latentctl.store import LatentStore, resolve_latents
    from latentctl.workspace import Workspace

    entry = resolve_latents(name, LatentStore(Workspace.resolve(workspace).store), None)
    norms = np.linalg.norm(entry.z, axis=1)
    from latentctl.latents import scale_text

    lines = [
        f"{name}: {entry.kind}, {entry.count} x {entry.latent_dim}, model {entry.model_id or '-'}",
        f"seeds: {', '.join(map(str, entry.seeds.tolist())) if entry.seeds is not None else '-'}",
        f"norms: min {norms.min():.3f}, mean {norms.mean():.3f}, max {norms.max():.3f}",
        "made by: " + json.dumps(entry.meta, sort_keys=True),
    ]
    if entry.kind == "direction":
        lines.insert(3, "strength: " + scale_text(entry.meta, float(norms.mean())))
    if as_json:
        result(
            json.dumps(
                {
                    "name": name,
                    "kind": entry.kind,
                    "count": entry.count,
                    "latent_dim": entry.latent_dim,
                    "model_id": entry.model_id,
                    "run_id": entry.run_id,
                    "seeds": None if entry.seeds is None else entry.seeds.tolist(),
                    "norms": norms.round(6).tolist(),
                    "meta": entry.meta,
                    "z": entry.z.round(7).tolist(),
                },
                default=str,
                sort_keys=True,
            )
        )
        return
    result("\n".join(lines))
