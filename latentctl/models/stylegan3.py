"""A StyleGAN3 ("alias-free") generator in plain PyTorch, able to carry weights from NVIDIA snapshots.

Written from the paper (Karras et al., "Alias-Free Generative Adversarial Networks", 2021, sections
3-4 and appendices C, D and F), not from NVIDIA's code. Configs T (3x3 convolutions, separable
Kaiser filters) and R (1x1 convolutions, radially symmetric downsampling filters) are the same
network with different settings. What an imported snapshot needs to reproduce NVIDIA's images:

* the layer schedule of appendix F: cutoffs and minimum stopbands grow geometrically from the
  first layer to the last ``num_critical`` (critically sampled) ones; each layer's sampling rate is
  the power of two covering twice its stopband, its canvas that rate plus a margin on each side
  (the last two layers: exactly the image), its channels ``channel_base / 2 / cutoff`` capped;
* the input: Fourier features on a grid of pixel centres, rotated and translated by an affine
  function of the first ``w``, then by the stored user transform; out-of-band frequencies fade out;
* each layer: a modulated convolution (weights and styles pre-normalised, then demodulated) of
  the input scaled by ``1/sqrt(magnitude_ema)``, zero-padded to ``k - 1`` on each side; then a
  bias, upsampling by zero insertion and a low-pass FIR filter (gain ``up**2``), leaky ReLU times
  ``sqrt(2)`` and the ``conv_clamp``, a second low-pass filter and decimation -- with the
  paddings that centre every output sample (appendix C.3);
* the last layer ("to RGB"): a 1x1 convolution without demodulation whose styles carry
  ``1/sqrt(fan_in)``, a bias and the clamp; then the image is multiplied by ``output_scale``.

Everything runs in float32. NVIDIA's ``num_fp16_res`` only selects float16 compute on CUDA; off
CUDA their layers compute in float32, and that result is what this reproduces (kept in the config
for the record). The filters are stored in snapshots, so an import never designs one; a network
built fresh designs its own (Kaiser-windowed sinc, or a jinc for the radial ones) with numpy.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latentctl.errors import CheckpointError
from latentctl.models.stylegan2 import MappedGenerator, _Mapping

# NVIDIA's published defaults for the SynthesisNetwork / SynthesisLayer / MappingNetwork settings; a
# snapshot's recorded init kwargs only list the ones its training run changed.
NVIDIA_DEFAULTS: dict[str, Any] = {
    "channel_base": 32768,
    "channel_max": 512,
    "num_layers": 14,
    "num_critical": 2,
    "first_cutoff": 2.0,
    "first_stopband": 2**2.1,
    "last_stopband_rel": 2**0.3,
    "margin_size": 10,
    "output_scale": 0.25,
    "num_fp16_res": 4,
    "conv_kernel": 3,
    "filter_size": 6,
    "lrelu_upsampling": 2,
    "use_radial_filters": False,
    "conv_clamp": 256,
    "mapping_layers": 2,
    "mapping_lr_multiplier": 0.01,
}
_SLOPE = 0.2
_LRELU_GAIN = math.sqrt(2.0)


# ----------------------------------------------------------------------------------------------
# The layer schedule (appendix F).


@dataclass(frozen=True)
class LayerGeometry:
    """Sizes, rates and filters of one synthesis layer, all derived from the network settings.

    ``pad`` is (before, after) on each spatial axis of the upsampled signal, negative = crop.
    """

    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_rate: int
    out_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    kernel: int
    up: int
    down: int
    up_taps: int
    down_taps: int
    radial: bool
    is_rgb: bool
    is_critical: bool
    pad: tuple[int, int]

    @property
    def work_rate(self) -> int:
        return self.in_rate * self.up


@dataclass(frozen=True)
class InputGeometry:
    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


def plan_layers(
    *,
    resolution: int,
    img_channels: int,
    channel_base: int,
    channel_max: int,
    num_layers: int,
    num_critical: int,
    first_cutoff: float,
    first_stopband: float,
    last_stopband_rel: float,
    margin_size: int,
    conv_kernel: int,
    filter_size: int,
    lrelu_upsampling: int,
    use_radial_filters: bool,
) -> tuple[InputGeometry, list[LayerGeometry]]:
    """The Fourier input and the ``num_layers + 1`` layers (the last one is "to RGB")."""
    last_cutoff = resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    # Layer i's position along the geometric progression; the critical layers all sit at its end.
    t = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** t
    stopbands = first_stopband * (last_stopband / first_stopband) ** t
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels

    fourier = InputGeometry(int(channels[0]), int(sizes[0]), float(rates[0]), float(cutoffs[0]))
    layers = []
    for i in range(num_layers + 1):
        j = max(i - 1, 0)  # the input side of layer 0 is the Fourier features, at layer 0's settings
        is_rgb = i == num_layers
        is_critical = i >= num_layers - num_critical
        in_rate, out_rate = int(rates[j]), int(rates[i])
        # The nonlinearity runs at a higher rate (x lrelu_upsampling) to keep its harmonics in band.
        work_rate = max(in_rate, out_rate) * (1 if is_rgb else lrelu_upsampling)
        up, down = work_rate // in_rate, work_rate // out_rate
        if up * in_rate != work_rate or down * out_rate != work_rate:
            raise ValueError(f"layer {i}: sampling rates {in_rate}/{out_rate} are not integer ratios of {work_rate}")
        kernel = 1 if is_rgb else conv_kernel
        up_taps = filter_size * up if up > 1 and not is_rgb else 1
        down_taps = filter_size * down if down > 1 and not is_rgb else 1
        in_size, out_size = int(sizes[j]), int(sizes[i])
        # Total padding so that every output sample's filter footprint lies inside the signal; it
        # is split so samples sit at pixel centres (the "symmetric interpretation", appendix C.3).
        total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
        before = (total + up) // 2
        layers.append(
            LayerGeometry(
                in_channels=int(channels[j]),
                out_channels=int(channels[i]),
                in_size=in_size,
                out_size=out_size,
                in_rate=in_rate,
                out_rate=out_rate,
                in_cutoff=float(cutoffs[j]),
                out_cutoff=float(cutoffs[i]),
                in_half_width=float(half_widths[j]),
                out_half_width=float(half_widths[i]),
                kernel=kernel,
                up=up,
                down=down,
                up_taps=up_taps,
                down_taps=down_taps,
                radial=use_radial_filters and not is_critical,
                is_rgb=is_rgb,
                is_critical=is_critical,
                pad=(int(before), int(total - before)),
            )
        )
    return fourier, layers


# ----------------------------------------------------------------------------------------------
# Filter design (used only by networks built fresh: snapshots store their filters).


def _kaiser_beta(num_taps: int, width: float) -> float:
    """Kaiser's empirical window parameter for a transition band ``width`` (as a fraction of Nyquist)."""
    attenuation = 2.285 * (num_taps - 1) * math.pi * width + 7.95
    if attenuation > 50:
        return 0.1102 * (attenuation - 8.7)
    if attenuation > 21:
        return 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21)
    return 0.0


