"""The runs of a workspace by name: list them, find one from what a user types, read its summary.

Library code without torch (headers are read with the standard library), so ``latentctl runs``
answers at once and shell completion can call it. A user names a run by its folder name
(``0003-faces-32px``), a unique prefix of it (``0003-fa``, ``faces`` when only one run has it
after its number), its number (``3``), or a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from latentctl.errors import LatentctlError, UsageError
from latentctl.workspace import CHECKPOINT_NAME, Workspace

_NUMBERED = re.compile(r"(\d{4,})-(.*)")


@dataclass
class RunSummary:
    name: str
    path: Path
    current: bool
    has_checkpoint: bool
    family: str | None = None
    arch: str | None = None
    image_size: int | None = None
    epochs_done: int | None = None
    epochs_planned: int | None = None
    finished: bool = False
    score: float | None = None  # the last score_fd in metrics.jsonl (lower is better)
    problem: str | None = None  # why the checkpoint could not be read, when it could not
    run_id: str = ""

    @property
    def model(self) -> str:
        if self.family is None:
            return "-"
        return f"{self.family}/{self.arch}/{self.image_size}px"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "current": self.current,
            "has_checkpoint": self.has_checkpoint,
            "family": self.family,
            "arch": self.arch,
            "image_size": self.image_size,
            "epochs_done": self.epochs_done,
            "epochs_planned": self.epochs_planned,
            "finished": self.finished,
            "score_fd": self.score,
            "loss_curve": str(self.path / "loss.png") if (self.path / "loss.png").exists() else None,
            "problem": self.problem,
        }


def run_dirs(ws: Workspace) -> list[Path]:
    """The workspace's run folders, oldest (lowest number) first."""
    if not ws.runs.is_dir():
        return []

    def order(p: Path):
        m = _NUMBERED.match(p.name)
        return (0, int(m.group(1)), p.name) if m else (1, 0, p.name)

    return sorted((p for p in ws.runs.iterdir() if p.is_dir() and not p.name.startswith(".")), key=order)


def current_dir(ws: Workspace) -> Path | None:
    try:
        return ws.current_run().resolve()
    except (LatentctlError, OSError):
        return None


def summarize(path: Path, current: Path | None = None) -> RunSummary:
    """What the run folder's checkpoint header and metrics say; an unreadable checkpoint is
    reported in ``problem``, never raised (one damaged run must not hide the others)."""
    from latentctl.checkpoint import read_header

    path = Path(path)
    ckpt = path / CHECKPOINT_NAME
    s = RunSummary(path.name, path, current is not None and path.resolve() == current, ckpt.is_file())
    if s.has_checkpoint:
        try:
            hdr = read_header(ckpt)
        except LatentctlError as err:
            s.problem = str(err)
        else:
            s.family, s.arch, s.image_size = hdr.model.family, hdr.model.arch, hdr.model.image_size
            s.epochs_done = hdr.state.get("epoch")
            s.finished = bool(hdr.state.get("finished"))
            s.epochs_planned = getattr(hdr.train, "epochs", None) if hdr.train else None
            s.run_id = hdr.run_id
    s.score = last_score(path / "metrics.jsonl")
    return s


def last_score(metrics: Path) -> float | None:
    """The last ``score_fd`` in a metrics file, read from its end (metrics files grow long)."""
    import json

    try:
        with open(metrics, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4_000_000))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    if '"score_fd"' not in tail:
        return None
    for line in reversed(tail.splitlines()):
        if '"score_fd"' in line:
            try:
                value = json.loads(line).get("score_fd")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(value, (int, float)):
                return float(value)
    return None


def names_by_run_id(ws: Workspace) -> dict[str, str]:
    """run id -> run folder name, for the runs in this workspace (to name what made a latent)."""
    return {r.run_id: r.name for r in list_runs(ws) if r.run_id}


def list_runs(ws: Workspace) -> list[RunSummary]:
    current = current_dir(ws)
    return [summarize(p, current) for p in run_dirs(ws)]


def looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith((".", "~"))


def find_run(ws: Workspace, text: str, *, missing_ok: bool = False) -> Path | None:
    """The run folder ``text`` names: a path (with a slash, or starting with . or ~), a folder
    name in the workspace's runs/, a number, or a unique prefix of a name (with or without its
    number). ``missing_ok``: None rather than an error when nothing matches (still an error
    when several do)."""
    if looks_like_path(text):
        path = Path(text).expanduser()
        if path.is_dir() or missing_ok:
            return path if path.is_dir() else None
        raise UsageError(f"no run folder at {path}")
    dirs = run_dirs(ws)
    by_name = {p.name: p for p in dirs}
    if text in by_name:
        return by_name[text]
    if text.isdigit():
        hits = [p for p in dirs if (m := _NUMBERED.match(p.name)) and int(m.group(1)) == int(text)]
    else:
        hits = [p for p in dirs if p.name.startswith(text)] if text else []
        if not hits and text:
            hits = [p for p in dirs if (m := _NUMBERED.match(p.name)) and m.group(2).startswith(text)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        names = ", ".join(p.name for p in hits[:5]) + (" ..." if len(hits) > 5 else "")
        raise UsageError(f"{text!r} matches {len(hits)} runs ({names}); give more of the name")
    if Path(text).is_dir():  # a folder of that name in the working directory
        return Path(text)
    if missing_ok:
        return None
    if not dirs:
        raise UsageError(f"no runs in {ws.runs}: train one with 'latentctl train DIR'")
    raise UsageError(f"no run named {text!r} in {ws.runs}; 'latentctl runs' lists them")


def run_names(ws: Workspace, prefix: str = "") -> list[str]:
    """Run folder names starting with ``prefix`` (for shell completion); never raises."""
    try:
        return [p.name for p in run_dirs(ws) if p.name.startswith(prefix)]
    except OSError:
        return []
