"""The Python API is the CLI's own library: the same run, the same pictures, the same store."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY, TINY_BATCH
from conftest import run as cli
from PIL import Image

import latentctl
from latentctl.errors import UsageError
from latentctl.train.events import CheckpointEvent


def test_importing_latentctl_imports_no_torch():
    code = "import sys, latentctl\nassert 'torch' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_run_then_open_model_matches_the_cli(image_folder, workspace):
    events = []
    run = latentctl.train_run(
        image_folder,
        image_size=TINY.image_size,
        width=TINY.width,
        latent_dim=TINY.latent_dim,
        batch_size=TINY_BATCH,
        epochs=1,
        on_event=events.append,
    )
    assert (run / "checkpoint.safetensors").exists()
    assert any(isinstance(e, CheckpointEvent) for e in events)
    assert (workspace / "current").read_text().strip() == str(run.resolve())  # as `train` does

    model = latentctl.open_model()  # the current run
    images = model.sample([3, 5])
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(model.sample("3,5"), images)

    cli("sample", "--seeds", "5", "--out", workspace / "o")
    assert np.array_equal(np.asarray(Image.open(workspace / "o" / "seed0005.png")), images[1])

    model.store.save("picked", model.entry(model.latents("seeds:3,5").z, seeds=[3, 5]))
    shown = cli("latents", "show", "picked")
    assert "2" in shown.output


def test_train_run_refuses_what_the_cli_refuses(image_folder):
    with pytest.raises(UsageError, match="image size 33"):
        latentctl.train_run(image_folder, image_size=33)
