"""NVIDIA's StyleGAN2 generators (``stylegan2.StyleGAN2Generator``, written here) behind
latentctl's generator interface (models/interface.py).

Commands explore W, the mapping network's output: a seed addresses z = RandomState(seed).randn(z_dim)
as NVIDIA's ``gen_images.py`` draws it, and the latent stored, averaged and edited is w = mapping(z).
Edits are far more linear in W than in z (the StyleGAN papers, InterFaceGAN), truncation pulls w
toward the average w NVIDIA's training kept, and every w is broadcast to all layers (W, not W+).
Noise is NVIDIA's default ``const``, so a seed draws the same picture every time.
"""

from __future__ import annotations

import torch
from torch import nn

from latentctl.config import ModelConfig


class ImportedStyleGAN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        from latentctl.models.stylegan2 import StyleGAN2Generator

        self.config = config
        self.net = StyleGAN2Generator.from_config(config.network)
        self.z_dim = self.net.z_dim
        self.num_ws = self.net.num_ws
        self.noise_mode = "const"
        c_dim = int(config.network.get("c_dim", 0))
        label = torch.zeros(1, c_dim)
        if c_dim:  # a conditional model draws the class chosen at import (``--class``)
            label[0, int(config.network.get("class_index", 0))] = 1.0
        self.register_buffer("label", label, persistent=False)

    @property
    def latent_center(self) -> torch.Tensor:
        """The average w NVIDIA's training tracked: what truncation pulls toward."""
        return self.net.w_avg

    def map_latents(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) -> (B, w_dim): the mapping network, without truncation."""
        c = self.label.expand(len(z), -1) if self.label.shape[1] else None
        return self.net.mapping(z.float(), c)[:, 0]

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """(B, w_dim) -> (B, C, S, S), NVIDIA's raw output (about [-1, 1]; pictures clamp it)."""
        ws = w.float().unsqueeze(1).expand(-1, self.num_ws, -1)
        return self.net.synthesis(ws, noise_mode=self.noise_mode)

    def _style_layers(self) -> list[nn.Module]:
        # The modulated convolutions' style affines, in synthesis order; the RGB layers are left
        # out, as SeFa's StyleGAN variant does (they set colour, not what the picture shows).
        return [m.style for m in self.net.modules() if hasattr(m, "style") and getattr(m, "demodulate", False)]

    def sefa_weight(self) -> torch.Tensor:
        """(sum of the styled layers' input channels, w_dim): every style affine's weight stacked,
        each row scaled to unit length, as SeFa factorises a StyleGAN (Shen & Zhou 2021, Sec. 3.2)."""
        weight = torch.cat([layer.weight.detach().float() for layer in self._style_layers()])
        return weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def first_features(self, w: torch.Tensor) -> torch.Tensor:
        """w itself: GANSpace takes its PCA of W for StyleGAN (Härkönen et al. 2020, Sec. 3)."""
        return w.float()
