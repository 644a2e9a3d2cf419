"""Differentiable augmentation for the discriminator, with ADA's adaptive strength.

With a few thousand pictures D memorises the training set, its verdicts stop carrying information
and G collapses or stalls. Showing D augmented reals *and* augmented fakes (the same random
transforms, differentiable, so G's gradient passes through them) removes that shortcut without
teaching G the augmentations (Zhao et al. 2020, "DiffAugment"; Karras et al. 2020, "ADA").

Each sample is transformed with probability ``p`` by each of: colour (brightness, saturation,
contrast), translation (up to 1/8 of the size, zero fill) and cutout (a square of half the size);
``--augment-ops`` picks a subset.
``AdaptiveP`` raises ``p`` while D is over-confident on reals (E[sign(D(real))] above the target,
0.6 as in ADA) and lowers it otherwise, at a pace that can take p from 0 to 1 in ``speed_kimg``
thousand real images.

Everything draws from torch's global generator, so a resumed run repeats the same transforms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from latentctl.config import AUGMENT_OPS, parse_augment_ops

ADA_INTERVAL = 4  # steps between adjustments of p (ADA: 4)
ADA_SPEED_KIMG = 100.0  # p can move from 0 to 1 in this many thousand real images (ADA: 500 for big sets)


def _chance(x: torch.Tensor, p: float) -> torch.Tensor:
    """(B, 1, 1, 1) float: 1 for the samples that get this transform."""
    return (torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p).to(x.dtype)


def _colour(x: torch.Tensor, p: float) -> torch.Tensor:
    on = _chance(x, p)
    b = (torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5) * on  # brightness +-0.5
    x = x + b
    if x.shape[1] >= 3:  # saturation: grey pictures have none
        on = _chance(x, p)
        mean = x[:, :3].mean(dim=1, keepdim=True)
        s = 1 + (torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * 2 - 1) * on  # x0..2
        rgb = (x[:, :3] - mean) * s + mean
        x = torch.cat([rgb, x[:, 3:]], dim=1)
    on = _chance(x, p)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    c = 1 + (torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5) * on  # x0.5..1.5
    return (x - mean) * c + mean


def _translate(x: torch.Tensor, p: float, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    on = (torch.rand(b, device=x.device) < p).float()
    limit = torch.tensor([max(1, round(w * ratio)), max(1, round(h * ratio))], device=x.device)
    # Whole-pixel shifts sampled with "nearest": no blur, and exact zero fill outside the picture.
    px = torch.round((torch.rand(b, 2, device=x.device) * 2 - 1) * limit) * on[:, None]
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = px[:, 0] * 2 / w
    theta[:, 1, 2] = px[:, 1] * 2 / h
    grid = F.affine_grid(theta, [b, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False).to(x.dtype)


def _cutout(x: torch.Tensor, p: float, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    on = torch.rand(b, device=x.device) < p
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    cy = torch.randint(0, h + 1 - ch % 2, (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + 1 - cw % 2, (b, 1, 1), device=x.device)
    yy = torch.arange(h, device=x.device).view(1, h, 1)
    xx = torch.arange(w, device=x.device).view(1, 1, w)
    hole = ((yy - cy).abs() < ch / 2) & ((xx - cx).abs() < cw / 2) & on.view(b, 1, 1)
    return x * (~hole).unsqueeze(1).to(x.dtype)


OPS = {"colour": _colour, "translation": _translate, "cutout": _cutout}


def augment(x: torch.Tensor, p: float, ops: str | Sequence[str] = AUGMENT_OPS) -> torch.Tensor:
    """The same family of random transforms for reals and fakes; identity when p == 0. ``ops``: the
    transforms' names, or ``--augment-ops``' text (parsed here; the trainer parses it once)."""
    if p <= 0:
        return x
    for op in parse_augment_ops(ops) if isinstance(ops, str) else ops:
        x = OPS[op](x, p)
    return x


def mirror(x: torch.Tensor) -> torch.Tensor:
    """Random horizontal flips of real images (half of them): a data set twice the size for
    pictures whose left and right mean the same (faces, not digits or text)."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


class AdaptiveP:
    """ADA's controller: p follows the sign of (E[sign(D(real))] - target)."""

    def __init__(self, mode: str, target: float, batch_real: int, p: float | None = None):
        self.adaptive = mode == "ada"
        self.p = (0.0 if self.adaptive else (0.0 if mode == "off" else float(mode))) if p is None else p
        self.target = target
        self.batch_real = batch_real
        self._signs: list[float] = []

    def observe(self, real_logits: torch.Tensor) -> None:
        if not self.adaptive:
            return
        self._signs.append(float(torch.sign(real_logits.detach().float()).mean()))
        if len(self._signs) >= ADA_INTERVAL:
            rt = sum(self._signs) / len(self._signs)
            step = len(self._signs) * self.batch_real / (ADA_SPEED_KIMG * 1000)
            self.p = min(1.0, max(0.0, self.p + math.copysign(step, rt - self.target)))
            self._signs.clear()

    def state(self) -> dict:
        return {"p": self.p, "signs": list(self._signs)}

    def load(self, state: dict) -> None:
        """From a checkpoint's training state; a damaged value is refused, not guessed at."""
        from latentctl.errors import CheckpointError

        p, signs = state.get("p", self.p), state.get("signs", [])
        ok = isinstance(p, (int, float)) and 0 <= p <= 1 and isinstance(signs, list)
        ok = ok and all(isinstance(v, (int, float)) and -1 <= v <= 1 for v in signs)
        if not ok:
            raise CheckpointError("training_state.augment is damaged (p must be in [0, 1]); the run cannot be resumed")
        self.p = float(p)
        self._signs = [float(v) for v in signs][:ADA_INTERVAL]
