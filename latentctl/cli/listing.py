"""`latentctl --help`: the command list, drawn with rich alone.

typer draws help through ``typer.rich_utils``, whose import pulls in rich's Markdown (markdown-it)
and traceback (syntax highlighting) renderers: 0.08 s of the 0.32 s `latentctl --help` took on the
AVX2-only EPYC, for a page that uses neither. The top-level page is a usage line, the group's help,
its few options and the command table, so it is drawn here with the same rich pieces and look
(rounded dim panels, cyan names); every other help page (a command's own) is still typer's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def _console():
    from rich.console import Console

    # typer's own settings for its help console: TERMINAL_WIDTH caps the width; FORCE_COLOR and the
    # like force a terminal, _TYPER_FORCE_DISABLE_TERMINAL (typer's tests, CliRunner) forbids one.
    width = os.environ.get("TERMINAL_WIDTH")
    force = True if any(os.environ.get(k) for k in ("GITHUB_ACTIONS", "FORCE_COLOR", "PY_COLORS")) else None
    if os.environ.get("_TYPER_FORCE_DISABLE_TERMINAL"):
        force = False
    return Console(width=int(width) if width and width.isdigit() else None, force_terminal=force)


def _panel(title: str, rows: Iterable[tuple], widths: tuple[int | None, ...], styles: tuple[str, ...]):
    from rich.panel import Panel
    from rich.table import Table

    table = Table(highlight=False, show_header=False, expand=True, box=None, pad_edge=False, padding=(0, 1))
    for i, (width, style) in enumerate(zip(widths, styles)):
        last = i == len(widths) - 1
        table.add_column(style=style, no_wrap=not last, width=width, ratio=10 if last else None)
    for row in rows:
        table.add_row(*row)
    return Panel(table, border_style="dim", title=title, title_align="left")


def print_listing(group, ctx, commands: Iterable[tuple[str, str, str]]) -> None:
    """The top-level help: usage, ``group.help``, its options, then ``commands`` as (name, panel,
    summary) rows, one panel per panel name in order of first appearance."""
    from rich.padding import Padding
    from rich.text import Text

    console = _console()
    console.print(Padding(Text(group.get_usage(ctx)), 1), style="bold")
    if group.help:
        console.print(Padding(Text(" ".join(group.help.split())), (0, 1, 1, 1)))
    options = []
    for param in group.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        names = [*param.opts, *param.secondary_opts]  # secondary: a flag's --no-... form
        long = "/".join(o for o in names if o.startswith("--"))
        short = "/".join(o for o in names if not o.startswith("--"))
        options.append((long, short, param.help or ""))
    if options:
        width = max(len(o[0]) for o in options)
        console.print(_panel("Options", options, (width, None, None), ("bold cyan", "bold green", "")))
    panels: dict[str, list[tuple[str, str]]] = {}
    for name, panel, summary in commands:
        panels.setdefault(panel or "Commands", []).append((name, summary))
    width = max((len(name) for rows in panels.values() for name, _ in rows), default=0)
    for title, rows in panels.items():
        console.print(_panel(title, rows, (width, None), ("bold cyan", "")))