def design_lowpass(
    num_taps: int, cutoff: float, width: float, rate: float, radial: bool = False
) -> torch.Tensor | None:
    """A unit-DC-gain low-pass FIR: (num_taps,) separable taps, (num_taps, num_taps) radial, or None.

    ``cutoff`` and ``width`` (the full transition band) are in the same units as ``rate``.
    """
    if num_taps == 1:
        return None
    nyquist = rate / 2
    window = np.kaiser(num_taps, _kaiser_beta(num_taps, width / nyquist))
    if not radial:
        offsets = np.arange(num_taps) - (num_taps - 1) / 2
        band = cutoff / nyquist
        taps = band * np.sinc(band * offsets) * window
        return torch.as_tensor(taps / taps.sum(), dtype=torch.float32)
    # The 2-D ideal low-pass with a circular passband is a jinc: J1(2 pi fc r) / (pi r).
    coords = (np.arange(num_taps) - (num_taps - 1) / 2) / rate
    # On the CPU explicitly: a model may be built under torch.device("meta") (checkpoint checks).
    r = torch.as_tensor(np.hypot(*np.meshgrid(coords, coords)), dtype=torch.float64, device="cpu")
    jinc = (torch.special.bessel_j1(2 * cutoff * math.pi * r) / (math.pi * r)).numpy()
    taps = jinc * np.outer(window, window)
    return torch.as_tensor(taps / taps.sum(), dtype=torch.float32)


