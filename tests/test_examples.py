"""The scripts in examples/ run end to end (at a tiny size), so they keep working as the tool changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _env(workspace: Path) -> dict[str, str]:
    return {**os.environ, "LATENTCTL_HOME": str(workspace), "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
def test_python_api_example_builds_a_direction_that_moves_the_attribute(workspace, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            EXAMPLES / "python_api.py",
            "--images",
            "128",
            "--epochs",
            "2",
            "--width",
            "16",
            "--samples",
            "40",
            "--out",
            tmp_path / "out",
        ],
        env=_env(workspace),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert any(line.startswith("epoch 2 of 2") for line in lines)
    assert any("held-out accuracy" in line for line in lines)
    sheet = Image.open(lines[-1])
    assert sheet.size == (3 * 32, 8 * 32)  # 3 strengths wide, 8 seeds tall
    assert (workspace / "runs" / "0001-example").is_dir()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.slow
def test_shell_example_walks_the_seed_journey_and_reuses_its_run(workspace, image_folder):
    env = {
        **_env(workspace),
        "LATENTCTL": f"{sys.executable} -m latentctl",
        "PYTHON": sys.executable,
        "TRAIN_ARGS": "-s 32 --width 16 --latent-dim 8 --batch-size 16 --epochs 1",
        "POS": "1,2,3",
        "NEG": "4,5,6",
    }
    first = subprocess.run(
        ["bash", EXAMPLES / "seed_journey.sh", image_folder], env=env, capture_output=True, text=True, timeout=600
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "look at" in first.stdout and (workspace / "runs" / "0001-journey" / "checkpoint.safetensors").exists()
    assert (workspace / "latents" / "picked-dir.npz").is_file()  # the direction, in the workspace's store
    assert any(workspace.rglob("interp.gif"))
    # the script trains only when no run is named "journey": a second call reuses this one
    run("runs", "use", "journey")
