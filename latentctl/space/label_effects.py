"""What else a direction moves, read from the labels of the images it was made from.

`attr-vector --images DIR --column C` encodes labelled pictures; their other label columns (age,
gender, skin, background...) are known for the same latents. For each of them a linear read-out
is fitted from latent to label (ridge least squares, the way InterFaceGAN reads attributes off a
latent space); moving along the direction at strength 1 then changes the read-out by w·v, which
is set beside the change along random directions of the same length. No image is rendered, so it
costs milliseconds; it is as good as the read-out, whose held-out R² is reported with it and
below ``MIN_R2`` says "cannot tell" rather than guess.

Text columns count each of their values as a 0/1 label (skin == dark, skin == light...), and the
value the direction moves most is reported. Changes are in units of the label's standard
deviation over the pictures, so one threshold serves age in years and a 0/1 indicator alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# A column is "clearly moved" when the direction shifts its read-out by at least a quarter of the
# label's spread over the pictures more than a random direction of the same length does: 5 years
# on ages that spread 20, or about 12 points of a balanced 0/1 label's rate (its spread is 0.5).
LABEL_EFFECT_MARGIN = 0.25
MIN_R2 = 0.1  # held-out R² below this: the latents do not predict the label well enough to judge
RANDOMS = 64  # random directions: their mean |change| is the baseline
RIDGE = 1e-2  # ridge weight per picture, in the latents' units: tames near-collinear latents
HELD_OUT = 0.2  # share of the pictures the R² is measured on
MIN_PICTURES = 20  # fewer labelled pictures than this: no read-out is fitted


@dataclass(frozen=True)
class LabelEffect:
    """How far one label column's read-out moves at strength 1 along a direction."""

    column: str  # "age", or "skin=dark" for one value of a text column
    change: float  # |w·v| / std(label)
    random: float  # mean |w·r| / std(label) over random r with |r| = |v|
    r2: float  # held-out R² of the read-out
    pos_if: str  # a --pos-if that picks this label's high side, for the hint's command

    @property
    def judged(self) -> bool:
        return self.r2 >= MIN_R2

    @property
    def clear(self) -> bool:
        return self.judged and self.change - self.random >= LABEL_EFFECT_MARGIN

    def line(self) -> str:
        head = f"label {self.column}: "
        if not self.judged:
            return (
                head
                + f"the latents do not predict it (held-out R² {self.r2:.2f}), so what the direction does to it is unknown"
            )
        verdict = "moves it" if self.clear else "leaves it about as a random direction does"
        return head + (
            f"read-out change {self.change:.2f} std at strength 1, {self.random:.2f} for a random direction "
            f"of the same length (held-out R² {self.r2:.2f}): {verdict}"
        )

    @property
    def hold_name(self) -> str:
        """The store name the hint's first command saves the held label's own direction as."""
        return self.column.split("=", 1)[0] + "-dir"

    def hint(self, name: str, images: str, again: str) -> str:
        """``again``: the user's attr-vector command with ``--orthogonal-to HOLD_NAME`` added."""
        column = self.column.split("=", 1)[0]
        return (
            f"'{name}' also moves the label {self.column} ({self.change:.2f} std vs {self.random:.2f} at random); "
            f"to hold it still: latentctl attr-vector --images {images} --column {column} --pos-if '{self.pos_if}' "
            f"--save {self.hold_name}, then {again}"
        )

    def to_meta(self) -> dict:
        return {
            "column": self.column,
            "change": round(self.change, 4),
            "random": round(self.random, 4),
            "r2": round(self.r2, 4),
            "clear": self.clear,
        }


def label_effects(
    z: np.ndarray, columns: Mapping[str, np.ndarray], vector: np.ndarray, *, seed: int = 0
) -> list[LabelEffect]:
    """Each column's effect (text columns: their most moved value), largest change first.
    ``columns`` hold one value per row of ``z`` (NaN or None where a picture has no label)."""
    z = np.asarray(z, np.float64).reshape(len(z), -1)  # w+ latents: one row of every layer's w
    v = np.asarray(vector, np.float64).reshape(-1)
    rng = np.random.default_rng([seed, 11])
    randoms = rng.standard_normal((RANDOMS, v.size))
    randoms *= np.linalg.norm(v) / np.maximum(np.linalg.norm(randoms, axis=1, keepdims=True), 1e-12)
    out = []
    for name, values in columns.items():
        effects = [
            _effect(label, z, target, v, randoms, pos_if)
            for label, target, pos_if in _targets(name, np.asarray(values))
        ]
        effects = [e for e in effects if e is not None]
        if effects:
            out.append(max(effects, key=lambda e: (e.judged, e.change - e.random)))
    return sorted(out, key=lambda e: (not e.judged, -(e.change - e.random)))


def _targets(name: str, values: np.ndarray) -> Sequence[tuple[str, np.ndarray, str]]:
    """(label, float target with NaN for unlabelled, --pos-if for its high side) per read-out."""
    if values.dtype != object:
        target = values.astype(np.float64)
        finite = target[np.isfinite(target)]
        if len(np.unique(finite)) < 2:
            return []
        middle = np.median(finite)  # the high side: above the median, or at it when nothing is above (0/1 labels)
        return [(name, target, f">{middle:g}" if (finite > middle).any() else f">={middle:g}")]
    present = np.array([v is not None for v in values])
    kinds = sorted({str(v) for v in values[present]})
    if len(kinds) < 2:
        return []
    return [
        (f"{name}={kind}", np.where(present, (values == kind).astype(np.float64), np.nan), f"=={kind}")
        for kind in kinds
    ]


def _effect(label, z, target, v, randoms, pos_if) -> LabelEffect | None:
    rows = np.isfinite(target)
    x, y = z[rows], target[rows]
    spread = y.std()
    if len(y) < MIN_PICTURES or spread == 0:
        return None
    order = np.random.default_rng(len(y)).permutation(len(y))
    held = order[: max(1, int(len(y) * HELD_OUT))]
    fit = order[len(held) :]
    w, b = _ridge(x[fit], y[fit])
    pred = x[held] @ w + b
    r2 = 1.0 - float(np.mean((y[held] - pred) ** 2)) / max(float(np.var(y[held])), 1e-12)
    w, _ = _ridge(x, y)  # the read-out the change is measured with: every labelled picture
    return LabelEffect(
        column=label,
        change=float(abs(w @ v) / spread),
        random=float(np.abs(randoms @ w).mean() / spread),
        r2=r2,
        pos_if=pos_if,
    )


def _ridge(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(w, b) minimising |x w + b - y|² + RIDGE · n · |w|², b unpenalised."""
    mx, my = x.mean(0), y.mean()
    xc = x - mx
    if x.shape[1] <= len(x):
        w = np.linalg.solve(xc.T @ xc + RIDGE * len(x) * np.eye(x.shape[1]), xc.T @ (y - my))
    else:  # more dimensions than pictures (StyleGAN's w+): the same w from the n x n system
        w = xc.T @ np.linalg.solve(xc @ xc.T + RIDGE * len(x) * np.eye(len(x)), y - my)
    return w, float(my - mx @ w)
