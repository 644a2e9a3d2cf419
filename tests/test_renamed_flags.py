"""Flags renamed so that one name means one thing across commands; the old spellings still work
for one release (hidden, with a note saying what to write instead), so no script breaks."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_MODEL, run


def test_train_family_and_its_old_spelling(image_folder, workspace):
    res = run("train", image_folder, *TINY_MODEL, "--epochs", "1", "--model", "ae", "--name", "old")
    assert "--model is now --family" in res.output
    info = json.loads(run("info", workspace / "runs" / "0001-old", "--json").stdout)
    assert info["model_config"]["family"] == "ae"
    res = run("train", image_folder, *TINY_MODEL, "--family", "vae", "--model", "ae", code=2)
    assert "--model is the old spelling of --family: give --family only" in res.output
    assert not (workspace / "runs" / "0002-images-vae-32px").exists()


def test_sample_pngs_and_captions(tiny_run, tmp_path):
    run("sample", tiny_run, "--seeds", "1,2", "--no-pngs", "--no-captions", "--out", tmp_path / "new")
    assert not list((tmp_path / "new").glob("seed*.png")) and (tmp_path / "new" / "grid.png").exists()
    res = run("sample", tiny_run, "--seeds", "1,2", "--no-images", "--no-labels", "--out", tmp_path / "old")
    assert "--images/--no-images is now --pngs/--no-pngs" in res.output
    assert "--labels/--no-labels is now --captions/--no-captions" in res.output
    assert not list((tmp_path / "old").glob("seed*.png"))
    # the captions are the only difference between the two grids: same pixels without them
    assert (tmp_path / "old" / "grid.png").read_bytes() == (tmp_path / "new" / "grid.png").read_bytes()
    res = run("sample", tiny_run, "--seeds", "1", "--no-pngs", "--images", "--out", tmp_path / "both", code=2)
    assert "give --pngs/--no-pngs only" in res.output


def test_interp_frames_and_the_old_steps(tiny_run, tmp_path):
    run("interp", "seeds:1", "seeds:2", "--frames", "4", "--model", tiny_run, "--out", tmp_path / "new")
    assert len(list((tmp_path / "new").glob("frame*.png"))) == 4
    res = run("interp", "seeds:1", "seeds:2", "--steps", "3", "--model", tiny_run, "--out", tmp_path / "old")
    assert "--steps is now --frames" in res.output
    assert len(list((tmp_path / "old").glob("frame*.png"))) == 3
    res = run("interp", "seeds:1", "seeds:2", "--frames", "3", "--steps", "5", "--model", tiny_run, code=2)
    assert "give --frames only" in res.output
    res = run("interp", "seeds:1", "seeds:2", "--frames", "100000", "--model", tiny_run, code=2)
    assert "--frames 100,000: at most 1,000 frames per segment" in res.output


def test_render_and_apply_take_no_pngs(tiny_run, tmp_path):
    run("sample", tiny_run, "--seeds", "0-3", "--save", "picked", "--no-pngs", "--out", tmp_path / "s")
    run("render", "picked", "--no-pngs", "--model", tiny_run, "--out", tmp_path / "r")
    assert not list((tmp_path / "r").glob("*seed*.png")) and (tmp_path / "r" / "grid.png").exists()
    res = run("render", "picked", "--no-pngs", "--no-grid", "--model", tiny_run, code=2)
    assert "--no-pngs and --no-grid together leave nothing to draw" in res.output
    run("attr-vector", "--pos", "picked@0,1", "--neg", "picked@2,3", "--save", "d", "--model", tiny_run)
    run("apply", "seeds:0", "--add", "d", "--no-images", "--no-labels", "--model", tiny_run, "--out", tmp_path / "a")
    assert not list((tmp_path / "a").glob("*scale*.png"))


@pytest.mark.parametrize("command", ["train", "sample", "interp", "apply", "render"])
def test_help_shows_only_the_new_spellings(command):
    out = run(command, "--help").output
    for old in ("--no-images", "--no-labels", "--steps" if command == "interp" else None):
        if old:
            assert old not in out
    if command == "train":
        assert "--family" in out and "--model " not in out
