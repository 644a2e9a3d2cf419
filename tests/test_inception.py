"""Standard FID's Inception-v3 (latentctl.quality.inception): the graph against pytorch-fid's own features,
the weights file's checks, and `score --features inception` end to end.

The real weights cannot be fetched here, so the graph is checked on seeded random weights whose
pytorch-fid features were recorded once (benchmarks/inception_check.py --golden, which also
compares the two graphs directly on calibrated random weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run
from safetensors.torch import save_file

from benchmarks.inception_check import GOLDEN, golden_images, seeded_state
from latentctl.errors import DataError, UsageError
from latentctl.quality import inception
from latentctl.quality import score as sc


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inception") / "pt_inception-seeded.safetensors"
    state = seeded_state()
    # As in the real file: the unused 1008-class classifier rides along.
    state["fc.weight"] = torch.zeros(inception.FID_CLASSES, inception.FEATURE_DIM)
    state["fc.bias"] = torch.zeros(inception.FID_CLASSES)
    save_file(state, str(path))
    return path


def test_the_graph_gives_pytorch_fids_features(weights):
    golden = np.load(GOLDEN)
    assert (golden["images"] == golden_images()).all()  # the recorded input is the one rebuilt here
    got = sc.features(golden_images(), sc.feature_space("inception", inception_weights=weights))
    want = golden["features"].astype(np.float64)
    assert got.shape == want.shape == (2, inception.FEATURE_DIM)
    # Both sides are float32 through ~50 convolutions on the longest path. Each output sums at most
    # 4,032 products (448 channels x 3x3), so one layer's relative rounding is at most ~sqrt(4032) x
    # 2^-24 ~ 4e-6 whatever order a CPU's kernels sum in (AVX2, AVX-512 and AMX differ); He-scaled
    # layers pass errors on without growing them, so 50 layers stay under ~2e-4 of the features'
    # spread. A structural mistake (a pool that counts its padding, a kernel turned 90 degrees, the
    # wrong pool in the last block) moves features by 0.4-20 std (measured by breaking each on
    # purpose), and reduced-precision (bf16) convolutions by ~1e-2: 1e-3 tells them all apart.
    assert np.abs(got - want).max() / want.std() < 1e-3


def test_same_images_give_the_same_features_and_grey_and_rgba_enter_as_pytorch_fid_feeds_them(weights):
    space = sc.feature_space("inception", inception_weights=weights)
    assert (space.dim, space.size) == (2048, 299)
    rgb = golden_images()
    grey = rgb[..., :1]
    rgba = np.concatenate([rgb, np.full_like(rgb[..., :1], 7)], -1)  # almost transparent
    f_rgb = sc.features(rgb, space)
    # PIL's convert("RGB") (what pytorch-fid does with every file) repeats grey and drops alpha.
    assert np.array_equal(sc.features(rgba, space), f_rgb)
    assert np.array_equal(sc.features(grey, space), sc.features(np.repeat(grey, 3, -1), space))
    assert np.isfinite(f_rgb).all() and (f_rgb >= 0).all()  # channel means after a ReLU


def _save(tmp_path, name, state):
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_a_wrong_weights_file_is_a_one_line_error_naming_what_is_wrong(tmp_path):
    good = seeded_state()
    not_st = tmp_path / "pt_inception.pth"
    not_st.write_bytes(b"\x80\x02}q\x00.")  # a pickle, as the .pth download is
    missing = _save(tmp_path, "missing.safetensors", {k: v for k, v in good.items() if not k.startswith("Mixed_7c.")})
    shape = _save(tmp_path, "shape.safetensors", {**good, "Mixed_5b.branch1x1.conv.weight": torch.zeros(64, 192, 3, 3)})
    imagenet = _save(tmp_path, "tv.safetensors", {**good, "fc.weight": torch.zeros(1000, 2048)})
    extra = _save(tmp_path, "extra.safetensors", {**good, "Mixed_8a.conv.weight": torch.zeros(1)})
    nan = good["Mixed_6b.branch1x1.bn.running_var"].clone()
    nan[3] = float("nan")
    damaged = _save(tmp_path, "nan.safetensors", {**good, "Mixed_6b.branch1x1.bn.running_var": nan})
    cases = [
        (tmp_path / "nowhere.safetensors", "no such file"),
        (not_st, "not a safetensors file"),
        (missing, "no tensor 'Mixed_7c.branch1x1.conv.weight' and 44 more"),
        (shape, "'Mixed_5b.branch1x1.conv.weight' has shape (64, 192, 3, 3), the graph needs (64, 192, 1, 1)"),
        (imagenet, "torchvision's ImageNet weights"),
        (extra, "'Mixed_8a.conv.weight'"),
        (damaged, "'Mixed_6b.branch1x1.bn.running_var' is not finite"),
        (tmp_path, "is a folder"),
    ]
    for path, words in cases:
        with pytest.raises(DataError) as err:
            sc.feature_space("inception", inception_weights=path)
        msg = str(err.value)
        assert words in msg and "\n" not in msg, msg
    with pytest.raises(UsageError, match="needs --inception-weights"):
        sc.features(golden_images(), "inception")
    with pytest.raises(UsageError, match="only used with --features inception"):
        sc.feature_space("builtin", inception_weights=missing)


def test_score_with_inception_features_end_to_end(tiny_run, weights, tmp_path):
    out = run("score", tiny_run, "-n", "6", "--features", "inception", "--inception-weights", weights)
    assert "features inception (2048 numbers per image at 299 px)" in out.output
    data = json.loads(
        run("score", tiny_run, "-n", "6", "--features", "inception", "--inception-weights", weights, "--json").stdout
    )
    assert data["features"] == "inception" and data["feature_dim"] == 2048 and data["feature_size"] == 299
    assert data["score"]["fd"] >= 0 and data["floor"]["fd"] >= 0
    # A bad file fails before any image is read or model loaded: one line, exit 1.
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    res = run("score", tiny_run, "--features", "inception", "--inception-weights", bad, code=1)
    assert "not a safetensors file" in res.output and len(res.output.strip().splitlines()) == 1
