"""`steer` (a walk for a known image edit, or GANalyze with an assessor) and `classifier train`
(the small attribute classifier used as that assessor)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import (
    MAX_SHEET_SEEDS,
    P_LABELS,
    PANEL_OUTPUT,
    DeviceOpt,
    EmaOpt,
    ForceOpt,
    LabelsOpt,
    MaxImagesOpt,
    ModelArg,
    NoiseOpt,
    OutOpt,
    PatternOpt,
    SpaceOpt,
    WorkspaceOpt,
    handles_errors,
    note,
    refuse_existing,
    result,
    seeds_option,
    warn,
)
from latentctl.errors import UsageError

CLASSIFIERS = "classifiers"  # workspace folder where `classifier train` puts its files by default
StepsOpt = Annotated[int, typer.Option("--steps", help="Adam steps on the direction (the generator stays frozen).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the sampled latents and strengths.")]


def resolve_classifier(spec: Path, ws) -> Path:
    """A classifier file, or the name of one in the workspace's classifiers/ folder."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    named = ws.root / CLASSIFIERS / (path.name if path.suffix == ".safetensors" else path.name + ".safetensors")
    if named.is_file():
        return named
    raise UsageError(
        f"no classifier {str(spec)!r} (neither a file nor in {ws.root / CLASSIFIERS}); train one with 'latentctl classifier train'"
    )


