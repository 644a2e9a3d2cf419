"""`latentctl runs`: list the workspace's runs, pick the current one, show one with its loss curve."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from latentctl.cli.common import WorkspaceOpt, complete_runs, handles_errors, note, out_console, result

if TYPE_CHECKING:
    from rich.table import Table

runs_app = typer.Typer(
    help="The workspace's training runs: list them, choose the current one, show one.",
    rich_markup_mode="rich",
    no_args_is_help=False,
    invoke_without_command=True,
)

RunArg = Annotated[
    str,
    typer.Argument(
        metavar="RUN",
        help="Run name (0003-faces-32px), its number (3), a unique prefix, or a run folder.",
        show_default=False,
        autocompletion=complete_runs,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]


@runs_app.callback()
@handles_errors
def runs_list(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """List the runs: name, model (family/arch/size), epochs done, last score; * marks the current run.

    Examples:

      latentctl runs

      latentctl runs use 3

      latentctl runs show 0003-faces-32px
    """
    if ctx.invoked_subcommand is not None:
        return
    from latentctl.files.runlist import list_runs
    from latentctl.files.workspace import Workspace

    ws = Workspace.resolve(workspace)
    runs = list_runs(ws)
    if as_json:
        result(json.dumps([r.to_json() for r in runs], indent=2))
        return
    if not runs:
        note(f"no runs in {ws.runs}: train one with 'latentctl train DIR'")
        return
    out_console.print(runs_table(runs))
    for r in runs:
        if not r.in_workspace:
            note(f"{'*' if r.current else ' '} {r.name} is outside {ws.runs}; commands take its folder: {r.path}")


def runs_table(runs) -> Table:
    """The runs as a table that keeps every run name whole at 80 columns (a name is what a user
    types next): only the model column wraps, and epochs and scores are never cut."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("", no_wrap=True, min_width=1)
    table.add_column("run", no_wrap=True, min_width=max(len(r.name) for r in runs))
    table.add_column("model", overflow="fold", ratio=1)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("score_fd", justify="right", no_wrap=True)
    for r in runs:
        epochs = (
            "-" if r.epochs_done is None else f"{r.epochs_done}" + (f"/{r.epochs_planned}" if r.epochs_planned else "")
        )
        model = "no checkpoint yet" if not r.has_checkpoint else "unreadable checkpoint" if r.problem else r.model
        fd = r.latest_fd
        table.add_row("*" if r.current else "", r.name, model, epochs, "-" if fd is None else f"{fd:.2f}")
    return table


@runs_app.command("use")
@handles_errors
def runs_use(run: RunArg, workspace: WorkspaceOpt = None) -> None:
    """Make RUN the current run: the one commands use when given no model.

    Example:

      latentctl runs use 3
    """
    from latentctl.files.runlist import find_run
    from latentctl.files.workspace import Workspace, checkpoint_in

    ws = Workspace.resolve(workspace)
    path = find_run(ws, run)
    checkpoint_in(path)  # a run without a checkpoint cannot be used: say so now, not at the next command
    ws.set_current(path)
    note(f"current run: {path.name}")
    result(str(path.resolve()))


@runs_app.command("show")
@handles_errors
def runs_show(
    run: Annotated[
        str | None,
        typer.Argument(
            metavar="RUN",
            help="Run name, number, prefix or folder \\[default: the current run].",
            show_default=False,
            autocompletion=complete_runs,
        ),
    ] = None,
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show a run: its model, progress and score, and draw its loss curve (RUN/loss.png).

    Example:

      latentctl runs show 3
    """
    from latentctl.files.runlist import current_dir, find_run, read_scores, summarize
    from latentctl.files.workspace import Workspace
    from latentctl.pictures.plot import loss_curve

    ws = Workspace.resolve(workspace)
    path = find_run(ws, run) if run else ws.current_run()
    summary = summarize(path, current_dir(ws), read_scores(ws))
    metrics, curve = path / "metrics.jsonl", path / "loss.png"
    # Redrawn when the metrics are newer: training draws it at each epoch end, not at every step.
    if metrics.exists() and (not curve.exists() or curve.stat().st_mtime < metrics.stat().st_mtime):
        loss_curve(metrics, curve)
    info = summary.to_json()
    if as_json:
        result(json.dumps(info, indent=2))
        return
    epochs = (
        "-"
        if summary.epochs_done is None
        else f"{summary.epochs_done}" + (f" of {summary.epochs_planned}" if summary.epochs_planned else "")
    )
    lines = [
        f"run          {summary.name}" + ("  (current)" if summary.current else ""),
        f"folder       {path}",
        f"model        {summary.model}" if not summary.problem else f"checkpoint   {summary.problem}",
        f"epochs       {epochs}" + (", finished" if summary.finished else ""),
        *score_lines(summary, summary.name if path.parent.resolve() == ws.runs.resolve() else str(path)),
        f"loss curve   {info['loss_curve'] or '- (no metrics yet)'}",
    ]
    result("\n".join(lines))


def score_lines(summary, handle: str) -> list[str]:
    """`runs show`'s score: the newest Fréchet distance first, from training or `latentctl score`,
    each saying where it came from; the other source below it."""
    found = []
    if summary.score is not None:
        at = f" at epoch {summary.score_epoch}" if summary.score_epoch is not None else ""
        found.append((summary.score_epoch or 0, 0, f"{summary.score:.3f} (lower is better; recorded in training{at})"))
    m = summary.measured
    if m is not None:
        at = f" at epoch {m['epoch']}" if isinstance(m.get("epoch"), int) else ""
        floor = f"; the real-vs-real floor {m['floor_fd']:.3f}" if isinstance(m.get("floor_fd"), (int, float)) else ""
        when = f", {m['measured_at']}" if m.get("measured_at") else ""
        detail = f"{m.get('n_generated', '?')} samples, {m.get('features', '?')} features{when}"
        found.append(
            (m.get("epoch") or 0, 1, f"{m['score_fd']:.3f} (lower is better{floor}; latentctl score{at}: {detail})")
        )
    if not found:
        return [f"score_fd     - ('latentctl score {handle}' measures it)"]
    found.sort(key=lambda f: (f[0], f[1]), reverse=True)
    return [f"score_fd     {found[0][2]}"] + [f"             {f[2]}" for f in found[1:]]
