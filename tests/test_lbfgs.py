"""latentctl.space.lbfgs: per-row L-BFGS converges where a first-order method crawls, rows do not hold
each other back, bad trial points are backtracked from; and the GAN encoder's refinement uses it."""

from __future__ import annotations

import numpy as np
import torch

from latentctl.space import lbfgs


def _quadratics(n: int, d: int, condition: float, seed: int = 0):
    """n convex quadratics f_i(x) = ½ (x - c_i)ᵀ A_i (x - c_i), eigenvalues from 1 to ``condition``."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, d, d, generator=g, dtype=torch.float64))
    eig = torch.logspace(0, np.log10(condition), d, dtype=torch.float64).expand(n, d)
    A = q @ torch.diag_embed(eig) @ q.transpose(1, 2)
    c = torch.randn(n, d, generator=g, dtype=torch.float64)

    def fn(x):
        r = x - c
        Ar = torch.einsum("nij,nj->ni", A, r)
        return 0.5 * (r * Ar).sum(1), Ar

    return fn, c


def test_it_minimises_ill_conditioned_quadratics_where_gradient_steps_crawl():
    fn, c = _quadratics(4, 10, condition=100.0)
    x0 = torch.zeros_like(c)
    f0, _ = fn(x0)
    x = lbfgs.minimize(fn, x0, evals=60)
    f, _ = fn(x)
    # On a quadratic in 10 dimensions L-BFGS with 30 pairs is BFGS, which ends in about d steps;
    # 60 evaluations leave f far below 1e-8 of its start (float64). Gradient descent at the best
    # fixed step shrinks the error by at most (1 - 1/100) per step: 60 steps leave ~30 % of it.
    assert (f / f0 < 1e-8).all(), f / f0
    assert torch.allclose(x, c, atol=1e-4)


def test_rows_are_independent_a_hard_row_does_not_change_an_easy_one():
    hard, c_hard = _quadratics(1, 10, condition=1e4, seed=1)
    easy, c_easy = _quadratics(1, 10, condition=2.0, seed=2)

    def both(x):
        fh, gh = hard(x[:1])
        fe, ge = easy(x[1:])
        return torch.cat([fh, fe]), torch.cat([gh, ge])

    x0 = torch.zeros(2, 10, dtype=torch.float64)
    together = lbfgs.minimize(both, x0, evals=25)
    alone = lbfgs.minimize(easy, x0[1:], evals=25)
    # Each row's arithmetic is its own (reductions along its own 10 numbers), so the easy row ends
    # where it ends alone, up to float64 rounding of a few operations per step.
    assert torch.allclose(together[1:], alone, rtol=0, atol=1e-12)


def test_non_finite_trial_points_are_backtracked_from_and_the_loss_never_rises():
    fn, c = _quadratics(3, 6, condition=10.0, seed=3)
    calls = {"n": 0}

    def blows_up(x):
        # Row 0's 2nd to 4th evaluations come back NaN (a generator overflowing at a wild trial
        # point), row 1's with a finite loss but a NaN gradient: each must halve its step and carry
        # on (an accepted NaN gradient would freeze the row); row 2 must not notice.
        f, g = fn(x)
        calls["n"] += 1
        if 2 <= calls["n"] <= 4:
            f, g = f.clone(), g.clone()
            f[0], g[0] = torch.nan, torch.nan
            f[1], g[1, 0] = f[1] - 1e3, torch.nan  # a tempting loss with a broken gradient
        return f, g

    x0 = torch.zeros_like(c)
    x = lbfgs.minimize(blows_up, x0, evals=40)
    assert calls["n"] == 40  # evals is the number of calls, whatever the rows do
    f_end, _ = fn(x)
    assert torch.isfinite(x).all() and (f_end < 1e-6 * fn(x0)[0]).all()


def _reference_direction(g: np.ndarray, pairs: list, first_step: float) -> np.ndarray:
    """The two-loop recursion (Nocedal & Wright, Algorithm 7.4) for one row, written plainly;
    ``pairs`` oldest first."""
    if not pairs:
        return -g * first_step / np.abs(g).mean()
    q, alphas = g.copy(), []
    for s, y in reversed(pairs):
        a = (s @ q) / (y @ s)
        q -= a * y
        alphas.append(a)
    s, y = pairs[-1]
    r = (s @ y) / (y @ y) * q
    for (s, y), a in zip(pairs, reversed(alphas)):
        r += s * (a - (y @ r) / (y @ s))
    return -r


def test_each_rows_direction_is_the_two_loop_recursion_over_its_own_newest_pairs():
    # Buffers as minimize fills them: 4 slots per row, written at head, head moving on, count
    # capped at 4, a reset setting count to 0 and leaving the old pairs where they were.
    d, m = 5, 4
    rng = np.random.default_rng(0)
    A = rng.normal(size=(d, d))
    A = A @ A.T + np.eye(d)  # SPD, so every pair has s.y > 0
    S, Y = torch.zeros(4, m, d, dtype=torch.float64), torch.zeros(4, m, d, dtype=torch.float64)
    rho = torch.zeros(4, m, dtype=torch.float64)
    count, head = torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long)
    kept = [[] for _ in range(4)]

    def push(row):
        s = rng.normal(size=d)
        y = A @ s
        S[row, head[row]], Y[row, head[row]] = torch.from_numpy(s), torch.from_numpy(y)
        rho[row, head[row]] = 1 / (s @ y)
        head[row] = (head[row] + 1) % m
        count[row] = min(count[row] + 1, m)
        kept[row] = (kept[row] + [(s, y)])[-m:]

    # row 0: no pairs; row 1: 3 (no wrap); row 2: 6 (wrapped: the newest 4 count);
    # row 3: 5 pairs, a reset, then 2 more (stale pairs still in the other slots)
    for row, n in ((1, 3), (2, 6), (3, 5)):
        for _ in range(n):
            push(row)
    count[3], kept[3] = 0, []
    push(3)
    push(3)
    g = torch.from_numpy(rng.normal(size=(4, d)))
    got = lbfgs._direction(g, S, Y, rho, count, head, 0.01).numpy()
    for row in range(4):
        want = _reference_direction(g[row].numpy(), kept[row], 0.01)
        # float64, a few dozen operations on O(1..100) numbers: 1e-10 is far above rounding
        np.testing.assert_allclose(got[row], want, rtol=1e-10, atol=1e-12)
    # The secant condition of the newest pair: H y = s, so the direction of y is -s.
    for row in (1, 2, 3):
        s_new, y_new = kept[row][-1]
        yy = torch.from_numpy(np.stack([y_new] * 4))
        np.testing.assert_allclose(lbfgs._direction(yy, S, Y, rho, count, head, 0.01)[row].numpy(), -s_new, rtol=1e-9)


def test_it_finds_the_minimum_of_a_non_convex_valley_at_any_scale_of_the_loss():
    # Rosenbrock's valley from the classic start (-1.2, 1), one row per scale: on its curved floor
    # many pairs have s.y <= 0 or lead uphill, and must be left out or reset; a scaled-down copy
    # of the same loss must behave the same (the curvature test is scale-free).
    scales = torch.tensor([1.0, 1e-14], dtype=torch.float64)

    def rosenbrock(x):
        a, b = x[:, 0], x[:, 1]
        f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
        g = torch.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], 1)
        return f * scales, g * scales[:, None]

    x0 = torch.tensor([[-1.2, 1.0], [-1.2, 1.0]], dtype=torch.float64)
    seen = []

    def recording(x):
        f, g = rosenbrock(x)
        seen.append(f / scales)
        return f, g

    x = lbfgs.minimize(recording, x0, evals=300, first_step=0.1)
    f_end = rosenbrock(x)[0] / scales
    assert torch.allclose(x, torch.ones_like(x), atol=1e-4), x
    assert (f_end < 1e-8).all() and (f_end <= seen[0]).all()


def test_refinement_lowers_projections_loss_from_the_encoders_guess_for_every_image():
    from conftest import TINY

    from latentctl.models import build_models
    from latentctl.seeds import latents_from_seeds
    from latentctl.space.encode import projection_loss, refine, to_tensor
    from latentctl.space.generate import generate

    torch.manual_seed(0)
    G, _ = build_models(TINY)
    G.eval()
    images = generate(G, latents_from_seeds(list(range(100, 106)), TINY.latent_dim), device=torch.device("cpu"))
    guess = latents_from_seeds(list(range(6)), TINY.latent_dim)  # a poor guess: other seeds
    z = refine(G, images, guess, torch.device("cpu"), steps=20)
    target = to_tensor(images, torch.device("cpu"))
    with torch.no_grad():
        before = projection_loss(G, torch.from_numpy(guess), target)
        after = projection_loss(G, torch.from_numpy(z), target)
    # Every accepted step lowers its image's loss (Armijo), so no image can end worse; on these
    # targets, which G can make exactly, 20 steps must also close most of the gap.
    assert (after <= before).all()
    assert after.mean() < 0.5 * before.mean()
    assert all(p.requires_grad for p in G.parameters())  # the generator is given back trainable
