"""NVIDIA's StyleGAN2 and StyleGAN3 generators (``stylegan2.StyleGAN2Generator``,
``stylegan3.StyleGAN3Generator``, written here) behind latentctl's generator interface
(models/interface.py).

A seed addresses z = RandomState(seed).randn(z_dim), as NVIDIA's ``gen_images.py`` draws it. What
commands store, average and edit is the latent of the space the model is opened in (``--space``):

``w`` (the default)
    w = mapping(z), given to every layer. Edits are far more linear in W than in z (the StyleGAN
    papers, InterFaceGAN), and truncation pulls w toward the average w NVIDIA's training kept.
``w+``
    one w per styled layer (``num_ws`` of them), flattened to one vector of num_ws * w_dim numbers,
    so that means, differences and interpolation stay plain vector arithmetic. A seed's latent is
    its w repeated; projection into W+ fits each layer's w on its own (Abdal et al., Image2StyleGAN).
``z``
    the prior's sample itself, mapped on every draw; truncation scales z, as for latentctl's own
    models (NVIDIA's truncation toward the average w is W's and W+'s).

Noise is NVIDIA's default ``const`` (the stored maps: a seed draws the same picture every time);
``random`` draws fresh noise per image, ``none`` leaves it out. StyleGAN3 has no noise inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from latentctl.config import ModelConfig
from latentctl.errors import CheckpointError, UsageError

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
    dims = {"z": net["z_dim"], "w": net["w_dim"], "w+": config.num_ws * net["w_dim"]}
    if (res, net["img_channels"], dims[config.latent_space]) != (config.image_size, config.channels, config.latent_dim):
        raise CheckpointError("the StyleGAN settings disagree with the model's size, channels or latent size")


class ImportedStyleGAN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        from latentctl.models.stylegan2 import StyleGAN2Generator
        from latentctl.models.stylegan3 import StyleGAN3Generator

        check_network(config)
        network = StyleGAN3Generator if config.arch == "stylegan3" else StyleGAN2Generator
        try:
            self.net = network.from_config(config.network)
        except (ValueError, TypeError, ZeroDivisionError, OverflowError) as err:
            raise CheckpointError(f"its {config.arch} settings cannot be built: {err}") from None
        self.z_dim = self.net.z_dim
        self.num_ws = self.net.num_ws
        self.noise_mode = "const"
        self.config = config.in_space(config.latent_space)
        c_dim = int(config.network.get("c_dim", 0))
        label = torch.zeros(1, c_dim)
        if c_dim:  # a conditional model draws the class chosen at import (``--class``)
            label[0, int(config.network.get("class_index", 0))] = 1.0
        self.register_buffer("label", label, persistent=False)

    # ---- the space and the noise commands ask for

    @property
    def space(self) -> str:
        return self.config.latent_space

    def use_space(self, space: str) -> None:
        """Explore ``space`` (z, w or w+) from now on: ``config.latent_dim`` follows."""
        self.config = self.config.in_space(space)

    def use_noise(self, mode: str) -> None:
        self.config.check_noise(mode)
        self.noise_mode = mode

    # ---- latents

    def _mapping(self, z: torch.Tensor) -> torch.Tensor:
        c = self.label.expand(len(z), -1) if self.label.shape[1] else None
        return self.net.mapping(z.float(), c)[:, 0]

    def _ws(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) latents of this space -> (B, num_ws, w_dim), what synthesis takes."""
        latents = latents.float()
        if self.space == "w+":
            return latents.reshape(len(latents), self.num_ws, -1)
        w = self._mapping(latents) if self.space == "z" else latents
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def _spread(self, w: torch.Tensor) -> torch.Tensor:
        """(B, w_dim) -> this space's latent: w itself, or (W+) w given to every layer."""
        return w.repeat(1, self.num_ws) if self.space == "w+" else w

    @property
    def latent_center(self) -> torch.Tensor | None:
        """The average w NVIDIA's training tracked (W+: at every layer): what truncation pulls
        toward. None in z, whose prior is centred on zero."""
        if self.space == "z":
            return None
        return self._spread(self.net.w_avg.unsqueeze(0))[0]

    def map_latents(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) -> (B, latent_dim): a seed's latent in W or W+, without truncation."""
        return self._spread(self._mapping(z))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, C, S, S), NVIDIA's raw output (about [-1, 1]; pictures clamp it)."""
        return self.net.synthesis(self._ws(latents), noise_mode=self.noise_mode)

    @property
    def preview_sizes(self) -> tuple[int, ...]:
        """Smaller pictures this network draws on its way to the full one (a skip StyleGAN2 sums
        an RGB image at every resolution): what the explorer shows while a slider moves."""
        return tuple(getattr(self.net, "preview_resolutions", ()))

    def preview(self, latents: torch.Tensor, size: int) -> torch.Tensor:
        """(B, latent_dim) -> (B, C, size, size): the image as it stands at ``size`` px."""
        return self.net.synthesis(self._ws(latents), noise_mode=self.noise_mode, stop_at=size)

    # ---- what SeFa and GANSpace factorise

    def _style_layers(self) -> list[tuple[int, nn.Module]]:
        # The modulated convolutions' style affines, in synthesis order, with the index of the w
        # each one reads; the RGB layers are left out, as SeFa's StyleGAN variant does (they set
        # colour, not what the picture shows), and so is StyleGAN3's Fourier input (its affine
        # turns and shifts the picture).
        if self.config.arch == "stylegan3":
            # ws[0] feeds the Fourier input, ws[i + 1] layer i
            return [(i + 1, layer.affine) for i, layer in enumerate(self.net.layers) if not layer.geometry.is_rgb]
        found, start = [], 0
        for stage in self.net.stages:
            convs = [stage.conv] if stage.is_first else [stage.up_conv, stage.conv]
            found += [(start + k, conv.style) for k, conv in enumerate(convs)]
            start += stage.num_conv
        return found

    @property
    def style_layers(self) -> int:
        """How many ws there are: what a SeFa layer range (``directions --layers``) indexes."""
        return self.num_ws

    def _layer_set(self, layers: tuple[int, int] | None) -> list[tuple[int, nn.Module]]:
        chosen = self._style_layers()
        if layers is None:
            return chosen
        lo, hi = layers
        if not 0 <= lo <= hi < self.num_ws:
            raise UsageError(f"--layers {lo}-{hi} is out of range: this model's ws are numbered 0-{self.num_ws - 1}")
        chosen = [(i, layer) for i, layer in chosen if lo <= i <= hi]
        if not chosen:
            raise UsageError(f"--layers {lo}-{hi} holds only RGB layers, which SeFa leaves out; widen the range")
        return chosen

    def sefa_weight(self, layers: tuple[int, int] | None = None) -> torch.Tensor:
        """The matrix SeFa factorises. In W and W+: every styled layer's affine weight (those whose
        w is in ``layers``, a range of w indices, when given) stacked, each row scaled to unit
        length, as SeFa factorises a StyleGAN (Shen & Zhou 2021, Sec. 3.2): (features, w_dim).
        In z: the mapping network's first layer, (features, z_dim)."""
        if self.space == "z":
            if layers is not None:
                raise UsageError("--layers picks ws, and z has none: open the model in --space w or w+")
            first = self.net.mapping_net.layers[0]
            return (first.weight[:, : self.z_dim] * first.weight_scale).detach().float()
        weight = torch.cat([layer.weight.detach().float() for _, layer in self._layer_set(layers)])
        return weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def sefa_lift(self, vectors: torch.Tensor, layers: tuple[int, int] | None = None) -> torch.Tensor:
        """(k, w_dim) directions in W -> (k, latent_dim) directions of this space: in W+ the same
        move at each w in ``layers`` (all when None) and none elsewhere, so strength s changes
        those layers as s does in W; in W and z, the vectors themselves."""
        if self.space != "w+":
            return vectors
        lo, hi = (0, self.num_ws - 1) if layers is None else layers
        out = vectors.new_zeros(len(vectors), self.num_ws, vectors.shape[1])
        out[:, lo : hi + 1] = vectors.unsqueeze(1)
        return out.reshape(len(vectors), -1)

    def first_features(self, latents: torch.Tensor) -> torch.Tensor:
        """W and W+: the latent itself (GANSpace takes its PCA of W for StyleGAN, Härkönen et al.
        2020, Sec. 3). z: the mapping network's first layer's output."""
        if self.space != "z":
            return latents.float()
        mapping = self.net.mapping_net
        x = mapping._unit_rms(latents.float())
        if self.label.shape[1]:  # a conditional mapping reads the class's embedding beside z
            x = torch.cat([x, mapping._unit_rms(mapping.embed(self.label.expand(len(x), -1)))], dim=1)
        return mapping.layers[0](x)
