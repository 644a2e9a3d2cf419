"""A StyleGAN2 generator in plain PyTorch, able to carry weights imported from NVIDIA snapshots.

Written from the published method (Karras et al., "Analyzing and Improving the Image Quality of
StyleGAN", 2020, and the ADA paper's training setup), not from NVIDIA's code. The numerical
conventions it must share with NVIDIA's released networks so imported weights give the same
images are:

* equalised learning rate: weights are stored unscaled and multiplied at run time by
  ``1/sqrt(fan_in)`` (times the mapping's learning-rate multiplier, which also scales biases);
* activations ``act(x + b) * gain`` then a symmetric clamp: leaky ReLU (slope 0.2) with gain
  ``sqrt(2)``, and the clamp (``conv_clamp``) scaled by the same extra gain as the activation;
* modulated 3x3 convolutions with demodulation ``rsqrt(sum w^2 + 1e-8)``, per-pixel noise
  ``noise * strength`` added before the bias, and 1x1 "to RGB" convolutions without
  demodulation whose styles carry the ``1/sqrt(fan_in)`` gain;
* 2x upsampling as a stride-2 transposed convolution followed by the stored low-pass FIR filter
  (gain 4, i.e. ``up**2``), and the RGB skip path upsampled with the same filter;
* one ``w`` per convolution plus one for the final RGB layer; each intermediate RGB layer reuses
  the ``w`` of the next stage's first convolution.

Everything runs in float32: NVIDIA's ``num_fp16_res`` only selects float16 compute on CUDA, and
their own float32 path (``force_fp32``, or any CPU run of stylegan3's copy) is what this matches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURES = ("orig", "skip", "resnet")
_ACT_GAINS = {"linear": 1.0, "relu": math.sqrt(2.0), "lrelu": math.sqrt(2.0)}
NOISE_MODES = ("const", "random", "none")
# The smallest stage a preview may stop at: below it a picture is too coarse to judge an edit by.
PREVIEW_MIN = 64

# CPU speed levers (docs/stylegan-speed.md; benchmarks/stylegan_speed.py measures each one by
# setting these): _FAST False runs the straightforward reference implementation; _MODCONV picks how
# a batch of B > 1 is modulated ("grouped": per-sample weights in one grouped convolution;
# "activations": scale the inputs, convolve with the shared weights, scale the outputs); at B = 1
# both are one plain convolution with modulated weights. _CHANNELS_LAST runs the synthesis
# activations in channels-last memory format when no gradient is needed.
_FAST = True
_MODCONV = "activations"
_CHANNELS_LAST = True
_FAST_FIR = True  # FIR passes as one depthwise (transposed) convolution, bias fused; False: _fir
# Upsampling convolutions, where no gradient is needed, as four stride-1 convolutions, one per
# output phase (_phase_kernels): oneDNN runs stride-2 transposed convolutions at about half the
# rate of plain ones on CPU. False: F.conv_transpose2d.
_PHASES = True


def _act(x: torch.Tensor, bias: torch.Tensor | None, kind: str, gain: float, clamp: float | None) -> torch.Tensor:
    """Bias, activation, gain, clamp -- in that order (the clamp bounds the scaled output)."""
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.ndim - 2))
    if kind == "lrelu":
        x = F.leaky_relu(x, 0.2)
    elif kind == "relu":
        x = F.relu(x)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def _fir(x: torch.Tensor, taps: torch.Tensor, *, up: int = 1, pad: tuple[int, int], gain: float) -> torch.Tensor:
    """Zero-stuff by ``up``, pad (negative = crop) both spatial sides, then convolve with ``taps``.

    ``taps`` is a 2-D kernel (or 1-D, applied on both axes); ``gain`` multiplies the whole result,
    which is how zero-stuffing's loss of energy (a factor ``up**2``) is given back.
    """
    batch, channels, height, width = x.shape
    if up > 1:
        # (B, C, H, W) -> (B, C, H*up, W*up) with the samples at the top-left of each up x up cell.
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    if p0 < 0 or p1 < 0:
        x = x[:, :, max(-p0, 0) : x.shape[2] - max(-p1, 0), max(-p0, 0) : x.shape[3] - max(-p1, 0)]
    kernel = taps if taps.ndim == 2 else torch.outer(taps, taps)
    # A convolution (not a correlation): flip the kernel for conv2d.
    kernel = (kernel * gain).flip([0, 1]).to(x.dtype)
    kernel = kernel[None, None].repeat(channels, 1, 1, 1)
    return F.conv2d(x, kernel, groups=channels)


def _fir_kernel(taps: torch.Tensor, channels: int, gain: float, dtype: torch.dtype) -> torch.Tensor:
    """(channels, 1, k, k) depthwise kernel of ``taps`` times ``gain``, flipped for conv2d."""
    kernel = taps if taps.ndim == 2 else torch.outer(taps, taps)
    return (kernel * gain).flip([0, 1]).to(dtype)[None, None].expand(channels, 1, *kernel.shape)


def _fir_same(
    x: torch.Tensor, taps: torch.Tensor, *, pad: tuple[int, int], gain: float, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``_fir`` without upsampling, as one depthwise convolution (its padding does the pad, its
    bias an optional per-channel bias): no padded copy of ``x`` where the pad is symmetric."""
    p0, p1 = pad
    if p0 != p1 or p0 < 0:
        x = F.pad(x, [p0, p1, p0, p1])  # negative pads crop
        p0 = 0
    kernel = _fir_kernel(taps, x.shape[1], gain, x.dtype)
    return F.conv2d(x, kernel, bias, padding=p0, groups=x.shape[1])


