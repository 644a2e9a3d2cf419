"""The encoder for the autoencoder families: the discriminator's design, mirrored.

Conv(3x3) + LeakyReLU -> stages x [Conv(3x3, stride 2) + LeakyReLU] -> Flatten -> Dense. An AE's
encoder outputs the code; a VAE's outputs a mean and a log-variance per latent dimension. The
decoder is the GAN's generator, so all three families share sampling and every latent command.
"""

from __future__ import annotations

import torch
from torch import nn

from latentctl.config import BASE_RESOLUTION, ModelConfig
from latentctl.models.gan import NEGATIVE_SLOPE, _keras_init


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.variational = config.family == "vae"
        w = config.width
        layers: list[nn.Module] = [nn.Conv2d(config.channels, w, 3, padding=1), nn.LeakyReLU(NEGATIVE_SLOPE)]
        for _ in range(config.stages):
            layers += [nn.Conv2d(w, w, 3, stride=2, padding=1), nn.LeakyReLU(NEGATIVE_SLOPE)]
        self.features = nn.Sequential(*layers)
        out = config.latent_dim * (2 if self.variational else 1)
        self.fc = nn.Linear(w * BASE_RESOLUTION * BASE_RESOLUTION, out)
        _keras_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, C, S, S) in [-1, 1] -> (mean (B, latent_dim), log-variance or None)."""
        h = self.features(x).reshape(x.shape[0], -1)
        out = self.fc(h)
        if not self.variational:
            return out, None
        mean, logvar = out.chunk(2, dim=1)
        # bounded so exp() cannot overflow early in training
        return mean, logvar.clamp(-30.0, 20.0)
