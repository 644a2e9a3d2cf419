"""The first hour, without waiting or squinting: what a new user reads at 80 columns, the pictures
they are told to look at (the SeFa contact sheet, loss.png), `runs show` after `score`, and the
small stumbles (a current run outside the workspace, the explorer's favicon, menu order)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, blob_images, run, write_images
from PIL import Image
from rich.console import Console

from latentctl.files.workspace import Workspace
from latentctl.pictures.grid import TEXT_COLOR

ROOT = Path(__file__).resolve().parents[1]
LONG = "0012-" + "a" * 40  # the longest name train gives: a number and a 40-character slug


def tiny_checkpoint(folder: Path, *, epoch: int = 3, data_root: Path | None = None) -> Path:
    """A run folder holding an untrained tiny generator's checkpoint (no training: fast)."""
    from latentctl.files import checkpoint
    from latentctl.models import build_generator

    folder.mkdir(parents=True)
    state = {"epoch": epoch, "global_step": epoch * 10}
    if data_root is not None:
        state["data"] = {"root": str(data_root)}
    checkpoint.save(
        folder / "checkpoint.safetensors",
        generator=build_generator(TINY),
        model_config=TINY,
        run_id=folder.name,
        state=state,
    )
    return folder


def at_80_columns(renderable) -> list[str]:
    buf = io.StringIO()
    Console(file=buf, width=80, force_terminal=False).print(renderable)
    return buf.getvalue().splitlines()


# ---- runs at 80 columns, and a current run that lives elsewhere -----------------------------------


def test_runs_table_keeps_long_run_names_and_scores_whole_at_80_columns(workspace):
    from latentctl.cli.runs_cmd import runs_table
    from latentctl.files.runlist import list_runs

    # Run folders without a checkpoint yet (as while the first epoch trains): no torch needed.
    (workspace / "runs" / LONG).mkdir(parents=True)
    (workspace / "runs" / "0013-faces-32px").mkdir(parents=True)
    with open(workspace / "runs" / LONG / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"epoch": 3, "global_step": 30, "score_fd": 123.456}) + "\n")
    lines = at_80_columns(runs_table(list_runs(Workspace(workspace))))
    assert all(len(ln) <= 80 for ln in lines)
    row = next(ln for ln in lines if LONG in ln)  # the whole name on one line: it can be copied
    assert "123.46" in row
    assert "checkpoint" in "".join(lines)  # the model column wraps instead, never the name
    assert any("0013-faces-32px" in ln for ln in lines)
    assert "…" not in "".join(lines)


def test_latents_list_keeps_names_runs_and_dates_whole_at_80_columns(workspace):
    from latentctl.cli.latent_cmds import latents_table
    from latentctl.space.store import LatentEntry, LatentStore

    store = LatentStore(workspace / "latents")
    name = "smiling-women-with-glasses-picked"
    z = np.zeros((3, 100), np.float32)
    store.save(name, LatentEntry(z=z, kind="points", model_id="0123456789abcdef", run_id="r1", meta={}))
    lines = at_80_columns(latents_table(store.list(), {"r1": LONG}))
    assert all(len(ln) <= 80 for ln in lines)
    row = next(ln for ln in lines if name in ln)  # the name whole, on one line with its date
    created = store.list()[0].created[:16].replace("T", " ")
    assert created in row and "3×100" in row
    # the run folds within its column, but nothing of it is lost
    at, first = row.index("0012-"), row[row.index("0012-") :].split(" ")[0]
    below = lines[lines.index(row) :]
    assert LONG == "".join(ln[at : at + len(first)].strip() for ln in below)
    assert "…" not in "".join(lines)
    other = at_80_columns(latents_table(store.list(), {}))  # made by a model that is no run here
    assert "model" in "".join(other) and "01234567" in "".join(other)


def test_a_current_run_outside_the_workspace_is_listed_and_marked(workspace, tmp_path):
    (workspace / "runs" / "0001-faces-32px").mkdir(parents=True)
    elsewhere = tmp_path / "scratch" / "my-run"  # train --run-dir scratch/my-run, still in its first epoch
    elsewhere.mkdir(parents=True)
    Workspace(workspace).set_current(elsewhere)
    res = run("runs")
    marked = [ln for ln in res.stdout.splitlines() if ln.lstrip().startswith("*")]
    assert len(marked) == 1 and "my-run" in marked[0]
    assert str(elsewhere) in res.output  # where it is, since its name alone finds nothing
    rows = json.loads(run("runs", "--json").stdout)
    assert [r["current"] for r in rows] == [False, True] and rows[1]["in_workspace"] is False


# ---- score: its floor line, and runs show reading what it measured --------------------------------


def test_runs_show_reports_the_score_that_latentctl_score_measured(workspace, tmp_path):
    images = write_images(tmp_path / "images", blob_images(8))  # the fewest score takes: two halves of 4
    folder = tiny_checkpoint(workspace / "runs" / "0001-images-32px", data_root=images)
    before = run("runs", "show", "1").stdout
    assert "score_fd     - ('latentctl score 0001-images-32px' measures it)" in before

    res = run("score", "1", "-n", "4")
    score_line, floor_line = res.stdout.strip().splitlines()
    assert "4 generated vs 4 real, the reference half" in score_line
    assert "4 other real images vs that reference half" in floor_line and "the same" not in floor_line
    fd = float(score_line.split()[2])

    after = run("runs", "show", "1").stdout
    line = next(ln for ln in after.splitlines() if ln.startswith("score_fd"))
    assert f"{fd:.3f}" in line and "latentctl score at epoch 3" in line and "builtin features" in line
    assert "floor" in line
    table = next(ln for ln in run("runs").stdout.splitlines() if "0001-images-32px" in ln)
    assert f"{fd:.2f}" in table
    assert json.loads(run("runs", "show", "1", "--json").stdout)["measured"]["n_generated"] == 4
    # scoring writes into the workspace's scores.jsonl, never into the run (runs show draws loss.png)
    assert {p.name for p in folder.iterdir()} <= {"checkpoint.safetensors", "loss.png"}


