"""`latentctl sample`, `info` and `export`: use a trained model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from latentctl.cli.common import (
    CAPTIONS,
    PANEL_OUTPUT,
    PNGS,
    DeviceOpt,
    EmaOpt,
    ForceOpt,
    NoiseOpt,
    OldImagesOpt,
    OldLabelsOpt,
    OutOpt,
    PrecisionOpt,
    RunModelArg,
    SpaceOpt,
    TileSizeOpt,
    WorkspaceOpt,
    check_save,
    handles_errors,
    note,
    peak_memory,
    renamed,
    result,
    warn,
)
from latentctl.errors import UsageError

P_WHICH = "Which samples"


@handles_errors
def sample(
    model: RunModelArg = None,
    n: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--count",
            min=1,
            help="How many samples; alone it means seeds 0..N-1.",
            rich_help_panel=P_WHICH,
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            metavar="LIST",
            help="Seeds such as '0-8,42' (an open range '500-' takes -n seeds). Each seed always gives the same latent.",
            rich_help_panel=P_WHICH,
            show_default=False,
        ),
    ] = None,
    truncation: Annotated[
        float,
        typer.Option(
            "--truncation",
            "--psi",
            min=0.0,
            metavar="PSI",
            help="Scale latents by PSI (<1 trades variety for typical-looking samples).",
            rich_help_panel=P_WHICH,
        ),
    ] = 1.0,
    out: OutOpt = None,
    save: Annotated[
        str | None,
        typer.Option(
            "--save",
            metavar="NAME",
            help="Also save the latents to the latent store under NAME.",
            rich_help_panel=PANEL_OUTPUT,
            show_default=False,
        ),
    ] = None,
    captions: Annotated[
        bool,
        typer.Option(
            "--captions/--no-captions", help="Write each tile's seed on the grid.", rich_help_panel=PANEL_OUTPUT
        ),
    ] = True,
    grid: Annotated[
        bool, typer.Option("--grid/--no-grid", help="Write grid.png.", rich_help_panel=PANEL_OUTPUT)
    ] = True,
    pngs: Annotated[
        bool,
        typer.Option("--pngs/--no-pngs", help="Write one PNG per sample (seed0042.png).", rich_help_panel=PANEL_OUTPUT),
    ] = True,
    old_labels: OldLabelsOpt = None,
    old_images: OldImagesOpt = None,
    grid_max: Annotated[
        int,
        typer.Option(
            min=1, help="At most this many tiles in grid.png (the first samples).", rich_help_panel=PANEL_OUTPUT
        ),
    ] = 400,
    cols: Annotated[
        int | None,
        typer.Option(min=1, help="Grid columns \\[default: square].", rich_help_panel=PANEL_OUTPUT, show_default=False),
    ] = None,
    tile_size: TileSizeOpt = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print what was written as JSON on stdout: folder, grid, images, seeds, latents file, store entry.",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Samples generated at once (bounds memory).", rich_help_panel="Device and speed")
    ] = 64,
    force: ForceOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    ema: EmaOpt = True,
    workspace: WorkspaceOpt = None,
    space: SpaceOpt = None,
    noise: NoiseOpt = None,
) -> None:
    """Generate new images from a trained model.

    Writes grid.png, seedNNNN.png per sample and latents.npz (z, seeds) to the output folder.

    Examples:

      latentctl sample -n 9

      latentctl sample --seeds 16,37,83 --save glasses

      latentctl sample runs/0001-faces-128px --seeds 0-99 --no-pngs
    """

    from latentctl.parse import MAX_BATCH_SIZE, MAX_GRID_TILES, check_count, check_float
    from latentctl.pictures.grid import check_tile_size
    from latentctl.seeds import resolve_seeds
    from latentctl.space.sampling import draw_samples
    from latentctl.space.session import open_model, output_dir

    captions = renamed(captions, old_labels, **CAPTIONS)
    pngs = renamed(pngs, old_images, **PNGS)
    # Everything the user typed is checked before the model loads: nothing renders in vain.
    seed_list = resolve_seeds(n, seeds)
    check_float(truncation, "--truncation", minimum=0.0)
    check_count(
        grid_max, "--grid-max", MAX_GRID_TILES, "the grid holds its tiles in memory; every sample still gets its PNG"
    )
    check_count(cols, "--cols", MAX_GRID_TILES, "a wider grid would be mostly empty")
    check_count(batch_size, "--batch-size", MAX_BATCH_SIZE, "larger batches only use more memory")
    check_tile_size(tile_size)
    check_save(save, workspace, force)
    session = open_model(model, device, workspace, precision, warn=warn, ema=ema, space=space, noise=noise)
    out_dir = output_dir(session.ws, out, "sample", force)
    drawn = draw_samples(
        session,
        seed_list,
        out_dir,
        truncation=truncation,
        pngs=pngs,
        captions=captions,
        grid=grid,
        grid_max=grid_max,
        cols=cols,
        batch_size=batch_size,
        tile_size=tile_size,
        save=save,
        force=force,
    )
    if save:
        note(f"saved {len(seed_list)} latents to the store as '{save}' ({drawn.store_path})")
    note(
        f"{len(seed_list)} samples in {out_dir}"
        + (f" (grid shows the first {grid_max})" if len(seed_list) > grid_max and grid else "")
        + f"; {peak_memory()}"
    )
    result(json.dumps(drawn.as_json(), indent=2) if as_json else str(drawn.grid or out_dir))


@handles_errors
def info(
    model: RunModelArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw metadata as JSON.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show what a checkpoint holds: model, training state, versions. Reads only the header.

    Example:

      latentctl info ~/.latentctl/runs/0001-faces-128px
    """
    from latentctl.config import to_dict
    from latentctl.files import checkpoint
    from latentctl.files.workspace import Workspace

    path = Workspace.resolve(workspace).resolve_checkpoint(model)
    hdr = checkpoint.read_header(path)
    if as_json:
        meta = {k: _maybe_json(v) for k, v in hdr.raw_metadata.items()}
        meta.get("training_state", {}).pop("rng", None)
        result(json.dumps(meta, indent=2, sort_keys=True))
        return
    params = {p: 0 for p in ("G", "D", "E")}
    for name, spec in hdr.tensors.items():
        head = name.split(".", 1)[0]
        if head in params:
            params[head] += math.prod(spec["shape"])  # a scalar's shape [] gives 1
    m = hdr.model
    shape = f"{m.image_size}px, {m.channels} channel{'s' if m.channels > 1 else ''}, latent {m.latent_dim}"
    lines = [
        f"checkpoint   {path}",
        f"kind         {hdr.kind} (format {hdr.format_version}, written by latentctl {hdr.latentctl_version})",
        (
            f"model        imported {m.arch} generator, {shape} ({m.latent_prior} prior)"
            if m.imported
            else f"model        {m.family}, {m.arch} architecture, {shape}, width {m.width}"
        )
        + (", with an EMA generator (used for sampling)" if any(n.startswith("G_ema.") for n in hdr.tensors) else ""),
        f"parameters   G {params['G']:,}" + "".join(f", {k} {params[k]:,}" for k in ("D", "E") if params[k]),
        f"model id     {hdr.model_id}   run id {hdr.run_id or '-'}",
    ]
    src = hdr.source
    if src:
        lines.append(
            f"source       {src.get('file')} ({src.get('format')}"
            + (f", part {src['part']}" if src.get("part") else "")
            + f", {src.get('size', 0):,} bytes, sha256 {str(src.get('sha256', ''))[:16]}...)"
        )
        if src.get("licence"):
            lines.append(f"licence      {src['licence']}")
    st = hdr.state
    if st:
        if "steps_per_epoch" in st:
            lines.append(
                f"progress     epoch {st.get('epoch')} + {st.get('step_in_epoch', 0)} steps "
                f"(step {st.get('global_step')}, {st.get('elapsed_s', 0):.0f} s trained)"
                + (", finished" if st.get("finished") else "")
            )
        else:
            lines.append(f"progress     epoch {st.get('epoch')} (step {st.get('global_step')})")
        if "data" in st:
            d = st["data"]
            lines.append(f"data         {d.get('root')} ({d.get('count')} images, fingerprint {d.get('fingerprint')})")
    if hdr.train:
        lines.append("training     " + ", ".join(f"{k}={v}" for k, v in to_dict(hdr.train).items()))
    result("\n".join(lines))


