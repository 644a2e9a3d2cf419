"""`attr-vector --keep CLF`: what else a new direction moves, judged by a classifier, next to random
directions of the same length (issue 30: a 'darker skin' direction that also changes the background
should say so).

The library test uses a generator whose picture's brightness is z[0] alone and a classifier that
reads brightness: a direction along z[0] clearly moves it, a direction that leaves z[0] alone
does not, and a classifier that sees nothing never reports a change."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import run

from latentctl.space import attr_vector as A

DIM = 64


class _Brightness(torch.nn.Module):
    """z -> a flat grey picture whose level is tanh(z[0]) (all other coordinates are ignored)."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(image_size=8, channels=3, latent_dim=DIM)
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, z):
        level = torch.tanh(z[:, :1] * self.scale)
        return level[:, :, None, None].expand(-1, 3, 8, 8)


class _Reads:
    def __init__(self, sees_brightness: bool):
        self.sees = sees_brightness

    def score_uint8(self, images, device="cpu"):
        mean = images.reshape(len(images), -1).astype(np.float64).mean(1)
        return (mean - 127.5) / 16.0 if self.sees else np.zeros(len(images))


@pytest.fixture
def session(monkeypatch):
    rng = np.random.default_rng(0)
    monkeypatch.setattr(
        "latentctl.space.assessor.load_classifier",
        lambda path, device="cpu": _Reads(Path(path).stem == "brightness"),
    )
    return SimpleNamespace(
        generator=_Brightness().eval(),
        device=torch.device("cpu"),
        seed_latents=lambda seeds: rng.standard_normal((len(seeds), DIM)).astype(np.float32),
    )


def test_a_direction_along_what_the_classifier_sees_clearly_moves_it(session):
    along = np.zeros(DIM, np.float32)
    along[0] = 1.5
    (bright, blind) = A.side_effects(session, along, [Path("brightness.safetensors"), Path("blind.safetensors")])
    assert bright.clear and bright.change > bright.random + A.SIDE_EFFECT_MARGIN
    assert "moves what brightness.safetensors sees" in bright.hint("darker")
    assert "--orthogonal-to brightness-dir" in bright.hint("darker")
    assert not blind.clear and blind.change == 0 and blind.random == 0
    assert blind.to_meta()["t"] in (0.0, None) and "about as a random direction" in blind.line()


def test_a_direction_that_leaves_it_alone_is_not_flagged(session):
    aside = np.zeros(DIM, np.float32)
    aside[5] = 1.5  # a coordinate the picture ignores: changes less than random directions do
    (bright,) = A.side_effects(session, aside, [Path("brightness.safetensors")])
    assert not bright.clear and bright.change < 1e-6 and bright.random > 0


def test_the_progress_counts_each_rendered_batch(session):
    seen = []
    A.side_effects(
        session,
        np.ones(DIM, np.float32),
        [Path("brightness.safetensors")],
        on_progress=lambda d, t: seen.append((d, t)),
    )
    total = 2 + A.SIDE_EFFECT_RANDOMS
    assert seen == [(i, total) for i in range(1, total + 1)]


def test_keep_naming_no_classifier_fails_before_any_work(tiny_run, workspace, tmp_path):
    run("sample", tiny_run, "--seeds", "0-3", "--save", "a", "--out", tmp_path / "a")
    res = run("attr-vector", "--pos", "a@0,1", "--neg", "a@2,3", "--model", tiny_run, "--keep", "nothing", code=2)
    assert "--keep" in res.output and res.output.count("\n") <= 1
    assert sorted(p.name for p in (workspace / "latents").iterdir()) == ["a.npz"]
