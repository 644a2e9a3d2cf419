"""docs/cli.md, generated from the commands' own help: ``python -m latentctl.cli.reference``.

Typer's generator renders rich markup to HTML and so writes entities (``seed&#x27;s``, ``x&gt;=1``)
into Markdown, where they show as typed; this unescapes them and keeps everything else typer's.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

TITLE = "latentctl CLI reference"


def render() -> str:
    import typer
    from typer.cli import MARKUP_MODE_KEY, get_docs_for_click

    from latentctl.cli.app import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, obj={MARKUP_MODE_KEY: app.rich_markup_mode})
    docs = get_docs_for_click(obj=command, ctx=ctx, name="latentctl", title=TITLE)
    return html.unescape(docs.strip()) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if argv[:1] == ["--output"] and len(argv) == 2:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
