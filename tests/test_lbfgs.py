"""latentctl.lbfgs: per-row L-BFGS converges where a first-order method crawls, rows do not hold
each other back, bad trial points are backtracked from; and the GAN encoder's refinement uses it."""

from __future__ import annotations

import numpy as np
import torch

from latentctl import lbfgs


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
        # point): the row must halve its step each time and carry on; the others must not notice.
        f, g = fn(x)
        calls["n"] += 1
        if 2 <= calls["n"] <= 4:
            f, g = f.clone(), g.clone()
            f[0], g[0] = torch.nan, torch.nan
        return f, g

    x0 = torch.zeros_like(c)
    x = lbfgs.minimize(blows_up, x0, evals=40)
    assert calls["n"] == 40  # evals is the number of calls, whatever the rows do
    f_end, _ = fn(x)
    assert torch.isfinite(x).all() and (f_end < 1e-6 * fn(x0)[0]).all()


def test_refinement_lowers_projections_loss_from_the_encoders_guess_for_every_image():
    from conftest import TINY

    from latentctl.encode import projection_loss, refine, to_tensor
    from latentctl.generate import generate
    from latentctl.models import build_models
    from latentctl.seeds import latents_from_seeds

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