@handles_errors
def steer(
    model: ModelArg = None,
    edit: Annotated[
        str | None,
        typer.Option(
            "--edit",
            metavar="zoom|shift-x|shift-y|rotate|brightness|color",
            help="Learn the walk that performs this image edit (GAN steerability).",
            show_default=False,
        ),
    ] = None,
    assessor: Annotated[
        Path | None,
        typer.Option(
            "--assessor",
            metavar="CLF",
            help="Instead of --edit: learn the direction that raises this classifier's logit (GANalyze); a .safetensors file or a name from 'classifier train'.",
            show_default=False,
        ),
    ] = None,
    channel: Annotated[
        str, typer.Option("--channel", metavar="red|green|blue", help="--edit color: the channel to offset.")
    ] = "red",
    alpha_max: Annotated[
        float | None,
        typer.Option(
            "--alpha-max",
            metavar="A",
            help="Strengths are sampled from -A..A in the edit's units \\[default: zoom 1 (log2), shift 0.25 (of the size), rotate 30 (degrees), brightness/color 0.5; assessor 2 (logits)].",
            show_default=False,
        ),
    ] = None,
    steps: StepsOpt = 300,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Latents per step.")] = 16,
    lr: Annotated[float, typer.Option("--lr", help="Adam's learning rate.")] = 0.05,
    seed: SeedOpt = 0,
    seeds: Annotated[str, typer.Option("--seeds", metavar="SEEDS", help="Latents shown in the sweep image.")] = "0-3",
    save: Annotated[
        str | None,
        typer.Option(
            "--save",
            metavar="NAME",
            help="Store name for the direction \\[default: steer-EDIT, or ganalyze-CLASSIFIER].",
            rich_help_panel=PANEL_OUTPUT,
            show_default=False,
        ),
    ] = None,
    out: OutOpt = None,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
    ema: EmaOpt = True,
    workspace: WorkspaceOpt = None,
    space: SpaceOpt = None,
    noise: NoiseOpt = None,
) -> None:
    """Learn a direction from a known image edit (--edit) or from an assessor (--assessor), save it,
    and report how well it does on held-out latents.

    Examples:

      latentctl steer --edit shift-x                   # saved as steer-shift-x; strength = fraction of the width

      latentctl apply seeds:0-3 --add steer-shift-x --scales -0.2,0,0.2

      latentctl classifier train faces/ --column smile --pos-if ==1 --name smile

      latentctl steer --assessor smile                 # saved as ganalyze-smile; strength = logits
    """
    import numpy as np

    from latentctl.cli.progress import step
    from latentctl.latents import strength_sweep
    from latentctl.session import open_model, output_dir, render, save_latents

    if (edit is None) == (assessor is None):
        raise UsageError(
            "give --edit EDIT (zoom, shift-x, shift-y, rotate, brightness, color) or --assessor CLASSIFIER, one of them"
        )
    if edit is not None:
        from latentctl.steer import check_edit

        check_edit(edit, channel)
    from latentctl.parse import MAX_BATCH_SIZE, check_count, check_float

    # every number before the model loads
    if alpha_max is not None and check_float(alpha_max, "--alpha-max", minimum=0.0) == 0:
        raise UsageError("--alpha-max must be above 0: it is the largest strength the walk is trained for")
    if check_float(lr, "--lr", minimum=0.0) == 0:
        raise UsageError("--lr must be above 0")
    check_count(steps, "--steps", 100_000, "a few hundred steps learn a walk")
    check_count(batch_size, "--batch-size", MAX_BATCH_SIZE, "lower it")
    base_seeds = seeds_option(seeds)
    check_count(len(base_seeds), "--seeds", MAX_SHEET_SEEDS, "the sweep image shows a few latents")
    session = open_model(model, device, workspace, "fp32", warn=warn, ema=ema, space=space, noise=noise)
    clf_path = resolve_classifier(assessor, session.ws) if assessor is not None else None
    name = session.store.normalize_name(
        save or (f"steer-{edit}" + (f"-{channel}" if edit == "color" else "") if edit else f"ganalyze-{clf_path.stem}")
    )
    refuse_existing(session.store, [name], force)
    out_dir = output_dir(session.ws, out, "steer", force)

    clf = None
    if clf_path is not None:
        from latentctl.assessor import learn_direction, load_classifier

        clf = load_classifier(clf_path, session.device)  # a bad file fails here, before any work begins
    learning = f"learning the {edit} walk" if edit else f"learning the GANalyze direction of {clf_path.stem}"
    with step(f"{learning} ({steps} steps of {batch_size} latents)", steps) as advance:

        def on_step(done: int, total: int, loss: float) -> None:
            advance(done, total, f"loss {loss:.4f}")
            if done == total and edit is None:
                # learn_direction then scores the direction on held-out latents, without a count
                advance.then("measuring the direction on held-out latents")

        def on_eval(done: int, total: int) -> None:
            if done == 0:
                advance.then("measuring the walk on held-out latents", total)
            advance(done, total)

        if edit is not None:
            from latentctl.steer import learn_walk

            res = learn_walk(
                session.generator,
                edit,
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                channel=channel,
                alpha_max=alpha_max,
                device=session.device,
                on_step=on_step,
                on_eval=on_eval,
            )
            direction, meta = (
                res.direction,
                {"command": "steer", "method": "steerability", **res.meta, "errors": [vars(e) for e in res.errors]},
            )
        else:
            res = learn_direction(
                session.generator,
                clf,
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                alpha_max=alpha_max if alpha_max is not None else 2.0,
                device=session.device,
                on_step=on_step,
            )
            direction, meta = (
                res.direction,
                {
                    "command": "steer",
                    "method": "ganalyze",
                    "assessor": str(clf_path),
                    "assessor_training": clf.meta,
                    **res.meta,
                    "curve": [vars(c) for c in res.curve],
                },
            )
    entry = session.entry(direction[None], kind="direction", meta=meta)
    path = session.store.save(name, entry, force=force)

    amax = meta["alpha_range"][1]
    strengths = [float(s) for s in np.linspace(-amax, amax, 5)]
    base = session.seed_latents(base_seeds)
    # the same sweep `apply --scales` draws, with its size and finiteness checks
    sweep = strength_sweep(base, direction, strengths).reshape(-1, base.shape[1])
    with step(f"drawing the sweep ({len(sweep)} images)"):
        grid = render(
            session,
            sweep,
            out_dir,
            names=None,
            labels=[f"{s:+g}" for _ in base_seeds for s in strengths],
            cols=len(strengths),
            force=force,
            grid_name="sweep.png",
            grid_max=len(sweep),
        )
    save_latents(out_dir / "latents.npz", entry, force=force)

    if edit is not None:
        note(f"{edit} walk, |w| = {np.linalg.norm(direction):.3f} per unit of {meta['units']}")
        note("held-out error against the edited image (masked RMS, 0-255):")
        note("    alpha     walk  zero walk")
        for e in res.errors:
            note(f"  {e.alpha:+7.3g}  {e.walk:7.2f}  {e.zero:9.2f}")
        moved = [e for e in res.errors if e.alpha != 0]
        better = sum(e.walk < e.zero for e in moved)
        note(f"the walk beats doing nothing at {better} of {len(moved)} nonzero strengths")
    else:
        note(f"GANalyze direction, |θ| = {np.linalg.norm(direction):.3f}; held-out mean assessor logit by strength:")
        note("  strength   renormalised (GANalyze)   as apply adds it   target")
        for c in res.curve:
            note(f"  {c.strength:+7.2f}   {c.score:+12.3f}              {c.score_added:+10.3f}     {c.target:+7.3f}")
    note(f"saved as '{name}' ({path}); use it with: latentctl apply seeds:0-3 --add {name}={strengths[-2]:g}")
    result(str(grid))


