"""NVIDIA's StyleGAN2 and StyleGAN3 generators (``stylegan2.StyleGAN2Generator``,
``stylegan3.StyleGAN3Generator``, written here) behind latentctl's generator interface
(models/interface.py).

Commands explore W, the mapping network's output: a seed addresses z = RandomState(seed).randn(z_dim)
as NVIDIA's ``gen_images.py`` draws it, and the latent stored, averaged and edited is w = mapping(z).
Edits are far more linear in W than in z (the StyleGAN papers, InterFaceGAN), truncation pulls w
toward the average w NVIDIA's training kept, and every w is broadcast to all layers (W, not W+).
Noise is NVIDIA's default ``const`` (StyleGAN3 has none), so a seed draws the same picture every time.
"""

from __future__ import annotations

import torch
from torch import nn

from latentctl.config import ModelConfig
from latentctl.errors import CheckpointError

# The settings a checkpoint's StyleGAN description must hold, with the bounds a real network
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
    # StyleGAN3's schedule
    "num_layers": (1, 64),
    "num_critical": (0, 64),
    "margin_size": (0, 256),
    "conv_kernel": (1, 9),
    "filter_size": (1, 16),
    "lrelu_upsampling": (1, 8),
}
_REQUIRED = ("resolution", "z_dim", "w_dim", "img_channels")
_POSITIVE = ("first_cutoff", "first_stopband", "last_stopband_rel", "output_scale", "mapping_lr_multiplier")


def check_network(config: ModelConfig) -> None:
    """One CheckpointError line when ``config.network`` is not a StyleGAN latentctl can build."""
    from latentctl.models.stylegan2 import ARCHITECTURES

    net = config.network
    for key, (lo, hi) in _INTS.items():
        value = net.get(key)
        if value is None and key not in _REQUIRED:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise CheckpointError(f"StyleGAN setting {key} = {str(value)[:40]} is not a whole number in {lo}-{hi}")
    for key in ("conv_clamp", *_POSITIVE):
        value = net.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1e4:
            raise CheckpointError(f"StyleGAN setting {key} = {str(value)[:40]} is not a number in (0, 10000]")
    res = net["resolution"]
    if res & (res - 1) and config.arch == "stylegan2":
        raise CheckpointError(f"StyleGAN2 resolution {res} is not a power of two")
    if net.get("channel_base", 32768) < res:  # channels at resolution r: min(channel_base // r, channel_max)
        raise CheckpointError(f"StyleGAN channel_base {net.get('channel_base')} leaves no channels at {res} px")
    if config.arch == "stylegan2" and net.get("architecture", "skip") not in ARCHITECTURES:
        raise CheckpointError(
            f"StyleGAN2 architecture {str(net.get('architecture'))[:40]} is not one of {ARCHITECTURES}"
        )
    if net.get("num_critical", 0) > net.get("num_layers", 14):
        raise CheckpointError("StyleGAN3 num_critical is larger than its num_layers")
    if not isinstance(net.get("use_radial_filters", False), bool):
        raise CheckpointError("StyleGAN3 use_radial_filters is not true or false")
    if net.get("c_dim", 0) and net.get("class_index", 0) >= net["c_dim"]:
        raise CheckpointError(f"StyleGAN class {net['class_index']} is not one of its {net['c_dim']} classes")
    if (res, net["img_channels"], net["w_dim"]) != (config.image_size, config.channels, config.latent_dim):
        raise CheckpointError("the StyleGAN settings disagree with the model's size, channels or latent size")


class ImportedStyleGAN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        from latentctl.models.stylegan2 import StyleGAN2Generator
        from latentctl.models.stylegan3 import StyleGAN3Generator

        check_network(config)
        self.config = config
        network = StyleGAN3Generator if config.arch == "stylegan3" else StyleGAN2Generator
        try:
            self.net = network.from_config(config.network)
        except (ValueError, TypeError, ZeroDivisionError, OverflowError) as err:
            raise CheckpointError(f"its {config.arch} settings cannot be built: {err}") from None
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
        # out, as SeFa's StyleGAN variant does (they set colour, not what the picture shows), and
        # so is StyleGAN3's Fourier input (its affine turns and shifts the picture).
        if self.config.arch == "stylegan3":
            return [layer.affine for layer in self.net.layers if not layer.geometry.is_rgb]
        return [m.style for m in self.net.modules() if hasattr(m, "style") and getattr(m, "demodulate", False)]

    def sefa_weight(self) -> torch.Tensor:
        """(sum of the styled layers' input channels, w_dim): every style affine's weight stacked,
        each row scaled to unit length, as SeFa factorises a StyleGAN (Shen & Zhou 2021, Sec. 3.2)."""
        weight = torch.cat([layer.weight.detach().float() for layer in self._style_layers()])
        return weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def first_features(self, w: torch.Tensor) -> torch.Tensor:
        """w itself: GANSpace takes its PCA of W for StyleGAN (Härkönen et al. 2020, Sec. 3)."""
        return w.float()
