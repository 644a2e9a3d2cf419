"""Latent arithmetic: interpolation, directions, separation and editing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentctl.errors import StoreError, UsageError
from latentctl.space.latents import (
    SeparationReport,
    apply_directions,
    interpolate_path,
    lerp,
    linear_boundary,
    mean_difference,
    project_out,
    separation,
    slerp,
    strength_sweep,
    validate_sets,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _clouds(
    n: int, d: int, shift: float, seed: int, sample_seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two N(0, I) clouds whose means differ by ``shift`` along a random unit axis.

    ``seed`` picks the axis; ``sample_seed`` (default: ``seed``) the samples, so a second call
    with another ``sample_seed`` draws held-out samples around the same axis.
    """
    axis = _rng(seed).standard_normal(d)
    axis /= np.linalg.norm(axis)
    rng = _rng(1000 + (seed if sample_seed is None else sample_seed))
    pos = rng.standard_normal((n, d)) + shift / 2 * axis
    neg = rng.standard_normal((n, d)) - shift / 2 * axis
    return pos.astype(np.float32), neg.astype(np.float32), axis


# ---- interpolation ------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [lerp, slerp])
def test_interpolation_ends_are_exact_and_float32(fn):
    a, b = _rng(1).standard_normal((2, 64)).astype(np.float32)
    out = fn(a, b, 7)
    assert out.shape == (7, 64) and out.dtype == np.float32
    assert np.array_equal(out[0], a) and np.array_equal(out[-1], b)


def test_lerp_is_evenly_spaced():
    out = lerp(np.zeros(3), np.array([4.0, 8.0, -4.0]), 5)
    np.testing.assert_allclose(out[:, 0], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(out[2], [2, 4, -2])


@pytest.mark.parametrize("fn", [lerp, slerp])
@pytest.mark.parametrize("steps", [1, 0, -3, 2.5, True])
def test_interpolation_needs_two_steps(fn, steps):
    with pytest.raises(UsageError):
        fn(np.ones(4), np.zeros(4), steps)


@pytest.mark.parametrize("fn", [lerp, slerp])
def test_interpolation_rejects_mismatched_dims(fn):
    with pytest.raises(UsageError, match="4-dimensional"):
        fn(np.ones(4), np.ones(5), 3)


def test_slerp_keeps_norm_for_equal_norm_ends():
    rng = _rng(2)
    a, b = rng.standard_normal((2, 128))
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    out = slerp(a, b, 11)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(a), rtol=1e-5)
    # ...whereas lerp's midpoint dips well inside the sphere for near-orthogonal ends.
    assert np.linalg.norm(lerp(a, b, 11)[5]) < 0.8 * np.linalg.norm(a)


def test_slerp_interpolates_norm_linearly_and_angle_uniformly():
    a = np.array([1.0, 0.0])
    b = np.array([0.0, 3.0])
    out = slerp(a, b, 3).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(out[1]), 2.0, rtol=1e-6)
    np.testing.assert_allclose(out[1] / 2.0, [math.sqrt(0.5), math.sqrt(0.5)], rtol=1e-6)


def test_slerp_parallel_vectors_no_nan():
    a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    out = slerp(a, 2 * a, 5)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, lerp(a, 2 * a, 5), rtol=1e-6)
    same = slerp(a, a, 4)
    assert np.isfinite(same).all() and np.allclose(same, a)


def test_slerp_nearly_parallel_no_nan():
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([1.0, 1e-9, 0.0])
    out = slerp(a, b, 5)
    assert np.isfinite(out).all()


def test_slerp_antiparallel_no_nan_and_keeps_norm():
    a = _rng(3).standard_normal(32)
    out = slerp(a, -a, 9)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(a), rtol=1e-5)
    assert np.array_equal(out[-1], (-a).astype(np.float32))
    # Deterministic: the same inputs take the same half-turn.
    assert np.array_equal(out, slerp(a, -a, 9))


def test_slerp_with_zero_end_falls_back_to_lerp():
    a = np.array([2.0, 0.0])
    out = slerp(a, np.zeros(2), 3)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[1], [1.0, 0.0])


def test_slerp_one_dimensional_antiparallel():
    out = slerp(np.array([2.0]), np.array([-2.0]), 3)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], [2.0, 0.0, -2.0])