classifier_app = typer.Typer(
    help="Train the attribute classifier that `steer --assessor` follows.", no_args_is_help=True
)


@classifier_app.command("train")
@handles_errors
def classifier_train(
    images: Annotated[
        Path | None,
        typer.Argument(
            metavar="DIR", help="A labelled image folder (labels.csv or UTKFace-style names).", show_default=False
        ),
    ] = None,
    column: Annotated[
        str | None,
        typer.Option(
            "--column",
            "-c",
            metavar="NAME",
            help="With DIR: the label to learn.",
            rich_help_panel=P_LABELS,
            show_default=False,
        ),
    ] = None,
    pos_if: Annotated[
        str | None,
        typer.Option(
            "--pos-if",
            metavar="COND",
            help="With DIR: label values that count as positive: '==1', '>60', '20-30'.",
            rich_help_panel=P_LABELS,
            show_default=False,
        ),
    ] = None,
    neg_if: Annotated[
        str | None,
        typer.Option(
            "--neg-if",
            metavar="COND",
            help="With DIR: negative values \\[default: every other labelled image].",
            rich_help_panel=P_LABELS,
            show_default=False,
        ),
    ] = None,
    labels: LabelsOpt = None,
    name_pattern: PatternOpt = None,
    max_images: MaxImagesOpt = 5000,
    pos: Annotated[
        list[str] | None,
        typer.Option(
            "--pos",
            metavar="LATENTS",
            help="Instead of DIR: latents whose images show the attribute (rendered with --model); repeatable.",
            show_default=False,
        ),
    ] = None,
    neg: Annotated[
        list[str] | None,
        typer.Option("--neg", metavar="LATENTS", help="Latents whose images do not; repeatable.", show_default=False),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            help="With --pos/--neg: the model that renders them \\[default: the current run].",
            show_default=False,
        ),
    ] = None,
    image_size: Annotated[
        int, typer.Option("--image-size", help="Size the classifier looks at; images of other sizes are resized.")
    ] = 64,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the images.")] = 15,
    seed: SeedOpt = 0,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Saved as classifiers/NAME.safetensors in the workspace \\[default: the column or the --pos name].",
            rich_help_panel=PANEL_OUTPUT,
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Write the classifier here instead (.safetensors).",
            rich_help_panel=PANEL_OUTPUT,
            show_default=False,
        ),
    ] = None,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
    ema: EmaOpt = True,
    workspace: WorkspaceOpt = None,
) -> None:
    """Train a small CNN that tells images with an attribute from images without it.

    Examples:

      latentctl classifier train faces/ --column glasses --pos-if ==1

      latentctl classifier train utkface/ --column age --pos-if ">60" --name old

      latentctl classifier train --pos smiling --neg neutral --name smile   # from picked samples
    """
    import numpy as np

    from latentctl.assessor import ClassifierConfig, save_classifier, train_classifier
    from latentctl.cli.progress import step
    from latentctl.config import IMAGE_SIZES
    from latentctl.device import resolve_device
    from latentctl.parse import check_count
    from latentctl.workspace import Workspace, slug

    check_count(epochs, "--epochs", 10_000, "a few tens of passes train the classifier")
    if image_size not in IMAGE_SIZES:
        raise UsageError(f"--image-size {image_size} is not supported; pick one of {', '.join(map(str, IMAGE_SIZES))}")
    ws = Workspace.resolve(workspace)
    if images is not None:
        if pos or neg:
            raise UsageError("give either DIR with --column and --pos-if, or --pos/--neg latents, not both")
        if not column or not pos_if:
            raise UsageError("DIR needs --column NAME and --pos-if CONDITION, e.g. --column glasses --pos-if ==1")
        from latentctl.data import prepare_dataset
        from latentctl.labels import UTKFACE_PATTERN, labels_from_names, read_labels_csv, select

        folder = Path(images).expanduser()
        csv = labels or (folder / "labels.csv" if (folder / "labels.csv").exists() and name_pattern is None else None)
        with step(f"decoding the images in {folder}", lazy=True) as advance:  # silent when they are cached
            ds = prepare_dataset(folder, image_size, ws.cache, max_images=max_images, progress=advance)
        table = read_labels_csv(csv, folder) if csv else labels_from_names(ds.files, name_pattern or UTKFACE_PATTERN)
        note(table.summary())
        values = table.column(ds.files, column)
        keep = np.isfinite(values)
        pos_mask = select(values, pos_if) & keep
        neg_mask = (select(values, neg_if) if neg_if else ~pos_mask) & keep
        chosen = pos_mask | neg_mask
        x, y = np.asarray(ds.images)[chosen], pos_mask[chosen]
        source = {"images": str(folder), "column": column, "pos_if": pos_if, "neg_if": neg_if}
        default_name = column
    else:
        if not pos or not neg:
            raise UsageError(
                "give a labelled DIR with --column and --pos-if, or --pos and --neg latents rendered with the model"
            )
        from latentctl.generate import generate
        from latentctl.session import open_model

        session = open_model(model, device, workspace, "fp32", warn=warn, ema=ema)
        p = np.concatenate([session.latents(s).z for s in pos])
        n = np.concatenate([session.latents(s).z for s in neg])
        with step(f"drawing the {len(p) + len(n)} pictures of --pos and --neg"):
            x = generate(session.generator, np.concatenate([p, n]), device=session.device)
        y = np.arange(len(x)) < len(p)
        source = {"pos": pos, "neg": neg, "model_id": session.info.model_id, "checkpoint": str(session.path)}
        default_name = pos[0].split("@")[0]
    target = Path(out).expanduser() if out else ws.root / CLASSIFIERS / f"{slug(name or default_name)}.safetensors"
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to replace it or choose another --name/--out")
    note(f"training on {int(y.sum())} positive and {int((~y).sum())} negative images at {image_size} px")
    with step(f"training the classifier ({epochs} epochs of {len(x)} images)", epochs) as advance:
        clf, report = train_classifier(
            x,
            y,
            config=ClassifierConfig(image_size=image_size),
            epochs=epochs,
            seed=seed,
            device=resolve_device(device),
            on_epoch=lambda done, total, loss: advance(done, total, f"loss {loss:.3f}"),
        )
    clf.meta = {**source, "epochs": epochs, "seed": seed, **vars(report)}
    path = save_classifier(target, clf, force=force)
    note(f"accuracy {report.train_accuracy:.1%} on the training images, {report.val_accuracy:.1%} on a held-out fifth")
    note(f"use it with: latentctl steer --assessor {path}")
    result(str(path))