# ----------------------------------------------------------------------------------------------
# Building blocks.


class _Affine(nn.Module):
    """w -> per-channel styles: a dense layer with equalised learning rate (weights scaled at run time)."""

    def __init__(
        self, in_features: int, out_features: int, *, bias_init: float | list[float] = 0.0, weight_std: float = 1.0
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * weight_std)
        self.bias = nn.Parameter(torch.zeros(out_features) + torch.as_tensor(bias_init, dtype=torch.float32))
        self.weight_scale = 1.0 / math.sqrt(in_features)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias.unsqueeze(0), w, (self.weight * self.weight_scale).t())


class _FourierInput(nn.Module):
    """The first feature map: sinusoids of fixed random frequencies, moved by the first ``w``.

    ``transform`` is the user's inverse transform of the output image (a 3x3 homogeneous matrix):
    NVIDIA's ``gen_images.py --rotate/--translate`` writes it; identity by default.
    """

    def __init__(self, geometry: InputGeometry, w_dim: int):
        super().__init__()
        self.size = geometry.size
        self.sampling_rate = geometry.sampling_rate
        self.bandwidth = geometry.bandwidth
        channels = geometry.channels
        # Frequencies drawn uniformly-ish from the disc of radius `bandwidth` (as the paper does).
        freqs = torch.randn(channels, 2)
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * geometry.bandwidth
        self.weight = nn.Parameter(torch.randn(channels, channels))
        # Starts as "no rotation, no translation": (cos, sin, tx, ty) = (1, 0, 0, 0).
        self.affine = _Affine(w_dim, 4, bias_init=[1.0, 0.0, 0.0, 0.0], weight_std=0.0)
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand(channels) - 0.5)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        batch = w.shape[0]
        # (cos, sin, tx, ty) with the rotation part normalised to unit length.
        t = self.affine(w)  # (B, 4)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        eye = torch.eye(3, device=w.device, dtype=w.dtype)
        rotate = eye.repeat(batch, 1, 1)  # (B, 3, 3): inverse rotation of the image
        rotate[:, 0, 0] = t[:, 0]
        rotate[:, 0, 1] = -t[:, 1]
        rotate[:, 1, 0] = t[:, 1]
        rotate[:, 1, 1] = t[:, 0]
        shift = eye.repeat(batch, 1, 1)  # (B, 3, 3): inverse translation
        shift[:, 0, 2] = -t[:, 2]
        shift[:, 1, 2] = -t[:, 3]
        inverse = rotate @ shift @ self.transform.unsqueeze(0)  # (B, 3, 3)

        # Moving the image by the inverse map = moving each sinusoid's frequency and phase.
        freqs = self.freqs.unsqueeze(0)  # (1, C, 2)
        phases = self.phases.unsqueeze(0) + (freqs @ inverse[:, :2, 2:]).squeeze(2)  # (B, C)
        freqs = freqs @ inverse[:, :2, :2]  # (B, C, 2)
        # A user transform can push frequencies past the band: fade them out linearly to Nyquist.
        fade = (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)
        amplitudes = (1 - fade).clamp(0, 1)  # (B, C)

        # Pixel centres in units of the sampling period, origin at the canvas centre.
        coords = (torch.arange(self.size, device=w.device, dtype=w.dtype) + 0.5 - self.size / 2) / self.sampling_rate
        gy, gx = torch.meshgrid(coords, coords, indexing="ij")
        grid = torch.stack([gx, gy], dim=-1)  # (H, W, 2) as (x, y)
        x = torch.einsum("hwk,bck->bhwc", grid, freqs) + phases[:, None, None, :]  # (B, H, W, C)
        x = torch.sin(x * (2 * math.pi)) * amplitudes[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.weight.shape[0])).t()
        return x.permute(0, 3, 1, 2)  # (B, C, H, W)


# Resampling passes on axes up to this long run as dense (out, in) matrix products: a matmul wastes
# most of its multiplications on zeros, yet at 32 px it measured 3-10x faster on CPU than the
# depthwise (transposed) convolutions. Its cost grows with the axis length squared, so longer axes
# (large images) use the convolutions.
_DENSE_RESAMPLE_MAX = 128


