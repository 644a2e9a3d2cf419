"""The "lite" GAN: the seed's shape, with the changes that make small data sets train on a CPU.

Generator: Dense(latent -> width*8*8) -> reshape -> pixel norm + LeakyReLU -> stages x [nearest
upsample x2 -> Conv(3x3) -> pixel norm -> LeakyReLU] -> Conv(3x3, channels) + tanh.
  * Resize-then-convolve instead of a stride-2 transposed convolution: every output pixel sees
    the same number of kernel taps, so no checkerboard pattern (Odena et al. 2016).
  * Pixel norm (ProGAN) after each convolution: keeps activations at unit scale without batch
    statistics, so a sample does not depend on what else is in its batch (BatchNorm would), and
    the EMA generator needs no running statistics.
  * The first layer stays one Dense layer that consumes z, so SeFa (`latentctl directions`) reads
    its weight exactly as on the seed's model.
Discriminator: Conv(3x3) -> stages x [Conv(4x4, stride 2)] with LeakyReLU, a minibatch standard
deviation channel (ProGAN: lets D see a batch's lack of variety, which counters mode collapse),
Conv(3x3), Dense(1); every weight under spectral normalisation (Miyato et al. 2018), which bounds
D's Lipschitz constant so that it cannot win by an ever-sharper boundary on a few thousand images.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from latentctl.config import BASE_RESOLUTION, ModelConfig
from latentctl.models.gan import NEGATIVE_SLOPE, _memory_format

MBSTD_GROUP = 4  # samples per group for the minibatch standard deviation (ProGAN's default)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mean over channels in float32: in bf16 the sum of squares of 128 channels loses digits
        return x * torch.rsqrt(x.float().pow(2).mean(dim=1, keepdim=True) + 1e-8).to(x.dtype)


class LiteGenerator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.fc = nn.Linear(config.latent_dim, w * BASE_RESOLUTION * BASE_RESOLUTION)
        self.norm = PixelNorm()
        ups: list[nn.Module] = []
        for _ in range(config.stages):
            ups += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(w, w, 3, padding=1),
                PixelNorm(),
                nn.LeakyReLU(NEGATIVE_SLOPE),
            ]
        self.ups = nn.Sequential(*ups)
        # FastGAN (Liu et al. 2021): the coarse 8x8 features, pooled to 4x4, give each channel of the
        # last stage a gate in (0, 1): a shortcut for the gradient from the output to the first
        # layers, and global content (a background's colour) set once for every pixel.
        self.excite = (
            nn.Sequential(
                nn.AdaptiveAvgPool2d(4),
                nn.Conv2d(w, w, 4),
                nn.LeakyReLU(NEGATIVE_SLOPE),
                nn.Conv2d(w, w, 1),
                nn.Sigmoid(),
            )
            if config.skip_excitation
            else None
        )
        self.to_rgb = nn.Conv2d(w, config.channels, 3, padding=1)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, a=NEGATIVE_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.to_rgb.weight)  # tanh output: keep its input near unit scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, C, S, S) in [-1, 1]."""
        x = self.fc(z).view(z.shape[0], self.config.width, BASE_RESOLUTION, BASE_RESOLUTION)
        x = nn.functional.leaky_relu(self.norm(x), NEGATIVE_SLOPE)
        x = x.contiguous(memory_format=_memory_format(z, self.to_rgb.weight))
        h = self.ups(x)
        if self.excite is not None:
            h = h * self.excite(x)
        return torch.tanh(self.to_rgb(h))

    def sefa_weight(self) -> torch.Tensor:
        """(width*8*8, latent_dim): the Dense layer that consumes z (models/interface.py)."""
        return self.fc.weight

    def first_features(self, z: torch.Tensor) -> torch.Tensor:
        # The activations GANSpace has always taken here: the Dense output through the slope.
        return nn.functional.leaky_relu(self.fc(z), NEGATIVE_SLOPE)


class MinibatchStd(nn.Module):
    """Appends one channel: the mean standard deviation of the features over groups of samples."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = MBSTD_GROUP if b % MBSTD_GROUP == 0 else 1
        if g == 1:  # a batch that does not split into groups: one group of the whole batch
            g = b
        y = x.float().reshape(g, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/g,)
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


class LiteDiscriminator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = [
            spectral_norm(nn.Conv2d(config.channels, w, 3, padding=1)),
            nn.LeakyReLU(NEGATIVE_SLOPE),
        ]
        for _ in range(config.stages):
            layers += [spectral_norm(nn.Conv2d(w, w, 4, stride=2, padding=1)), nn.LeakyReLU(NEGATIVE_SLOPE)]
        self.features = nn.Sequential(*layers)
        self.mbstd = MinibatchStd()
        self.final = nn.Sequential(spectral_norm(nn.Conv2d(w + 1, w, 3, padding=1)), nn.LeakyReLU(NEGATIVE_SLOPE))
        self.fc = spectral_norm(nn.Linear(w * BASE_RESOLUTION * BASE_RESOLUTION, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [-1, 1] -> (B,) logits (real > 0)."""
        h = self.final(self.mbstd(self.features(x)))
        return self.fc(h.reshape(h.shape[0], -1)).squeeze(1)
