"""The package's imports keep its layers (docs/architecture.md): no import circle between modules
(counting imports inside functions too), the library never imports the CLI, and nothing imports
names from the API package ``latentctl/__init__.py`` that it does not own as a submodule.

Run it alone to see the graph's verdict: ``python -m pytest tests/test_layers.py -q``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "latentctl"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every latentctl module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # a submodule by name, or a name the module defines
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
            found &= set(modules)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    # A package's __init__ importing its own submodules is how it exports them, not a layer edge.
    for name in graph:
        graph[name] = {m for m in graph[name] if not (m.startswith(name + ".") and modules[name].name == "__init__.py")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert _cycles(_graph()) == []


def _folder_graph() -> dict[str, set[str]]:
    """The same graph between folders: latentctl.space.store counts as latentctl.space."""

    def folder(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for name, targets in _graph().items():
        graph.setdefault(folder(name), set()).update(folder(t) for t in targets if folder(t) != folder(name))
    return graph


def test_no_circle_between_the_folders():
    # The folders are the layers (docs/architecture.md): train/ over space/ over pictures/, ...; a
    # module that reaches back up belongs in another folder.
    assert _cycles(_folder_graph()) == []


def test_the_library_never_imports_the_cli():
    graph = _graph()
    climbing = {m: sorted(t for t in ts if t.startswith("latentctl.cli")) for m, ts in graph.items()}
    library = {m: ts for m, ts in climbing.items() if ts and not m.startswith(("latentctl.cli", "latentctl.__main__"))}
    assert library == {}


def test_no_module_reads_names_from_the_api_package():
    graph = _graph()
    users = sorted(m for m, ts in graph.items() if "latentctl" in ts)
    # The CLI's root may show the version it got from the package; nothing below it reads the API.
    assert [m for m in users if not m.startswith("latentctl.cli")] == []


def test_the_checker_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