def _resample_matrix(taps: torch.Tensor, in_len: int, *, up: int, down: int, pad: tuple[int, int]) -> torch.Tensor:
    """One axis of "insert up-1 zeros, pad/crop by pad, convolve with taps (valid part), keep every down-th".

    Returns the (out_len, in_len) matrix of that linear map. Output i reads input n through tap
    ``taps[K - 1 - t]`` with ``t = up * n + pad_before - down * i`` when ``0 <= t < K``.
    """
    num_taps = taps.shape[0]
    out_len = (in_len * up + pad[0] + pad[1] - num_taps) // down + 1
    i = torch.arange(out_len, device=taps.device)[:, None]
    n = torch.arange(in_len, device=taps.device)[None, :]
    t = up * n + pad[0] - down * i
    picked = taps.flip(0)[t.clamp(0, num_taps - 1)]
    return torch.where((t >= 0) & (t < num_taps), picked, torch.zeros_like(picked))


def _upsample(x: torch.Tensor, taps: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    """Zero-insert by ``up``, pad/crop by ``pad`` on both axes, convolve with separable ``taps`` x ``up**2``.

    (B, C, H, W) -> (B, C, H', W'), square in and out.
    """
    if taps.ndim != 1:
        raise ValueError("StyleGAN3's upsampling filters are separable (1-D)")
    channels, size = x.shape[1], x.shape[2]
    kernel = (taps * up).to(x.dtype)  # each axis carries one factor of the up**2 gain
    if size <= _DENSE_RESAMPLE_MAX:
        matrix = _resample_matrix(kernel, size, up=up, down=1, pad=pad)  # (H', H)
        return matrix @ x @ matrix.t()
    # A stride-`up` transposed convolution is the full convolution of the zero-stuffed signal
    # (without multiplying the zeros); the padding then picks a window of it: sample i of the
    # result is sample i + K - 1 - before of the full one (out of range = zero).
    num_taps = taps.shape[0]
    out_size = size * up + pad[0] + pad[1] - num_taps + 1
    start = num_taps - 1 - pad[0]
    depthwise = kernel.reshape(1, 1, -1).repeat(channels, 1, 1)  # (C, 1, K)
    x = F.conv_transpose2d(x, depthwise.unsqueeze(2), stride=(1, up), groups=channels)
    x = F.conv_transpose2d(x, depthwise.unsqueeze(3), stride=(up, 1), groups=channels)
    end = start + out_size - x.shape[-1]
    return F.pad(x, [-start, end, -start, end])


def _downsample(x: torch.Tensor, taps: torch.Tensor, down: int) -> torch.Tensor:
    """Convolve with ``taps`` (valid part only) and keep every ``down``-th sample. (B, C, H, W), square."""
    channels, size = x.shape[1], x.shape[2]
    taps = taps.to(x.dtype)
    if taps.ndim == 1 and size <= _DENSE_RESAMPLE_MAX:
        matrix = _resample_matrix(taps, size, up=1, down=down, pad=(0, 0))  # (H', H)
        return matrix @ x @ matrix.t()
    # conv2d correlates; the filters are meant as convolutions, hence the flip.
    kernel = taps.flip(list(range(taps.ndim)))
    if taps.ndim == 2:  # radially symmetric: not separable
        return F.conv2d(x, kernel[None, None].repeat(channels, 1, 1, 1), stride=down, groups=channels)
    depthwise = kernel.reshape(1, 1, -1).repeat(channels, 1, 1)  # (C, 1, K)
    x = F.conv2d(x, depthwise.unsqueeze(2), stride=(1, down), groups=channels)
    return F.conv2d(x, depthwise.unsqueeze(3), stride=(down, 1), groups=channels)


class _SynthesisLayer(nn.Module):
    """Modulated convolution followed by the filtered (alias-suppressed) leaky ReLU."""

    def __init__(self, geometry: LayerGeometry, *, w_dim: int, conv_clamp: float | None):
        super().__init__()
        g = self.geometry = geometry
        self.conv_clamp = conv_clamp
        # Styles start at 1: a fresh layer modulates by roughly nothing.
        self.affine = _Affine(w_dim, g.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(g.out_channels, g.in_channels, g.kernel, g.kernel))
        self.bias = nn.Parameter(torch.zeros(g.out_channels))
        # Running mean of the input's square, tracked by NVIDIA's training; the input is divided by its root.
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.register_buffer(
            "up_filter",
            design_lowpass(g.up_taps, g.in_cutoff, g.in_half_width * 2, g.work_rate),
        )
        self.register_buffer(
            "down_filter",
            design_lowpass(g.down_taps, g.out_cutoff, g.out_half_width * 2, g.work_rate, radial=g.radial),
        )

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        batch, in_channels, height, width = x.shape
        styles = self.affine(w)  # (B, I)
        weight = self.weight
        if g.is_rgb:
            styles = styles * (1.0 / math.sqrt(in_channels * g.kernel**2))
        else:
            # Pre-normalising weight and styles keeps demodulation's sums in a safe float range;
            # the styles' scale is one number over the whole batch, and demodulation cancels it.
            weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
            styles = styles * styles.square().mean().rsqrt()
        modulated = weight.unsqueeze(0) * styles[:, None, :, None, None]  # (B, O, I, k, k)
        if not g.is_rgb:
            norm = (modulated.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # (B, O)
            modulated = modulated * norm[:, :, None, None, None]
        modulated = modulated * self.magnitude_ema.rsqrt()

        # One grouped convolution: sample b with its own weights. Padding k - 1 keeps every partial
        # overlap, (H, W) -> (H + k - 1, W + k - 1).
        k = g.kernel
        x = x.reshape(1, batch * in_channels, height, width)
        x = F.conv2d(x, modulated.reshape(batch * g.out_channels, in_channels, k, k), padding=k - 1, groups=batch)
        x = x.reshape(batch, g.out_channels, x.shape[2], x.shape[3])

        x = x + self.bias[None, :, None, None]
        if self.up_filter is not None:
            x = _upsample(x, self.up_filter, g.up, g.pad)
        elif g.pad != (0, 0):
            x = F.pad(x, [g.pad[0], g.pad[1], g.pad[0], g.pad[1]])
        if not g.is_rgb:
            x = F.leaky_relu(x, _SLOPE) * _LRELU_GAIN
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        if self.down_filter is not None:
            x = _downsample(x, self.down_filter, g.down)
        return x


# ----------------------------------------------------------------------------------------------
# The generator.


class StyleGAN3Generator(MappedGenerator):
    """StyleGAN3 generator (mapping + synthesis), configs T and R.

    Build with keywords, from a config (``from_config``), or from an NVIDIA snapshot's importer
    output (``from_nvidia``). The synthesis has ``num_layers`` layers plus "to RGB" and takes
    ``num_ws = num_layers + 2`` ws: one for the Fourier input, one per layer.
    """

    def __init__(
        self,
        *,
        resolution: int,
        z_dim: int = 512,
        w_dim: int = 512,
        c_dim: int = 0,
        img_channels: int = 3,
        mapping_layers: int = NVIDIA_DEFAULTS["mapping_layers"],
        mapping_lr_multiplier: float = NVIDIA_DEFAULTS["mapping_lr_multiplier"],
        channel_base: int = NVIDIA_DEFAULTS["channel_base"],
        channel_max: int = NVIDIA_DEFAULTS["channel_max"],
        num_layers: int = NVIDIA_DEFAULTS["num_layers"],
        num_critical: int = NVIDIA_DEFAULTS["num_critical"],
        first_cutoff: float = NVIDIA_DEFAULTS["first_cutoff"],
        first_stopband: float = NVIDIA_DEFAULTS["first_stopband"],
        last_stopband_rel: float = NVIDIA_DEFAULTS["last_stopband_rel"],
        margin_size: int = NVIDIA_DEFAULTS["margin_size"],
        output_scale: float = NVIDIA_DEFAULTS["output_scale"],
        conv_kernel: int = NVIDIA_DEFAULTS["conv_kernel"],
        filter_size: int = NVIDIA_DEFAULTS["filter_size"],
        lrelu_upsampling: int = NVIDIA_DEFAULTS["lrelu_upsampling"],
        use_radial_filters: bool = NVIDIA_DEFAULTS["use_radial_filters"],
        conv_clamp: float | None = NVIDIA_DEFAULTS["conv_clamp"],
        num_fp16_res: int = NVIDIA_DEFAULTS["num_fp16_res"],
    ):
        super().__init__()
        self.img_resolution = self.resolution = resolution
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.c_dim = c_dim
        self.img_channels = img_channels
        self.output_scale = output_scale
        # Kept for the record only: every layer computes in float32 here (see the module doc).
        self.num_fp16_res = num_fp16_res
        fourier, layers = plan_layers(
            resolution=resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            num_layers=num_layers,
            num_critical=num_critical,
            first_cutoff=first_cutoff,
            first_stopband=first_stopband,
            last_stopband_rel=last_stopband_rel,
            margin_size=margin_size,
            conv_kernel=conv_kernel,
            filter_size=filter_size,
            lrelu_upsampling=lrelu_upsampling,
            use_radial_filters=use_radial_filters,
        )
        self.mapping_net = _Mapping(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            num_layers=mapping_layers,
            embed_features=w_dim,
            layer_features=w_dim,
            activation="lrelu",
            lr_multiplier=mapping_lr_multiplier,
        )
        self.fourier = _FourierInput(fourier, w_dim)
        self.layers = nn.ModuleList(_SynthesisLayer(g, w_dim=w_dim, conv_clamp=conv_clamp) for g in layers)
        self.num_ws = len(layers) + 1
        self.register_buffer("w_avg", torch.zeros(w_dim))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StyleGAN3Generator:
        """Build from a config of this class's keywords; keys it does not take (provenance) are ignored.

        An importer config still in NVIDIA's terms (``tensor_names == "nvidia"``) is translated first.
        """
        if config.get("tensor_names") == "nvidia":
            config = config_from_nvidia(config)
        return super().from_config(config)

    @classmethod
    def from_nvidia(cls, config: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> StyleGAN3Generator:
        """Build and load from ``read_nvidia_pickle``'s ``config`` and ``tensors`` (NVIDIA's names).

        Raises ``CheckpointError`` when the snapshot's layers are not what its settings give.
        """
        ours, state = convert_nvidia(config, tensors)
        gen = cls.from_config(ours)
        gen.load_state_dict({name: torch.from_numpy(np.asarray(value)) for name, value in state.items()}, strict=True)
        return gen.eval()

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """(B, num_ws, w_dim) -> raw (B, img_channels, H, W) images, roughly in [-1, 1] (not clamped).

        StyleGAN3 has no noise inputs; ``noise_mode`` is accepted so it can be used like StyleGAN2.
        """
        del noise_mode
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape (B, {self.num_ws}, {self.w_dim}), not {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = self.fourier(ws[:, 0])
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i + 1])
        return x * self.output_scale if self.output_scale != 1 else x


# ----------------------------------------------------------------------------------------------
# NVIDIA snapshots (as read by latentctl.importers.nvidia_pickle).


def config_from_nvidia(config: Mapping[str, Any]) -> dict[str, Any]:
    """``read_nvidia_pickle``'s StyleGAN3 config -> this class's keywords.

    Settings come from the Generator's recorded init kwargs, NVIDIA's defaults filling the ones a
    run left alone; where a module recorded the value it used (output scale, clamp, learning-rate
    multiplier, layer count) that wins. The schedule those settings give is then checked against
    every layer's recorded sizes, channels, factors and paddings.
    """
    modules = config.get("modules") or {}
    init = dict(config.get("source_init_kwargs") or {})
    mapping_kwargs = dict(init.get("mapping_kwargs") or {})
    ours: dict[str, Any] = {
        "resolution": int(config["resolution"]),
        "z_dim": int(config["z_dim"]),
        "w_dim": int(config["w_dim"]),
        "c_dim": int(config["c_dim"]),
        "img_channels": int(config["img_channels"]),
    }
    for key, default in NVIDIA_DEFAULTS.items():
        if not key.startswith("mapping_"):
            ours[key] = init.get(key, default)
    ours["mapping_layers"] = int(mapping_kwargs.get("num_layers", NVIDIA_DEFAULTS["mapping_layers"]))
    ours["mapping_lr_multiplier"] = float(mapping_kwargs.get("lr_multiplier", NVIDIA_DEFAULTS["mapping_lr_multiplier"]))

    synthesis = modules.get("synthesis", {})
    mapping = modules.get("mapping", {})
    for key in ("num_layers", "num_critical", "margin_size", "output_scale"):
        if key in synthesis:
            ours[key] = synthesis[key]
    if "num_layers" in mapping:
        ours["mapping_layers"] = int(mapping["num_layers"])
    if "bias_gain" in modules.get("mapping.fc0", {}):
        ours["mapping_lr_multiplier"] = float(modules["mapping.fc0"]["bias_gain"])
    layer_names = list(synthesis.get("layer_names") or [])
    clamps = {modules.get(f"synthesis.{name}", {}).get("conv_clamp", ours["conv_clamp"]) for name in layer_names}
    if len(clamps) > 1:
        raise CheckpointError(f"the synthesis layers use different conv_clamp values ({sorted(map(str, clamps))})")
    if clamps:
        ours["conv_clamp"] = clamps.pop()

    if layer_names:
        _check_geometry(ours, modules, layer_names)
    return ours


def _check_geometry(ours: Mapping[str, Any], modules: Mapping[str, Any], layer_names: list[str]) -> None:
    accepted = inspect.signature(plan_layers).parameters
    fourier, layers = plan_layers(**{key: value for key, value in ours.items() if key in accepted})
    if len(layers) != len(layer_names):
        raise CheckpointError(f"the snapshot has {len(layer_names)} synthesis layers; its settings give {len(layers)}")
    recorded = modules.get("synthesis.input", {})
    expected = {"channels": fourier.channels, "size": [fourier.size] * 2, "sampling_rate": fourier.sampling_rate}
    for key, value in expected.items():
        if key in recorded and recorded[key] != value:
            raise CheckpointError(f"the Fourier input has {key} {recorded[key]}; its settings give {value}")
    for name, g in zip(layer_names, layers):
        recorded = modules.get(f"synthesis.{name}", {})
        expected = {
            "in_channels": g.in_channels,
            "out_channels": g.out_channels,
            "in_size": [g.in_size] * 2,
            "out_size": [g.out_size] * 2,
            "in_sampling_rate": g.in_rate,
            "out_sampling_rate": g.out_rate,
            "conv_kernel": g.kernel,
            "up_factor": g.up,
            "down_factor": g.down,
            "up_taps": g.up_taps,
            "down_taps": g.down_taps,
            "down_radial": g.radial,
            "is_torgb": g.is_rgb,
            "padding": [g.pad[0], g.pad[1], g.pad[0], g.pad[1]],
        }
        for key, value in expected.items():
            if key in recorded and recorded[key] != value:
                raise CheckpointError(
                    f"synthesis layer {name} has {key} {recorded[key]}; the StyleGAN3 schedule gives {value}"
                )


def convert_nvidia(
    config: Mapping[str, Any], tensors: Mapping[str, np.ndarray]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``read_nvidia_pickle``'s StyleGAN3 (config, tensors) -> this class's (config, state dict)."""
    ours = config_from_nvidia(config)
    layer_names = list((config.get("modules") or {}).get("synthesis", {}).get("layer_names") or [])
    layer_index = {name: i for i, name in enumerate(layer_names)}
    state: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        renamed = _rename(name, layer_index)
        if renamed is None:
            raise CheckpointError(f"the snapshot has a tensor latentctl's StyleGAN3 does not know: {name}")
        state[renamed] = value
    return ours, state


def _rename(name: str, layer_index: Mapping[str, int]) -> str | None:
    """NVIDIA state-dict name -> StyleGAN3Generator's (None: unknown)."""
    if name == "mapping.w_avg":
        return "w_avg"
    match = re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", name)
    if match:
        return f"mapping_net.{'embed' if match[1] == 'embed' else 'layers.' + match[2]}.{match[3]}"
    match = re.fullmatch(r"synthesis\.input\.(weight|transform|freqs|phases|affine\.weight|affine\.bias)", name)
    if match:
        return f"fourier.{match[1]}"
    match = re.fullmatch(
        r"synthesis\.(\w+?)\.(weight|bias|magnitude_ema|up_filter|down_filter|affine\.weight|affine\.bias)", name
    )
    if match and match[1] in layer_index:
        return f"layers.{layer_index[match[1]]}.{match[2]}"
    return None