@pytest.mark.parametrize("method", ["lerp", "slerp"])
@pytest.mark.parametrize("k,steps", [(2, 2), (2, 8), (3, 5), (5, 4)])
def test_path_row_count_and_waypoints(method, k, steps):
    pts = _rng(4).standard_normal((k, 16)).astype(np.float32)
    out = interpolate_path(pts, steps, method)
    assert out.shape == ((k - 1) * (steps - 1) + 1, 16)
    assert out.dtype == np.float32
    # Every given point lies on the path, at the start of its segment.
    for i in range(k):
        assert np.array_equal(out[i * (steps - 1)], pts[i])


def test_path_errors():
    pts = np.zeros((3, 4))
    with pytest.raises(UsageError, match="unknown interpolation 'cubic'"):
        interpolate_path(pts, 3, "cubic")
    with pytest.raises(UsageError, match="at least 2"):
        interpolate_path(pts[:1], 3)
    with pytest.raises(UsageError):
        interpolate_path(pts, 1)
    with pytest.raises(UsageError):
        interpolate_path(np.zeros(4), 3)


# ---- validation ---------------------------------------------------------------------------------


def test_validate_sets_names_the_offending_set():
    ok = np.zeros((2, 4), np.float32)
    with pytest.raises(UsageError, match="--pos glasses.npz has no rows"):
        validate_sets(np.zeros((0, 4)), ok, pos_name="--pos glasses.npz")
    with pytest.raises(UsageError, match="--neg plain has no rows"):
        validate_sets(ok, np.zeros((0, 4)), neg_name="--neg plain")
    with pytest.raises(UsageError, match="pos has 4-dimensional latents but neg has 5"):
        validate_sets(ok, np.zeros((2, 5)))
    bad = ok.copy()
    bad[1, 2] = np.nan
    with pytest.raises(StoreError, match="--neg x has 1 row"):
        validate_sets(ok, bad, neg_name="--neg x")
    with pytest.raises(UsageError, match="shape"):
        validate_sets(np.zeros(4), ok)


# ---- directions ---------------------------------------------------------------------------------


def test_mean_difference_known_data():
    pos = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    neg = np.array([[0.0, 0.0], [0.0, 2.0], [3.0, 1.0]], np.float32)
    out = mean_difference(pos, neg)
    assert out.dtype == np.float32 and out.shape == (2,)
    np.testing.assert_allclose(out, [1.0, 2.0])


def test_mean_difference_refuses_identical_means():
    x = np.ones((3, 4))
    with pytest.raises(UsageError, match="same mean"):
        mean_difference(x, x)


def _accuracy(pos: np.ndarray, neg: np.ndarray, w: np.ndarray) -> float:
    return separation(pos, neg, w).accuracy


def test_linear_boundary_tiny_sets_in_high_dimension():
    pos, neg, axis = _clouds(3, 100, shift=3.0, seed=5)
    w = linear_boundary(pos, neg)
    assert w.shape == (100,) and w.dtype == np.float32
    assert np.isfinite(w).all()
    np.testing.assert_allclose(np.linalg.norm(w), 1.0, rtol=1e-5)
    assert _accuracy(pos, neg, w) == 1.0
    # Oriented from neg to pos.
    assert (pos @ w).mean() > (neg @ w).mean()


def test_linear_boundary_many_samples_finds_the_axis():
    pos, neg, axis = _clouds(200, 100, shift=4.0, seed=6)
    w = linear_boundary(pos, neg)
    np.testing.assert_allclose(np.linalg.norm(w), 1.0, rtol=1e-5)
    assert _accuracy(pos, neg, w) > 0.9
    # Held-out samples from the same clouds are also separated.
    test_pos, test_neg, _ = _clouds(200, 100, shift=4.0, seed=6, sample_seed=60)
    assert float(w @ axis) > 0.8
    assert _accuracy(test_pos, test_neg, w) > 0.9


def test_linear_boundary_is_deterministic():
    pos, neg, _ = _clouds(20, 50, shift=2.0, seed=7)
    assert np.array_equal(linear_boundary(pos, neg), linear_boundary(pos, neg))


def test_linear_boundary_unbalanced_and_d_greater_than_n():
    rng = _rng(8)
    axis = np.zeros(256)
    axis[0] = 1.0
    pos = rng.standard_normal((4, 256)) + 3 * axis
    neg = rng.standard_normal((40, 256)) - 3 * axis
    w = linear_boundary(pos, neg)
    assert _accuracy(pos, neg, w) == 1.0
    assert (pos @ w).mean() > (neg @ w).mean()


def test_linear_boundary_flipped_sets_flip_the_direction():
    pos, neg, _ = _clouds(10, 30, shift=3.0, seed=9)
    np.testing.assert_allclose(linear_boundary(neg, pos), -linear_boundary(pos, neg), atol=1e-5)


