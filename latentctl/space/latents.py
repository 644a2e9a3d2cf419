"""Latent-space arithmetic: interpolation, attribute directions and editing.

Pure numpy. Inputs may be any float arrays; results are float32 (the dtype generators consume),
while the arithmetic in between runs in float64 so that long paths, near-parallel vectors and
tiny logistic fits do not lose precision.

Units: the generator's prior is N(0, I), so one unit along a *unit-length* direction is one
standard deviation of the prior in that direction. ``linear_boundary`` returns unit directions,
which makes ``apply`` strengths such as ``+2`` or ``-1.5`` mean "move 2 (or 1.5) prior standard
deviations" whatever the latent size. ``mean_difference`` keeps its natural length (the distance
between the two set means), so strength 1 moves a pos-like sample by exactly that gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latentctl.errors import StoreError, UsageError

INTERPOLATION_METHODS = ("lerp", "slerp")

# Bounds on what one call builds, checked before allocating: every row becomes an image to render.
# At 30 frames a second, 1,000 steps is half a minute per segment; a path of 2,500 frames already
# fills a 50 x 50 strip. A sweep (latents x strengths) is bounded like seeds: 100,000 images.
MAX_STEPS = 1_000
MAX_PATH_FRAMES = 2_500
MAX_SWEEP = 100_000

# Below this sine of the angle between two directions, slerp's 1/sin(omega) blows up; the
# directions are treated as parallel (or antiparallel) instead.
_PARALLEL_EPS = 1e-6


# ---- helpers ------------------------------------------------------------------------------------


def _vector(x: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise UsageError(f"{what} must be a single latent vector, got shape {v.shape}")
    return v


def _matrix(x: np.ndarray, what: str) -> np.ndarray:
    m = np.asarray(x, dtype=np.float64)
    if m.ndim != 2:
        raise UsageError(f"{what} must be a 2-D array of latents (rows, dim), got shape {m.shape}")
    return m


def _same_dim(a: np.ndarray, b: np.ndarray, what_a: str, what_b: str) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise UsageError(f"{what_a} has {a.shape[-1]}-dimensional latents but {what_b} has {b.shape[-1]}")


def check_steps(steps: int) -> int:
    """``steps`` (frames per segment) as an int in 2..MAX_STEPS, else a ``UsageError`` naming ``--frames``."""
    # bool is an int subclass; True would silently mean one step.
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise UsageError(f"--frames must be an integer of at least 2 (both ends), got {steps!r}")
    if steps > MAX_STEPS:
        raise UsageError(
            f"--frames {int(steps):,}: at most {MAX_STEPS:,} frames per segment; add more latents to the path instead"
        )
    return int(steps)


def path_frames(points: int, steps: int) -> int:
    """How many rows ``interpolate_path`` gives for ``points`` latents; more than
    ``MAX_PATH_FRAMES`` is a ``UsageError``."""
    steps = check_steps(steps)
    frames = (points - 1) * (steps - 1) + 1
    if frames > MAX_PATH_FRAMES:
        raise UsageError(
            f"a path through {points:,} latents with --frames {steps} has {frames:,} frames; at most "
            f"{MAX_PATH_FRAMES:,} per command: use fewer --frames or fewer latents"
        )
    return frames


def _finite_result(out: np.ndarray, what: str) -> np.ndarray:
    # float32 overflows at 3.4e38: a huge direction times a large strength turns into inf, which
    # would render as garbage and only fail once the latents are saved.
    with np.errstate(over="ignore"):  # the overflow is reported below, as an error
        result = out.astype(np.float32)
    if not np.isfinite(result).all():
        raise UsageError(f"{what} overflow float32 (NaN or infinity); use smaller strengths")
    return result


# ---- interpolation ------------------------------------------------------------------------------


def lerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` evenly spaced points from ``a`` to ``b`` inclusive: float32, shape (steps, d)."""
    steps = check_steps(steps)
    va, vb = _vector(a, "the start latent"), _vector(b, "the end latent")
    _same_dim(va, vb, "the start latent", "the end latent")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    out = (1.0 - t) * va + t * vb
    # Pin the ends: (1 - t) * a + t * b is not bit-exact at t = 1 in floating point, and a path's
    # ends must reproduce the user's samples exactly.
    out[0], out[-1] = va, vb
    return out.astype(np.float32)


