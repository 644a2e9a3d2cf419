"""The CLI as a user meets it: commands, outputs, errors and exit codes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL, run
from PIL import Image

from latentctl import __version__
from latentctl.files.workspace import Workspace


@pytest.fixture
def trained(image_folder, workspace):
    """A run of the test's own, in its workspace: for tests that resume it, change its data or
    need `train` to have made it current. Tests that only read a run use tiny_run (conftest)."""
    run("train", image_folder, *TINY_MODEL, "--epochs", "2")
    return workspace / "runs" / "0001-images-32px"


@pytest.fixture
def current_tiny_run(tiny_run, workspace):
    """The shared tiny run as the current run of the test's workspace, for a bare `sample`."""
    Workspace(workspace).set_current(tiny_run)
    return tiny_run


def test_version():
    assert run("--version").output.strip() == f"latentctl {__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["sample", "--help"], ["info", "--help"], ["train", "--help"]])
def test_help_imports_no_torch(argv):
    code = (
        "import sys\nfrom latentctl.cli.app import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_train_then_sample_with_no_arguments(trained, workspace):
    assert (trained / "checkpoint.safetensors").exists()
    assert (workspace / "current").read_text().strip() == str(trained.resolve())
    res = run("sample", "-n", "9")
    out = Path(res.stdout.strip().splitlines()[-1])
    assert out.name == "grid.png" and out.exists()
    folder = out.parent
    assert sorted(p.name for p in folder.glob("seed*.png")) == [f"seed{i:04d}.png" for i in range(9)]
    with np.load(folder / "latents.npz", allow_pickle=False) as z:
        assert z["z"].shape == (9, 8) and z["z"].dtype == np.float32
        assert z["seeds"].tolist() == list(range(9)) and z["seeds"].dtype == np.int64


def test_a_seed_gives_the_same_image_whatever_else_is_sampled(current_tiny_run, tmp_path):
    run("sample", "--seeds", "3-5", "--out", tmp_path / "a")
    run("sample", "--seeds", "40,4", "--out", tmp_path / "b", "--batch-size", "1")
    a = np.asarray(Image.open(tmp_path / "a" / "seed0004.png"))
    b = np.asarray(Image.open(tmp_path / "b" / "seed0004.png"))
    np.testing.assert_array_equal(a, b)


def test_truncation_zero_gives_one_image_for_every_seed(current_tiny_run, tmp_path):
    run("sample", "--seeds", "1,2", "--psi", "0", "--out", tmp_path)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "seed0001.png")), np.asarray(Image.open(tmp_path / "seed0002.png"))
    )


def test_sample_never_overwrites_without_force(current_tiny_run, tmp_path):
    run("sample", "-n", "2", "--out", tmp_path)
    before = (tmp_path / "seed0000.png").read_bytes()
    res = run("sample", "-n", "2", "--out", tmp_path, code=2)
    assert "already exist" in res.output and "--force" in res.output
    assert (tmp_path / "seed0000.png").read_bytes() == before
    run("sample", "-n", "2", "--out", tmp_path, "--force")


def test_sample_grid_can_go_without_labels_or_images(current_tiny_run, tmp_path):
    run("sample", "-n", "4", "--no-pngs", "--no-captions", "--out", tmp_path / "o")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["grid.png", "latents.npz"]


def test_info_reads_the_header(tiny_run):
    res = run("info", tiny_run)
    assert "32px, 3 channels, latent 8, width 16" in res.output and "epoch 2" in res.output
    meta = json.loads(run("info", tiny_run, "--json").stdout)
    assert meta["model_config"]["latent_dim"] == 8 and "rng" not in meta["training_state"]


def test_export_writes_a_small_generator_checkpoint_that_samples(tiny_run, tmp_path):
    out = tmp_path / "g.safetensors"
    run("export", tiny_run, "--out", out)
    assert out.stat().st_size < (tiny_run / "checkpoint.safetensors").stat().st_size / 2
    run("sample", out, "--seeds", "4", "--out", tmp_path / "s")
    a = np.asarray(Image.open(tmp_path / "s" / "seed0004.png"))
    run("sample", tiny_run, "--seeds", "4", "--out", tmp_path / "t")
    np.testing.assert_array_equal(a, np.asarray(Image.open(tmp_path / "t" / "seed0004.png")))
    run("export", tiny_run, "--out", out, code=2)


def test_export_header_holds_no_absolute_path(tiny_run, tmp_path, tiny_images):
    out = tmp_path / "g.safetensors"
    run("export", tiny_run, "--out", out)
    size = int.from_bytes(out.read_bytes()[:8], "little")
    header = out.read_bytes()[8 : 8 + size]
    # Nothing of where the tests ran (the data folder, the workspace, the run) is in the shared file...
    for secret in {
        str(tmp_path),
        str(tiny_images),
        str(tiny_run),
        str(Path(tmp_path).resolve()),
        str(tiny_images.resolve()),
    }:
        assert secret.encode() not in header, secret
        assert json.dumps(secret)[1:-1].encode() not in header  # nor JSON-escaped
    assert b"/tmp" not in header and str(Path.home()).encode() not in header
    # ...but the data folder's name and fingerprint still say what it was trained on.
    meta = json.loads(run("info", out, "--json").stdout)
    assert meta["training_state"]["data"]["root"] == tiny_images.name
    assert meta["training_state"]["data"]["fingerprint"]


