"""Latents in, images out, in bounded batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from latentctl.device import autocast


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, C, S, S) in [-1, 1] -> (B, S, S, C) uint8."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


@torch.inference_mode()
def generate_batches(
    generator: torch.nn.Module,
    z: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 64,
    precision: str = "fp32",
) -> Iterator[np.ndarray]:
    """Yield uint8 image batches for latents ``z`` (n, latent_dim): memory stays that of one batch."""
    was_training = generator.training
    generator.eval()
    try:
        for start in range(0, len(z), batch_size):
            zb = torch.from_numpy(np.ascontiguousarray(z[start : start + batch_size], dtype=np.float32))
            with autocast(device, precision):
                yield to_uint8(generator(zb.to(device)))
    finally:
        generator.train(was_training)


def generate(generator: torch.nn.Module, z: np.ndarray, **kwargs) -> np.ndarray:
    """All images for ``z`` at once: (n, S, S, C) uint8. For large n use ``generate_batches``."""
    batches = list(generate_batches(generator, z, **kwargs))
    if not batches:
        size = generator.config.image_size
        return np.zeros((0, size, size, generator.config.channels), dtype=np.uint8)
    return np.concatenate(batches)