def _perpendicular(u: np.ndarray) -> np.ndarray | None:
    """A deterministic unit vector orthogonal to unit ``u`` (None in one dimension)."""
    if u.size < 2:
        return None
    # The basis axis least aligned with u keeps the Gram-Schmidt step well conditioned.
    e = np.zeros_like(u)
    e[int(np.argmin(np.abs(u)))] = 1.0
    p = e - (e @ u) * u
    return p / np.linalg.norm(p)


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation of direction with linear interpolation of length.

    The direction moves along the great circle from ``a``'s to ``b``'s at constant angular speed
    while the norm goes linearly from ``|a|`` to ``|b|``: the ends are exact and, for ends of equal
    norm (typical of Gaussian latents), every point keeps that norm instead of cutting through
    the low-density middle of the ball as ``lerp`` does.

    Nearly parallel ends fall back to lerp (the arc is a straight line there). Exactly opposite
    ends have no unique great circle; the path turns through a fixed, deterministic perpendicular
    so the result is well defined and never NaN. A zero end has no direction, so lerp is used.
    """
    steps = check_steps(steps)
    va, vb = _vector(a, "the start latent"), _vector(b, "the end latent")
    _same_dim(va, vb, "the start latent", "the end latent")
    na, nb = float(np.linalg.norm(va)), float(np.linalg.norm(vb))
    if na == 0.0 or nb == 0.0:
        return lerp(va, vb, steps)
    ua, ub = va / na, vb / nb
    cos = float(np.clip(ua @ ub, -1.0, 1.0))
    t = np.linspace(0.0, 1.0, steps)[:, None]
    omega = math.acos(cos)
    sin = math.sin(omega)
    if sin < _PARALLEL_EPS:
        if cos > 0:
            return lerp(va, vb, steps)
        perp = _perpendicular(ua)
        if perp is None:
            return lerp(va, vb, steps)
        # Half a turn from ua through perp reaches -ua == ub.
        direction = np.cos(np.pi * t) * ua + np.sin(np.pi * t) * perp
    else:
        direction = (np.sin((1.0 - t) * omega) * ua + np.sin(t * omega) * ub) / sin
    out = direction * ((1.0 - t) * na + t * nb)
    out[0], out[-1] = va, vb
    return out.astype(np.float32)


def interpolate_path(points: np.ndarray, steps: int, method: str = "lerp") -> np.ndarray:
    """A path through ``points`` (k, d) in order, ``steps`` rows per segment counting both ends.

    Each inner point ends one segment and starts the next; it appears once, so the result has
    ``(k - 1) * (steps - 1) + 1`` rows and every input point is on the path exactly.
    """
    if method not in INTERPOLATION_METHODS:
        raise UsageError(f"unknown interpolation {method!r}; choose one of {', '.join(INTERPOLATION_METHODS)}")
    steps = check_steps(steps)
    pts = _matrix(points, "the path's points")
    if pts.shape[0] < 2:
        raise UsageError(f"a path needs at least 2 latents, got {pts.shape[0]}")
    path_frames(pts.shape[0], steps)  # before any segment is built
    step_fn = lerp if method == "lerp" else slerp
    segments = [step_fn(pts[i], pts[i + 1], steps) for i in range(pts.shape[0] - 1)]
    return np.concatenate([segments[0]] + [s[1:] for s in segments[1:]], axis=0)


# ---- directions ---------------------------------------------------------------------------------


def validate_sets(pos: np.ndarray, neg: np.ndarray, *, pos_name: str = "pos", neg_name: str = "neg") -> None:
    """Check two latent sets can be compared; errors name them (e.g. ``"--pos glasses.npz"``)."""
    for arr, name in ((pos, pos_name), (neg, neg_name)):
        a = np.asarray(arr)
        if a.ndim != 2:
            raise UsageError(f"{name} must hold rows of latents (rows, dim), got shape {a.shape}")
        if a.shape[0] == 0:
            raise UsageError(f"{name} has no rows")
        if a.shape[1] == 0:
            raise UsageError(f"{name} has zero-dimensional latents")
        if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise StoreError(f"{name} holds {a.dtype} values, not real numbers")
        if not np.all(np.isfinite(a)):
            bad = int(np.count_nonzero(~np.isfinite(a).all(axis=1)))
            raise StoreError(f"{name} has {bad} row(s) with NaN or infinite values")
    d_pos, d_neg = np.asarray(pos).shape[1], np.asarray(neg).shape[1]
    if d_pos != d_neg:
        raise UsageError(f"{pos_name} has {d_pos}-dimensional latents but {neg_name} has {d_neg}")


def mean_difference(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """``mean(pos) - mean(neg)``: float32, shape (d,), at its natural length (see module doc)."""
    validate_sets(pos, neg)
    diff = np.asarray(pos, np.float64).mean(axis=0) - np.asarray(neg, np.float64).mean(axis=0)
    if not np.any(diff):
        # A zero direction would make every later edit silently do nothing.
        raise UsageError("pos and neg have the same mean, so their difference is no direction")
    return diff.astype(np.float32)


def linear_boundary(pos: np.ndarray, neg: np.ndarray, *, l2: float = 1e-2, max_iter: int = 200) -> np.ndarray:
    """Unit normal of a linear boundary between ``pos`` and ``neg`` (InterFaceGAN-style).

    Fits an L2-regularised logistic regression ``p(pos | z) = sigmoid(w . z + b)`` on the raw
    latents (they already share one N(0, I) scale, so no standardising) by Newton's method with
    backtracking: deterministic, no random init, no learning rate to tune. Returns ``w / |w|``
    as float32 (d,), oriented so pos lies on the + side.

    * Each class carries half the total weight, so 5 positives against 500 negatives still define
      the boundary rather than being outvoted.
    * The penalty ``l2/2 |w|^2`` (intercept unpenalised) keeps ``w`` finite when the sets are
      linearly separable -- always the case for few samples in many dimensions (3 vs 3 in d=100).
    * When d exceeds the number of samples the optimum lies in the span of the samples (the loss
      only sees ``X w`` and the penalty grows outside that span), so the fit runs in that
      n-dimensional subspace: exact, and cheap for d >> n.
    """
    validate_sets(pos, neg)
    if not (l2 > 0 and math.isfinite(l2)):
        raise UsageError(f"the regularisation l2 must be a positive number, got {l2!r}")
    if max_iter < 1:
        raise UsageError(f"max_iter must be at least 1, got {max_iter}")
    p = np.asarray(pos, np.float64)
    q = np.asarray(neg, np.float64)
    x = np.concatenate([p, q], axis=0)
    y = np.concatenate([np.ones(len(p)), np.zeros(len(q))])
    sw = np.concatenate([np.full(len(p), 0.5 / len(p)), np.full(len(q), 0.5 / len(q))])

    n, d = x.shape
    basis = None
    if d > n:
        # Orthonormal basis of the samples' span; the fit happens in its coordinates.
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        # Directions with (numerically) zero singular value carry no sample: leave them out.
        basis = vt[s > s[0] * 1e-12].T if s[0] > 0 else vt[:0].T  # (d, r)
        x = x @ basis
    r = x.shape[1]
    if r == 0:
        raise UsageError("pos and neg are all zero vectors; no direction separates them")

    # Parameters theta = (w, b); the bias column is appended so Newton solves for both at once.
    xa = np.concatenate([x, np.ones((n, 1))], axis=1)
    reg = np.full(r + 1, l2)
    reg[-1] = 0.0  # the intercept is not penalised: shifting the boundary costs nothing

    theta = _fit_logistic(xa, y, sw, reg, max_iter)
    w = theta[:-1] if basis is None else basis @ theta[:-1]
    norm = float(np.linalg.norm(w))
    if not norm > 0.0 or not math.isfinite(norm):
        raise UsageError("pos and neg cannot be told apart: no direction separates them")
    w /= norm
    # Orientation follows the fit already; this guards the degenerate case where the
    # regularised fit is nearly flat and rounding could leave the means on the wrong sides.
    if float((p.mean(axis=0) - q.mean(axis=0)) @ w) < 0:
        w = -w
    return w.astype(np.float32)


def _fit_logistic(xa: np.ndarray, y: np.ndarray, sw: np.ndarray, reg: np.ndarray, max_iter: int) -> np.ndarray:
    """theta minimising the weighted logistic loss of ``xa @ theta`` against ``y`` plus
    ``reg/2 theta^2``, by Newton's method with backtracking (see ``linear_boundary``)."""

    def loss(theta: np.ndarray) -> float:
        m = xa @ theta
        # log(1 + e^m) - y m, written with logaddexp so large margins do not overflow.
        return float(sw @ (np.logaddexp(0.0, m) - y * m) + 0.5 * (reg * theta) @ theta)

    theta = np.zeros(xa.shape[1])
    f = loss(theta)
    for _ in range(max_iter):
        prob = 0.5 * (1.0 + np.tanh(0.5 * (xa @ theta)))  # a sigmoid that cannot overflow
        grad = xa.T @ (sw * (prob - y)) + reg * theta
        if np.linalg.norm(grad) < 1e-10:
            break
        hess = (xa * (sw * prob * (1.0 - prob))[:, None]).T @ xa + np.diag(reg)
        # The tiny ridge keeps the intercept row solvable when all probabilities saturate.
        hess[-1, -1] += 1e-12
        step = np.linalg.solve(hess, grad)
        # Backtracking (Armijo): a full Newton step can overshoot far from the optimum.
        slope = float(grad @ step)
        alpha = 1.0
        while alpha > 1e-10:
            candidate = theta - alpha * step
            f_new = loss(candidate)
            if f_new <= f - 1e-4 * alpha * slope:
                break
            alpha *= 0.5
        else:
            break  # no decrease possible at machine precision: converged
        theta, f = candidate, f_new
        if alpha * float(np.linalg.norm(step)) < 1e-12 * (1.0 + float(np.linalg.norm(theta))):
            break
    return theta


