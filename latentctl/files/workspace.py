"""Where latentctl keeps runs, the latent store, the image cache and outputs.

One folder, ``~/.latentctl`` unless ``--workspace`` or ``LATENTCTL_HOME`` says otherwise::

    runs/0001-faces-128px/   a training run (checkpoint, grids, metrics, loss.png); commands
                             also take it by name, number (1) or prefix (latentctl.files.runlist)
    current                  the path of the run that commands use when given none
    latents/                 the latent store (``LATENTCTL_STORE`` relocates it alone)
    cache/                   decoded images, keyed by folder contents and size
    outputs/0001-sample/     what sample, interp and apply write when given no --out
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from latentctl.errors import CheckpointError, UsageError
from latentctl.files.fsutil import atomic_write_text

_NUMBERED = re.compile(r"(\d{4,})-(.*)")
ENV_HOME = "LATENTCTL_HOME"
ENV_STORE = "LATENTCTL_STORE"
CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, override: Path | None = None) -> Workspace:
        if override is not None:
            ws, source = cls(Path(override).expanduser()), "--workspace"
        elif os.environ.get(ENV_HOME):
            ws, source = cls(Path(os.environ[ENV_HOME]).expanduser()), ENV_HOME
        else:
            ws, source = cls(Path.home() / ".latentctl"), "the workspace"
        if ws.root.exists() and not ws.root.is_dir():
            raise UsageError(f"{source} {ws.root} is a file, not a folder; give a folder (it is created if missing)")
        return ws

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def store(self) -> Path:
        env = os.environ.get(ENV_STORE)
        return Path(env).expanduser() if env else self.root / "latents"

    def new_run_dir(self, name: str) -> Path:
        return _numbered_dir(self.runs, name)

    def new_output_dir(self, name: str) -> Path:
        return _numbered_dir(self.outputs, name)

    def set_current(self, run_dir: Path) -> None:
        atomic_write_text(self.root / "current", str(Path(run_dir).resolve()) + "\n")

    def current_run(self) -> Path:
        marker = self.root / "current"
        if not marker.exists():
            raise UsageError(
                f"no current run in {self.root}: train one with 'latentctl train DIR', "
                "or pass a run folder or checkpoint"
            )
        damaged = (
            f"the current-run marker {marker} is damaged; pass a run folder or checkpoint, "
            "or train again (the next run with a checkpoint becomes current)"
        )
        try:
            text = marker.read_bytes()[:4096].decode("utf-8").strip()
        except UnicodeDecodeError:
            raise UsageError(damaged) from None
        if not text or "\x00" in text or "\n" in text:
            raise UsageError(damaged)
        run = Path(text)
        if not run.is_dir():
            raise UsageError(f"the current run {run} no longer exists: train again or pass a run folder or checkpoint")
        return run

    def resolve_checkpoint(self, target: Path | None) -> Path:
        """A checkpoint file from what the user gave: nothing (the current run), a run folder, a
        file, or the name of one of this workspace's runs (``0003-faces-32px``, ``3``, a unique
        prefix) when no file or folder of that name exists here."""
        if target is None:
            target = self.current_run()
        target = Path(target).expanduser()
        if not target.exists() and len(target.parts) == 1:
            target = find_run(self, str(target), missing_ok=True) or target
        target = checkpoint_in(target)
        if not target.exists():
            hint = "; 'latentctl runs' lists the runs, by name and number" if len(target.parts) == 1 else ""
            raise CheckpointError(f"no checkpoint or run folder at {target}{hint}")
        return target


def checkpoint_in(path: Path) -> Path:
    """``path`` itself, or the checkpoint inside ``path`` when it is a run folder."""
    path = Path(path)
    if path.is_dir():
        ckpt = path / CHECKPOINT_NAME
        if not ckpt.is_file():
            raise CheckpointError(
                f"{path} is a folder without {CHECKPOINT_NAME}: is it a run folder that finished at least one checkpoint?"
            )
        return ckpt
    return path


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return s[:40] or "run"


# The folders made by the commands now running (one list per nesting level), so that a command that
# fails before writing anything leaves no empty numbered folder behind.
_made: list[list[Path]] = []


def made_folder(path: Path) -> None:
    """Record a folder this command created (and may remove again if it fails while it is empty)."""
    for level in _made:
        level.append(path)


@contextlib.contextmanager
def tidy_on_failure() -> Iterator[None]:
    """Run a command; if it fails (error, Ctrl-C), remove the folders it created that are still
    empty. Only ``rmdir``: a folder holding anything, even one image, stays as it is."""
    made: list[Path] = []
    _made.append(made)
    try:
        yield
    except BaseException:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    finally:
        _made.pop()


def _numbered_dir(parent: Path, name: str) -> Path:
    """Create ``parent/NNNN-name`` with the next free number; never reuses an existing folder."""
    parent.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in parent.iterdir() if (m := re.match(r"(\d{4,})-", p.name))]
    n = max(numbers, default=0) + 1
    while True:
        path = parent / f"{n:04d}-{slug(name)}"
        try:
            path.mkdir()
        except FileExistsError:
            n += 1
            continue
        made_folder(path)
        return path


# ---- runs by name (no checkpoint header needed: runlist reads those) -------------------------


def run_dirs(ws: Workspace) -> list[Path]:
    """The workspace's run folders, oldest (lowest number) first."""
    if not ws.runs.is_dir():
        return []

    def order(p: Path):
        m = _NUMBERED.match(p.name)
        return (0, int(m.group(1)), p.name) if m else (1, 0, p.name)

    return sorted((p for p in ws.runs.iterdir() if p.is_dir() and not p.name.startswith(".")), key=order)


def run_name_of(folder: Path) -> str:
    """A run folder's name without its number: ``faces-32px`` for ``0003-faces-32px``."""
    m = _NUMBERED.match(folder.name)
    return m.group(2) if m else folder.name


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
