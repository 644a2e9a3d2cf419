"""latentctl.quality.score and `latentctl score`: the arithmetic against closed forms, the ranking it must
give, and the command's outputs and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_MODEL, blob_images, run, write_images
from PIL import Image, ImageFilter

from latentctl.pictures.synthetic import synthetic_faces
from latentctl.quality import score as sc

EPS = np.finfo(np.float64).eps


# ---- Fréchet distance -----------------------------------------------------------------------------


def test_fd_matches_the_closed_form_for_diagonal_covariances():
    # For diagonal covariances tr((s1 s2)^½) = sum sqrt(a_i b_i), so
    # FD = |mu1 - mu2|² + sum (sqrt(a_i) - sqrt(b_i))². Every step is a handful of float64 operations
    # on O(1) numbers summed over 50 terms, and the eigendecompositions are backward stable
    # (error ~ d * eps * |s|): 1e-10 relative is orders of magnitude above that and far below any
    # mistake in the formula (a missing factor 2 would be off by O(1)).
    rng = np.random.default_rng(0)
    d = 50
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = sc.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-10)


def test_fd_of_a_distribution_with_itself_is_zero_and_fd_is_symmetric():
    rng = np.random.default_rng(1)
    d = 30
    m1, m2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = m1 @ m1.T / d, m2 @ m2.T / d  # full-rank, non-diagonal, eigenvalues O(0.01..4)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # FD(x, x) = 2 tr(s) - 2 sum sqrt(eig(s^½ s s^½)) = 0 exactly in real arithmetic; in float64
    # each of the d square roots of eigenvalues is off by ~ d * eps * |s| / sqrt(lambda_min), so
    # 1e-8 * tr(s) bounds the rounding with room to spare.
    assert abs(sc.frechet_distance(mu1, s1, mu1, s1)) < 1e-8 * np.trace(s1)
    # The eigenvalues of s1^½ s2 s1^½ and s2^½ s1 s2^½ are both those of s1 s2: same bound.
    ab, ba = sc.frechet_distance(mu1, s1, mu2, s2), sc.frechet_distance(mu2, s2, mu1, s1)
    assert abs(ab - ba) < 1e-8 * (np.trace(s1) + np.trace(s2))
    # And against a plain reference: tr((s1 s2)^½) from the eigenvalues of the product itself.
    ev = np.linalg.eigvals(s1 @ s2)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev.real.clip(0)).sum()
    assert ab == pytest.approx(ref, rel=1e-8)


# ---- KID and precision/recall -----------------------------------------------------------------------


def test_kid_is_about_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    mean, std = sc.kid(x, y)
    # Each subset estimate is unbiased (expectation exactly 0 here) and the mean over subsets has
    # at most the spread of one estimate: |mean| < 3 std fails with probability < 0.3 %, and the
    # seeds are fixed, so it either always passes or always fails.
    assert abs(mean) < 3 * std
    shifted, _ = sc.kid(x, y + 0.5)
    assert shifted > 20 * std and shifted > 10 * abs(mean)


def test_a_collapsed_set_has_low_recall_and_a_matching_set_high():
    rng = np.random.default_rng(3)
    real, other = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    collapsed = np.repeat(other[:1], 400, axis=0)
    p, r = sc.precision_recall(real, collapsed)
    # Every copy of one image has the same radius 0, so a real point is covered only if it equals
    # that image: recall is exactly 0. The copy itself lies inside the real manifold (precision 1).
    assert r == 0.0 and p == 1.0
    p2, r2 = sc.precision_recall(real, other)
    assert p2 > 0.7 and r2 > 0.7


# ---- the built-in feature space ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces():
    images, _ = synthetic_faces(400, 32, seed=0)
    return images


def _blur(images, radius):
    return np.stack([np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(radius))) for i in images])


def test_features_are_fixed_and_independent_of_batching(faces):
    f = sc.features(faces[:10])
    assert f.shape == (10, sc.feature_dim()) and f.dtype == np.float64
    # Each image's features depend on that image only; float32 convolutions may block a batch of 3
    # differently from one of 10, and their rounding is ~1e-7 of the O(1) activations.
    np.testing.assert_allclose(sc.features(faces[:10], batch_size=3), f, rtol=0, atol=1e-5)
    # One feature space for every image size: a 64 px picture made by repeating each pixel of a
    # 32 px one is, at 64 px, that same picture.
    big = faces[:4].repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_allclose(sc.features(big), f[:4], rtol=0, atol=1e-5)


def test_score_ranks_real_above_blurred_above_noise(faces):
    real, test = faces[:200], faces[200:]
    ref = sc.reference(real)
    noise = np.random.default_rng(0).integers(0, 256, test.shape, dtype=np.uint8)
    fd = {
        name: sc.score_images(x, ref).score.fd
        for name, x in {"real": test, "blur": _blur(test, 1.0), "noise": noise}.items()
    }
    # Measured at 32 px (200 reference vs 200 test faces): real 0.31, blurred 0.93, noise 19.3, so
    # the asserted margins (2x and 5x) leave 1.5x and 4x to spare: the order does not hinge on
    # rounding (~1e-6 relative) or on this particular draw.
    assert fd["real"] < fd["blur"] / 2 and fd["blur"] < fd["noise"] / 5
    assert ref.floor.fd < fd["blur"]


def test_a_mode_collapsed_generator_scores_far_worse_than_the_floor(faces):
    ref = sc.reference(faces[:200])
    report = sc.score_images(np.repeat(faces[300:301], 100, axis=0), ref)
    assert report.score.recall < 0.05 and report.score.fd > 10 * report.floor.fd
    assert report.floor.recall > 0.5


def test_the_report_says_how_much_of_the_datas_colour_the_samples_keep(faces):
    ref = sc.reference(faces[:200])
    assert sc.score_images(faces[200:], ref).saturation_share == pytest.approx(1.0, abs=0.1)  # the same faces
    grey = faces[200:].mean(axis=3, keepdims=True).astype(np.uint8)
    half = (faces[200:] * 0.5 + grey * 0.5).astype(np.uint8)  # halfway to grey: ~half the saturation
    report = sc.score_images(half, ref)
    assert 0.4 < report.saturation_share < 0.6
    batched = sc.score_batches(iter([half[:80], half[80:]]), ref)  # in batches: the same mean
    assert batched.saturation == pytest.approx(report.saturation, rel=1e-9)
    assert report.to_dict()["saturation_real"] == pytest.approx(ref.saturation)
    grey_ref = sc.reference(np.repeat(grey[:, :, :, :1], 1, axis=3))  # grey data: no colour to judge
    assert sc.score_images(grey[:, :, :, :1], grey_ref).saturation_share is None


def test_bad_inputs_are_clear_errors():
    from latentctl.errors import DataError, LatentctlError, UsageError

    with pytest.raises(DataError, match="uint8"):
        sc.features(np.zeros((2, 8, 8, 3)))
    with pytest.raises(DataError, match="at least 8 real images"):
        sc.reference(np.zeros((5, 32, 32, 3), np.uint8))
    with pytest.raises(LatentctlError, match="inception"):
        sc.features(np.zeros((2, 8, 8, 3), np.uint8), "inception")
    with pytest.raises(UsageError):
        sc.features(np.zeros((2, 8, 8, 3), np.uint8), "vgg")


# ---- the command ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run of the module's own: 48 images (the counts the score test reads), 1 epoch."""
    home = tmp_path_factory.mktemp("score_ws")
    folder = write_images(tmp_path_factory.mktemp("score_data") / "images", blob_images(48))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENTCTL_HOME", str(home))
        mp.delenv("LATENTCTL_STORE", raising=False)
        run("train", folder, *TINY_MODEL, "--epochs", "1")
    return home / "runs" / "0001-images-32px", folder


