"""`latentctl runs`: runs by name, number or prefix; list, use, show (with its loss curve); and
shell completion of run and store names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY, run

from latentctl.errors import UsageError
from latentctl.files.runlist import find_run, list_runs
from latentctl.files.workspace import Workspace


def fake_run(ws: Path, name: str, *, epoch: int = 3, score: float | None = None) -> Path:
    """A run folder with a real (tiny) generator checkpoint and a metrics file."""
    from latentctl.files import checkpoint
    from latentctl.models import build_generator

    cfg = TINY
    path = ws / "runs" / name
    path.mkdir(parents=True)
    checkpoint.save(
        path / "checkpoint.safetensors",
        generator=build_generator(cfg),
        model_config=cfg,
        run_id=name,
        state={"epoch": epoch, "global_step": epoch * 10},
    )
    with open(path / "metrics.jsonl", "w") as f:
        for g in range(1, epoch * 10 + 1):
            rec = {"epoch": (g - 1) // 10 + 1, "step": (g - 1) % 10 + 1, "global_step": g, "d_real": 0.5, "g": 1.0 / g}
            if score is not None and g == epoch * 10:
                rec["score_fd"] = score
            f.write(json.dumps(rec) + "\n")
    return path


@pytest.fixture
def three_runs(workspace):
    a = fake_run(workspace, "0001-faces-32px", epoch=2)
    b = fake_run(workspace, "0002-faces-ae-32px", epoch=5, score=12.5)
    (workspace / "runs" / "0003-cats-32px").mkdir()  # started, no checkpoint yet
    Workspace(workspace).set_current(b)
    return a, b


def test_find_run_by_name_number_prefix_or_path(three_runs, workspace):
    ws = Workspace(workspace)
    a, b = three_runs
    assert find_run(ws, "0001-faces-32px") == a
    assert find_run(ws, "2") == find_run(ws, "0002") == b
    assert find_run(ws, "0002-f") == b and find_run(ws, "cats").name == "0003-cats-32px"
    assert find_run(ws, str(a)) == a
    with pytest.raises(UsageError, match="'faces' matches 2 runs .*give more of the name"):
        find_run(ws, "faces")
    with pytest.raises(UsageError, match="no run named 'dogs'.*'latentctl runs' lists them"):
        find_run(ws, "dogs")
    assert find_run(ws, "dogs", missing_ok=True) is None


def test_runs_lists_model_epochs_score_and_the_current_run(three_runs):
    rows = {r["name"]: r for r in json.loads(run("runs", "--json").stdout)}
    assert list(rows) == ["0001-faces-32px", "0002-faces-ae-32px", "0003-cats-32px"]
    assert rows["0002-faces-ae-32px"]["current"] and not rows["0001-faces-32px"]["current"]
    assert rows["0002-faces-ae-32px"]["score_fd"] == 12.5 and rows["0002-faces-ae-32px"]["epochs_done"] == 5
    assert rows["0001-faces-32px"]["family"] == "gan" and rows["0001-faces-32px"]["image_size"] == 32
    assert not rows["0003-cats-32px"]["has_checkpoint"]
    table = run("runs").stdout
    line = next(ln for ln in table.splitlines() if "0002-faces-ae-32px" in ln)
    assert line.lstrip().startswith("*") and "12.50" in line and "gan/" in line and "32px" in line
    assert "no checkpoint yet" in table


def test_runs_use_makes_a_run_current_and_commands_take_names(three_runs, workspace):
    a, _ = three_runs
    assert run("runs", "use", "1").stdout.strip() == str(a.resolve())
    assert Workspace(workspace).current_run() == a.resolve()
    assert [r.current for r in list_runs(Workspace(workspace))] == [True, False, False]
    assert "no run named" in run("runs", "use", "dogs", code=2).output
    assert "without checkpoint.safetensors" in run("runs", "use", "cats", code=1).output  # a checkpoint error
    # any MODEL argument takes a run's name when no such file is here
    assert "0001-faces-32px" in run("info", "0001-faces").stdout


def test_runs_show_draws_the_loss_curve(three_runs):
    _, b = three_runs
    out = run("runs", "show", "2").stdout
    assert "0002-faces-ae-32px  (current)" in out and "score_fd     12.500" in out
    assert f"loss curve   {b / 'loss.png'}" in out and (b / "loss.png").stat().st_size > 1000
    assert json.loads(run("runs", "show", "--json").stdout)["name"] == b.name  # the current run


def test_completion_of_runs_and_store_names(three_runs, workspace):
    import numpy as np

    from latentctl.cli.common import complete_runs, complete_store_names
    from latentctl.space.store import LatentEntry, LatentStore

    class Ctx:
        params: dict = {}

    assert complete_runs(Ctx(), "000") == ["0001-faces-32px", "0002-faces-ae-32px", "0003-cats-32px"]
    assert complete_runs(Ctx(), "0002") == ["0002-faces-ae-32px"]
    assert complete_runs(Ctx(), "./") == []  # paths are the shell's own completion
    LatentStore(Workspace(workspace).store).save("glasses", LatentEntry(z=np.zeros((1, 8), np.float32)))
    assert complete_store_names(Ctx(), "gl") == ["glasses"]
    assert complete_store_names(Ctx(), "se") == ["seeds:"]
