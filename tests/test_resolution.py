"""One answer to "what run is this": `latentctl train`, the Python API and the demo resolve the same
request to the same configs, and a wrong name is one UsageError line, never a traceback."""

import json

import numpy as np
import pytest
from conftest import run, write_images
from PIL import Image

import latentctl
from latentctl.errors import UsageError

OPTIONS = {"image_size": 32, "arch": "lite", "width": 16, "max_images": 20, "batch_size": 8, "epochs": 2}
FLAGS = ["-s", "32", "--arch", "lite", "--width", "16", "--max-images", "20", "--batch-size", "8", "--epochs", "2"]


def _grey_folder(path):
    rng = np.random.default_rng(0)
    return write_images(path, np.repeat(rng.integers(0, 255, (20, 32, 32, 1), dtype=np.uint8), 3, axis=3))


def _rgba_folder(path):
    path.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (32, 32, 4), dtype=np.uint8), "RGBA").save(path / f"{i}.png")
    return path


def _cli_plan(folder, *extra):
    shown = json.loads(run("train", folder, *FLAGS, *extra, "--dry-run").stdout)
    return shown["model"], shown["train"]


def _api_plan(folder, **extra):
    from latentctl.config import to_dict

    plan = latentctl.plan_run(folder, **OPTIONS, **extra)
    return json.loads(json.dumps(to_dict(plan.model))), json.loads(json.dumps(to_dict(plan.train)))


@pytest.mark.parametrize(
    "kind, flags, options, channels",
    [
        ("grey", [], {}, 1),
        ("rgba", [], {}, 3),  # transparency is never guessed: auto is RGB
        ("rgba", ["--channels", "4"], {"channels": 4}, 4),
    ],
)
def test_cli_and_api_resolve_the_same_run(tmp_path, kind, flags, options, channels):
    folder = _grey_folder(tmp_path / "d") if kind == "grey" else _rgba_folder(tmp_path / "d")
    cli_model, cli_train = _cli_plan(folder, *flags)
    api_model, api_train = _api_plan(folder, **options)
    assert cli_model == api_model and cli_train == api_train
    assert api_model["channels"] == channels
    assert api_train["channels_last"] is True  # the CPU's default, in both


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_precision_follows_the_cpu_in_both(tmp_path, monkeypatch, native_bf16):
    monkeypatch.setattr("latentctl.device.cpu_has_native_bf16", lambda: native_bf16)
    folder = _grey_folder(tmp_path / "d")
    (_, cli_train), (_, api_train) = _cli_plan(folder), _api_plan(folder)
    assert cli_train["precision"] == api_train["precision"] == ("bf16" if native_bf16 else "fp32")


def test_kimg_becomes_the_same_step_budget(tmp_path):
    folder = _grey_folder(tmp_path / "d")
    (_, cli_train), (_, api_train) = _cli_plan(folder, "--kimg", "0.1"), _api_plan(folder, kimg=0.1)
    assert cli_train["max_steps"] == api_train["max_steps"] == 25  # 100 images / 4 real per step


def test_names_are_checked_before_use(tmp_path):
    folder = _grey_folder(tmp_path / "d")
    bad = run("train", folder, "--arch", "foo", code=2)
    assert "--arch 'foo' is not one of: seed, lite" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    model, _ = _cli_plan(folder, "--arch", "Lite")  # unambiguous, so accepted whatever its case
    assert model["arch"] == "lite"
    with pytest.raises(UsageError, match="--arch 'foo' is not one of: seed, lite"):
        latentctl.train_run(folder, arch="foo")
    with pytest.raises(UsageError, match="unknown option 'imagesize' \\(did you mean image_size\\?\\)"):
        latentctl.train_run(folder, imagesize=32)
    with pytest.raises(UsageError, match="--family 'gun'"):
        latentctl.plan_run(folder, family="gun")
