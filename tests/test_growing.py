"""Growing the resolution during training (--grow-steps): the schedule, pictures that change
smoothly as a stage fades in, the cheap early steps, and the refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_MODEL, blob_dataset, run, tiny

from latentctl.config import ModelConfig, TrainConfig, to_dict
from latentctl.errors import UsageError
from latentctl.files import checkpoint
from latentctl.models import build_models
from latentctl.train import growing
from latentctl.train.recipes import train_defaults
from latentctl.train.trainers import make_trainer
from latentctl.train.training import train

CPU = torch.device("cpu")
LITE = tiny(arch="lite", dropout=0.0)
EPS = 1e-6  # a fade this close to its end should draw what the stage after it draws


def grown_cfg(**kw) -> TrainConfig:
    base = dict(train_defaults("lite", LITE), epochs=3, batch_size=16, checkpoint_every=1, grow_steps=2)
    return TrainConfig(**{**base, **kw})


def test_the_schedule_starts_at_16_px_and_fades_in_each_doubling_then_trains_it_alone():
    levels = [growing.level_at(s, 10, stages=2) for s in (0, 9, 10, 15, 19, 20, 500)]
    assert levels == [1.0, 1.0, 1.0, 1.5, 1.9, None, None]
    assert [growing.level_at(s, 10, stages=4) for s in (20, 35, 40, 55, 60)] == [2.0, 2.5, 3.0, 3.5, None]
    assert growing.full_size_from(10, 2) == 20 and growing.full_size_from(10, 4) == 60
    assert [growing.resolution(x) for x in (1.0, 1.5, 2.0, 2.5)] == [16, 32, 32, 64]
    assert growing.level_at(123, 0, stages=2) is None  # off


def test_a_fading_stage_blends_smoothly_from_the_smaller_picture_to_the_full_one():
    torch.manual_seed(0)
    G, D = build_models(LITE)
    D.eval()  # spectral norm's power iteration would otherwise move between the calls compared
    z = torch.randn(4, LITE.latent_dim)
    with torch.no_grad():
        small, full = G(z, level=1.0), G(z)
        assert small.shape == (4, 3, 16, 16) and full.shape == (4, 3, 32, 32)
        # the fade starts at the 16 px picture enlarged, ends at the 32 px one: no jump either way
        assert torch.allclose(G(z, level=1 + EPS), F.interpolate(small, scale_factor=2), atol=1e-4)
        assert torch.allclose(G(z, level=2 - EPS), full, atol=1e-4)
        half = G(z, level=1.5)
        assert (half - full).abs().mean() > 1e-3 and (half - F.interpolate(small, scale_factor=2)).abs().mean() > 1e-3

        x = torch.rand(4, 3, 32, 32) * 2 - 1
        shrunk = F.avg_pool2d(x, 2)
        assert torch.allclose(D(x, level=1 + EPS), D(shrunk, level=1.0), atol=1e-4)
        assert torch.allclose(D(x, level=2 - EPS), D(x), atol=1e-4)
        assert torch.allclose(D(x, level=2.0), D(x))
        # the reals follow G: shrunk by averaging, and blended the same way while fading
        assert torch.allclose(growing.reals_at(x, 1.0), shrunk)
        assert torch.allclose(growing.reals_at(x, 1 + EPS), F.interpolate(shrunk, scale_factor=2), atol=1e-4)
        assert torch.allclose(growing.reals_at(x, 2 - EPS), x, atol=1e-4)


@pytest.mark.parametrize("level", [1.0, 1.5, 2.0, 2.5, None])
def test_a_64_px_model_grows_through_every_size_between(level):
    cfg = tiny(arch="lite", dropout=0.0, image_size=64, d_reconstruct=True)
    G, D = build_models(cfg)
    size = 64 if level is None else growing.resolution(level)
    with torch.no_grad():
        x = G(torch.randn(4, cfg.latent_dim), level=level)
        assert x.shape == (4, 3, size, size)
        logits, error = D(x, reconstruct=True, level=level)
    assert logits.shape == (4,) and torch.isfinite(error)


def test_the_16_px_steps_leave_the_32_px_stages_alone_and_the_fade_trains_them():
    trainer = make_trainer(LITE, grown_cfg(grow_steps=3), CPU)
    G, D = trainer.G, trainer.D
    g_new, d_new = G.ups[4:8], D.features[2:4]  # G's 16 -> 32 stage, D's 32 -> 16 stage
    before = [p.detach().clone() for p in (*g_new.parameters(), *d_new.parameters())]
    g_fc = G.fc.weight.detach().clone()
    real = trainer.prepare_real(torch.from_numpy(blob_dataset(8).images[:8]))
    for _ in range(3):
        trainer.step(real)
    assert all(torch.equal(a, b) for a, b in zip(before, (*g_new.parameters(), *d_new.parameters())))
    assert not torch.equal(g_fc, G.fc.weight)
    trainer.step(real)  # step 3: the fade begins, its new stages at weight 0
    assert trainer.level == pytest.approx(1 + 1 / 3)
    trainer.step(real)
    assert not torch.equal(before[0], g_new[1].weight) and not torch.equal(
        before[-1], d_new[0].parametrizations.weight.original
    )


def test_progress_grids_show_the_stage_in_training_enlarged_and_the_full_model_after(tmp_path):
    from latentctl.space.generate import generate

    trainer = make_trainer(LITE, grown_cfg(grow_steps=1), CPU)
    real = trainer.prepare_real(torch.from_numpy(blob_dataset(8).images[:8]))
    z = np.random.default_rng(0).standard_normal((3, LITE.latent_dim)).astype(np.float32)
    trainer.step(real)  # the next step starts the fade, still at 16 px
    assert trainer.level == 1.0
    shown = generate(trainer.sampler, z, device=CPU)
    assert shown.shape == (3, 32, 32, 3)  # drawn at the model's size, not 16 px
    assert np.array_equal(shown[:, 0::2, 0::2], shown[:, 1::2, 1::2])  # 16 px enlarged: 2x2 blocks
    assert not trainer.G_ema.training  # drawing a grid leaves the EMA generator as it was
    # and not the full model, whose 32 px stage has not trained yet
    assert not np.array_equal(shown, generate(trainer.G_ema, z, device=CPU))
    trainer.step(real)
    assert trainer.level is None and trainer.sampler is trainer.G_ema


def test_a_growing_run_keeps_no_snapshot_or_best_until_full_size_and_ends_there(tmp_path):
    from latentctl.train import listeners
    from latentctl.train.events import NoticeEvent

    notes = []
    cfg = grown_cfg(epochs=2, grow_steps=3, snapshot_every=1, score_every=1)  # 4 steps an epoch; 32 px from 6
    path = train(
        tmp_path,
        blob_dataset(64),
        LITE,
        cfg,
        CPU,
        listeners=listeners.standard(),
        on_event=lambda e: notes.append(e.message) if isinstance(e, NoticeEvent) else None,
    )
    assert any("epoch 1: no snapshot while the model grows (now fading in 32 px)" in n for n in notes)
    assert any("epoch 1: Fréchet distance" in n and "while growing" in n for n in notes)
    assert not (tmp_path / "generator-epoch-0001.safetensors").exists()
    assert (tmp_path / "generator-epoch-0002.safetensors").exists() and (tmp_path / "best.safetensors").exists()
    assert checkpoint.read_header(tmp_path / "best.safetensors").state["epoch"] == 2
    loaded = checkpoint.load(path, training=True)
    assert loaded.info.train.grow_steps == 3 and loaded.info.state["global_step"] == 8
    with torch.no_grad():
        assert loaded.generator(torch.randn(2, LITE.latent_dim)).shape == (2, 3, 32, 32)
    assert "grow_steps" not in to_dict(TrainConfig())  # off: checkpoints older versions read


def test_a_growing_run_interrupted_mid_fade_resumes_to_the_same_weights(tmp_path):
    from latentctl.errors import TrainingInterrupted
    from latentctl.train.events import StepEvent

    data, cfg = blob_dataset(64), grown_cfg(epochs=3)
    whole = checkpoint.load(train(tmp_path / "whole", data, LITE, cfg, CPU), training=True)

    def stop_at_3(event):
        if isinstance(event, StepEvent) and event.global_step == 3:  # halfway through the fade
            import os
            import signal

            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as stop:
        train(tmp_path / "cut", data, LITE, cfg, CPU, on_event=stop_at_3)
    cut = checkpoint.load(Path(stop.value.checkpoint), training=True)
    resumed = checkpoint.load(train(tmp_path / "cut", data, LITE, cfg, CPU, resume=cut), training=True)
    for name in ("raw_generator", "ema", "partner"):
        a, b = getattr(whole, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_growing_is_refused_for_other_models_and_for_runs_that_end_before_full_size(image_folder, workspace):
    with pytest.raises(UsageError, match="--arch lite"):
        growing.check(tiny(), TrainConfig(grow_steps=5))
    with pytest.raises(UsageError, match="whole number"):
        TrainConfig(grow_steps=-1)
    with pytest.raises(UsageError, match="at most 3"):
        growing.check(LITE, TrainConfig(grow_steps=5), total_steps=10)
    growing.check(ModelConfig(arch="lite", image_size=64), TrainConfig(grow_steps=2), total_steps=10)

    out = run("train", image_folder, *TINY_MODEL, "--grow-steps", "10", "--dry-run", code=2).output
    assert "--arch lite" in out and "Traceback" not in out
    train_cfg = json.loads(
        run("train", image_folder, *TINY_MODEL, "--arch", "lite", "--grow-steps", "10", "--dry-run").stdout
    )["train"]
    assert train_cfg["grow_steps"] == 10
    # 64 pictures at batch 16 for 2 epochs: 8 steps, and growing to 32 px takes 20
    out = run(
        "train", image_folder, *TINY_MODEL, "--arch", "lite", "--epochs", "2", "--grow-steps", "10", code=2
    ).output
    assert "--grow-steps 10" in out and "at most 2" in out and "Traceback" not in out
    assert not any((workspace / "runs").glob("*")), "a refused run leaves no folder behind"
    run("train", image_folder, *TINY_MODEL, "--arch", "lite", "--epochs", "2", "--grow-steps", "2")
    assert Path(run("sample", "-n", "2").stdout.strip().splitlines()[-1]).exists()
