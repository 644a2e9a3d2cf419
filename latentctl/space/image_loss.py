"""How far generated pictures are from target pictures: what projection (``encode``) and the GAN
encoder's training (``gan_encoder``) both minimise. A leaf, so neither imports the other for it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def image_loss(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-image loss: pixels + neighbouring-pixel differences + coarse layout. (n,)"""
    pix = (x - t).pow(2).flatten(1).mean(1)
    dx = ((x[..., 1:] - x[..., :-1]) - (t[..., 1:] - t[..., :-1])).pow(2).flatten(1).mean(1)
    dy = ((x[..., 1:, :] - x[..., :-1, :]) - (t[..., 1:, :] - t[..., :-1, :])).pow(2).flatten(1).mean(1)
    coarse = (F.avg_pool2d(x, 4) - F.avg_pool2d(t, 4)).pow(2).flatten(1).mean(1)
    return pix + 0.5 * (dx + dy) + coarse