def _upsample2x_fast(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """``_upsample2x`` as one stride-2 depthwise transposed convolution (no zero-stuffed copy).

    Zero-stuffing, padding by ((s + 1) // 2, (s - 2) // 2) and convolving with the flipped kernel
    is the full transposed convolution (which does not flip) cropped by (s - 2) // 2 on each side.
    """
    size = _fir_size(taps)
    if size % 2:  # odd filters crop unevenly: keep the general path
        return _upsample2x(x, taps)
    kernel = taps if taps.ndim == 2 else torch.outer(taps, taps)
    kernel = (kernel * 4.0).to(x.dtype)[None, None].expand(x.shape[1], 1, *kernel.shape)
    return F.conv_transpose2d(x, kernel, stride=2, padding=(size - 2) // 2, groups=x.shape[1])


def _fir_size(taps: torch.Tensor) -> int:
    return int(taps.shape[-1])


def _upsample2x(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """2x upsampling whose output is exactly twice the input size, filtered by ``taps``."""
    size = _fir_size(taps)
    return _fir(x, taps, up=2, pad=((size + 1) // 2, (size - 2) // 2), gain=4.0)


class _Dense(nn.Module):
    """Fully connected layer with run-time weight scaling (equalised learning rate)."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "linear", lr_multiplier: float = 1.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_scale = lr_multiplier / math.sqrt(in_features)
        self.bias_scale = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.weight_scale
        bias = self.bias * self.bias_scale if self.bias_scale != 1 else self.bias
        if self.activation == "linear":
            return torch.addmm(bias.unsqueeze(0), x, weight.t())
        return _act(x.matmul(weight.t()), bias, self.activation, _ACT_GAINS[self.activation], None)


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _phase_kernels(channels_last: bool):
    """A function splitting (O, I, k, k) weights into the kernels of ``_phase_conv``.

    ``F.conv_transpose2d(x, W.transpose(0, 1), stride=2)`` puts ``x[i] * W[t]`` at output ``2i + t``:
    output phase ``a`` (even or odd positions) gathers the taps ``a, a + 2, ...`` only, so it is a
    plain stride-1 correlation of ``x`` with those taps in reverse order. Per axis, so four 2-D
    kernels, (O, I, 2, 2), (O, I, 2, 1), (O, I, 1, 2) and (O, I, 1, 1) for k = 3: the same
    multiply-adds as the transposed convolution, none of them on inserted zeros.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def make(weight: torch.Tensor) -> list[torch.Tensor]:
        k = weight.shape[-1]
        return [
            weight[:, :, list(range(ay, k, 2))[::-1]][:, :, :, list(range(ax, k, 2))[::-1]].contiguous(
                memory_format=fmt
            )
            for ay in (0, 1)
            for ax in (0, 1)
        ]

    return make


def _phase_conv(x: torch.Tensor, kernels: list[torch.Tensor], k: int) -> torch.Tensor:
    """``F.conv_transpose2d(x, W.transpose(0, 1), stride=2)`` (full size, 2H + k - 2) from the
    ``_phase_kernels`` of W: each phase is one convolution, written to every other row/column."""
    batch, _, height, width = x.shape
    fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    out = None
    for kernel, (ay, ax) in zip(kernels, ((0, 0), (0, 1), (1, 0), (1, 1))):
        # Phase a has ceil((k - a) / 2) taps; it reads x padded by taps - 1 on both sides, so its
        # outputs are the H + taps - 1 positions 2m + a of the full result.
        phase = F.conv2d(x, kernel, padding=(kernel.shape[2] - 1, kernel.shape[3] - 1))
        if out is None:  # the convolution's dtype: bfloat16 under autocast, as conv_transpose2d's
            size = (batch, phase.shape[1], 2 * height + k - 2, 2 * width + k - 2)
            out = torch.empty(size, dtype=phase.dtype, device=x.device, memory_format=fmt)
        out[:, :, ay::2, ax::2] = phase
    return out


def _layout(channels_last: bool, transposed: bool):
    """A function laying out (O, I, k, k) conv weights as (I, O, k, k) when ``transposed``, in
    contiguous or channels-last memory order; products with them keep that layout."""

    def make(weight: torch.Tensor) -> torch.Tensor:
        if transposed:
            weight = weight.transpose(0, 1)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return weight.contiguous(memory_format=fmt)

    return make


class _StyledConv(nn.Module):
    """Modulated (and, except for RGB outputs, demodulated) convolution with noise and bias.

    ``up=2`` upsamples on the way in. The style dense layer starts its bias at 1, so a fresh layer
    modulates by roughly 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        demodulate: bool = True,
        use_noise: bool = True,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
        fir_shape: tuple[int, ...] = (4, 4),
    ):
        super().__init__()
        self.up = up
        self.demodulate = demodulate
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.resolution = resolution
        self.style = _Dense(w_dim, in_channels)
        with torch.no_grad():
            self.style.bias.fill_(1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        # RGB outputs scale their styles instead of relying on demodulation to normalise.
        self.style_scale = 1.0 if demodulate else 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.use_noise = use_noise
        if use_noise:
            self.noise_strength = nn.Parameter(torch.zeros([]))
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
        if up > 1:
            self.register_buffer("fir", torch.zeros(fir_shape))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, *, noise_mode: str = "const", gain: float = 1.0
    ) -> torch.Tensor:
        if not _FAST:
            return self._forward_reference(x, w, noise_mode=noise_mode, gain=gain)
        batch, in_channels, height, width = x.shape
        out_channels, _, k, _ = self.weight.shape
        styles = self.style(w)  # (B, I)
        if self.style_scale != 1.0:
            styles = styles * self.style_scale
        # The activation's gain is positive, so it commutes with the leaky ReLU and folds into the
        # per-output-channel scale (the demodulation), the bias and the noise strength.
        act_gain = _ACT_GAINS[self.activation] * gain
        if self.demodulate:
            # sum_{i,k} (W_oik s_i)^2 = sum_i (sum_k W_oik^2) s_i^2: one (B, I) x (I, O) product.
            wsq = self._cached("wsq", lambda w: w.square().sum(dim=[2, 3]))  # (O, I)
            out_scale = (styles.square().matmul(wsq.t()) + 1e-8).rsqrt() * act_gain  # (B, O)
        else:
            out_scale = None if act_gain == 1 else styles.new_full((batch, out_channels), act_gain)
        bias = self.bias * act_gain if act_gain != 1 else self.bias
        # In-place elementwise ops only where autograd records nothing (they would overwrite
        # tensors its backward needs).
        inplace = not torch.is_grad_enabled()
        fused = batch == 1 or _MODCONV == "grouped"
        phases = _PHASES and self.up == 2 and k > 1 and not torch.is_grad_enabled()
        bias_in_conv = fused and batch == 1

        if fused:
            # Per-sample weights; one grouped convolution (groups=B; a plain one at B = 1). Styles
            # and output scales multiply into one (B, O, I) factor, applied in one pass over a copy
            # of the weights already laid out as the convolution wants them (no reorder copy).
            coef = styles.reshape(batch, 1, in_channels)
            if out_scale is not None:
                coef = coef * out_scale.reshape(batch, out_channels, 1)
            channels_last = batch == 1 and _is_channels_last(x)
            if self.up == 1:
                base = self._cached("w_cl" if channels_last else "w", _layout(channels_last, False))
                weight = base.unsqueeze(0) * coef.reshape(batch, -1, in_channels, 1, 1)
                if batch > 1:
                    x = x.reshape(1, batch * in_channels, height, width)
                weight = weight.reshape(batch * out_channels, in_channels, k, k)
                x = F.conv2d(x, weight, bias if bias_in_conv else None, padding=k // 2, groups=batch)
            elif phases and batch == 1:
                kernels = self._cached("ph_cl" if channels_last else "ph", _phase_kernels(channels_last))
                scale = coef.reshape(-1, in_channels, 1, 1)  # (O or 1, I, 1, 1)
                x = _phase_conv(x, [kernel * scale for kernel in kernels], k)
            else:
                # Transposed conv wants (in, out/groups, k, k) and computes a true convolution.
                base = self._cached("wt_cl" if channels_last else "wt", _layout(channels_last, True))  # (I, O, k, k)
                weight_t = base.unsqueeze(0) * coef.transpose(1, 2).reshape(batch, in_channels, -1, 1, 1)
                if batch > 1:
                    x = x.reshape(1, batch * in_channels, height, width)
                weight_t = weight_t.reshape(batch * in_channels, out_channels, k, k)
                x = F.conv_transpose2d(x, weight_t, stride=self.up, groups=batch)
        else:
            # Shared weights: modulate the activations, convolve, demodulate the output.
            x = x * styles.to(x.dtype).reshape(batch, in_channels, 1, 1)
            cl = _is_channels_last(x)
            if self.up == 1:
                x = F.conv2d(x, self._cached("w_cl" if cl else "w", _layout(cl, False)), padding=k // 2)
            elif phases:
                x = _phase_conv(x, self._cached("ph_cl" if cl else "ph", _phase_kernels(cl)), k)
            else:
                x = F.conv_transpose2d(x, self._cached("wt_cl" if cl else "wt", _layout(cl, True)), stride=self.up)
        if self.up > 1:
            # The FIR pass trims the (2H + k - 2)-wide transposed-conv result to 2H (bias fused in).
            size = _fir_size(self.fir)
            pad0 = k // 2 + (size + self.up - 1) // 2 - (k - 1)
            pad1 = k // 2 + (size - self.up) // 2 - (k - self.up)
            if _FAST_FIR:
                x = _fir_same(
                    x, self.fir, pad=(pad0, pad1), gain=float(self.up**2), bias=bias if bias_in_conv else None
                )
            else:
                x = _fir(x, self.fir, pad=(pad0, pad1), gain=float(self.up**2))
                if bias_in_conv:
                    x = x + bias.reshape(1, -1, 1, 1)
        if batch > 1 and fused:
            x = x.reshape(batch, out_channels, x.shape[2], x.shape[3])
        if not fused and out_scale is not None:
            scale = out_scale.to(x.dtype).reshape(batch, out_channels, 1, 1)
            x = x.mul_(scale) if inplace else x * scale

        if self.use_noise and noise_mode != "none":
            if noise_mode == "const":
                noise = self.noise_const * (self.noise_strength * act_gain)
            else:
                noise = torch.randn(batch, 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
                noise = noise * (self.noise_strength * act_gain)
            x = x.add_(noise) if inplace else x + noise
        if not bias_in_conv:
            b = bias.to(x.dtype).reshape(1, -1, 1, 1)
            x = x.add_(b) if inplace else x + b
        if self.activation == "lrelu":
            x = F.leaky_relu_(x, 0.2) if inplace else F.leaky_relu(x, 0.2)
        elif self.activation == "relu":
            x = F.relu_(x) if inplace else F.relu(x)
        if self.conv_clamp is not None:
            clamp = self.conv_clamp * gain
            x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
        return x

    def _cached(self, name: str, make) -> torch.Tensor:
        """``make(self.weight)``, kept between calls while the weight is unchanged and needs no grad.

        The key is the weight's storage, in-place version, dtype and device, and whether inference
        mode is on (a tensor made there cannot be saved for a later backward pass).
        """
        weight = self.weight
        if torch.is_grad_enabled() and weight.requires_grad:
            return make(weight)
        key = (weight.data_ptr(), weight._version, weight.dtype, weight.device, torch.is_inference_mode_enabled())
        cache = self.__dict__.setdefault("_weight_cache", {})
        hit = cache.get(name)
        if hit is None or hit[0] != key:
            with torch.no_grad():
                hit = cache[name] = (key, make(weight))
        return hit[1]

    def _forward_reference(
        self, x: torch.Tensor, w: torch.Tensor, *, noise_mode: str = "const", gain: float = 1.0
    ) -> torch.Tensor:
        batch, in_channels, height, width = x.shape
        out_channels, _, k, _ = self.weight.shape
        styles = self.style(w)  # (B, I)
        if self.style_scale != 1.0:
            styles = styles * self.style_scale
        weight = self.weight.unsqueeze(0) * styles.reshape(batch, 1, in_channels, 1, 1)  # (B, O, I, k, k)
        if self.demodulate:
            norm = (weight.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # (B, O)
            weight = weight * norm.reshape(batch, out_channels, 1, 1, 1)

        # One grouped convolution runs every sample with its own weights: (1, B*I, H, W).
        x = x.reshape(1, batch * in_channels, height, width)
        if self.up == 1:
            x = F.conv2d(x, weight.reshape(batch * out_channels, in_channels, k, k), padding=k // 2, groups=batch)
        else:
            # Transposed conv wants (in, out/groups, k, k); it computes a true convolution, so the
            # kernel is not flipped. The FIR pass then trims the (2H + k - 2)-wide result to 2H.
            weight_t = weight.transpose(1, 2).reshape(batch * in_channels, out_channels, k, k)
            x = F.conv_transpose2d(x, weight_t, stride=self.up, groups=batch)
            size = _fir_size(self.fir)
            pad0 = k // 2 + (size + self.up - 1) // 2 - (k - 1)
            pad1 = k // 2 + (size - self.up) // 2 - (k - self.up)
            x = _fir(x, self.fir, pad=(pad0, pad1), gain=float(self.up**2))
        x = x.reshape(batch, out_channels, x.shape[2], x.shape[3])

        if self.use_noise and noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        elif self.use_noise and noise_mode == "random":
            x = x + torch.randn(batch, 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype) * self.noise_strength

        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return _act(x, self.bias, self.activation, _ACT_GAINS[self.activation] * gain, clamp)


class _Shortcut(nn.Module):
    """Resnet stages' skip path: 2x upsample and a bias-free 1x1 convolution."""

    def __init__(self, in_channels: int, out_channels: int, *, fir_shape: tuple[int, ...]):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.register_buffer("fir", torch.zeros(fir_shape))

    def forward(self, x: torch.Tensor, gain: float) -> torch.Tensor:
        weight = self.weight * (1.0 / math.sqrt(self.weight.shape[1]))
        # A 1x1 convolution commutes with the upsampling; convolving first is cheaper.
        x = (_upsample2x_fast if _FAST and _FAST_FIR else _upsample2x)(F.conv2d(x, weight), self.fir)
        return x * gain


class _Stage(nn.Module):
    """Everything computed at one resolution: the (upsampling) convolutions and the RGB output."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str,
        conv_clamp: float | None,
        use_noise: bool,
        kernel_size: int,
        activation: str,
        fir_shape: tuple[int, ...],
    ):
        super().__init__()
        self.architecture = architecture
        self.is_first = in_channels == 0
        layer = dict(
            w_dim=w_dim,
            resolution=resolution,
            kernel_size=kernel_size,
            use_noise=use_noise,
            activation=activation,
            conv_clamp=conv_clamp,
            fir_shape=fir_shape,
        )
        if self.is_first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.up_conv = _StyledConv(in_channels, out_channels, up=2, **layer)
        self.conv = _StyledConv(out_channels, out_channels, **layer)
        self.has_rgb = is_last or architecture == "skip"
        if self.has_rgb:
            self.rgb = _StyledConv(
                out_channels,
                img_channels,
                w_dim=w_dim,
                resolution=resolution,
                kernel_size=1,
                demodulate=False,
                use_noise=False,
                activation="linear",
                conv_clamp=conv_clamp,
            )
        if not self.is_first and architecture == "resnet":
            self.shortcut = _Shortcut(in_channels, out_channels, fir_shape=fir_shape)
        self.register_buffer("fir", torch.zeros(fir_shape))
        self.num_conv = 1 if self.is_first else 2
        self.num_rgb = 1 if self.has_rgb else 0

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # ws: (B, num_conv + num_rgb, w_dim)
        if self.is_first:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            # Channels-last only where no gradient flows: oneDNN's channels-last backward convolutions
            # measured ~1.7x slower than NCHW ones here (docs/stylegan-speed.md).
            needs_grad = torch.is_grad_enabled() and (ws.requires_grad or self.const.requires_grad)
            if _FAST and _CHANNELS_LAST and not needs_grad:
                x = x.contiguous(memory_format=torch.channels_last)
            x = self.conv(x, ws[:, 0], noise_mode=noise_mode)
        elif self.architecture == "resnet":
            # Both branches scaled by sqrt(1/2) keep the sum's variance that of one branch.
            half = math.sqrt(0.5)
            skip = self.shortcut(x, half)
            x = self.up_conv(x, ws[:, 0], noise_mode=noise_mode)
            x = self.conv(x, ws[:, 1], noise_mode=noise_mode, gain=half)
            x = skip + x
        else:
            x = self.up_conv(x, ws[:, 0], noise_mode=noise_mode)
            x = self.conv(x, ws[:, 1], noise_mode=noise_mode)

        if img is not None:
            img = _upsample2x_fast(img, self.fir) if _FAST and _FAST_FIR else _upsample2x(img, self.fir)
        if self.has_rgb:
            rgb = self.rgb(x, ws[:, self.num_conv], noise_mode="none")
            img = rgb if img is None else img + rgb
        return x, img


class _Mapping(nn.Module):
    """z (and an optional class label) -> w, through an MLP with a low learning-rate multiplier."""

    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_layers: int,
        embed_features: int | None,
        layer_features: int | None,
        activation: str,
        lr_multiplier: float,
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        embed_features = (embed_features or w_dim) if c_dim > 0 else 0
        layer_features = layer_features or w_dim
        widths = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = _Dense(c_dim, embed_features)
        self.layers = nn.ModuleList(
            _Dense(widths[i], widths[i + 1], activation=activation, lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        )

    @staticmethod
    def _unit_rms(x: torch.Tensor) -> torch.Tensor:
        return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            parts.append(self._unit_rms(z.to(torch.float32)))
        if self.c_dim > 0:
            parts.append(self._unit_rms(self.embed(c.to(torch.float32))))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        for layer in self.layers:
            x = layer(x)
        return x  # (B, w_dim)


class MappedGenerator(nn.Module):
    """What NVIDIA's StyleGAN2 and StyleGAN3 generators share: z (and a class) through the mapping
    network to ws, truncation toward ``w_avg``, then ``synthesis``. A subclass sets ``mapping_net``,
    ``num_ws``, ``c_dim`` and the ``w_avg`` buffer, and defines ``synthesis``."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        """Build from an importer config; keys this class does not take (provenance) are ignored."""
        import inspect

        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        return cls(**{key: value for key, value in config.items() if key in accepted})

    def mapping(
        self, z: torch.Tensor, c: torch.Tensor | None = None, psi: float = 1.0, cutoff: int | None = None
    ) -> torch.Tensor:
        """(B, z_dim) latents and (B, c_dim) labels -> (B, num_ws, w_dim), truncated towards ``w_avg``.

        ``cutoff`` limits the truncation to the first ``cutoff`` ws (the coarse layers).
        """
        if self.c_dim > 0 and c is None:
            raise ValueError(f"this generator is conditional: pass c, shape (B, {self.c_dim})")
        w = self.mapping_net(z, c)
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if psi != 1:
            stop = self.num_ws if cutoff is None else cutoff
            ws[:, :stop] = self.w_avg.lerp(ws[:, :stop], psi)
        return ws

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        psi: float = 1.0,
        noise_mode: str = "const",
        cutoff: int | None = None,
    ) -> torch.Tensor:
        return self.synthesis(self.mapping(z, c, psi=psi, cutoff=cutoff), noise_mode=noise_mode)


class StyleGAN2Generator(MappedGenerator):
    """StyleGAN2 generator (mapping + synthesis) for the orig, skip and resnet architectures.

    Build with keywords, or from an importer's config with ``StyleGAN2Generator.from_config``.
    Channels per resolution are ``min(channel_base // res, channel_max)``, as in the paper's
    configurations.
    """

    def __init__(
        self,
        *,
        resolution: int,
        z_dim: int = 512,
        w_dim: int = 512,
        c_dim: int = 0,
        img_channels: int = 3,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        mapping_activation: str = "lrelu",
        embed_features: int | None = None,
        layer_features: int | None = None,
        channel_base: int = 32768,
        channel_max: int = 512,
        architecture: str = "skip",
        conv_clamp: float | None = None,
        use_noise: bool = True,
        kernel_size: int = 3,
        activation: str = "lrelu",
        fir_shape: tuple[int, ...] | list[int] = (4, 4),
        num_fp16_res: int = 0,
    ):
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, not {resolution}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, not {architecture!r}")
        for act in (mapping_activation, activation):
            if act not in _ACT_GAINS:
                raise ValueError(f"unsupported activation {act!r}; supported: {', '.join(_ACT_GAINS)}")
        self.resolution = resolution
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.c_dim = c_dim
        self.img_channels = img_channels
        self.architecture = architecture
        # Kept for the record only: on CPU every layer computes in float32 (see the module doc).
        self.num_fp16_res = num_fp16_res
        fir_shape = tuple(int(s) for s in fir_shape)

        self.mapping_net = _Mapping(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            num_layers=mapping_layers,
            embed_features=embed_features,
            layer_features=layer_features,
            activation=mapping_activation,
            lr_multiplier=mapping_lr_multiplier,
        )
        resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        self.stage_resolutions = resolutions

        def channels(res: int) -> int:
            return min(channel_base // res, channel_max)

        self.stages = nn.ModuleList(
            _Stage(
                channels(res // 2) if res > 4 else 0,
                channels(res),
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=res == resolution,
                architecture=architecture,
                conv_clamp=conv_clamp,
                use_noise=use_noise,
                kernel_size=kernel_size,
                activation=activation,
                fir_shape=fir_shape,
            )
            for res in resolutions
        )
        self.num_ws = sum(stage.num_conv for stage in self.stages) + self.stages[-1].num_rgb
        self.register_buffer("w_avg", torch.zeros(w_dim))

    @property
    def preview_resolutions(self) -> tuple[int, ...]:
        """Sizes ``synthesis(..., stop_at=size)`` can stop at: for the skip architecture, the stage
        resolutions from 64 px up to (not including) the full one. Each is the RGB image the skip
        path has summed so far, which the full image only upsamples and refines, so it shows the
        same picture at a fraction of the work. ``()`` for orig and resnet: they emit RGB only at
        the end."""
        if self.architecture != "skip":
            return ()
        return tuple(res for res in self.stage_resolutions if PREVIEW_MIN <= res < self.resolution)

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const", stop_at: int | None = None) -> torch.Tensor:
        """(B, num_ws, w_dim) -> raw (B, img_channels, H, W) images, roughly in [-1, 1] (not clamped).

        ``noise_mode``: "const" uses the stored noise maps (reproducible), "random" draws fresh
        noise from torch's generator, "none" leaves the noise out. ``stop_at``, one of
        ``preview_resolutions``, runs the stages up to that resolution only and returns the RGB
        image accumulated there, (B, img_channels, stop_at, stop_at); ``ws`` is still all num_ws.
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, not {noise_mode!r}")
        if stop_at is not None:
            allowed = self.preview_resolutions
            if isinstance(stop_at, bool) or not isinstance(stop_at, int) or stop_at not in allowed:
                sizes = ", ".join(map(str, allowed)) if allowed else f"none for the {self.architecture} architecture"
                raise ValueError(f"stop_at must be one of the preview resolutions ({sizes}), not {stop_at!r}")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape (B, {self.num_ws}, {self.w_dim}), not {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = img = None
        start = 0
        for res, stage in zip(self.stage_resolutions, self.stages):
            x, img = stage(x, img, ws[:, start : start + stage.num_conv + stage.num_rgb], noise_mode)
            start += stage.num_conv
            if res == stop_at:
                break
        return img