def project_out(direction: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray:
    """``direction`` minus its components along every vector in ``others``.

    ``others`` are orthonormalised first (via SVD, which also drops duplicates and vectors that
    are combinations of the rest), so correlated attributes such as "glasses" and "sunglasses"
    are each removed once rather than twice. The result is not renormalised: its length shows
    how much of the direction was independent of the others.
    """
    v = _vector(direction, "the direction")
    if not np.any(v):
        raise UsageError("the direction is the zero vector")
    if len(others) == 0:
        return v.astype(np.float32)
    mats = []
    for i, o in enumerate(others):
        ov = _vector(o, f"direction to remove #{i + 1}")
        _same_dim(v, ov, "the direction", f"direction to remove #{i + 1}")
        mats.append(ov)
    a = np.stack(mats, axis=1)  # (d, m)
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        return v.astype(np.float32)
    # Singular values this small are float32 noise in the inputs, not a real extra direction.
    span = u[:, s > s[0] * 1e-6]
    out = v - span @ (span.T @ v)
    # Inputs are usually float32 (7 digits): what remains below ~1e-5 of the original is
    # rounding, not a direction of its own.
    if np.linalg.norm(out) <= 1e-5 * np.linalg.norm(v):
        raise UsageError("the direction lies in the span of the directions to remove: nothing is left of it")
    return out.astype(np.float32)


# ---- separation report --------------------------------------------------------------------------


@dataclass(frozen=True)
class SeparationReport:
    """How well a direction tells pos from neg, measured on the sets themselves.

    Projections are onto the unit direction, so they are in prior standard deviations.
    ``accuracy`` is the best a single threshold along the direction achieves with pos on the +
    side -- a training accuracy, optimistic for small sets.
    """

    pos_mean_proj: float
    neg_mean_proj: float
    gap_in_std: float
    accuracy: float
    n_pos: int
    n_neg: int

    def summary(self) -> str:
        counts = f"({self.n_pos} vs {self.n_neg})"
        acc = f"accuracy {self.accuracy:.0%} {counts}"
        if math.isinf(self.gap_in_std):
            gap = "gap unbounded (no spread within the sets)"
        else:
            gap = f"gap {self.gap_in_std:.1f} std"
        if self.gap_in_std < 0:
            return f"pos lies on the negative side: the direction points from pos to neg; {acc}, {gap}"
        if self.accuracy >= 1.0:
            verdict = "pos and neg separate along the direction"
        elif self.accuracy >= 0.8:
            verdict = "pos and neg mostly separate along the direction"
        else:
            verdict = "pos and neg overlap along the direction"
        return f"{verdict}: {acc}, {gap}"


def _best_threshold_accuracy(proj_pos: np.ndarray, proj_neg: np.ndarray) -> float:
    # Predict pos when projection > t; trying t = -inf and every observed value covers every
    # distinct split (ties cannot be split, which is the honest answer for them).
    values = np.concatenate([proj_pos, proj_neg])
    thresholds = np.concatenate([[-np.inf], np.unique(values)])
    sp, sn = np.sort(proj_pos), np.sort(proj_neg)
    pos_above = len(sp) - np.searchsorted(sp, thresholds, side="right")
    neg_at_or_below = np.searchsorted(sn, thresholds, side="right")
    return float((pos_above + neg_at_or_below).max() / len(values))


def separation(pos: np.ndarray, neg: np.ndarray, direction: np.ndarray) -> SeparationReport:
    """Project both sets onto ``direction`` and report how far apart they lie."""
    validate_sets(pos, neg)
    v = _vector(direction, "the direction")
    _same_dim(np.asarray(pos), v, "pos", "the direction")
    norm = float(np.linalg.norm(v))
    if not norm > 0.0:
        raise UsageError("the direction is the zero vector")
    u = v / norm
    pp = np.asarray(pos, np.float64) @ u
    pn = np.asarray(neg, np.float64) @ u
    mp, mn = float(pp.mean()), float(pn.mean())
    dof = len(pp) + len(pn) - 2
    # Pooled (Cohen's d) std; with one sample per side there is no spread to estimate.
    pooled_var = (float(((pp - mp) ** 2).sum()) + float(((pn - mn) ** 2).sum())) / dof if dof > 0 else 0.0
    pooled = math.sqrt(pooled_var)
    diff = mp - mn
    # The relative floor treats float32 rounding of identical projections as zero spread.
    if pooled <= 1e-12 * max(1.0, abs(mp), abs(mn)):
        gap = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        gap = diff / pooled
    return SeparationReport(
        pos_mean_proj=mp,
        neg_mean_proj=mn,
        gap_in_std=gap,
        accuracy=_best_threshold_accuracy(pp, pn),
        n_pos=len(pp),
        n_neg=len(pn),
    )


# ---- editing ------------------------------------------------------------------------------------


def apply_directions(z: np.ndarray, directions: Sequence[tuple[np.ndarray, float]]) -> np.ndarray:
    """``z + sum(w_i * v_i)`` for ``(v_i, w_i)`` pairs: float32, shape (n, d)."""
    zz = _matrix(z, "the latents to edit")
    out = zz.copy()
    for i, (vec, weight) in enumerate(directions):
        v = _vector(vec, f"direction #{i + 1}")
        _same_dim(zz, v, "the latents to edit", f"direction #{i + 1}")
        w = float(weight)
        if not math.isfinite(w):
            raise UsageError(f"the strength of direction #{i + 1} must be finite, got {weight!r}")
        out += w * v
    return _finite_result(out, "the edited latents")


def strength_sweep(z: np.ndarray, direction: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """Each latent moved by each scale along ``direction``: float32, shape (n, len(scales), d)."""
    zz = _matrix(z, "the latents to edit")
    v = _vector(direction, "the direction")
    _same_dim(zz, v, "the latents to edit", "the direction")
    s = np.asarray(list(scales), dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise UsageError("give at least one strength to sweep")
    if not np.all(np.isfinite(s)):
        raise UsageError("strengths must be finite numbers")
    if zz.shape[0] * s.size > MAX_SWEEP:
        raise UsageError(
            f"{zz.shape[0]:,} latents x {s.size:,} strengths make {zz.shape[0] * s.size:,} images; "
            f"at most {MAX_SWEEP:,} per command: split the latents"
        )
    out = zz[:, None, :] + s[None, :, None] * v[None, None, :]
    return _finite_result(out, "the edited latents")


# ---- one meaning of strength --------------------------------------------------------------------

DIRECTION_METHODS = ("mean", "boundary")

# How a stored direction's strength reads. "mean-gap": strength 1 moves a sample by the gap between
# the two groups' means measured along the direction, whatever the method that found it, so
# `--method mean` and `--method boundary` agree at the same strength. "unit": the vector has length
# 1, so strength 1 is one standard deviation of the N(0, I) prior along it.
SCALE_MEAN_GAP = "mean-gap"
SCALE_UNIT = "unit"


def fit_direction(pos: np.ndarray, neg: np.ndarray, method: str) -> np.ndarray:
    """The raw direction of ``method`` (mean difference at its length, boundary as a unit normal)."""
    if method not in DIRECTION_METHODS:
        raise UsageError(f"--method must be mean or boundary, got {method!r}")
    return mean_difference(pos, neg) if method == "mean" else linear_boundary(pos, neg)


def _fit_unit(p: np.ndarray, n: np.ndarray, method: str, others: Sequence[np.ndarray]) -> np.ndarray:
    """Unit direction of the whole procedure (fit, then remove ``others``), in float64."""
    v = fit_direction(p, n, method)
    if len(others):
        v = project_out(v, others)
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def scale_text(meta: dict, length: float) -> str:
    """What strength 1 means for a direction entry with ``meta``, for ``apply``/``latents show``."""
    scale = meta.get("scale") if isinstance(meta, dict) else None
    if scale == SCALE_MEAN_GAP:
        gap = meta.get("gap", length)
        return (
            f"length {length:.3f}; strength 1 = the mean gap between its groups ({float(gap):.3f} prior std along it)"
        )
    if scale == SCALE_UNIT:
        return f"length {length:.3f}; strength 1 = one prior standard deviation along it"
    if isinstance(scale, str) and scale:
        return f"length {length:.3f}; strength: {scale}"
    return (
        f"length {length:.3f}; strength 1 = adding the stored vector once "
        "(no scale recorded: made before scales were stored, or by hand)"
    )


# ---- out-of-sample report -----------------------------------------------------------------------

# Up to this many picks in all, every pick is left out once (exact, and the count a user makes by
# hand); above it 10 stratified folds keep the cost at 10 fits per relabelling.
LOO_MAX = 40
FOLDS = 10
# The direction a user can rely on points close to the true one: cos 0.9 is about 25 degrees, where
# an edit of strength 1 still moves the attribute by 90% of the gap and leaks 44% of it elsewhere.
TARGET_COSINE = 0.9


@dataclass(frozen=True)
class OutOfSampleReport:
    """How well the whole procedure (fit + project out + midpoint threshold) sorts picks it did not
    see, against what random relabellings of the same sizes reach.

    ``accuracy`` is *balanced* (the mean of the two sides' hit rates), so chance is 0.5 whatever
    the sizes. ``baseline_*`` come from ``permutations`` seeded relabellings put through the same
    procedure. ``expected_cosine`` estimates how well the mean difference points along the true
    one (see ``picks_needed``); ``picks_per_side`` is how many picks per side would reach
    ``TARGET_COSINE`` (None when no gap shows above the noise).
    """

    method: str
    scheme: str
    n_pos: int
    n_neg: int
    dim: int
    accuracy: float | None
    baseline_mean: float | None
    baseline_p95: float | None
    p_value: float | None
    permutations: int
    seed: int
    expected_cosine: float | None
    picks_per_side: int | None
    warnings: tuple[str, ...]

    def summary(self) -> str:
        if self.accuracy is None:
            return f"held-out accuracy: not measured ({self.scheme})"
        text = f"held-out accuracy {self.accuracy:.0%} ({self.scheme}, balanced: chance 50%)"
        if self.baseline_p95 is not None:
            text += (
                f"; random splits of the same sizes reach {self.baseline_mean:.0%} "
                f"(95th percentile {self.baseline_p95:.0%}, {self.permutations} relabellings, "
                f"seed {self.seed}; p = {self.p_value:.3f})"
            )
        return text

    def to_meta(self) -> dict:
        return {
            "scheme": self.scheme,
            "accuracy": self.accuracy,
            "baseline_mean": self.baseline_mean,
            "baseline_p95": self.baseline_p95,
            "p_value": self.p_value,
            "permutations": self.permutations,
            "seed": self.seed,
            "expected_cosine": self.expected_cosine,
            "picks_per_side": self.picks_per_side,
            "warnings": list(self.warnings),
        }


def picks_needed(pos: np.ndarray, neg: np.ndarray) -> tuple[float | None, int | None]:
    """(estimated cosine between the fitted and the true mean difference, picks per side that
    would reach ``TARGET_COSINE``).

    The argument: with within-group spread sigma^2 per dimension, the estimated difference is the
    true one plus noise of squared length N = d sigma^2 (1/n_pos + 1/n_neg). |D_hat|^2 - N is an
    unbiased estimate of the true squared gap S, so cos ~ sqrt(S / (S + N)); reaching cos c needs
    N <= S (1/c^2 - 1), i.e. n per side >= 2 d sigma^2 / (S (1/c^2 - 1)) with equal sides. The
    boundary method sees the same data, so the same count is a fair guide for it.
    """
    p, q = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    d = p.shape[1]
    dof = len(p) + len(q) - 2
    if dof <= 0:
        return None, None
    ss = ((p - p.mean(0)) ** 2).sum() + ((q - q.mean(0)) ** 2).sum()
    sigma2 = float(ss) / (dof * d)
    noise = d * sigma2 * (1 / len(p) + 1 / len(q))
    signal = float(((p.mean(0) - q.mean(0)) ** 2).sum()) - noise
    if signal <= 0 or sigma2 <= 0:
        return (None if sigma2 <= 0 else 0.0), None
    cos = math.sqrt(signal / (signal + noise))
    per_side = math.ceil(2 * d * sigma2 / (signal * (1 / TARGET_COSINE**2 - 1)))
    return cos, per_side


def _folds(n_pos: int, n_neg: int, rng: np.random.Generator) -> tuple[str, list[np.ndarray]]:
    """Test-index sets over the stacked (pos, neg) rows: leave-one-out, or stratified k folds."""
    n = n_pos + n_neg
    if n <= LOO_MAX:
        return "leave-one-out", [np.array([i]) for i in range(n)]
    k = min(FOLDS, n_pos, n_neg)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[:n_pos] = rng.permutation(np.arange(n_pos) % k)
    fold_of[n_pos:] = rng.permutation(np.arange(n_neg) % k)
    return f"{k}-fold", [np.flatnonzero(fold_of == f) for f in range(k)]


def _held_out_accuracy(
    x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], method: str, others: Sequence[np.ndarray]
) -> float:
    """Balanced accuracy of the whole procedure on each fold's unseen rows."""
    hits = np.zeros(len(y), dtype=bool)
    for test in folds:
        train = np.ones(len(y), dtype=bool)
        train[test] = False
        p, n = x[train & (y == 1)], x[train & (y == 0)]
        try:
            u = _fit_unit(p, n, method, others)
        except UsageError:
            continue  # the rest cannot be told apart: the held-out rows are not sorted
        # No intercept travels with a direction, so the rule is the midpoint of the two training
        # means along it: the same for both methods.
        threshold = 0.5 * (p.mean(0) @ u + n.mean(0) @ u)
        hits[test] = (x[test] @ u > threshold) == (y[test] == 1)
    return 0.5 * (float(hits[y == 1].mean()) + float(hits[y == 0].mean()))


def out_of_sample(
    pos: np.ndarray,
    neg: np.ndarray,
    method: str = "mean",
    orthogonal_to: Sequence[np.ndarray] = (),
    *,
    permutations: int = 100,
    seed: int = 0,
) -> OutOfSampleReport:
    """Held-out accuracy of the direction procedure, a permutation baseline and warnings.

    Leave-one-out up to ``LOO_MAX`` picks in all, else ``FOLDS`` stratified folds; each random
    relabelling keeps both sides' sizes and goes through the same folds and fits. The picks
    "cannot support a direction" when the held-out accuracy does not beat the baseline's 95th
    percentile (a one-sided test at 5%), or when the estimated cosine to the true direction is
    below ``TARGET_COSINE``; the warning then says how many picks per side would help.
    """
    validate_sets(pos, neg)
    if method not in DIRECTION_METHODS:
        raise UsageError(f"--method must be mean or boundary, got {method!r}")
    _check_permutations(permutations)
    p, q = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    others = [np.asarray(o, np.float64) for o in orthogonal_to]
    d = p.shape[1]
    cos, per_side = picks_needed(p, q)
    if len(p) < 2 or len(q) < 2:
        return OutOfSampleReport(
            method=method,
            scheme="not measured: fewer than 2 picks on a side",
            n_pos=len(p),
            n_neg=len(q),
            dim=d,
            accuracy=None,
            baseline_mean=None,
            baseline_p95=None,
            p_value=None,
            permutations=0,
            seed=seed,
            expected_cosine=cos,
            picks_per_side=per_side,
            warnings=(f"{len(p)} pos and {len(q)} neg picks: a held-out check needs at least 2 per side; pick more",),
        )
    x = np.concatenate([p, q])
    y = np.concatenate([np.ones(len(p), np.int64), np.zeros(len(q), np.int64)])
    rng = np.random.default_rng(seed)
    scheme, folds = _folds(len(p), len(q), rng)
    acc = _held_out_accuracy(x, y, folds, method, others)
    base_mean = base_p95 = p_value = None
    if permutations:
        null = np.array([_held_out_accuracy(x, rng.permutation(y), folds, method, others) for _ in range(permutations)])
        base_mean, base_p95 = float(null.mean()), float(np.quantile(null, 0.95))
        # The +1s count the observed labelling as one of the relabellings (an exact test).
        p_value = float((1 + np.count_nonzero(null >= acc)) / (1 + permutations))
    warnings = _held_out_warnings(acc, base_p95, cos, per_side, len(p), len(q), d)
    return OutOfSampleReport(
        method,
        scheme,
        len(p),
        len(q),
        d,
        acc,
        base_mean,
        base_p95,
        p_value,
        permutations,
        seed,
        cos,
        per_side,
        warnings,
    )


def _check_permutations(permutations: int) -> None:
    if (
        isinstance(permutations, bool)
        or not isinstance(permutations, (int, np.integer))
        or not 0 <= permutations <= 10_000
    ):
        raise UsageError(f"--permutations must be an integer from 0 to 10,000, got {permutations!r}")


def _held_out_warnings(
    acc: float, base_p95: float | None, cos: float | None, per_side: int | None, n_pos: int, n_neg: int, d: int
) -> tuple[str, ...]:
    """Why the picks cannot support a direction (no better than random splits), or else how far
    from the true direction the estimate likely points."""
    if base_p95 is not None and acc <= base_p95:
        return (
            f"the picks cannot support a direction: held-out accuracy {acc:.0%} is within what random "
            f"splits of the same sizes reach (95th percentile {base_p95:.0%})"
            + (
                f"; about {per_side} picks per side would help"
                if per_side
                else "; no gap shows above the noise, so check the picks rather than adding more like them"
            ),
        )
    if cos is not None and cos < TARGET_COSINE and per_side:
        return (
            f"{n_pos} vs {n_neg} picks in {d} dimensions: the direction is estimated to point only "
            f"cos {cos:.2f} along the true one; about {per_side} picks per side would reach cos {TARGET_COSINE}",
        )
    return ()


@dataclass(frozen=True)
class BuiltDirection:
    vector: np.ndarray  # float32 (d,), at the scale ``meta["scale"]`` names
    report: SeparationReport  # on the picks themselves (optimistic)
    held_out: OutOfSampleReport | None
    meta: dict


def build_direction(
    pos: np.ndarray,
    neg: np.ndarray,
    method: str = "mean",
    orthogonal_to: Sequence[np.ndarray] = (),
    unit: bool = False,
    *,
    permutations: int = 100,
    seed: int = 0,
    held_out: bool = True,
) -> BuiltDirection:
    """Every step ``attr-vector`` takes: fit, remove ``orthogonal_to``, scale, measure.

    Scale: with ``unit`` the vector has length 1 ("unit"); otherwise it is the unit direction
    times the gap between the group means projected on it ("mean-gap"), so strength 1 moves a
    sample from the neg mean's level to the pos mean's along the direction, for either method. For
    ``mean`` without ``orthogonal_to`` that is exactly ``mean(pos) - mean(neg)``.
    """
    validate_sets(pos, neg)
    u = _fit_unit(pos, neg, method, [np.asarray(o, np.float64) for o in orthogonal_to])
    gap = float((np.asarray(pos, np.float64).mean(0) - np.asarray(neg, np.float64).mean(0)) @ u)
    if not gap > 0:
        raise UsageError(
            "after removing --orthogonal-to, pos and neg no longer differ along what is left; "
            "drop an --orthogonal-to direction"
        )
    vector = (u if unit else gap * u).astype(np.float32)
    report = separation(pos, neg, vector)
    oos = out_of_sample(pos, neg, method, orthogonal_to, permutations=permutations, seed=seed) if held_out else None
    meta = {
        "scale": SCALE_UNIT if unit else SCALE_MEAN_GAP,
        "length": float(np.linalg.norm(vector)),
        "gap": gap,
        "method": method,
        "unit": bool(unit),
        "n_pos": len(pos),
        "n_neg": len(neg),
        # JSON has no infinity: one pick per side (no spread to measure the gap in) is null.
        "separation": {
            "accuracy": report.accuracy,
            "gap_in_std": report.gap_in_std if math.isfinite(report.gap_in_std) else None,
        },
    }
    if oos is not None:
        meta["out_of_sample"] = oos.to_meta()
    return BuiltDirection(vector, report, oos, meta)


# ---- overlap with other directions --------------------------------------------------------------

OVERLAP_TOP = 5  # how many of the closest directions a report names
# The least |cosine| worth a user's attention: an edit of strength 1 then moves the other direction
# by 0.3 of the first's length, enough to see.
OVERLAP_FLOOR = 0.3


def overlap_threshold(dim: int) -> float:
    """The |cosine| above which two directions in ``dim`` dimensions clearly overlap.

    Two independent random unit vectors in d dimensions have a cosine of about N(0, 1/d), so
    |cos| > 4/sqrt(d) (four standard deviations) happens by chance at most about 6 times in
    100,000 pairs (the exact distribution's tails are thinner still: 1 in 100,000 at d = 32): a
    store of 100 directions flags one by chance less than once in 160 directions made.
    ``OVERLAP_FLOOR`` keeps large spaces (d = 512: 4/sqrt(d) = 0.18) from flagging overlaps too
    small to matter. Up to 16 dimensions 4/sqrt(d) is 1 or more and nothing is flagged: there,
    random directions are too often close for a cosine to tell an overlap from chance.
    """
    if dim < 1:
        raise UsageError(f"a latent size must be at least 1, got {dim}")
    return max(4.0 / math.sqrt(dim), OVERLAP_FLOOR)


@dataclass(frozen=True)
class Overlap:
    """How far a new direction points along another, named one: the cosine between them."""

    name: str
    cosine: float  # in [-1, 1]; negative: the new direction moves the other one backwards
    clear: bool  # |cosine| above ``overlap_threshold``: more than chance, and enough to see

    def to_meta(self) -> dict:
        return {"name": self.name, "cosine": self.cosine, "clear": self.clear}

    def hint(self, command: str | None = None) -> str:
        """What to do about it: ``command`` (the user's own, holding this one still), or the flag to add."""
        fix = command or f"add --orthogonal-to {self.name}"
        return f"overlaps {self.name!r} (cos {_signed(self.cosine)}): to hold it still, {fix}"


def _signed(cosine: float) -> str:
    return f"{round(cosine, 2) + 0.0:+.2f}"  # + 0.0: -0.001 reads +0.00, not -0.00


@dataclass(frozen=True)
class Overlaps:
    """A new direction against the other directions it was compared with."""

    dim: int
    threshold: float  # overlap_threshold(dim)
    closest: tuple[Overlap, ...]  # the largest |cosine| first, at most OVERLAP_TOP
    compared: int  # how many directions were compared

    @property
    def clear(self) -> list[Overlap]:
        return [o for o in self.closest if o.clear]

    def to_meta(self) -> list[dict]:
        return [o.to_meta() for o in self.closest]

    def summary(self) -> str | None:
        """One line naming the closest directions; None when there was none to compare with."""
        if not self.compared:
            return None
        what = "direction" if self.compared == 1 else f"{self.compared} directions"
        if self.threshold >= 1:
            rule = f"in {self.dim} dimensions chance alone gives cosines this large, so none is flagged"
        else:
            rule = f"more than chance above |cos| {self.threshold:.2f} in {self.dim} dimensions"
        closest = ", ".join(f"{o.name} {_signed(o.cosine)}" for o in self.closest)
        return f"cosine with the store's {what} ({rule}): {closest}"


def overlaps(vector: np.ndarray, others: Sequence[tuple[str, np.ndarray]], top: int = OVERLAP_TOP) -> Overlaps:
    """The cosine between ``vector`` and each named vector of ``others`` (all of its size), the
    ``top`` largest in size first, each marked clear above ``overlap_threshold``."""
    v = _vector(vector, "the direction")
    norm = np.linalg.norm(v)
    if not norm > 0:
        raise UsageError("the direction is the zero vector")
    threshold = overlap_threshold(v.size)
    found = []
    for name, other in others:
        o = _vector(other, f"direction {name!r}")
        _same_dim(v, o, "the direction", f"direction {name!r}")
        length = np.linalg.norm(o)
        if length > 0:  # a zero vector points nowhere: nothing to overlap
            cos = float(np.clip(v @ o / (norm * length), -1.0, 1.0))
            found.append(Overlap(name, cos, abs(cos) > threshold))
    found.sort(key=lambda o: (-abs(o.cosine), o.name))
    return Overlaps(v.size, threshold, tuple(found[:top]), len(found))