# ---- the SeFa contact sheet -----------------------------------------------------------------------


def test_sefa_sheet_names_every_row_and_column_and_stays_narrow(workspace, tmp_path):
    folder = tiny_checkpoint(workspace / "runs" / "0001-faces-32px")
    k, seeds = 4, [0, 1, 2]
    res = run("directions", folder, "--method", "sefa", "-k", k, "--seeds", "0-2", "--out", tmp_path / "s")
    sheet = np.asarray(Image.open(tmp_path / "s" / "sheet.png").convert("RGB")).astype(int)
    height, width, _ = sheet.shape
    assert width <= 1300  # 7 strengths across (was 21 tiles, 2,732 px)
    assert "a row per entry and seed" in res.output

    from latentctl.cli.directions_cmd import sheet_row_labels

    labels = sheet_row_labels([f"sefa-{i}" for i in range(1, k + 1)], seeds)
    assert labels[:3] == ["sefa-1, seed 0", "sefa-1, seed 1", "sefa-1, seed 2"] and len(labels) == k * len(seeds)
    for name in {lab.split(",")[0] for lab in labels}:
        assert (workspace / "latents" / f"{name}.npz").exists()  # rows are named after store entries

    # Where the text is: pixels in the grid's text colour. Every row band has its name at the left
    # and every column its strength above it.
    text = np.all(np.abs(sheet - np.array(TEXT_COLOR)) <= 40, axis=-1)
    tile = 128
    rows = k * len(seeds)
    cell = tile + 2  # tiles and their padding, below the caption and the column labels
    top = height - 2 - rows * cell
    left = width - 7 * cell - 2
    assert left > 40  # a margin for the row names
    for r in range(rows):
        band = text[top + r * cell : top + (r + 1) * cell, :left]
        assert band.sum() > 20, f"row {r} has no name"
    header = text[top - 24 : top, left:]
    for c in range(7):
        x = 2 + c * (tile + 2)
        assert header[:, x : x + tile].sum() > 5, f"column {c} has no strength"


# ---- loss.png -----------------------------------------------------------------------------------


def test_loss_png_keeps_the_thread_count_and_score_extras_off_the_loss_axis(tmp_path):
    from latentctl.pictures.plot import loss_curve

    def write(folder: Path, extras: bool) -> Path:
        folder.mkdir(parents=True)
        with open(folder / "metrics.jsonl", "w") as f:
            for g in range(1, 61):
                rec = {"epoch": (g - 1) // 20 + 1, "step": (g - 1) % 20 + 1, "global_step": g, "images_per_sec": 50.0}
                rec.update({"d_real": 0.6 + 0.1 * np.sin(g), "g": 1.5 / (1 + g / 20)})
                if extras:
                    rec["threads"] = 16  # what training records on a CPU
                f.write(json.dumps(rec) + "\n")
                if g % 20 == 0:
                    score = {"epoch": g // 20, "global_step": g, "score_fd": 40.0 / g}
                    if extras:
                        score.update(score_floor=2.5, score_recall=0.4)
                    f.write(json.dumps(score) + "\n")
        return loss_curve(folder / "metrics.jsonl", folder / "loss.png")

    plain = np.asarray(Image.open(write(tmp_path / "a" / "run", False)))
    extra = np.asarray(Image.open(write(tmp_path / "b" / "run", True)))
    assert np.array_equal(plain, extra)  # a thread count of 16 would have squashed losses near 1


# ---- the explorer ---------------------------------------------------------------------------------


def test_explorer_answers_favicon_without_the_token_and_nothing_else():
    pytest.importorskip("starlette")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from latentctl.explore.server import create_app

    class NoModel:  # the favicon never reaches the explorer: no model is loaded for this test
        def __getattr__(self, name):
            return lambda *a: {}

    with TestClient(create_app(NoModel(), "secret-token")) as bare:
        r = bare.get("/favicon.ico")
        assert r.status_code == 204 and r.content == b""  # no console error in the browser
        assert bare.get("/").status_code == 403 and bare.get("/favicon.ico/x").status_code == 403
        assert bare.post("/favicon.ico").status_code == 403
    html = (ROOT / "latentctl" / "explore" / "static" / "index.html").read_text()
    assert '<link rel="icon" href="data:,">' in html  # the page itself asks for no icon


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_explorer_menus_sort_names_as_people_count():
    js = (ROOT / "latentctl" / "explore" / "static" / "app.js").read_text()
    start = js.index("const naturally")
    end = js.index("\n", js.index("function byName"))
    names = ["sefa-10", "sefa-2", "smile", "sefa-1", "Glasses", "sefa-3"]
    script = js[start:end] + f"\nconsole.log(JSON.stringify({json.dumps(names)}.sort(byName)));"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True, timeout=30).stdout
    assert json.loads(out) == ["Glasses", "sefa-1", "sefa-2", "sefa-3", "sefa-10", "smile"]
    assert "res.entries.sort((a, b) => byName(a.name, b.name))" in js  # the menus are built from these


def test_explorer_report_wraps_between_words_and_the_orthogonal_list_is_tall():
    css = (ROOT / "latentctl" / "explore" / "static" / "app.css").read_text()
    html = (ROOT / "latentctl" / "explore" / "static" / "index.html").read_text()
    assert "break-all" not in css and "overflow-wrap: anywhere" in css
    assert '<select id="ortho" multiple size="5"' in html and "#ortho {" in css and "resize: vertical" in css
