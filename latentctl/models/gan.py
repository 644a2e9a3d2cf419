"""The seed's GAN (BRIEF.md), at any supported size.

Generator: Dense(latent -> width*8*8) + LeakyReLU -> reshape -> stages x [ConvTranspose(4x4, stride 2)
+ LeakyReLU] -> Conv(3, 8x8, "same") + tanh. Discriminator: Conv(3x3) + LeakyReLU -> stages x
[Conv(3x3, stride 2) + LeakyReLU] -> Flatten -> Dropout -> Dense(1). The discriminator returns
logits: the sigmoid lives in the loss (BCE on logits), which is stable in low precision.
"""

from __future__ import annotations

import torch
from torch import nn

from latentctl.config import BASE_RESOLUTION, ModelConfig

NEGATIVE_SLOPE = 0.2


def _keras_init(module: nn.Module) -> None:
    # The seed ran on Keras: glorot-uniform weights and zero biases. PyTorch's defaults differ
    # (kaiming-uniform with a=sqrt(5)) and train this GAN noticeably slower in the first epochs.
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.fc = nn.Linear(config.latent_dim, w * BASE_RESOLUTION * BASE_RESOLUTION)
        ups: list[nn.Module] = []
        for _ in range(config.stages):
            # kernel 4, stride 2, padding 1 doubles the size exactly, as Keras' "same" does.
            ups += [nn.ConvTranspose2d(w, w, 4, stride=2, padding=1), nn.LeakyReLU(NEGATIVE_SLOPE)]
        self.ups = nn.Sequential(*ups)
        # Keras "same" for an even kernel pads 3 before and 4 after; explicit padding keeps that
        # exact and avoids torch's even-kernel "same" warning.
        self.pad = nn.ZeroPad2d((3, 4, 3, 4))
        self.to_rgb = nn.Conv2d(w, config.channels, 8)
        _keras_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, C, S, S) in [-1, 1]."""
        x = nn.functional.leaky_relu(self.fc(z), NEGATIVE_SLOPE)
        x = x.view(z.shape[0], self.config.width, BASE_RESOLUTION, BASE_RESOLUTION)
        x = x.contiguous(memory_format=_memory_format(z, self.to_rgb.weight))
        x = self.ups(x)
        return torch.tanh(self.to_rgb(self.pad(x)))

    def sefa_weight(self) -> torch.Tensor:
        """(width*8*8, latent_dim): the Dense layer that consumes z (models/interface.py)."""
        return self.fc.weight

    def first_features(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.leaky_relu(self.fc(z), NEGATIVE_SLOPE)


class Discriminator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = [nn.Conv2d(config.channels, w, 3, padding=1), nn.LeakyReLU(NEGATIVE_SLOPE)]
        for _ in range(config.stages):
            layers += [nn.Conv2d(w, w, 3, stride=2, padding=1), nn.LeakyReLU(NEGATIVE_SLOPE)]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(w * BASE_RESOLUTION * BASE_RESOLUTION, 1)
        _keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [-1, 1] -> (B,) logits (real > 0)."""
        h = self.features(x)
        # flatten in (C, H, W) order whatever the memory layout, so weights are layout-independent
        h = h.reshape(h.shape[0], -1)
        return self.fc(self.dropout(h)).squeeze(1)


def _memory_format(z: torch.Tensor, weight: torch.Tensor) -> torch.memory_format:
    # Follow the layout the weights were put in (model.to(memory_format=channels_last)).
    if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
