"""`steer` (a walk for a known image edit, or GANalyze with an assessor) and `classifier train`
(the small attribute classifier used as that assessor)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from latentctl.space.steer_run import resolve_classifier  # noqa: F401  (re-exported: apply --score-with imports it from here)

if TYPE_CHECKING:
    from latentctl.space.steer_run import SteeredDirection

StepsOpt = Annotated[int, typer.Option("--steps", help="Adam steps on the direction (the generator stays frozen).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the sampled latents and strengths.")]


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
    from latentctl.cli.progress import step
    from latentctl.parse import check_count
    from latentctl.space.assessor import load_classifier
    from latentctl.space.session import open_model, output_dir, save_latents
    from latentctl.space.steer_run import SteerRequest, draw_sweep, learn_steer, plan_steer, steer_sweep

    request = SteerRequest(
        edit=edit,
        assessor=assessor,
        channel=channel,
        alpha_max=alpha_max,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        save=save,
    )
    request.check()  # every number before the model loads
    base_seeds = seeds_option(seeds)
    check_count(len(base_seeds), "--seeds", MAX_SHEET_SEEDS, "the sweep image shows a few latents")
    session = open_model(model, device, workspace, "fp32", warn=warn, ema=ema, space=space, noise=noise)
    plan = plan_steer(request, session.ws, session.store)
    refuse_existing(session.store, [plan.name], force)
    out_dir = output_dir(session.ws, out, "steer", force)
    # a bad classifier file fails here, before any work begins
    clf = load_classifier(plan.classifier, session.device) if plan.classifier is not None else None
    with step(f"{plan.learning} ({steps} steps of {batch_size} latents)", steps) as advance:

        def on_step(done: int, total: int, loss: float) -> None:
            advance(done, total, f"loss {loss:.4f}")
            if done == total and edit is None:
                # learn_direction then scores the direction on held-out latents, without a count
                advance.then("measuring the direction on held-out latents")

        def on_eval(done: int, total: int) -> None:
            if done == 0:
                advance.then("measuring the walk on held-out latents", total)
            advance(done, total)

        learned = learn_steer(session, plan, clf, on_step=on_step, on_eval=on_eval)
    sweep = steer_sweep(session, learned, base_seeds)  # its size and finiteness checked before the store changes
    path = session.store.save(plan.name, learned.entry, force=force)
    with step(f"drawing the sweep ({len(sweep.latents)} images)"):
        grid = draw_sweep(session, sweep, out_dir, force=force)
    save_latents(out_dir / "latents.npz", learned.entry, force=force)
    _report(learned)
    note(
        f"saved as '{plan.name}' ({path}); use it with: latentctl apply seeds:0-3 --add {plan.name}={sweep.suggested:g}"
    )
    result(str(grid))


def _report(learned: SteeredDirection) -> None:
    """How the direction does on held-out latents: the walk's error next to doing nothing, or the
    assessor's mean logit by strength."""
    meta = learned.entry.meta
    if learned.walk is not None:
        note(f"{learned.walk.edit} walk, |w| = {learned.norm:.3f} per unit of {meta['units']}")
        note("held-out error against the edited image (masked RMS, 0-255):")
        note("    alpha     walk  zero walk")
        for e in learned.walk.errors:
            note(f"  {e.alpha:+7.3g}  {e.walk:7.2f}  {e.zero:9.2f}")
        better, moved = learned.walk.wins()
        note(f"the walk beats doing nothing at {better} of {moved} nonzero strengths")
        return
    note(f"GANalyze direction, |θ| = {learned.norm:.3f}; held-out mean assessor logit by strength:")
    note("  strength   renormalised (GANalyze)   as apply adds it   target")
    for c in learned.ganalyze.curve:
        note(f"  {c.strength:+7.2f}   {c.score:+12.3f}              {c.score_added:+10.3f}     {c.target:+7.3f}")


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
    from latentctl.cli.progress import step
    from latentctl.device import resolve_device
    from latentctl.files.workspace import Workspace
    from latentctl.parse import check_count
    from latentctl.space.assessor import save_classifier
    from latentctl.space.steer_run import (
        PickedLatents,
        check_classifier_size,
        classifier_target,
        labelled_examples,
        train_on_examples,
    )

    check_count(epochs, "--epochs", 10_000, "a few tens of passes train the classifier")
    check_classifier_size(image_size)
    ws = Workspace.resolve(workspace)
    if images is not None:
        if pos or neg:
            raise UsageError("give either DIR with --column and --pos-if, or --pos/--neg latents, not both")
        if not column or not pos_if:
            raise UsageError("DIR needs --column NAME and --pos-if CONDITION, e.g. --column glasses --pos-if ==1")
        from latentctl.pictures.data import prepare_dataset

        folder = Path(images).expanduser()
        with step(f"decoding the images in {folder}", lazy=True) as advance:  # silent when they are cached
            ds = prepare_dataset(folder, image_size, ws.cache, max_images=max_images, progress=advance)
        examples = labelled_examples(
            ds, folder, column, pos_if, neg_if, labels=labels, name_pattern=name_pattern, on_labels=note
        )
    else:
        if not pos or not neg:
            raise UsageError(
                "give a labelled DIR with --column and --pos-if, or --pos and --neg latents rendered with the model"
            )
        from latentctl.space.session import open_model

        session = open_model(model, device, workspace, "fp32", warn=warn, ema=ema)
        picked = PickedLatents.resolve(session, pos, neg)
        with step(f"drawing the {picked.count} pictures of --pos and --neg"):
            examples = picked.examples(session)
    target = classifier_target(ws, out, name or examples.default_name, force=force)
    note(f"training on {examples.n_pos} positive and {examples.n_neg} negative images at {image_size} px")
    with step(f"training the classifier ({epochs} epochs of {len(examples.images)} images)", epochs) as advance:
        clf, report = train_on_examples(
            examples,
            image_size=image_size,
            epochs=epochs,
            seed=seed,
            device=resolve_device(device),
            on_epoch=lambda done, total, loss: advance(done, total, f"loss {loss:.3f}"),
        )
    path = save_classifier(target, clf, force=force)
    note(f"accuracy {report.train_accuracy:.1%} on the training images, {report.val_accuracy:.1%} on a held-out fifth")
    note(f"use it with: latentctl steer --assessor {path}")
    result(str(path))