def test_linear_boundary_single_pair():
    w = linear_boundary(np.array([[1.0, 0.0, 0.0]]), np.array([[-1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(w, [1.0, 0.0, 0.0], atol=1e-6)


def test_linear_boundary_errors():
    x = np.ones((3, 4))
    with pytest.raises(UsageError, match="cannot be told apart"):
        linear_boundary(x, x)
    with pytest.raises(UsageError, match="l2"):
        linear_boundary(x, -x, l2=0.0)
    with pytest.raises(UsageError, match="no rows"):
        linear_boundary(np.zeros((0, 4)), x)


def test_project_out_is_orthogonal_to_each_other():
    rng = _rng(10)
    v = rng.standard_normal(64)
    o1 = rng.standard_normal(64)
    o2 = 0.9 * o1 + 0.1 * rng.standard_normal(64)  # strongly correlated with o1
    out = project_out(v, [o1, o2])
    assert out.dtype == np.float32 and out.shape == (64,)
    for o in (o1, o2):
        assert abs(float(out @ o)) / (np.linalg.norm(out) * np.linalg.norm(o)) < 1e-5
    # What remains of v is unchanged: out is v's part outside span(o1, o2).
    np.testing.assert_allclose(float(out @ v), float(out @ out), rtol=1e-4)


def test_project_out_handles_duplicates_and_nothing_to_remove():
    v = np.array([1.0, 1.0, 0.0])
    o = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(project_out(v, [o, o, 2 * o]), [0.0, 1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(project_out(v, []), v)


def test_project_out_refuses_direction_in_span():
    o1 = np.array([1.0, 0.0, 0.0])
    o2 = np.array([0.0, 1.0, 0.0])
    with pytest.raises(UsageError, match="span"):
        project_out(np.array([2.0, -3.0, 0.0]), [o1, o2])
    with pytest.raises(UsageError, match="4-dimensional|3-dimensional"):
        project_out(np.ones(3), [np.ones(4)])


# ---- separation ---------------------------------------------------------------------------------


def test_separation_constructed_case():
    # Along x: pos at 3, 5 and neg at -1, 1 (each std sqrt(2) with ddof 1; pooled sqrt(2)).
    pos = np.array([[3.0, 7.0], [5.0, -2.0]])
    neg = np.array([[-1.0, 4.0], [1.0, 0.0]])
    rep = separation(pos, neg, np.array([2.0, 0.0]))  # not unit: normalised inside
    assert isinstance(rep, SeparationReport)
    assert rep.pos_mean_proj == pytest.approx(4.0)
    assert rep.neg_mean_proj == pytest.approx(0.0)
    assert rep.gap_in_std == pytest.approx(4.0 / math.sqrt(2.0))
    assert rep.accuracy == 1.0
    assert (rep.n_pos, rep.n_neg) == (2, 2)
    assert rep.summary() == ("pos and neg separate along the direction: accuracy 100% (2 vs 2), gap 2.8 std")


def test_separation_overlap_and_wrong_way():
    pos = np.array([[0.0], [2.0], [4.0]])
    neg = np.array([[1.0], [3.0], [-5.0]])
    rep = separation(pos, neg, np.array([1.0]))
    # Best threshold: between 3 and 4 (pos 4 above; neg 1, 3, -5 below; pos 0, 2 wrong) -> 4/6,
    # or between 1 and 2 -> pos 2, 4 right, neg 3 wrong, pos 0 wrong -> 4/6.
    assert rep.accuracy == pytest.approx(4 / 6)
    assert "overlap" in rep.summary()
    backwards = separation(pos, neg, np.array([-1.0]))
    assert backwards.gap_in_std < 0
    assert "negative side" in backwards.summary()


def test_separation_zero_spread_is_infinite_not_nan():
    rep = separation(np.array([[1.0, 0.0]]), np.array([[-1.0, 0.0]]), np.array([1.0, 0.0]))
    assert rep.gap_in_std == math.inf and rep.accuracy == 1.0
    assert "unbounded" in rep.summary()
    same = separation(np.array([[1.0, 0.0]] * 2), np.array([[1.0, 5.0]] * 2), np.array([1.0, 0.0]))
    assert same.gap_in_std == 0.0 and same.accuracy == 0.5


def test_separation_rejects_zero_direction():
    with pytest.raises(UsageError, match="zero"):
        separation(np.ones((2, 2)), np.zeros((2, 2)), np.zeros(2))


# ---- editing ------------------------------------------------------------------------------------


def test_apply_directions_sums_weighted_directions():
    z = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], np.float32)
    out = apply_directions(z, [(np.array([1.0, 0, 0]), 2.0), (np.array([0, 1.0, 0]), -0.5)])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[3.0, 0.5, 1.0], [2.0, -0.5, 0.0]])
    np.testing.assert_allclose(apply_directions(z, []), z)
    with pytest.raises(UsageError, match="3-dimensional"):
        apply_directions(z, [(np.ones(4), 1.0)])
    with pytest.raises(UsageError, match="finite"):
        apply_directions(z, [(np.ones(3), math.nan)])


def test_strength_sweep_shape_and_values():
    z = _rng(11).standard_normal((2, 8)).astype(np.float32)
    v = np.eye(8)[3]
    out = strength_sweep(z, v, [-2.0, 0.0, 1.5])
    assert out.shape == (2, 3, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 1], z)
    np.testing.assert_allclose(out[1, 0] - z[1], -2.0 * v, atol=1e-6)
    np.testing.assert_allclose(out[0, 2, 3], z[0, 3] + 1.5, rtol=1e-6)
    with pytest.raises(UsageError):
        strength_sweep(z, v, [])


# ---- limits, checked before allocating (issue 10) -----------------------------------------------


def test_steps_and_path_length_are_bounded_before_allocating():
    from latentctl.space.latents import MAX_PATH_FRAMES, MAX_STEPS, check_steps, path_frames

    assert check_steps(MAX_STEPS) == MAX_STEPS == 1_000
    with pytest.raises(UsageError, match="--frames 1,000,000,000: at most 1,000 frames per segment"):
        lerp(np.zeros(2), np.ones(2), 1_000_000_000)
    with pytest.raises(UsageError, match="--frames"):
        interpolate_path(np.zeros((2, 2)), 1_000_000_000)
    assert path_frames(2, 1000) == 1000 and MAX_PATH_FRAMES == 2_500
    with pytest.raises(UsageError, match="4 latents with --frames 1000 has 2,998 frames; at most 2,500"):
        interpolate_path(np.zeros((4, 2)), 1000)


def test_sweeps_are_bounded_and_never_overflow_into_inf(monkeypatch):
    from latentctl.space import latents

    monkeypatch.setattr(latents, "MAX_SWEEP", 6)
    assert strength_sweep(np.zeros((3, 2)), np.ones(2), [0, 1]).shape == (3, 2, 2)
    with pytest.raises(UsageError, match="3 latents x 3 strengths make 9 images; at most 6"):
        strength_sweep(np.zeros((3, 2)), np.ones(2), [0, 1, 2])
    with pytest.raises(UsageError, match="overflow float32"):
        strength_sweep(np.zeros((1, 2)), np.full(2, 1e30), [1e9])
    with pytest.raises(UsageError, match="overflow float32"):
        apply_directions(np.zeros((1, 2)), [(np.full(2, 3e38), 10.0)])


# ---- command-line numbers (latentctl.parse) -----------------------------------------------------


def test_scales_and_weights_parse_strictly():
    from latentctl.parse import parse_floats, parse_weighted

    assert parse_floats("-2,-1, 0,1.5,2e0,", "--scales") == [-2, -1, 0, 1.5, 2]
    assert parse_weighted("glasses") == ("glasses", 1.0)
    assert parse_weighted("out/a=b.npz=-0.5") == ("out/a=b.npz", -0.5)
    for bad in ("nan", "inf", "-Infinity", "1e999", "1_0", "0x1", "1e7", "", ",", "٣"):
        with pytest.raises(UsageError, match="--scales"):
            parse_floats(bad, "--scales")
        with pytest.raises(UsageError, match=r"--add 'd=.*finite number"):
            parse_weighted(f"d={bad}")
    with pytest.raises(UsageError, match="101 numbers given; at most 100"):
        parse_floats(",".join(["0"] * 101), "--scales")
    with pytest.raises(UsageError, match="nothing before '='"):
        parse_weighted("=1")


def test_options_typer_already_read_are_checked_too():
    from latentctl.parse import check_count, check_float

    assert check_float(0.5, "--truncation", minimum=0.0) == 0.5
    for bad in (math.nan, math.inf, -1.0, 1e7):
        with pytest.raises(UsageError, match="--truncation"):
            check_float(bad, "--truncation", minimum=0.0)
    assert check_count(None, "--cols", 10, "x") is None
    with pytest.raises(UsageError, match="--cols 11: at most 10; fewer please"):
        check_count(11, "--cols", 10, "fewer please")
    with pytest.raises(UsageError, match="--cols must be at least 1"):
        check_count(0, "--cols", 10, "x")
