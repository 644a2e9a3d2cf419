"""The lite recipe and its levers, channels that follow the data, budgets, and the health warnings."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_MODEL, blob_dataset, blob_images, run, tiny
from PIL import Image

from latentctl.config import TrainConfig
from latentctl.errors import TrainingInterrupted, UsageError
from latentctl.files import checkpoint
from latentctl.models import build_models
from latentctl.models.gan import NEGATIVE_SLOPE
from latentctl.train import health, listeners
from latentctl.train.augment import AdaptiveP, augment, mirror
from latentctl.train.events import NoticeEvent, StepEvent
from latentctl.train.health import HealthMonitor, diversity
from latentctl.train.recipes import model_defaults, train_defaults
from latentctl.train.trainers import pairing_loss
from latentctl.train.training import train

CPU = torch.device("cpu")
LITE = tiny(arch="lite", dropout=0.0)


@pytest.fixture(scope="module")
def blobs():
    return blob_dataset(64)


def lite_cfg(**kw) -> TrainConfig:
    # the recipe exactly as `train --arch lite` resolves it, at a tiny size
    base = dict(train_defaults("lite", LITE), epochs=3, batch_size=16, checkpoint_every=1, snapshot_every=100)
    return TrainConfig(**{**base, **kw})


# ---- the networks ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_lite_networks_map_latents_to_images_and_images_to_logits(size, channels):
    cfg = tiny(arch="lite", image_size=size, channels=channels)
    G, D = build_models(cfg)
    with torch.no_grad():
        x = G(torch.randn(4, cfg.latent_dim))
    assert x.shape == (4, channels, size, size) and float(x.abs().max()) <= 1
    assert D(x).shape == (4,)
    assert isinstance(G.fc, torch.nn.Linear)  # SeFa reads the first layer's weight


def test_skip_excitation_gates_the_last_stage_and_is_stored_only_when_on(tmp_path, blobs):
    from latentctl.config import ModelConfig, to_dict

    cfg = tiny(arch="lite", dropout=0.0, skip_excitation=True)
    G, _ = build_models(cfg)
    z = torch.randn(3, cfg.latent_dim)
    with torch.no_grad():
        base = torch.nn.functional.leaky_relu(G.norm(G.fc(z).view(3, cfg.width, 8, 8)), NEGATIVE_SLOPE)
        gate = G.excite(base)
    assert gate.shape == (3, cfg.width, 1, 1) and bool(((gate > 0) & (gate < 1)).all())
    with torch.no_grad():  # the gate is what tells one sample's last stage from another's
        G.excite[-2].bias.fill_(-30.0)  # closed: every channel of the last stage is zero
        assert torch.allclose(G(z), torch.tanh(G.to_rgb.bias).view(1, -1, 1, 1).expand(3, -1, 32, 32), atol=1e-5)
    assert "skip_excitation" not in to_dict(ModelConfig())  # off: checkpoints older versions read
    loaded = checkpoint.load(train(tmp_path, blobs, cfg, lite_cfg(epochs=1), CPU))
    assert loaded.info.model.skip_excitation and loaded.generator.excite is not None


def test_the_self_supervised_discriminator_learns_to_redraw_the_reals_and_is_stored_only_when_on(tmp_path, blobs):
    from latentctl.config import ModelConfig, to_dict

    cfg = tiny(arch="lite", dropout=0.0, d_reconstruct=True)
    _, D = build_models(cfg)
    D.eval()  # spectral norm's power iteration moves D a little on every training-mode pass
    real = torch.tensor(blobs.images[:16]).permute(0, 3, 1, 2).float() / 127.5 - 1
    logits, error = D(real, reconstruct=True)
    assert logits.shape == (16,) and torch.equal(logits, D(real))  # the verdicts are D's usual ones
    # the decoders alone, trained on these pictures: their error must fall well below where it
    # started (a random decoder's output is near 0, so it starts near the pictures' mean square)
    opt = torch.optim.Adam(D.decoders.parameters(), lr=3e-3)
    first = float(error.detach())
    for _ in range(150):
        opt.zero_grad()
        err = D(real, reconstruct=True)[1]
        err.backward()
        opt.step()
    assert float(err.detach()) < 0.3 * first, (first, float(err.detach()))
    # the trainer's D step trains the decoders (their error joins D's backward pass)
    from latentctl.train.trainers import make_trainer

    trainer = make_trainer(cfg, lite_cfg(), CPU)
    before = [p.detach().clone() for p in trainer.D.decoders.parameters()]
    trainer.step(trainer.prepare_real(torch.tensor(blobs.images[:8])))
    assert all(not torch.equal(a, b) for a, b in zip(before, trainer.D.decoders.parameters()))
    # and it trains as part of the recipe, through a checkpoint and back, with R1 beside it
    assert "d_reconstruct" not in to_dict(ModelConfig())  # off: checkpoints older versions read
    loaded = checkpoint.load(train(tmp_path, blobs, cfg, lite_cfg(epochs=1, r1_gamma=0.1, r1_every=2), CPU))
    assert loaded.info.model.d_reconstruct
    assert any(k.startswith("decoders.") for k in loaded.discriminator.state_dict())


def test_a_lite_sample_does_not_depend_on_its_batch():
    # pixel norm, not batch norm: a latent alone or among others gives the same picture. The batch
    # size may change which convolution kernel runs (float32 sums in another order: ~1e-6 apart);
    # a batch statistic would move pixels by tenths. 1e-4 is far below one level of 8-bit output.
    G, _ = build_models(LITE)
    G.eval()
    z = torch.randn(5, LITE.latent_dim)
    with torch.no_grad():
        assert torch.allclose(G(z)[2:3], G(z[2:3]), atol=1e-4)


# ---- the levers ---------------------------------------------------------------------------------


def test_augment_is_the_identity_at_p0_and_changes_images_at_p1():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    assert torch.equal(augment(x, 0.0), x)
    y = augment(x, 1.0)
    assert y.shape == x.shape and not torch.allclose(y, x)
    grey = torch.rand(8, 1, 16, 16)
    assert augment(grey, 1.0).shape == grey.shape
    flipped = mirror(x)
    assert all(torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2)) for i in range(8))


def test_augment_ops_leave_out_the_transforms_not_named():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    moved = augment(x, 1.0, "translation,cutout")  # pixels move or go black; none changes colour
    for i in range(16):
        kept = set(x[i].flatten().tolist()) | {0.0}
        assert set(moved[i].flatten().tolist()) <= kept
    assert not torch.equal(moved, x)
    recoloured = augment(x, 1.0, "color")  # the American spelling names the same transform
    assert not torch.equal(recoloured, x) and (recoloured != 0).all()  # nothing cut out
    assert TrainConfig(augment_ops=" Cutout,colour").augment_ops == "colour,cutout"
    with pytest.raises(UsageError, match="--augment-ops 'flip'"):
        TrainConfig(augment_ops="flip")


def test_a_run_that_leaves_the_augment_ops_alone_writes_what_older_versions_read():
    from latentctl.config import from_dict, to_dict

    assert "augment_ops" not in to_dict(TrainConfig())  # an older latentctl refuses keys it does not know
    chosen = TrainConfig(augment_ops="cutout")
    assert from_dict(TrainConfig, to_dict(chosen)) == chosen  # a choice is kept, and resumes as made
    assert from_dict(TrainConfig, to_dict(TrainConfig())).augment_ops == "colour,translation,cutout"


def test_augmentation_is_differentiable_so_g_learns_through_it():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    augment(x, 1.0).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_ada_raises_p_while_d_is_overconfident_and_lowers_it_otherwise():
    ada = AdaptiveP("ada", 0.6, batch_real=64)
    for _ in range(40):
        ada.observe(torch.ones(64))  # every real rated real: sign mean 1 > 0.6
    high = ada.p
    assert high > 0
    for _ in range(40):
        ada.observe(-torch.ones(64))
    assert ada.p < high
    fixed = AdaptiveP("0.3", 0.6, batch_real=64)
    fixed.observe(torch.ones(64))
    assert fixed.p == 0.3


@pytest.mark.parametrize(
    "lever",
    [
        {"loss": "hinge"},
        {"augment": "0.5"},
        {"augment": "ada"},
        {"mirror": True},
        {"ema": True},
        {"r1_gamma": 1.0, "r1_every": 2},
        {"lr_d": 1e-3},
        {"d_update": "joint"},
        {"loss": "rpgan", "d_update": "joint", "r1_gamma": 1.0, "r1_every": 2},
    ],
)
def test_each_lever_trains_the_seed_model(tmp_path, blobs, lever):
    model = TINY
    cfg = TrainConfig(epochs=1, batch_size=16, **lever)
    torch.manual_seed(0)
    before = build_models(model)[0].state_dict()
    loaded = checkpoint.load(train(tmp_path, blobs, model, cfg, CPU), training=True)
    moved = max(float((before[k] - v).abs().max()) for k, v in loaded.raw_generator.state_dict().items())
    assert moved > 1e-4
    losses = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite([r["d_real"], r["d_fake"], r["g"]]).all() for r in losses)


def test_the_pairing_loss_reads_only_how_far_each_real_beats_its_fake():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 0.5, 3.0, -2.0])
    loss = pairing_loss(real, fake)  # reals repeated: (2, -1), (0.5, 0.5), (2, 3), (0.5, -2)
    expected = torch.nn.functional.softplus(torch.tensor([-3.0, 0.0, 1.0, -2.5])).mean()
    assert torch.allclose(loss, expected)
    assert torch.allclose(pairing_loss(real + 7, fake + 7), loss)  # a shift of every verdict: no gain
    assert torch.allclose(
        pairing_loss(fake, real), torch.nn.functional.softplus(-torch.tensor([-3.0, 0.0, 1.0, -2.5])).mean()
    )


def test_the_pairing_loss_needs_the_one_step_d_update():
    with pytest.raises(UsageError, match="--loss rpgan"):
        TrainConfig(loss="rpgan")  # the seed's split D step
    assert TrainConfig(loss="rpgan", d_update="joint").loss == "rpgan"


def test_the_ema_generator_differs_from_and_lags_the_raw_one(tmp_path, blobs):
    torch.manual_seed(0)
    start = build_models(LITE)[0].state_dict()
    loaded = checkpoint.load(train(tmp_path, blobs, LITE, lite_cfg(epochs=4), CPU))
    raw, ema = loaded.raw_generator.state_dict(), loaded.ema.state_dict()
    assert loaded.generator is loaded.ema  # sampling uses the EMA by default
    gap = sum(float((raw[k] - ema[k]).norm()) for k in raw)
    assert gap > 0
    # lags: the average sits between the start and where training got to
    raw_travel = sum(float((raw[k] - start[k]).norm()) for k in raw)
    ema_travel = sum(float((ema[k] - start[k]).norm()) for k in raw)
    assert ema_travel < raw_travel
    no_ema = checkpoint.load(tmp_path / "checkpoint.safetensors", ema=False)
    assert no_ema.generator is no_ema.raw_generator


@pytest.mark.slow
def test_an_interrupted_lite_run_resumes_to_the_same_weights(tmp_path, blobs):
    # EMA weights, ADA's p and its pending observations, R1's step count all live in the checkpoint
    cfg = lite_cfg(epochs=2, r1_gamma=1.0, r1_every=3)
    whole = checkpoint.load(train(tmp_path / "whole", blobs, LITE, cfg, CPU), training=True)

    def stop_at_5(event):
        if isinstance(event, StepEvent) and event.global_step == 5:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: honoured at the end of this step

    with pytest.raises(TrainingInterrupted) as stop:
        train(tmp_path / "cut", blobs, LITE, cfg, CPU, on_event=stop_at_5)
    resumed = checkpoint.load(
        train(
            tmp_path / "cut", blobs, LITE, cfg, CPU, resume=checkpoint.load(Path(stop.value.checkpoint), training=True)
        ),
        training=True,
    )
    for name in ("raw_generator", "ema", "partner"):
        a, b = getattr(whole, name).state_dict(), getattr(resumed, name).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    assert whole.info.state["augment"] == resumed.info.state["augment"]


def test_a_step_budget_stops_mid_epoch(tmp_path, blobs):
    path = train(tmp_path, blobs, LITE, lite_cfg(epochs=10, max_steps=5), CPU)
    assert checkpoint.read_header(path).state["global_step"] == 5
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 5


@pytest.mark.slow
def test_score_every_records_the_quality_and_keeps_the_best_generator(tmp_path, blobs):
    train(tmp_path, blobs, LITE, lite_cfg(epochs=2, score_every=1), CPU, listeners=listeners.standard())
    scores = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "score_fd" in r]
    assert [r["epoch"] for r in scores] == [1, 2]
    assert all(r["score_fd"] > 0 and r["score_floor"] >= 0 for r in scores)
    best = checkpoint.load(tmp_path / "best.safetensors")
    assert best.info.state["score_fd"] == pytest.approx(min(r["score_fd"] for r in scores), abs=1e-3)


# ---- health -------------------------------------------------------------------------------------


def _feed(monitor: HealthMonitor, losses: dict, n: int) -> list[str]:
    out = []
    for i in range(n):
        out += [text for _, text in monitor.on_step(losses, 0.01, i + 1)]
    return out


def test_health_warns_once_when_d_wins_and_again_only_after_recovering():
    m = HealthMonitor(gan=True, total_steps=10_000, window=20)
    won = {"d_real": 0.01, "d_fake": 0.02, "g": 4.0}
    fine = {"d_real": 0.6, "d_fake": 0.6, "g": 0.9}
    messages = _feed(m, won, 60)
    assert sum("discriminator is winning" in x for x in messages) == 1
    assert not any("winning" in x for x in _feed(m, fine, 40))
    assert sum("winning" in x for x in _feed(m, won, 40)) == 1


def test_health_stays_silent_on_a_healthy_run_and_flags_a_runaway_generator():
    m = HealthMonitor(gan=True, total_steps=10_000, window=20)
    assert [x for x in _feed(m, {"d_real": 0.5, "d_fake": 0.4, "g": 1.2}, 100) if "steps at" not in x] == []
    assert any("running away" in x for x in _feed(m, {"d_real": 0.3, "d_fake": 0.2, "g": 9.0}, 30))


def test_health_flags_collapsed_samples():
    m = HealthMonitor(gan=True, total_steps=10_000)
    data = blob_images(36)
    m.data_diversity = diversity(data)
    assert m.on_grid(data[::-1].copy(), 1) == []
    assert [kind for kind, _ in m.on_grid(np.repeat(data[:1], 36, axis=0), 2)] == [health.COLLAPSE]
    assert any("look alike" in x for _, x in m.on_grid(np.repeat(data[:1], 36, axis=0), 2)) is False  # once


@pytest.mark.slow
def test_a_run_built_to_fail_warns_that_d_wins(tmp_path, blobs):
    # D with a learning rate 250x G's on the seed model: it separates the two sets within steps.
    model = tiny(dropout=0.0)
    notes = []
    cfg = TrainConfig(epochs=40, batch_size=16, lr=2e-4, lr_d=0.05, checkpoint_every=40, sample_every=40)
    train(
        tmp_path,
        blobs,
        model,
        cfg,
        CPU,
        on_event=lambda e: notes.append(e.message) if isinstance(e, NoticeEvent) else None,
    )
    assert any("discriminator is winning" in n for n in notes), notes


def test_every_health_message_names_its_kind_so_a_caller_can_leave_one_out():
    short = HealthMonitor(gan=True, total_steps=500, cpu=True)
    assert [k for k, _ in short.at_start(images=100, batch_size=64, real_per_step=32)] == [
        health.SHORT_RUN,
        health.LARGE_BATCH,
    ]
    # The time estimate and the "3,000 steps would take" advice are separate, so the demo keeps one.
    cost = [m for i in range(4) for m in short.on_step({"d_real": 0.5, "d_fake": 0.5, "g": 1.0}, 0.5, i + 1)]
    assert [k for k, _ in cost] == [health.COST, health.SHORT_RUN]
    assert "left on this machine" in cost[0][1] and "3,000 steps would take" in cost[1][1]
    long = HealthMonitor(gan=True, total_steps=10_000, window=20)
    assert long.at_start(images=10_000, batch_size=64, real_per_step=32) == []
    kinds = [k for i in range(40) for k, _ in long.on_step({"d_real": 0.01, "d_fake": 0.01, "g": 9.0}, 0.01, i + 1)]
    assert kinds == [health.COST, health.D_WINS, health.G_RUNAWAY]


def test_short_runs_and_large_batches_are_flagged_before_training(tmp_path, blobs):
    notes = []
    train(
        tmp_path,
        blobs,
        LITE,
        lite_cfg(epochs=1, batch_size=16),
        CPU,
        on_event=lambda e: notes.append(e.message) if isinstance(e, NoticeEvent) else None,
    )
    assert any("only 4 steps" in n for n in notes)
    assert any("more than a tenth" in n for n in notes)


# ---- through the CLI: channels follow the data, budgets, dry runs ------------------------------


def _grey_folder(tmp_path) -> Path:
    folder = tmp_path / "digits"
    folder.mkdir()
    for i, img in enumerate(blob_images(40)):
        Image.fromarray(img).convert("L").save(folder / f"d{i:03d}.png")
    return folder


def test_a_folder_of_grey_pictures_trains_a_grey_model_whose_outputs_are_grey(tmp_path, workspace):
    run("train", _grey_folder(tmp_path), *TINY_MODEL, "--epochs", "1", "--arch", "lite")
    info = checkpoint.read_header(workspace / "runs" / "0001-digits-lite-32px")
    assert info.model.channels == 1
    out = Path(run("sample", "-n", "2").stdout.strip().splitlines()[-1]).parent
    assert Image.open(out / "seed0000.png").mode == "L"
    # Pictures go into a grey model as its training data did: encode (projection, and the GAN
    # encoder + L-BFGS), the labelled route, and score, whose real side is decoded grey too.
    photo = tmp_path / "digits" / "d001.png"
    run("encode", photo, "--steps", "2", "--restarts", "1")
    res = run("encode", photo, "--use-encoder", "--encoder-steps", "3", "--refine", "2")
    assert "gan-encoder + 2 L-BFGS steps" in res.output
    recon = next((workspace / "outputs").glob("*-encode/d001-recon.png"))
    assert Image.open(recon).mode == "L"
    labels = tmp_path / "labels.csv"
    labels.write_text("file,odd\n" + "".join(f"d{i:03d}.png,{i % 2}\n" for i in range(40)))
    res = run(
        "attr-vector",
        "--images",
        tmp_path / "digits",
        "--labels",
        labels,
        "--column",
        "odd",
        "--pos-if",
        "==1",
        "--save",
        "odd-dir",
    )
    assert "encoded 40 labelled images" in res.output
    data = json.loads(run("score", "-n", "8", "--json").stdout)
    assert data["score"]["fd"] >= 0
    # A classifier trained on the (RGB-decoded) pictures scores the grey model's renders.
    run("classifier", "train", tmp_path / "digits", "--labels", labels, "--column", "odd", "--pos-if", "==1")
    run("sample", "-n", "2", "--save", "two")
    res = run("apply", "two", "--add", "odd-dir", "--scales", "0,1", "--score-with", "odd")
    assert "score (mean probability of the attribute) per strength" in res.output


def test_a_classifier_reads_grey_and_rgba_renders_as_its_training_pictures_were_decoded():
    from latentctl.errors import UsageError
    from latentctl.space.assessor import _match_channels

    grey = torch.rand(2, 1, 4, 4) * 2 - 1
    assert torch.equal(_match_channels(grey, 3), grey.expand(-1, 3, -1, -1))
    rgb = torch.rand(2, 3, 4, 4) * 2 - 1
    opaque = torch.cat([rgb, torch.ones(2, 1, 4, 4)], 1)
    clear = torch.cat([rgb, -torch.ones(2, 1, 4, 4)], 1)
    assert torch.allclose(_match_channels(opaque, 3), rgb)
    assert torch.allclose(_match_channels(clear, 3), torch.ones(2, 3, 4, 4))  # over white, as to_rgb
    white = torch.ones(1, 3, 2, 2)
    assert torch.allclose(_match_channels(white, 1), torch.ones(1, 1, 2, 2))  # luma weights sum to 1
    with pytest.raises(UsageError, match="cannot score 2-channel"):
        _match_channels(torch.zeros(1, 2, 4, 4), 3)


def test_channels_can_be_forced(tmp_path, workspace):
    run("train", _grey_folder(tmp_path), *TINY_MODEL, "--epochs", "1", "--channels", "3", "--name", "rgb")
    assert checkpoint.read_header(next((workspace / "runs").iterdir())).model.channels == 3
    run("train", tmp_path / "digits", "--channels", "2", code=2)


def test_rgba_keeps_transparency(tmp_path, workspace):
    folder = tmp_path / "icons"
    folder.mkdir()
    for i, img in enumerate(blob_images(32)):
        rgba = np.dstack([img, np.where(img[..., 2] > 100, 255, 0).astype(np.uint8)])
        Image.fromarray(rgba).save(folder / f"i{i}.png")
    run("train", folder, *TINY_MODEL, "--epochs", "1", "--channels", "4")
    out = Path(run("sample", "-n", "1").stdout.strip().splitlines()[-1]).parent
    assert Image.open(out / "seed0000.png").mode == "RGBA"
    # score decodes the real side as RGBA too (both sides then composited the same way)
    assert json.loads(run("score", "-n", "8", "--json").stdout)["floor"]["fd"] >= 0


def test_kimg_and_steps_budgets_through_the_cli(image_folder, workspace):
    res = run("train", image_folder, *TINY_MODEL, "--epochs", "100", "--kimg", "0.04")  # 40 real images = 5 steps of 8
    assert "budget 5 steps" in res.output
    assert checkpoint.read_header(workspace / "runs" / "0001-images-32px").state["global_step"] == 5
    run("train", image_folder, "--kimg", "1", "--steps", "3", code=2)


def test_dry_run_reads_the_folder_and_counts_steps(image_folder, tmp_path):
    res = run("train", image_folder, *TINY_MODEL, "--epochs", "3", "--dry-run")
    plan = json.loads(res.stdout)
    assert plan["images"] == 64 and plan["skipped"] == 0 and plan["steps_per_epoch"] == 4 and plan["total_steps"] == 12
    assert "Error:" in run("train", tmp_path / "missing", "--dry-run", code=1).output


def test_the_lite_learning_rate_falls_with_the_width_and_an_explicit_lr_wins(image_folder):
    def lr(*args):
        return json.loads(run("train", image_folder, "--arch", "lite", "--dry-run", *args).stdout)["train"]["lr"]

    assert lr("--width", "32") == pytest.approx(1.6e-3)
    assert lr("--width", "128") == pytest.approx(4e-4)  # the default width: 1.6e-3 drew black squares there
    assert lr("--width", "8") == pytest.approx(1.6e-3)  # not raised below the widths measured
    assert lr("--width", "128", "--lr", "1e-3") == pytest.approx(1e-3)
    seed = json.loads(run("train", image_folder, "--dry-run", "--width", "32").stdout)["train"]
    assert seed["lr"] == pytest.approx(2e-4)  # the seed's recipe keeps the blog post's rate
    vae = json.loads(run("train", image_folder, "--arch", "lite", "--family", "vae", "--dry-run").stdout)["train"]
    assert vae["lr"] == pytest.approx(1e-3)
    # the batch: 32 for the lite GAN (more steps in a CPU's minutes), the seed's 128 for the seed's
    # recipe and for autoencoders (not measured at 32), and a given --batch-size always wins
    lite = json.loads(run("train", image_folder, "--arch", "lite", "--dry-run").stdout)["train"]
    assert (lite["batch_size"], seed["batch_size"], vae["batch_size"]) == (32, 128, 128)
    given = run("train", image_folder, "--arch", "lite", "--batch-size", "64", "--dry-run").stdout
    assert json.loads(given)["train"]["batch_size"] == 64


def test_the_loss_and_augment_ops_are_chosen_by_name_with_one_line_errors(image_folder):
    def plan(*args):
        return json.loads(run("train", image_folder, "--arch", "lite", "--dry-run", *args).stdout)["train"]

    assert plan("--loss", "RPGAN", "--augment-ops", "translation, cutout")["augment_ops"] == "translation,cutout"
    assert plan("--loss", "rpgan")["loss"] == "rpgan"
    for args, words in [
        (("--augment-ops", "flip"), "--augment-ops 'flip'"),
        (("--loss", "wgan"), "--loss 'wgan' is not one of: bce, hinge, rpgan"),
    ]:
        out = run("train", image_folder, "--arch", "lite", "--dry-run", *args, code=2).output
        assert words in out and "Traceback" not in out
    out = run("train", image_folder, "--loss", "rpgan", "--dry-run", code=2).output  # the seed's split D step
    assert "--loss rpgan" in out and "--arch lite" in out
    model = json.loads(run("train", image_folder, "--arch", "lite", "--skip-excitation", "--dry-run").stdout)["model"]
    assert model["skip_excitation"] is True
    out = run("train", image_folder, "--skip-excitation", "--dry-run", code=2).output  # the seed's generator
    assert "--skip-excitation" in out and "--arch lite" in out and "Traceback" not in out
    model = json.loads(run("train", image_folder, "--arch", "lite", "--d-reconstruct", "--dry-run").stdout)["model"]
    assert model["d_reconstruct"] is True
    out = run("train", image_folder, "--d-reconstruct", "--dry-run", code=2).output  # the seed's discriminator
    assert "--d-reconstruct" in out and "--arch lite" in out and "Traceback" not in out


def test_a_lite_run_trains_and_samples_through_the_cli(image_folder, workspace):
    run("train", image_folder, *TINY_MODEL, "--epochs", "2", "--arch", "lite")
    info = run("info").stdout
    assert "lite architecture" in info and "EMA generator" in info
    a = Path(run("sample", "-n", "2").stdout.strip().splitlines()[-1]).parent
    b = Path(run("sample", "-n", "2", "--no-ema").stdout.strip().splitlines()[-1]).parent
    assert not np.array_equal(np.asarray(Image.open(a / "seed0000.png")), np.asarray(Image.open(b / "seed0000.png")))


def test_resume_keeps_the_recipe(image_folder, workspace):
    run("train", image_folder, *TINY_MODEL, "--epochs", "1", "--arch", "lite")
    run_dir = workspace / "runs" / "0001-images-lite-32px"
    run("train", "--resume", run_dir, "--epochs", "2")
    info = checkpoint.read_header(run_dir)
    assert info.train.loss == "hinge" and info.train.ema and info.state["epoch"] == 2
    assert "differ" in run("train", "--resume", run_dir, "--loss", "bce", "--epochs", "3", code=1).output


def test_a_long_cpu_run_says_what_to_run_for_a_first_model_sooner():
    def estimate(**kw):
        m = HealthMonitor(gan=True, total_steps=100_000, **kw)
        return [x for i in range(4) for _, x in m.on_step({"d_real": 0.5, "d_fake": 0.5, "g": 1.0}, 0.5, i + 1)]

    cpu = estimate(cpu=True)  # 100,000 steps at 0.5 s: about 14 hours
    assert len(cpu) == 1 and "13 h 53 min left" in cpu[0] and "--image-size 32 --arch lite" in cpu[0]
    assert "--image-size 32" not in estimate(cpu=False)[0]  # a GPU run that long is the user's plan
    short = HealthMonitor(gan=True, total_steps=5_000, cpu=True)
    out = [x for i in range(4) for _, x in short.on_step({"d_real": 0.5, "d_fake": 0.5, "g": 1.0}, 0.5, i + 1)]
    assert "--arch lite" not in out[0]  # 42 minutes: no advice

    # Only models smaller than the run's own are named; a run already that small is told to
    # shorten it instead.
    from latentctl.config import ModelConfig

    def advice(model) -> str:
        return estimate(cpu=True, model=model)[0]

    seed = advice(ModelConfig(image_size=64, width=128))
    assert "--image-size 32 --arch lite --width 32" in seed and "--image-size 64 --arch lite --width 32" in seed
    mid = advice(ModelConfig(image_size=64, arch="lite", width=32))
    assert "--image-size 32 --arch lite --width 32" in mid and "--image-size 64 --arch" not in mid
    small = advice(ModelConfig(image_size=32, arch="lite", width=32))
    assert "--arch lite" not in small and "lower --epochs" in small


def test_a_run_of_a_measured_recipe_and_shape_says_what_to_expect_in_its_own_time():
    from latentctl.config import ModelConfig
    from latentctl.train.health import MEASURED_STEPS, format_duration

    assert MEASURED_STEPS, "the table holds the measured curves docs/quality.md shows"

    def notes(model, batch=64, per_step=0.25):
        m = HealthMonitor(gan=True, total_steps=20_000, cpu=True, model=model, batch_size=batch)
        return [
            (k, x) for i in range(4) for k, x in m.on_step({"d_real": 0.5, "d_fake": 0.5, "g": 1.0}, per_step, i + 1)
        ]

    for (arch, size, width, batch), rows in MEASURED_STEPS.items():
        model = ModelConfig(**{**model_defaults(arch), "arch": arch, "image_size": size, "width": width})
        said = [x for k, x in notes(model, batch) if k == health.EXPECT]
        assert len(said) == 1 and f"at {size} px, width {width}, batch {batch}" in said[0]
        for what, steps in rows:  # in steps, and in this machine's time at its measured step time
            assert f"{what} within {steps:,} steps ({format_duration(steps * 0.25)} here)" in said[0]
        # another batch size takes other steps: the measured curve is not its curve
        other = next(b for b in (16, 32, 64, 128, 256) if (arch, size, width, b) not in MEASURED_STEPS)
        assert health.EXPECT not in [k for k, _ in notes(model, other)]
    unmeasured = ModelConfig(image_size=64, width=128)  # the seed's model: no curve, no generic advice
    assert [k for k, _ in notes(unmeasured)] == [health.COST]
    vae = ModelConfig(**{**model_defaults("lite"), "arch": "lite", "image_size": 32, "width": 32, "family": "vae"})
    assert health.EXPECT not in [k for k, _ in notes(vae)]