def _maybe_json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@handles_errors
def export(
    model: RunModelArg = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="FILE", help="Where to write the generator-only checkpoint (.safetensors)."
        ),
    ] = Path("generator.safetensors"),
    force: ForceOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write a small generator-only checkpoint for sampling and sharing.

    Example:

      latentctl export --out faces-gan.safetensors
    """
    from latentctl.files import checkpoint
    from latentctl.files.workspace import Workspace

    if out.suffix != ".safetensors":
        raise UsageError(f"--out {out}: use a .safetensors file name")
    if out.exists() and not force:
        raise UsageError(f"{out} already exists; pass --force to replace it")
    src = Workspace.resolve(workspace).resolve_checkpoint(model)
    loaded = checkpoint.load(src)
    st = shareable_state(loaded.info.state)
    # an autoencoder keeps its encoder, which `encode` needs; a GAN's discriminator is dropped
    checkpoint.save(
        out,
        generator=loaded.generator,
        partner=loaded.encoder,
        model_config=loaded.info.model,
        run_id=loaded.info.run_id,
        state=st,
        source=loaded.info.source or None,
    )
    note(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {src}")
    result(str(out))


def shareable_state(state: dict) -> dict:
    """The training state an exported file keeps: epoch, step and the data's fingerprint and count,
    with the data folder reduced to its NAME. The absolute path says who trained it and where
    (/home/alice/photos/...), which has no place in a file meant for other people; the name and
    the fingerprint still tell what the model was trained on."""
    st = {k: v for k, v in state.items() if k in ("epoch", "global_step", "data")}
    if isinstance(st.get("data"), dict):
        data = dict(st["data"])
        if isinstance(data.get("root"), str):
            data["root"] = Path(data["root"]).name or data["root"]
        st["data"] = data
    return st