def test_sample_grid_is_readable_and_json_lists_what_was_written(tiny_run, tmp_path):
    res = run("sample", tiny_run, "--seeds", "3,5,8", "--out", tmp_path / "o", "--json")
    written = json.loads(res.stdout)
    assert written["seeds"] == [3, 5, 8]
    assert written["images"] == [str(tmp_path / "o" / f"seed{s:04d}.png") for s in (3, 5, 8)]
    assert written["latents"] == str(tmp_path / "o" / "latents.npz") and written["grid"] == str(
        tmp_path / "o" / "grid.png"
    )
    assert all(Path(p).exists() for p in written["images"])
    # 32 px samples: the grid's tiles are enlarged 4x to 128 px, and the per-sample files are not
    grid = Image.open(written["grid"])
    assert grid.width >= 2 * 128 and Image.open(written["images"][0]).size == (32, 32)
    tile = np.asarray(grid.convert("RGB"))[2 : 2 + 128, 2 : 2 + 128]
    seed3 = np.asarray(Image.open(written["images"][0]).convert("RGB"))
    np.testing.assert_array_equal(tile, seed3.repeat(4, 0).repeat(4, 1))  # crisp, nothing over it
    small = run("sample", tiny_run, "--seeds", "3,5,8", "--out", tmp_path / "p", "--tile-size", "0", "--no-captions")
    assert Image.open(small.stdout.strip()).width < 3 * 40
    assert "--tile-size 5000" in run("sample", tiny_run, "-n", "1", "--tile-size", "5000", code=2).output


def test_latents_of_another_model_are_refused_unless_allowed(tiny_run):
    from latentctl.errors import UsageError
    from latentctl.space.session import open_model
    from latentctl.space.store import LatentEntry, LatentStore

    s = open_model(tiny_run, "cpu")
    LatentStore(s.ws.store).save(
        "foreign", LatentEntry(z=np.ones((1, 8), np.float32), model_id="0123456789abcdef", run_id="r0")
    )
    with pytest.raises(UsageError, match="different model .*pass --allow-other-model to use them anyway"):
        s.latents("foreign")
    warned = []
    allowed = open_model(tiny_run, "cpu", allow_other_model=True, warn=warned.append)
    assert allowed.latents("foreign").count == 1 and "different model" in warned[0]
    # the same run's other checkpoints (training went on) only warn
    LatentStore(s.ws.store).save(
        "older", LatentEntry(z=np.ones((1, 8), np.float32), model_id="0123456789abcdef", run_id=s.info.run_id)
    )
    assert s.latents("older").count == 1


def test_resume_continues_to_more_epochs(trained):
    run("train", "--resume", trained, "--epochs", "3")
    res = run("info", trained)
    assert "epoch 3" in res.output


def test_resume_with_different_settings_lists_every_differing_key(tiny_run):
    res = run("train", "--resume", tiny_run, "--lr", "0.1", "--width", "32", code=1)
    assert "lr: 0.0002 -> 0.1" in res.output and "width: 16 -> 32" in res.output


def test_resume_refuses_a_changed_image_folder(trained, image_folder):
    Image.new("RGB", (32, 32), "red").save(image_folder / "extra.png")
    res = run("train", "--resume", trained, "--epochs", "3", code=1)
    assert "changed since the run started" in res.output


def test_bad_images_are_skipped_listed_and_strict_fails(image_folder, workspace):
    (image_folder / "zero.jpg").write_bytes(b"")
    (image_folder / "junk.png").write_bytes(b"not a png")
    res = run("train", image_folder, *TINY_MODEL, "--epochs", "1")
    assert "skipped 2 files" in res.output
    listing = (workspace / "runs" / "0001-images-32px" / "skipped.txt").read_text()
    assert "zero.jpg\tempty" in listing and "junk.png\tunreadable" in listing
    res = run("train", image_folder, *TINY_MODEL, "--epochs", "1", "--strict", code=1)
    assert "--strict" in res.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "nowhere/"], 1, "is not a folder"),
        (["train"], 2, "which folder"),
        (["train", ".", "--image-size", "100"], 2, "image size 100 is not supported"),
        (["sample", "-n", "3"], 2, "no current run"),
        (["sample", "--seeds", "9-1"], 2, "--seeds"),
        (["info", "missing.safetensors"], 1, "no checkpoint"),
        (["sample", "model.pt", "-n", "1"], 1, "refusing to open a .pt file"),
    ],
)
def test_errors_are_one_line_with_exit_codes(tmp_path, args, code, message):
    if "model.pt" in args:
        (tmp_path / "model.pt").write_bytes(b"\x80\x04junk")
        args = [str(tmp_path / "model.pt") if a == "model.pt" else a for a in args]
    res = run(*args, code=code)
    assert message in res.output
    assert "Traceback" not in res.output


def test_dry_run_prints_the_resolved_config(image_folder):
    res = run("train", image_folder, "--dry-run", "--epochs", "7")
    cfg = json.loads(res.stdout)
    assert cfg["train"]["epochs"] == 7 and cfg["model"]["image_size"] == 128 and cfg["train"]["batch_size"] == 128


def test_ctrl_c_saves_a_checkpoint_and_exits_130(image_folder, workspace):
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentctl", "train", str(image_folder), *TINY_MODEL, "--epochs", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    metrics = workspace / "runs" / "0001-images-32px" / "metrics.jsonl"
    deadline = time.time() + 60
    while not (metrics.exists() and metrics.stat().st_size > 0):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume with: latentctl train --resume" in err
    assert err.count("stopped at epoch") == 1 and "Error:" not in err  # said once, not as an error
    res = run("info", workspace / "runs" / "0001-images-32px")
    assert "progress" in res.output
