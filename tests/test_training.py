import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, blob_dataset

from latentctl.config import TrainConfig
from latentctl.errors import DataError, NonFiniteLossError, TrainingInterrupted
from latentctl.files import checkpoint
from latentctl.seeds import latents_from_seeds
from latentctl.space.generate import generate
from latentctl.train import listeners
from latentctl.train.training import GANTrainer, StepEvent, train

CPU = torch.device("cpu")


def _cfg(**kw):
    base = dict(epochs=2, batch_size=32, checkpoint_every=1, snapshot_every=100, sample_every=100)
    return TrainConfig(**{**base, **kw})


def _image_stats_distance(G, data):
    """How far generated images are from the data: RMS difference of the mean images, and of the
    overall pixel spread (both in 0-255 units)."""
    gen = generate(G, latents_from_seeds(list(range(256)), TINY.latent_dim), device=CPU).astype(float)
    data = data.astype(float)
    return float(np.sqrt(np.mean((gen.mean(0) - data.mean(0)) ** 2))), abs(gen.std() - data.std())


@pytest.mark.slow
def test_training_moves_generated_images_toward_the_data(tmp_path):
    ds = blob_dataset(256)
    torch.manual_seed(0)
    untrained = GANTrainer(TINY, _cfg(), CPU).G
    before = _image_stats_distance(untrained, ds.images)
    path = train(tmp_path / "run", ds, TINY, _cfg(epochs=25, checkpoint_every=25), CPU)
    after = _image_stats_distance(checkpoint.load(path).generator, ds.images)
    # The untrained generator paints flat grey; after training the mean image and the spread
    # must both have closed most of the gap to the data's.
    assert after[0] < 0.5 * before[0], (before, after)
    assert after[1] < 0.5 * before[1], (before, after)


def test_run_folder_has_checkpoint_grids_and_metrics(tmp_path):
    events = []
    path = train(
        tmp_path / "run",
        blob_dataset(64),
        TINY,
        _cfg(sample_every=1),
        CPU,
        on_event=events.append,
        listeners=listeners.standard(),  # what runs.execute attaches: the grids come from there
    )
    assert path == tmp_path / "run" / "checkpoint.safetensors"
    assert sorted(p.name for p in (tmp_path / "run" / "grids").iterdir()) == ["epoch-0001.png", "epoch-0002.png"]
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["global_step"] for x in lines] == [1, 2, 3, 4]
    assert {"d_real", "d_fake", "g", "images_per_sec", "epoch"} <= set(lines[0])
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert len(steps) == 4 and steps[-1].total_steps == 4
    info = checkpoint.read_header(path)
    assert info.state["epoch"] == 2 and info.state["finished"]
    assert info.state["data"]["fingerprint"] == "blobs64-32px-seed0"


def _weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_interrupted_then_resumed_run_ends_with_identical_weights(tmp_path):
    ds, cfg = blob_dataset(128), _cfg(epochs=3)
    reference = checkpoint.load(train(tmp_path / "ref", ds, TINY, cfg, CPU), training=True)

    def interrupt_at_step_6(event):
        if isinstance(event, StepEvent) and event.global_step == 6:  # mid-epoch 2
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as stop:
        train(tmp_path / "run", ds, TINY, cfg, CPU, on_event=interrupt_at_step_6)
    saved = checkpoint.read_header(Path(stop.value.checkpoint))
    assert (saved.state["epoch"], saved.state["step_in_epoch"], saved.state["global_step"]) == (1, 2, 6)

    resumed = checkpoint.load(
        train(tmp_path / "run", ds, TINY, cfg, CPU, resume=checkpoint.load(stop.value.checkpoint, training=True)),
        training=True,
    )
    for name in ("generator", "discriminator"):
        ref, got = _weights(getattr(reference, name)), _weights(getattr(resumed, name))
        for k in ref:
            assert torch.equal(ref[k], got[k]), f"{name}.{k} differs after resume"
    # Adam's moments too, so training after this point also continues identically
    for k, v in reference.tensors.items():
        if k.startswith("opt."):
            assert torch.equal(v, resumed.tensors[k]), k
    steps = [json.loads(x)["global_step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))  # no step lost or logged twice


def test_non_finite_loss_stops_without_checkpointing_it(tmp_path, monkeypatch):
    ds, cfg = blob_dataset(64), _cfg(epochs=3)
    original = GANTrainer.step
    calls = {"n": 0}

    def poisoned(self, real):
        calls["n"] += 1
        losses = original(self, real)
        return losses * float("nan") if calls["n"] == 4 else losses  # epoch 2, step 2

    monkeypatch.setattr(GANTrainer, "step", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 2 \(d_real nan.*last good checkpoint"):
        train(tmp_path / "run", ds, TINY, cfg, CPU)
    state = checkpoint.read_header(tmp_path / "run" / "checkpoint.safetensors").state
    assert state["global_step"] == 2 and not state["finished"]  # the epoch-1 checkpoint, untouched


def test_fewer_images_than_a_batch_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="fewer than one batch"):
        train(tmp_path / "run", blob_dataset(16), TINY, _cfg(batch_size=64), CPU)


def test_same_seed_same_run(tmp_path):
    ds, cfg = blob_dataset(64), _cfg(epochs=1)
    a = checkpoint.read_header(train(tmp_path / "a", ds, TINY, cfg, CPU)).model_id
    b = checkpoint.read_header(train(tmp_path / "b", ds, TINY, cfg, CPU)).model_id
    c = checkpoint.read_header(train(tmp_path / "c", ds, TINY, _cfg(epochs=1, seed=1), CPU)).model_id
    assert a == b != c