def test_score_prints_the_score_and_the_floor(trained):
    run_dir, _ = trained
    res = run("score", run_dir)
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("score  FD") and lines[1].startswith("floor  FD") and len(lines) == 2
    assert "48 generated vs 24 real" in lines[0]
    assert "colour: the samples' mean saturation is" in res.stderr  # colour pictures: their colour too
    data = json.loads(run("score", run_dir, "-n", "16", "--json").stdout)
    assert data["n_generated"] == 16 and data["seeds"] == "0-15"
    assert set(data["score"]) == {"fd", "kid", "kid_std", "precision", "recall"}
    assert data["score"]["fd"] >= 0 and data["floor"]["fd"] >= 0
    # Seeded samples and a seeded split: the same numbers every time.
    again = json.loads(run("score", run_dir, "-n", "16", "--json").stdout)
    assert again["score"] == data["score"] and again["floor"] == data["floor"]


def test_score_errors_are_one_line(trained, tmp_path):
    from latentctl.files import checkpoint

    run_dir, folder = trained
    for args, code, words in [
        (["-n", "0"], 2, "-n must be at least 4"),
        (["--features", "inception"], 2, "--inception-weights"),
        (["--features", "inception", "--inception-weights", tmp_path / "none.safetensors"], 1, "no such file"),
        (["--features", "vgg"], 2, "choose builtin or inception"),
    ]:
        res = run("score", run_dir, *args, code=code)
        assert words in res.output and len(res.output.strip().splitlines()) == 1, res.output
    # A generator-only checkpoint that does not say where its images are.
    loaded = checkpoint.load(run_dir)
    bare = tmp_path / "bare.safetensors"
    checkpoint.save(bare, generator=loaded.generator, model_config=loaded.info.model)
    res = run("score", bare, code=2)
    assert "--images DIR" in res.output and len(res.output.strip().splitlines()) == 1
    run("score", bare, "--images", folder, "-n", "8")
