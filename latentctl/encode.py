"""Real images into the latent space.

AE and VAE models have an encoder (a VAE's code is its mean). A GAN has none, so its latent is
found by optimisation (projection): from several random starts, Adam moves z to minimise a pixel
loss plus a cheap structural term (differences of neighbouring pixels and a 4x-downsampled
comparison, which reward the right edges and layout rather than only the right average colour),
with a light pull towards the prior's typical norm. The best start per image wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from latentctl.checkpoint import Loaded
from latentctl.generate import generate
from latentctl.seeds import latents_from_seeds


@dataclass
class Encoded:
    z: np.ndarray  # (n, latent_dim) float32
    reconstructions: np.ndarray  # (n, S, S, 3) uint8
    errors: np.ndarray  # (n,) RMS pixel error of each reconstruction, in 0-255 units
    method: str  # "encoder" or "projection"


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(n, S, S, 3) uint8 -> (n, 3, S, S) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


def rms_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image RMS difference of two uint8 stacks, in 0-255 units."""
    d = a.astype(np.float64) - b.astype(np.float64)
    return np.sqrt((d**2).reshape(len(a), -1).mean(axis=1))


@torch.inference_mode()
def encode_with_encoder(loaded: Loaded, images: np.ndarray, device: torch.device, batch_size: int = 64) -> np.ndarray:
    enc = loaded.encoder
    enc.eval()
    out = []
    for i in range(0, len(images), batch_size):
        mean, _ = enc(to_tensor(images[i : i + batch_size], device))
        out.append(mean.float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def _structure_loss(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-image loss: pixels + neighbouring-pixel differences + coarse layout. (n,)"""
    pix = (x - t).pow(2).flatten(1).mean(1)
    dx = ((x[..., 1:] - x[..., :-1]) - (t[..., 1:] - t[..., :-1])).pow(2).flatten(1).mean(1)
    dy = ((x[..., 1:, :] - x[..., :-1, :]) - (t[..., 1:, :] - t[..., :-1, :])).pow(2).flatten(1).mean(1)
    coarse = (F.avg_pool2d(x, 4) - F.avg_pool2d(t, 4)).pow(2).flatten(1).mean(1)
    return pix + 0.5 * (dx + dy) + coarse


def project(
    generator: torch.nn.Module,
    images: np.ndarray,
    device: torch.device,
    *,
    steps: int = 300,
    lr: float = 0.05,
    restarts: int = 4,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Latents whose generated images match ``images`` (n, S, S, 3) uint8, by optimisation."""
    dim = generator.config.latent_dim
    generator.eval()
    for p in generator.parameters():
        p.requires_grad_(False)
    try:
        n = len(images)
        target = to_tensor(images, device).repeat(restarts, 1, 1, 1)  # (restarts * n, ...)
        # restart r of image i starts from seed seed + r * n + i: reproducible, all different
        z0 = latents_from_seeds([seed + k for k in range(restarts * n)], dim)
        z = torch.tensor(z0, device=device, requires_grad=True)
        opt = torch.optim.Adam([z], lr=lr)
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = _structure_loss(generator(z), target)
            prior = (z.pow(2).mean(1) - 1).pow(2)  # stay near the typical set of N(0, I)
            (loss + 1e-3 * prior).sum().backward()
            opt.step()
            if on_progress:
                on_progress(step + 1, steps)
        with torch.no_grad():
            final = (generator(z) - target).pow(2).flatten(1).mean(1).view(restarts, n)
            best = final.argmin(0)  # (n,)
            chosen = z.detach().view(restarts, n, dim)[best, torch.arange(n, device=device)]
        return chosen.cpu().numpy().astype(np.float32)
    finally:
        for p in generator.parameters():
            p.requires_grad_(True)


def encode_images(
    loaded: Loaded,
    images: np.ndarray,
    device: torch.device,
    *,
    steps: int = 300,
    lr: float = 0.05,
    restarts: int = 4,
    batch_size: int = 32,
    on_progress: Callable[[int, int], None] | None = None,
) -> Encoded:
    """Latents for real images, with their reconstructions and errors."""
    if loaded.encoder is not None:
        z, method = encode_with_encoder(loaded, images, device), "encoder"
        if on_progress:
            on_progress(len(images), len(images))
    else:
        chunks = []
        for i in range(0, len(images), batch_size):

            def progress(step: int, total: int, done: int = i) -> None:
                if on_progress:
                    on_progress(done * steps + step * min(batch_size, len(images) - done), len(images) * steps)

            chunks.append(project(loaded.generator, images[i : i + batch_size], device,
                                  steps=steps, lr=lr, restarts=restarts, seed=i * restarts, on_progress=progress))
        z, method = np.concatenate(chunks), "projection"
    recon = generate(loaded.generator, z, device=device)
    return Encoded(z=z, reconstructions=recon, errors=rms_error(recon, images), method=method)


def mean_image_error(images: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The trivial baseline: each image's RMS error when "reconstructed" as the mean image."""
    mean = (reference if reference is not None else images).astype(np.float64).mean(axis=0)
    mean_u8 = np.broadcast_to(np.clip(np.round(mean), 0, 255).astype(np.uint8), images.shape)
    return rms_error(mean_u8, images)


__all__ = ["Encoded", "encode_images", "mean_image_error", "project", "rms_error"]
