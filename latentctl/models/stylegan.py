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
from latentctl.errors import CheckpointError

# The settings a checkpoint's StyleGAN2 description must hold, with the bounds a real network
# stays within: a damaged or hostile file is refused here, before anything is allocated.
_INTS = {
    "resolution": (4, 4096),
    "z_dim": (1, 4096),
    "w_dim": (1, 4096),
    "c_dim": (0, 100_000),
    "img_channels": (1, 4),
    "mapping_layers": (1, 64),
    "channel_base": (1, 1 << 22),
    "channel_max": (1, 4096),
    "num_fp16_res": (0, 16),
    "class_index": (0, 100_000),
}


def check_network(config: ModelConfig) -> None:
    """One CheckpointError line when ``config.network`` is not a StyleGAN2 latentctl can build."""
    from latentctl.models.stylegan2 import ARCHITECTURES

    net = config.network
    for key, (lo, hi) in _INTS.items():
        value = net.get(key)
        if value is None and key not in ("resolution", "z_dim", "w_dim", "img_channels"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise CheckpointError(f"StyleGAN2 setting {key} = {str(value)[:40]} is not a whole number in {lo}-{hi}")
    res = net["resolution"]
    if res & (res - 1):
        raise CheckpointError(f"StyleGAN2 resolution {res} is not a power of two")
    if net.get("channel_base", 32768) < res:  # channels at resolution r: min(channel_base // r, channel_max)
        raise CheckpointError(f"StyleGAN2 channel_base {net.get('channel_base')} leaves no channels at {res} px")
    if net.get("architecture", "skip") not in ARCHITECTURES:
        raise CheckpointError(
            f"StyleGAN2 architecture {str(net.get('architecture'))[:40]} is not one of {ARCHITECTURES}"
        )
    clamp = net.get("conv_clamp")
    if clamp is not None and (isinstance(clamp, bool) or not isinstance(clamp, (int, float)) or not clamp > 0):
        raise CheckpointError(f"StyleGAN2 conv_clamp {str(clamp)[:40]} is not a positive number")
    if net.get("c_dim", 0) and net.get("class_index", 0) >= net["c_dim"]:
        raise CheckpointError(f"StyleGAN2 class {net['class_index']} is not one of its {net['c_dim']} classes")
    if (res, net["img_channels"], net["w_dim"]) != (config.image_size, config.channels, config.latent_dim):
        raise CheckpointError("the StyleGAN2 settings disagree with the model's size, channels or latent size")


class ImportedStyleGAN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        from latentctl.models.stylegan2 import StyleGAN2Generator

        check_network(config)
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
