"""Data-parallel training: 2 CPU processes over gloo, as `latentctl train --devices 2` runs them."""

import json
from pathlib import Path

import pytest
import torch

from latentctl import checkpoint
from latentctl.config import ModelConfig, TrainConfig
from latentctl.data import ImageDataset
from latentctl.distributed import train_parallel
from latentctl.errors import DataError
from latentctl.models import build_models
from latentctl.training import train

from conftest import blob_images

# Dropout is off for the comparison: each rank draws masks for its own share of the batch, so
# with dropout the two runs are equally valid but not comparable step by step.
MODEL = ModelConfig(image_size=32, width=8, latent_dim=8, dropout=0.0)
CFG = TrainConfig(epochs=2, batch_size=16, checkpoint_every=1, sample_every=1, snapshot_every=100)
TOLERANCE = 1e-6  # max |difference| of any weight after 8 steps (measured: 4e-8, float sums in another order)


@pytest.fixture(scope="module")
def dataset():
    return ImageDataset(Path("/synthetic"), blob_images(64), [f"{i}.png" for i in range(64)], "fp-ddp")


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, dataset):
    single = checkpoint.load(train(tmp_path / "one", dataset, MODEL, CFG, torch.device("cpu")), training=True)
    path = train_parallel(2, torch.device("cpu"), run_dir=tmp_path / "two", dataset=dataset,
                          model_config=MODEL, train_config=CFG)
    double = checkpoint.load(path, training=True)
    worst = 0.0
    for name in ("generator", "discriminator"):
        a, b = getattr(single, name).state_dict(), getattr(double, name).state_dict()
        for k in a:
            worst = max(worst, float((a[k] - b[k]).abs().max()))
    assert worst < TOLERANCE, f"weights differ by up to {worst}"
    torch.manual_seed(CFG.seed)
    fresh = build_models(MODEL)[0].state_dict()
    moved = max(float((fresh[k] - v).abs().max()) for k, v in double.generator.state_dict().items())
    assert moved > 100 * TOLERANCE  # training changed the weights, so the match means something

    # one writer: one checkpoint, metrics logged once (not once per rank), one grid per epoch
    run = tmp_path / "two"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.safetensors", "grids", "metrics.jsonl"]
    steps = [json.loads(x)["global_step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    assert sorted(p.name for p in (run / "grids").iterdir()) == ["epoch-0001.png", "epoch-0002.png"]


def test_resume_works_after_parallel_training(tmp_path, dataset):
    path = train_parallel(2, torch.device("cpu"), run_dir=tmp_path, dataset=dataset, model_config=MODEL, train_config=CFG)
    more = TrainConfig(**{**CFG.__dict__, "epochs": 3})
    path = train_parallel(2, torch.device("cpu"), run_dir=tmp_path, dataset=dataset, model_config=MODEL,
                          train_config=more, resume=checkpoint.load(path, training=True))
    assert checkpoint.read_header(path).state["global_step"] == 12


def test_worker_errors_come_back_as_library_errors(tmp_path, dataset):
    odd = TrainConfig(epochs=1, batch_size=6)  # 3 real images cannot be split over 2 workers
    with pytest.raises(DataError, match="cannot be split over 2 workers"):
        train_parallel(2, torch.device("cpu"), run_dir=tmp_path, dataset=dataset, model_config=MODEL, train_config=odd)
