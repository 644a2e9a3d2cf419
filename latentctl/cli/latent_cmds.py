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
from latentctl.errors import UsageError

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


def _open_model(model, device, workspace, precision, *, ema, allow_other_model, space, noise):
    """The model interp, apply and render draw with; its warnings reach the user through ``warn``."""
    from latentctl.space.session import open_model

    return open_model(
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
    from latentctl.parse import MAX_FRAME_MS, check_count
    from latentctl.space import editing
    from latentctl.space.latents import check_steps
    from latentctl.space.session import output_dir, render, save_latents

    steps = renamed(frames, old_steps, new="--frames", old="--steps", default=6)
    if method not in ("lerp", "slerp"):
        raise UsageError(f"--method must be lerp or slerp, got {method!r}")
    check_steps(steps)
    check_count(frame_ms, "--frame-ms", MAX_FRAME_MS, "GIF frames cannot be longer", minimum=10)
    check_save(save, workspace, force)
    if mp4:
        from latentctl.pictures.grid import require_mp4

        require_mp4()
    session = _open_model(
        model, device, workspace, precision, ema=ema, allow_other_model=allow_other_model, space=space, noise=noise
    )
    walk = editing.walk(session, points, steps, method)
    out_dir = output_dir(session.ws, out, "interp", force)
    strip = render(
        session,
        walk.path,
        out_dir,
        names=walk.names,
        labels=walk.labels,
        cols=steps,
        force=force,
        grid_name="strip.png",
        grid_max=len(walk.path),
        tile_size=tile_size,
    )
    save_latents(out_dir / "latents.npz", walk.entry, force=force)
    editing.write_animations(
        out_dir, walk.names, gif=gif, webp=webp, mp4=mp4, frame_ms=frame_ms, force=force, tile_size=tile_size
    )
    if save:
        note(
            f"saved the {len(walk.path)} path latents as '{save}' ({session.store.save(save, walk.entry, force=force)})"
        )
    note(f"{len(walk.path)} frames ({walk.segments} segment(s) of {steps}, {method}) in {out_dir}")
    result(str(strip))


@handles_errors
def attr_vector(
    ctx: typer.Context,
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
            help="Instead of --pos/--neg: encode this labelled image folder and split it by a label; the other labels then say what else the direction moves.",
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
    keep: Annotated[
        list[Path] | None,
        typer.Option(
            "--keep",
            metavar="CLF",
            help="A classifier of an attribute the direction should leave alone ('latentctl classifier train'): measure how much its probability moves at strength 1 on 32 seeds, next to random directions of the same length, and say when it clearly moves; repeatable.",
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

      latentctl attr-vector --pos dark --neg light --keep background   # does it also change the background?

      latentctl attr-vector --images utkface/ --column age --pos-if ">60" --save old     # from labels (a GAN trains its fast encoder on first use)

      latentctl attr-vector --images faces/ --column skin --pos-if in:dark,medium-dark --save dark-skin   # a text column
    """
    from latentctl.space import attr_vector as A
    from latentctl.space.session import open_model

    A.check_options(method, permutations)
    if images is not None:
        A.check_label_options(pos_if, neg_if, name_pattern)  # before the slow part: encoding every image
    check_save(save, workspace, force)
    kept = [path for _, path in _classifiers(None, keep or [], workspace)]  # a wrong name fails first
    target = A.direction_model(model, workspace, space, noise)
    if images is not None:
        if pos or neg:
            raise UsageError("give either --pos/--neg latents or --images with --column and --pos-if, not both")
        if not column or not pos_if:
            raise UsageError("--images needs --column NAME and --pos-if CONDITION, e.g. --column gender --pos-if ==1")
        session = open_model(model, "auto", workspace, warn=warn, ema=ema, space=space, noise=noise)
        target = target.with_session(session)
        z, values, others = encode_labelled(
            session, images, column, labels, name_pattern, max_images, fast=fast_encoder, others=True
        )
        groups = A.groups_from_labels(z, values, images=images, column=column, pos_if=pos_if, neg_if=neg_if)
    else:
        if not pos or not neg:
            raise UsageError(
                "give --pos and --neg latents (e.g. --pos glasses --neg noglasses), or --images DIR with --column and --pos-if"
            )
        groups = A.groups_from_latents(target, pos, neg)
    made = A.attribute_vector(
        target,
        groups,
        method=method,
        orthogonal_to=orthogonal_to or [],
        unit=unit,
        permutations=permutations,
        seed=seed,
        name=save,
        warn=warn,
    )
    if images is not None:  # what it does to the pictures' other labels
        made = made.with_label_effects(z, others, seed=seed)
    if kept:
        opened = session if images is not None else None  # the session that encoded --images, if any
        opened = opened or open_model(model, "auto", workspace, warn=warn, ema=ema, space=space, noise=noise)
        made = _measure_side_effects(made, opened, kept)
    path = target.store.save(made.name, made.entry, force=force)
    note(made.summary())
    note("on the picks themselves (optimistic): " + made.built.report.summary())
    note(made.built.held_out.summary())
    for w in made.built.held_out.warnings:
        warn(w)
    if made.overlaps.summary():
        note(made.overlaps.summary())
    for overlap in made.overlaps.clear:
        warn(overlap.hint(_attr_vector_again(ctx, overlap.name, made.name)))
    _report_effects(ctx, made, images)
    note(f"saved as '{made.name}' ({path}); apply it with: latentctl apply LATENTS --add {made.name}")
    if as_json:
        result(json.dumps(made.report(path), default=str, sort_keys=True))
        return
    result(str(path))


def _report_effects(ctx: typer.Context, made, images: Path | None) -> None:
    """What else the direction moves: per --keep classifier, then per other label of --images; a
    clear effect is a warning with the commands that hold it still."""
    for effect in made.side_effects:
        (warn if effect.clear else note)(effect.hint(made.name) if effect.clear else effect.line())
    for effect in made.label_effects:
        if effect.clear:
            warn(effect.hint(made.name, str(images), _attr_vector_again(ctx, effect.hold_name, made.name)))
        else:
            note(effect.line())


def _measure_side_effects(made, session, classifiers: list[Path]):
    """``made`` with what each classifier says the direction also moves (``--keep``), in its entry."""
    from latentctl.cli.progress import step
    from latentctl.space import attr_vector as A

    renders = len(A.SIDE_EFFECT_SEEDS) * (2 + A.SIDE_EFFECT_RANDOMS)
    with step(
        f"measuring what else it moves ({len(classifiers)} classifier(s), {renders} images)", 2 + A.SIDE_EFFECT_RANDOMS
    ) as advance:
        effects = A.side_effects(session, made.built.vector, classifiers, on_progress=advance)
    return made.with_side_effects(effects)


def _attr_vector_again(ctx: typer.Context, hold: str, name: str) -> str:
    """The attr-vector command being run, as the user gave it (each option in its long spelling),
    with ``--orthogonal-to HOLD`` added and ``--save NAME --force`` to replace the direction just
    saved: the command that makes it again holding ``hold`` still."""
    import shlex

    words = ["latentctl", "attr-vector"]
    for param in ctx.command.params:
        if param.param_type_name != "option" or param.name in ("save", "force"):
            continue
        value = ctx.params.get(param.name)
        if param.name == "orthogonal_to":
            value = [*(value or []), hold]
        elif getattr(ctx.get_parameter_source(param.name), "name", None) != "COMMANDLINE":
            continue  # a default (or an environment variable's value) is the same when run again
        flag = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        if param.is_flag:
            words.append(flag if value else param.secondary_opts[0] if param.secondary_opts else "")
            continue
        words += [w for v in (value if param.multiple else [value]) for w in (flag, shlex.quote(str(v)))]
    return " ".join(w for w in [*words, "--save", shlex.quote(name), "--force"] if w)


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
    from latentctl.parse import MAX_GRID_TILES, parse_floats, parse_weighted
    from latentctl.space import editing
    from latentctl.space.session import output_dir, render, save_latents

    # Every number first: a bad weight found after loading the model (or after rendering) wastes
    # the work, and NaN would render as garbage.
    captions = renamed(captions, old_labels, **CAPTIONS)
    pngs = renamed(pngs, old_images, **PNGS)
    strengths = parse_floats(scales, "--scales")
    weighted = [parse_weighted(spec, "--add") for spec in add]
    check_save(save, workspace, force)
    assessors = _classifiers(score_with, keep or [], workspace)  # before the model: a wrong name fails first
    session = _open_model(
        model, device, workspace, precision, ema=ema, allow_other_model=allow_other_model, space=space, noise=noise
    )
    edit = editing.edit_latents(session, latents, weighted, strengths, mean=mean, report=note)
    flat = edit.flat
    out_dir = output_dir(session.ws, out, "apply", force)
    # The grid holds its tiles in memory: show the first whole rows that fit, write every image.
    shown = min(len(flat), MAX_GRID_TILES // len(strengths) * len(strengths))
    weights = " ".join(f"{n}={w:g}" for n, w in weighted)
    grid_path = render(
        session,
        flat,
        out_dir,
        names=edit.file_names() if pngs else None,
        labels=None,
        cols=len(strengths),
        force=force,
        grid_max=shown,
        tile_size=tile_size,
        grid=grid,
        row_labels=edit.row_names[: shown // len(strengths)] if captions else None,
        col_labels=[f"strength {s:+g}" for s in strengths] if captions else None,
        caption=f"+ {weights}",
    )
    if mean and grid:
        _arithmetic_figure(session, edit, out_dir, tile_size, force)
    entry = session.entry(
        flat,
        seeds=edit.flat_seeds,
        meta={"command": "apply", "latents": latents, "mean": mean, "add": add, "scales": strengths},
    )
    save_latents(out_dir / "latents.npz", entry, force=force)
    if assessors:
        _report_scores(session, edit.base, edit.sweep, strengths, assessors)
    if save:
        note(f"saved {len(flat)} edited latents as '{save}' ({session.store.save(save, entry, force=force)})")
    note(
        f"{len(edit.base)} latent(s) x {len(strengths)} strength(s) in {out_dir}"
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
    from latentctl.space.editing import file_names, gather_rows
    from latentctl.space.session import output_dir, render

    pngs = renamed(pngs, old_images, **PNGS)
    if not pngs and not grid:
        raise UsageError("--no-pngs and --no-grid together leave nothing to draw; keep one")
    session = _open_model(
        model, device, workspace, precision, ema=ema, allow_other_model=allow_other_model, space=space, noise=noise
    )
    rows = gather_rows(session, latents, limit=MAX_RENDER, what="render")
    z = rows.z
    out_dir = output_dir(session.ws, out, "render", force)
    grid_path = render(
        session,
        z,
        out_dir,
        names=file_names(rows, [""]) if pngs else None,
        labels=rows.labels,
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


def _arithmetic_figure(session, edit, out_dir: Path, tile_size: int | None, force: bool) -> None:
    """The seed's figure, arithmetic.png (``editing.arithmetic_tiles``)."""
    from latentctl.space.editing import arithmetic_tiles
    from latentctl.space.session import render

    tiles, titles = arithmetic_tiles(session, edit)
    render(
        session,
        tiles,
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
    from latentctl.files.workspace import Workspace

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

    from latentctl.space.assessor import load_classifier
    from latentctl.space.generate import generate

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


def _read_entry(path: Path):
    # Only for a file the quick listing cannot summarise (float64, another writer, damage): the
    # store's full reader, and numpy with it.
    from latentctl.space.store import read_entry

    return read_entry(path)


@latents_app.command("list")
@handles_errors
def list_entries(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """List the store's entries: name, kind, count, dimension, model."""

    from latentctl.cli.common import out_console
    from latentctl.files.runlist import names_by_run_id
    from latentctl.files.workspace import Workspace
    from latentctl.space.store_index import list_entries  # not latentctl.space.store: that imports numpy (issue 29)

    ws = Workspace.resolve(workspace)
    entries = list_entries(ws.store, _read_entry)
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
                        "space": e.space or None,
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
        note(f"the latent store {ws.store} is empty; save samples with 'latentctl sample --seeds 1,2 --save NAME'")
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
            # a StyleGAN's space beside the size: a W+ entry is refused where W is expected
            f"{e.count}×{e.latent_dim}" + (f" {e.space}" if e.space in ("w", "w+") else ""),
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

    from latentctl.files.workspace import Workspace
    from latentctl.space.store import LatentStore, resolve_latents

    entry = resolve_latents(name, LatentStore(Workspace.resolve(workspace).store), None)
    norms = np.linalg.norm(entry.z, axis=1)
    from latentctl.space.latents import scale_text

    lines = [
        f"{name}: {entry.kind}, {entry.count} x {entry.latent_dim}"
        + (f" in {entry.space.upper()}" if entry.space else "")
        + f", model {entry.model_id or '-'}",
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
                    "space": entry.space or None,
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
