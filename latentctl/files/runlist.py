"""The runs of a workspace by name: list them, find one from what a user types, read its summary.

Library code without torch (headers are read with the standard library), so ``latentctl runs``
answers at once and shell completion can call it. A user names a run by its folder name
(``0003-faces-32px``), a unique prefix of it (``0003-fa``, ``faces`` when only one run has it
after its number), its number (``3``), or a path.

``latentctl score`` keeps what it measured in the workspace's ``scores.jsonl`` (one JSON line per
score, naming the checkpoint and its run id), not in the run folder: scoring reads a run, and a
run folder may be read-only or shared. ``summarize`` finds a run's last one there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from latentctl.errors import LatentctlError
from latentctl.files.workspace import (  # noqa: F401  (find_run and run_dirs: re-exported, their old home)
    CHECKPOINT_NAME,
    Workspace,
    find_run,
    looks_like_path,
    run_dirs,
)

SCORES_NAME = "scores.jsonl"  # in the workspace: what `latentctl score` measured, one line per score


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
    score_epoch: int | None = None  # the epoch training recorded ``score`` at
    measured: dict | None = None  # the last `latentctl score` of this run's checkpoint (scores.jsonl)
    in_workspace: bool = True  # False: the current run, living outside the workspace's runs/

    @property
    def latest_fd(self) -> float | None:
        """The newest Fréchet distance from either source: training's or `latentctl score`'s (which
        wins a tie: it is run after training, usually on more samples)."""
        m = self.measured
        if m is not None and (self.score is None or (m.get("epoch") or 0) >= (self.score_epoch or 0)):
            return m["score_fd"]
        return self.score

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
            "score_fd": self.latest_fd,
            "training_score_fd": self.score,
            "measured": self.measured,
            "in_workspace": self.in_workspace,
            "loss_curve": str(self.path / "loss.png") if (self.path / "loss.png").exists() else None,
            "problem": self.problem,
        }


def current_dir(ws: Workspace) -> Path | None:
    try:
        return ws.current_run().resolve()
    except (LatentctlError, OSError):
        return None


def summarize(path: Path, current: Path | None = None, scores: list[dict] | None = None) -> RunSummary:
    """What the run folder's checkpoint header and metrics say, and the last of ``scores`` (the
    workspace's ``read_scores``) measured on its checkpoint; an unreadable checkpoint is reported
    in ``problem``, never raised (one damaged run must not hide the others)."""
    from latentctl.files.checkpoint import read_header

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
    s.score, s.score_epoch = last_score_and_epoch(path / "metrics.jsonl")
    if s.has_checkpoint and scores:
        s.measured = measured_score(scores, ckpt, s.run_id)
    return s


def last_score(metrics: Path) -> float | None:
    """The last ``score_fd`` in a metrics file, read from its end (metrics files grow long)."""
    return last_score_and_epoch(metrics)[0]


def last_score_and_epoch(metrics: Path) -> tuple[float | None, int | None]:
    """The last ``score_fd`` in a metrics file and the epoch it was recorded at."""
    import json

    try:
        with open(metrics, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4_000_000))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None, None
    if '"score_fd"' not in tail:
        return None, None
    for line in reversed(tail.splitlines()):
        if '"score_fd"' in line:
            try:
                rec = json.loads(line)
                value = rec.get("score_fd")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(value, (int, float)):
                epoch = rec.get("epoch")
                return float(value), epoch if isinstance(epoch, int) else None
    return None, None


def record_score(ws: Workspace, record: dict) -> Path:
    """Append one `latentctl score` result (``checkpoint``, ``run_id``, ``epoch``, ``score_fd``,
    ``floor_fd``, ...) to the workspace's scores.jsonl; one short line, so an append is whole."""
    import json

    ws.root.mkdir(parents=True, exist_ok=True)
    path = ws.root / SCORES_NAME
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    return path


def read_scores(ws: Workspace) -> list[dict]:
    """Every record of the workspace's scores.jsonl, oldest first; torn or foreign lines skipped."""
    import json

    try:
        text = (ws.root / SCORES_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("score_fd"), (int, float)) and rec.get("checkpoint"):
            out.append(rec)
    return out


def measured_score(scores: list[dict], checkpoint: Path, run_id: str = "") -> dict | None:
    """The last record of ``scores`` for ``checkpoint``: the same file, or (a run folder that was
    moved or renamed) a run checkpoint with the same run id. best.safetensors is not the run's
    checkpoint and never matches."""
    where = str(Path(checkpoint).resolve())
    for rec in reversed(scores):
        if rec["checkpoint"] == where:
            return rec
        if run_id and rec.get("run_id") == run_id and Path(rec["checkpoint"]).name == CHECKPOINT_NAME:
            return rec
    return None


def names_by_run_id(ws: Workspace) -> dict[str, str]:
    """run id -> run folder name, for the runs in this workspace (to name what made a latent)."""
    return {r.run_id: r.name for r in list_runs(ws) if r.run_id}


def list_runs(ws: Workspace) -> list[RunSummary]:
    """The workspace's runs, oldest first, and last the current run when it lives elsewhere
    (``train --run-dir``, ``runs use ../other``), so the list always shows which run is current."""
    current = current_dir(ws)
    scores = read_scores(ws)
    runs = [summarize(p, current, scores) for p in run_dirs(ws)]
    if current is not None and not any(r.current for r in runs):
        outside = summarize(current, current, scores)
        outside.in_workspace = False
        runs.append(outside)
    return runs


def run_names(ws: Workspace, prefix: str = "") -> list[str]:
    """Run folder names starting with ``prefix`` (for shell completion); never raises."""
    try:
        return [p.name for p in run_dirs(ws) if p.name.startswith(prefix)]
    except OSError:
        return []
