"""`latentctl runs`: list the workspace's runs, pick the current one, show one with its loss curve."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from latentctl.cli.common import WorkspaceOpt, complete_runs, handles_errors, note, out_console, result

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
    from latentctl.runlist import list_runs
    from latentctl.workspace import Workspace

    ws = Workspace.resolve(workspace)
    runs = list_runs(ws)
    if as_json:
        result(json.dumps([r.to_json() for r in runs], indent=2))
        return
    if not runs:
        note(f"no runs in {ws.runs}: train one with 'latentctl train DIR'")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("", "run", "model", "epochs", "score_fd"):
        table.add_column(col, justify="right" if col in ("epochs", "score_fd") else "left")
    for r in runs:
        epochs = (
            "-" if r.epochs_done is None else f"{r.epochs_done}" + (f"/{r.epochs_planned}" if r.epochs_planned else "")
        )
        model = "no checkpoint yet" if not r.has_checkpoint else "unreadable checkpoint" if r.problem else r.model
        table.add_row("*" if r.current else "", r.name, model, epochs, "-" if r.score is None else f"{r.score:.2f}")
    out_console.print(table)


@runs_app.command("use")
@handles_errors
def runs_use(run: RunArg, workspace: WorkspaceOpt = None) -> None:
    """Make RUN the current run: the one commands use when given no model.

    Example:

      latentctl runs use 3
    """
    from latentctl.runlist import find_run
    from latentctl.workspace import Workspace, checkpoint_in

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
            metavar="[RUN]",
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
    from latentctl.plot import loss_curve
    from latentctl.runlist import current_dir, find_run, summarize
    from latentctl.workspace import Workspace

    ws = Workspace.resolve(workspace)
    path = find_run(ws, run) if run else ws.current_run()
    summary = summarize(path, current_dir(ws))
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
        f"score_fd     {summary.score:.3f} (lower is better)"
        if summary.score is not None
        else "score_fd     - (latentctl score RUN measures it)",
        f"loss curve   {info['loss_curve'] or '- (no metrics yet)'}",
    ]
    result("\n".join(lines))
