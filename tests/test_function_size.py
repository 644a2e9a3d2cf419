"""Thin commands and a readable loop (docs/architecture.md): no function in the CLI package and none in
the training loop's module has a body over 60 lines. A command parses, calls the library and prints;
a longer one is deciding or computing something the Python API would then lack.

A body is counted from its first statement after the docstring to its last line, blank lines and
comments included. Run it alone to list the longest: ``python -m pytest tests/test_function_size.py -q``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "latentctl"
LIMIT = 60


def _body_lengths(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            documented = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and len(body) > 1
            first = body[1] if documented else body[0]
            start = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", []))])
            out.append((node.end_lineno - start + 1, f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"))
    return out


def _checked_files() -> list[Path]:
    files = sorted((PACKAGE / "cli").rglob("*.py"))
    files += sorted(PACKAGE.rglob("training.py")) + sorted(PACKAGE.rglob("demo.py"))
    return files


def test_the_checked_files_exist():
    names = {p.name for p in _checked_files()}
    assert {"app.py", "sample_cmd.py", "training.py", "demo.py"} <= names


def test_no_command_or_loop_function_is_longer_than_the_limit():
    lengths = sorted((n, where) for path in _checked_files() for n, where in _body_lengths(path))
    too_long = [f"{where}: {n} lines" for n, where in lengths if n > LIMIT]
    assert not too_long, f"bodies over {LIMIT} lines: " + "; ".join(too_long)
