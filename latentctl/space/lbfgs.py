"""L-BFGS for a batch of independent problems: one latent per image, each minimised on its own.

Why not ``torch.optim.LBFGS``: it treats all parameters as one vector, so a batch of images would
share one curvature model and one line search, and one hard image would hold every other back.
Here each row keeps its own history of (s, y) pairs and its own step length, and every call of
``fn`` evaluates each row at its own trial point: a row that must backtrack costs the others
nothing, so ``evals`` calls are ``evals`` steps for every row.

Why L-BFGS at all: refining a GAN encoder's guess is a smooth, badly conditioned problem in ~100
dimensions (some latent directions change the picture a lot, most hardly at all). Adam's steps
have one size per coordinate, so in 30 steps it either overshoots the stiff directions or crawls
along the flat ones; a quasi-Newton model learns the curvature from the gradients it has seen.
Measured on the demo's GAN and the seed's (docs/directions.md): from the same guesses, 30 Adam
steps ended 4-15 % above a full 300-step projection's error, 30 of these 0-3 % below it.

The line search is Armijo backtracking (halve the step until the loss falls by at least
``c1`` x the predicted decrease); a row that has halved ``max_halvings`` times forgets its history
and starts again from the gradient, as does one whose direction does not descend.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Objective = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # x (B, d) -> f (B,), df/dx (B, d)


def _direction(g, S, Y, rho, count, head, first_step: float) -> torch.Tensor:
    """-H g for each row by the two-loop recursion over its ``count`` newest pairs; rows without
    pairs take a gradient step whose mean coordinate move is ``first_step``."""
    B, m, _ = S.shape
    rows = torch.arange(B, device=g.device)
    k = int(count.max()) if B else 0
    q = g.clone()
    slots, alphas = [], []
    for j in range(k):  # newest first
        idx = (head - 1 - j) % m
        valid = (j < count).to(g.dtype)
        a = valid * rho[rows, idx] * (S[rows, idx] * q).sum(1)
        q = q - a[:, None] * Y[rows, idx]
        slots.append(idx)
        alphas.append(a)
    if k:
        newest = slots[0]
        s, y = S[rows, newest], Y[rows, newest]
        gamma = (s * y).sum(1) / (y * y).sum(1).clamp_min(1e-30)
    else:
        gamma = torch.zeros(B, dtype=g.dtype, device=g.device)
    start = first_step / g.abs().mean(1).clamp_min(1e-12)
    r = torch.where(count > 0, gamma, start)[:, None] * q
    for j in reversed(range(k)):  # oldest first
        idx = slots[j]
        valid = (j < count).to(g.dtype)
        b = valid * rho[rows, idx] * (Y[rows, idx] * r).sum(1)  # alphas[j] is 0 where invalid too
        r = r + S[rows, idx] * (alphas[j] - b)[:, None]
    return -r


def minimize(
    fn: Objective,
    x0: torch.Tensor,
    *,
    evals: int,
    history: int = 30,
    first_step: float = 0.01,
    c1: float = 1e-4,
    max_halvings: int = 6,
) -> torch.Tensor:
    """Minimise each row's objective from ``x0`` (B, d) with ``evals`` calls of ``fn`` in all
    (the first at ``x0``). Returns each row's last accepted point, its lowest loss so far."""
    if evals < 1:
        return x0.detach().clone()
    x = x0.detach().clone()
    B, d = x.shape
    f, g = fn(x)
    S = x.new_zeros(B, history, d)
    Y = x.new_zeros(B, history, d)
    rho = x.new_zeros(B, history)
    count = torch.zeros(B, dtype=torch.long, device=x.device)
    head = torch.zeros(B, dtype=torch.long, device=x.device)
    rows = torch.arange(B, device=x.device)
    eps = torch.finfo(x.dtype).eps
    direction = _direction(g, S, Y, rho, count, head, first_step)
    t = x.new_ones(B)
    for done in range(2, evals + 1):
        trial = x + t[:, None] * direction
        ft, gt = fn(trial)
        # A trial with a non-finite loss or gradient is not accepted (its step is halved): an
        # accepted NaN gradient would freeze the row for good.
        finite = torch.isfinite(ft) & torch.isfinite(gt).all(1)
        ok = finite & (ft <= f + c1 * t * (g * direction).sum(1))
        s, y = trial - x, gt - g
        sy = (s * y).sum(1)
        # The curvature condition keeps every H positive definite; as a cosine between s and y it
        # does not depend on the loss's scale (an absolute threshold would turn a loss scaled
        # down into gradient descent).
        store = ok & (sy > eps * s.norm(dim=1) * y.norm(dim=1))
        at = head[store]
        S[rows[store], at] = s[store]
        Y[rows[store], at] = y[store]
        rho[rows[store], at] = 1.0 / sy[store]
        head = torch.where(store, (head + 1) % history, head)
        count = torch.where(store, (count + 1).clamp_max(history), count)
        x = torch.where(ok[:, None], trial, x)
        f = torch.where(ok, ft, f)
        g = torch.where(ok[:, None], gt, g)
        t = torch.where(ok, torch.ones_like(t), t * 0.5)
        stuck = t < 0.5**max_halvings  # the curvature model is wrong here: start again from -g
        count = torch.where(stuck, torch.zeros_like(count), count)
        t = torch.where(stuck, torch.ones_like(t), t)
        fresh = ok | stuck
        if fresh.any() and done < evals:
            new = _direction(g, S, Y, rho, count, head, first_step)
            uphill = fresh & ((g * new).sum(1) >= 0)
            if uphill.any():
                count = torch.where(uphill, torch.zeros_like(count), count)
                new = torch.where(uphill[:, None], _direction(g, S, Y, rho, count, head, first_step), new)
            direction = torch.where(fresh[:, None], new, direction)
    return x
