"""No silent waits: every long step of a command says what it is doing, how far it is and how long
it took, in a log as on a terminal (CliRunner's output is not a terminal, so it gets the plain
lines a log gets). The issue's case: the first `encode --use-encoder` trained its encoder for
3 min 36 s with nothing on the screen outside a terminal."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import run


def steps_shown(output: str, label: str) -> list[str]:
    """The lines of the step whose name starts with ``label``, start to done."""
    return [ln for ln in output.splitlines() if ln.startswith(label)]


def test_the_first_encode_with_the_gan_encoder_says_it_trains_the_encoder(tiny_run, tiny_images, tmp_path):
    # a copy of the shared run's checkpoint: the encoder is stored beside the checkpoint it encodes for
    ckpt = tmp_path / "model.safetensors"
    shutil.copyfile(tiny_run / "checkpoint.safetensors", ckpt)
    photo = tiny_images / "img_0003.png"
    res = run("encode", photo, "--model", ckpt, "--use-encoder", "--encoder-steps", "1", "--refine", "2")
    training = steps_shown(res.output, "training the GAN encoder")
    assert training[0] == "training the GAN encoder (1 step of 64 samples)…"
    assert re.fullmatch(r"training the GAN encoder \(1 step of 64 samples\): done in [\d.]+ s", training[-1])
    encoding = steps_shown(res.output, "encoding 1 image(s) with the GAN encoder + 2 L-BFGS steps")
    assert encoding[0].endswith("…") and re.search(r": done in [\d.]+ s$", encoding[-1])
    # the second call reuses the stored encoder: no training, and nothing said about one
    again = run("encode", photo, "--model", ckpt, "--use-encoder", "--refine", "0", "--force")
    assert not steps_shown(again.output, "training the GAN encoder")
    assert steps_shown(again.output, "encoding 1 image(s) with the GAN encoder: done in")


def test_gan_encoder_training_reports_every_ten_steps_and_the_last(tiny_run):
    """What `encode` turns into the lines above: (step, steps, latent MSE) every 10 steps."""
    import math

    from latentctl.files.checkpoint import load
    from latentctl.space import gan_encoder as GE

    loaded = load(tiny_run / "checkpoint.safetensors")
    cfg = loaded.info.model
    calls = []
    config = GE.GanEncoderConfig(
        cfg.image_size, cfg.channels, cfg.latent_dim, width=8, steps=11, batch_size=4, image_weight=0.0
    )
    GE.train(loaded.generator, config, "cpu", on_progress=lambda *a: calls.append(a), thread_tuner=None)
    assert [(done, total) for done, total, _ in calls] == [(10, 11), (11, 11)]
    assert all(math.isfinite(loss) for _, _, loss in calls)


def test_score_shows_its_feature_steps(tiny_run):
    res = run("score", tiny_run, "-n", "16", "--device", "cpu")
    out = res.output
    # the images the run trained on are decoded into this test's own cache first
    assert re.search(r": done in [\d.]+ s$", steps_shown(out, "decoding the images in ")[-1])
    real = steps_shown(out, "builtin features of 32 real images (reference and floor)")
    assert real[0].endswith("…") and re.search(r": done in [\d.]+ s$", real[-1])
    fake = steps_shown(out, "generating 16 samples and their builtin features")
    assert fake[0].endswith("…") and re.search(r": done in [\d.]+ s$", fake[-1])
    assert out.index(real[-1]) < out.index(fake[0]) < out.index("score  FD")


def test_directions_shows_its_samples_measurement_and_sheet(tiny_run):
    res = run("directions", tiny_run, "--method", "pca", "-k", "2", "--samples", "100", "--device", "cpu")
    out = res.output
    for label in (
        "PCA: first-layer features of 100 sampled latents",
        "measuring how much each direction changes the image (3 seeds)",
        "drawing the contact sheet (42 images)",
    ):
        lines = steps_shown(out, label)
        assert lines[0] == f"{label}…" and re.search(r": done in [\d.]+ s$", lines[-1]), (label, out)


def test_steer_shows_the_learning_the_measuring_and_the_sweep(tiny_run):
    res = run("steer", tiny_run, "--edit", "zoom", "--steps", "3", "--batch-size", "4", "--device", "cpu")
    out = res.output
    learning = steps_shown(out, "learning the zoom walk (3 steps of 4 latents)")
    assert learning[0].endswith("…") and re.search(r", loss [\d.]+$", learning[1])
    assert "done in" in learning[-1]
    assert "done in" in steps_shown(out, "measuring the walk on held-out latents")[-1]
    assert "done in" in steps_shown(out, "drawing the sweep (20 images)")[-1]


def test_explore_says_it_is_loading_the_model_and_when_it_is_ready(tiny_run, monkeypatch):
    pytest.importorskip("uvicorn")
    from latentctl.explore import server

    class Stops:  # the server as if Ctrl-C came at once
        def run(self, sockets):
            raise KeyboardInterrupt

    monkeypatch.setattr(server, "make_server", lambda app: Stops())
    res = run("explore", tiny_run, "--no-browser", "--device", "cpu")
    lines = res.output.splitlines()
    assert lines[0] == "loading the model…"
    assert re.fullmatch(r"loading the model: ready in [\d.]+ s", lines[1])
    assert lines.index(lines[1]) < next(i for i, ln in enumerate(lines) if ln.startswith("http://"))


def test_the_explorer_page_says_it_is_drawing_until_its_first_grid_arrives():
    from importlib import resources

    html = (resources.files("latentctl.explore") / "static" / "index.html").read_text(encoding="utf-8")
    assert '<div id="grid" class="grid"><p class="loading">drawing the first samples…</p></div>' in html
    js = (resources.files("latentctl.explore") / "static" / "app.js").read_text(encoding="utf-8")
    assert "grid.replaceChildren(...res.tiles.map(tileElement))" in js  # the first page replaces the message
