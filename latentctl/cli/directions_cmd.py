"""`directions`: unsupervised directions (SeFa, GANSpace PCA), saved to the store and shown as a
contact sheet to scan and name."""

from __future__ import annotations

from typing import Annotated

import typer

from latentctl.cli.common import (
    MAX_SHEET_SEEDS,
    PANEL_OUTPUT,
    DeviceOpt,
    EmaOpt,
    ForceOpt,
    ModelArg,
    NoiseOpt,
    OutOpt,
    SpaceOpt,
    WorkspaceOpt,
    handles_errors,
    note,
    refuse_existing,
    result,
    seeds_option,
    warn,
)


@handles_errors
def directions(
    model: ModelArg = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            metavar="sefa|pca",
            help="sefa: eigenvectors of AᵀA for the first layer's weight A (closed form). pca: GANSpace, PCA of first-layer activations regressed back to z.",
        ),
    ] = "sefa",
    k: Annotated[int, typer.Option("-k", help="How many directions (at most the latent size).")] = 10,
    samples: Annotated[
        int, typer.Option("--samples", metavar="N", help="pca: sampled latents (seeded by --seed).")
    ] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="pca: seed of the sampled latents.")] = 0,
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            metavar="FIRST-LAST",
            help="sefa on a StyleGAN: factorise only the layers reading ws FIRST to LAST (0-3: pose and shape; 4-7: features; 8 on: colour and texture at 1024 px); in W+ the directions move only those layers \\[default: all].",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        str, typer.Option("--seeds", metavar="SEEDS", help="Latents every direction is swept on in the contact sheet.")
    ] = "0-2",
    save: Annotated[
        str | None,
        typer.Option(
            "--save",
            metavar="NAME",
            help="Store the directions as NAME-1 ... NAME-k \\[default: the method's name].",
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
    """Find directions without picking samples (SeFa or GANSpace), save them, and render one sweep
    row per direction (strengths -3..3) to scan and name.

    Each direction is a unit vector: strength 1 moves one prior standard deviation.

    Examples:

      latentctl directions --method sefa -k 10                # saved as sefa-1 ... sefa-10

      latentctl directions --method pca -k 5 --save pca

      latentctl directions --space w+ --layers 0-3 --save coarse   # a StyleGAN's coarse layers only

      latentctl apply seeds:3 --add sefa-1=2 --scales -2,0,2  # use one like any direction
    """

    from latentctl.cli.progress import step
    from latentctl.parse import check_count
    from latentctl.space import directions as D
    from latentctl.space.session import open_model, output_dir, render, save_latents

    D.check_method(method)
    layer_range = None if layers is None else D.parse_layers(layers)
    # every count first: a huge --samples or sheet would only fail after the model loaded
    check_count(samples, "--samples", 1_000_000, "a PCA of 10,000 samples is the usual")
    base_seeds = seeds_option(seeds)
    check_count(len(base_seeds), "--seeds", MAX_SHEET_SEEDS, "the contact sheet shows a few latents per direction")
    session = open_model(model, device, workspace, "fp32", warn=warn, ema=ema, space=space, noise=noise)
    D.check_k(k, D.max_directions(session.info.model), space=session.info.model.latent_space)
    D.check_layers(session.generator, method, layer_range)
    names = D.entry_names(session.store.normalize_name(save or method), k)
    refuse_existing(session.store, names, force)
    out_dir = output_dir(session.ws, out, "directions", force)

    pca = method == "pca"
    # PCA is announced at its first batch, so that its own checks (too few samples) fail on a line alone
    with step(D.finding_label(method, k, samples), samples if pca else None, lazy=pca) as advance:
        found = D.find(
            session.generator,
            method,
            k,
            samples=samples,
            seed=seed,
            device=session.device,
            on_progress=advance,
            layers=layer_range,
        )
    with step(f"measuring how much each direction changes the image ({len(base_seeds)} seeds)", k) as advance:
        report = D.measure(session, found, names, base_seeds, on_progress=advance)
    for entry_name, entry in zip(names, report.entries):
        session.store.save(entry_name, entry, force=force)
    with step(f"drawing the contact sheet ({len(report.sheet)} images)"):
        sheet = render(
            session,
            report.sheet,
            out_dir,
            names=None,
            labels=None,
            cols=len(report.strengths),
            row_labels=report.row_labels,
            col_labels=report.col_labels,
            caption=report.caption,
            force=force,
            grid_name="sheet.png",
            grid_max=len(report.sheet),
        )
    save_latents(out_dir / "latents.npz", report.everything, force=force)
    for line in report.summary(seeds):
        note(line)
    result(str(sheet))


def sheet_row_labels(names: list[str], seeds: list[int]) -> list[str]:
    """The contact sheet's row names (``directions.sheet_row_labels``, where the sheet is built)."""
    from latentctl.space.directions import sheet_row_labels as labels

    return labels(names, seeds)
