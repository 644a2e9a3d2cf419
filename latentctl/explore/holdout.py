"""A held-out check for a direction made from two piles: leave-one-out accuracy.

``latents.separation`` measures a direction on the very picks that made it, which is optimistic
for 10 picks in a 100-dimensional space (any two small sets separate there). Leaving each pick
out, fitting on the rest and asking which side the left-out pick falls on tells the user whether
the direction would sort a *new* sample. ``latents`` had no such function when this was written;
if ``latents.out_of_sample`` appears, this should call it instead.
"""

from __future__ import annotations

import numpy as np

from latentctl import latents as L
from latentctl.errors import LatentctlError


def fit_direction(pos: np.ndarray, neg: np.ndarray, method: str) -> np.ndarray:
    return L.mean_difference(pos, neg) if method == "mean" else L.linear_boundary(pos, neg)


def leave_one_out_accuracy(pos: np.ndarray, neg: np.ndarray, method: str = "mean") -> float | None:
    """Fraction of picks that land on their own side when left out of the fit; None when a side
    has fewer than 2 picks (nothing would be left to fit that side on).

    The threshold is the midpoint of the two training sides' mean projections: the direction
    alone carries no intercept (``linear_boundary`` returns only the unit normal).
    """
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    if len(pos) < 2 or len(neg) < 2:
        return None
    correct = 0
    for side, pile in ((1, pos), (0, neg)):
        for i in range(len(pile)):
            held = pile[i]
            rest = np.delete(pile, i, axis=0)
            p, n = (rest, neg) if side == 1 else (pos, rest)
            try:
                v = fit_direction(p, n, method).astype(np.float64)
            except LatentctlError:
                continue  # the rest cannot be told apart: the held-out pick is not sorted
            threshold = 0.5 * (p.mean(axis=0) @ v + n.mean(axis=0) @ v)
            correct += int((held @ v > threshold) == (side == 1))
    return correct / (len(pos) + len(neg))
