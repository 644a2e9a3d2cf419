"""A generator built from a JSON layer spec: how latentctl runs networks written by other tools.

The spec is plain data (``latent_dim``, ``channels``, ``image_size``, ``output_range`` and a list of
``layers``), stored with imported weights and also what a user writes to describe an unknown
PyTorch layout. Every op runs NCHW inside; Keras' NHWC meaning of a flat vector is reproduced where
it matters, at ``reshape`` and ``flatten`` (``"order": "nhwc"``). Padding ``"same"``/``"valid"``
follows TensorFlow exactly, asymmetric cases included; ``{"torch": [ph, pw]}`` follows PyTorch.

``validate_spec``, ``expected_tensors`` and ``spec_from_layers`` are pure Python: they check a spec
and propagate shapes without building anything, so readers can refuse a file before torch runs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from latentctl.errors import CheckpointError

OPS_WITH_TENSORS = ("dense", "conv", "conv_transpose", "batchnorm")
ACTIVATIONS = ("leaky_relu", "relu", "tanh", "sigmoid", "linear", "dropout")
OPS = (*OPS_WITH_TENSORS, "reshape", "flatten", "upsample", *ACTIVATIONS)
OUTPUT_CHANNELS = (1, 3, 4)
# Ops that change nothing at inference; the output range is read from the last op that is not one.
_IDENTITIES = ("linear", "dropout")

# A shape while propagating: (n,) for a flat vector, (C, H, W) for an image.
Shape = tuple[int, ...]


# ---- checking a spec (pure Python) ------------------------------------------------------------------


def _where(index: int, layer: dict[str, Any]) -> str:
    op = layer.get("op", "?") if isinstance(layer, dict) else "?"
    name = layer.get("name") if isinstance(layer, dict) else None
    return f'layer {index} "{name}" ({op})' if name else f"layer {index} ({op})"


def _bad(index: int, layer: dict[str, Any], why: str) -> CheckpointError:
    return CheckpointError(f"{_where(index, layer)}: {why}".replace("\n", " "))


def _ints(index: int, layer: dict[str, Any], key: str, count: int, default: Any = None) -> tuple[int, ...]:
    value = layer.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value] * count
    if (
        not isinstance(value, (list, tuple))
        or len(value) != count
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise _bad(index, layer, f"{key!r} must be {count} non-negative whole numbers, not {value!r}")
    return tuple(value)


def _positive(index: int, layer: dict[str, Any], key: str, count: int, default: Any = None) -> tuple[int, ...]:
    values = _ints(index, layer, key, count, default)
    if not all(values):
        raise _bad(index, layer, f"{key!r} must be positive, not {list(values)}")
    return values


def _same_length(n: int, k: int, s: int) -> tuple[int, int, int]:
    """TensorFlow's "same" conv along one axis: (output length, pad before, pad after)."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def _transpose_length(n: int, k: int, s: int, padding: str) -> tuple[int, int]:
    """Keras' Conv2DTranspose along one axis: (output length, crop before) of the full result.

    The full transposed convolution is (n - 1) * s + k long; TensorFlow keeps ``out`` values from
    ``crop``, the pad-before of the forward "same" conv that would map ``out`` back to ``n``.
    """
    if padding == "same":
        out = n * s
        return out, max(k - s, 0) // 2
    return n * s + max(k - s, 0), 0


def _padding_kind(index: int, layer: dict[str, Any], transposed: bool) -> str:
    padding = layer.get("padding", "valid")
    if padding in ("same", "valid"):
        return padding
    if isinstance(padding, dict) and set(padding) <= {"torch", "output_padding"} and "torch" in padding:
        _ints(index, padding, "torch", 2)
        if "output_padding" in padding:
            if not transposed:
                raise _bad(index, layer, "output_padding applies to conv_transpose only")
            _ints(index, padding, "output_padding", 2)
        return "torch"
    raise _bad(index, layer, f'padding must be "same", "valid" or {{"torch": [ph, pw]}}, not {padding!r}')


def _image(index: int, layer: dict[str, Any], shape: Shape) -> Shape:
    if len(shape) != 3:
        raise _bad(index, layer, f"needs an image input (C, H, W) but gets a flat vector of {shape[0]}")
    return shape


def _conv_shape(index: int, layer: dict[str, Any], shape: Shape, transposed: bool) -> Shape:
    c, h, w = _image(index, layer, shape)
    cin, cout = _positive(index, layer, "in", 1)[0], _positive(index, layer, "out", 1)[0]
    if cin != c:
        raise _bad(index, layer, f"expects {cin} input channels but its input has {c}")
    kernel = _positive(index, layer, "kernel", 2)
    stride = _positive(index, layer, "stride", 2, [1, 1])
    if _positive(index, layer, "dilation", 2, [1, 1]) != (1, 1):
        raise _bad(index, layer, "dilated convolutions are not supported")
    kind = _padding_kind(index, layer, transposed)
    sizes = []
    for axis, n in enumerate((h, w)):
        k, s = kernel[axis], stride[axis]
        if kind == "torch":
            p = layer["padding"]["torch"][axis]
            if transposed:
                op = layer["padding"].get("output_padding", [0, 0])[axis]
                if op >= s:
                    raise _bad(index, layer, f"output_padding {op} must be smaller than the stride {s}")
                size = (n - 1) * s - 2 * p + k + op
            else:
                size = (n + 2 * p - k) // s + 1
        elif transposed:
            size = _transpose_length(n, k, s, kind)[0]
        elif kind == "same":
            size = _same_length(n, k, s)[0]
        else:
            size = (n - k) // s + 1
        if size < 1:
            raise _bad(index, layer, f"turns a {h}x{w} input into nothing")
        sizes.append(size)
    return (cout, *sizes)


def _reshape_shape(index: int, layer: dict[str, Any], shape: Shape) -> Shape:
    order = layer.get("order")
    if order not in ("nhwc", "nchw"):
        raise _bad(index, layer, f'order must be "nhwc" (Keras) or "nchw" (torch view), not {order!r}')
    target = _positive(index, layer, "shape", 3)
    if math.prod(target) != math.prod(shape):
        raise _bad(index, layer, f"cannot reshape {math.prod(shape)} values into {list(target)}")
    # an nhwc shape is [H, W, C]; an nchw one [C, H, W]
    return (target[2], target[0], target[1]) if order == "nhwc" else target


def _step(index: int, layer: dict[str, Any], shape: Shape) -> Shape:
    """The output shape of one layer, or CheckpointError naming it."""
    op = layer.get("op")
    if op == "dense":
        if len(shape) != 1:
            raise _bad(index, layer, "dense needs a flat input (add a flatten first)")
        cin, cout = _positive(index, layer, "in", 1)[0], _positive(index, layer, "out", 1)[0]
        if cin != shape[0]:
            raise _bad(index, layer, f"expects {cin} inputs but gets {shape[0]}")
        return (cout,)
    if op == "reshape":
        return _reshape_shape(index, layer, shape)
    if op == "flatten":
        if layer.get("order") not in ("nhwc", "nchw"):
            raise _bad(index, layer, f'order must be "nhwc" or "nchw", not {layer.get("order")!r}')
        return (math.prod(shape),)
    if op in ("conv", "conv_transpose"):
        return _conv_shape(index, layer, shape, op == "conv_transpose")
    if op == "batchnorm":
        channels = _positive(index, layer, "channels", 1)[0]
        if channels != shape[0]:
            raise _bad(index, layer, f"normalises {channels} channels but its input has {shape[0]}")
        eps = layer.get("eps")
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps <= 0:
            raise _bad(index, layer, f"eps must be a positive number, not {eps!r}")
        return shape
    if op == "upsample":
        c, h, w = _image(index, layer, shape)
        fh, fw = _positive(index, layer, "factor", 2)
        if layer.get("mode", "nearest") not in ("nearest", "bilinear"):
            raise _bad(index, layer, f'mode must be "nearest" or "bilinear", not {layer.get("mode")!r}')
        return (c, h * fh, w * fw)
    if op == "leaky_relu":
        slope = layer.get("slope")
        if not isinstance(slope, (int, float)) or isinstance(slope, bool):
            raise _bad(index, layer, f"slope must be a number, not {slope!r}")
        return shape
    if op in ACTIVATIONS:
        return shape
    raise _bad(index, layer, f"unknown op {op!r} (known: {', '.join(OPS)})")


def _propagate(spec: dict[str, Any]) -> Shape:
    if not isinstance(spec, dict):
        raise CheckpointError(f"the architecture must be a JSON object, not {type(spec).__name__}")
    latent = spec.get("latent_dim")
    if not isinstance(latent, int) or isinstance(latent, bool) or latent < 1:
        raise CheckpointError(f"latent_dim must be a positive whole number, not {latent!r}")
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise CheckpointError("the architecture needs a non-empty list of layers")
    shape: Shape = (latent,)
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise CheckpointError(f"layer {index} must be a JSON object, not {type(layer).__name__}")
        shape = _step(index, layer, shape)
    if len(shape) != 3:
        raise CheckpointError(f"the network ends in a flat vector of {shape[0]}, not an image")
    return shape


def _output_range(layers: list[dict[str, Any]]) -> str:
    for layer in reversed(layers):
        if layer["op"] not in _IDENTITIES:
            return layer["op"] if layer["op"] in ("tanh", "sigmoid") else "linear"
    return "linear"


def spec_from_layers(latent_dim: int, layers: list[dict[str, Any]]) -> dict[str, Any]:
    """A complete, validated spec: ``channels``, ``image_size`` and ``output_range`` derived."""
    shape = _propagate({"latent_dim": latent_dim, "layers": layers})
    spec = {
        "latent_dim": latent_dim,
        "channels": shape[0],
        "image_size": [shape[1], shape[2]],
        "output_range": _output_range(layers),
        "layers": layers,
    }
    validate_spec(spec)
    return spec


def validate_spec(spec: dict[str, Any]) -> None:
    """Raise CheckpointError (one line, naming the bad layer) unless ``spec`` describes a generator."""
    c, h, w = _propagate(spec)
    if c not in OUTPUT_CHANNELS:
        raise CheckpointError(
            f"{_where(len(spec['layers']) - 1, spec['layers'][-1])}: the network outputs {c} channels; images need 1, 3 or 4"
        )
    derived = {"channels": c, "image_size": [h, w], "output_range": _output_range(spec["layers"])}
    for key, value in derived.items():
        if key in spec and (list(spec[key]) if isinstance(spec[key], (list, tuple)) else spec[key]) != value:
            raise CheckpointError(f"the architecture says {key} {spec[key]!r} but its layers give {value!r}")


def expected_tensors(spec: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor the spec's network holds, by state-dict name, with its torch-layout shape."""
    _propagate(spec)
    shapes: dict[str, tuple[int, ...]] = {}
    for i, layer in enumerate(spec["layers"]):
        op, prefix = layer["op"], f"layers.{i}."
        if op == "dense":
            shapes[prefix + "weight"] = (layer["out"], layer["in"])
        elif op == "conv":
            shapes[prefix + "weight"] = (layer["out"], layer["in"], *layer["kernel"])
        elif op == "conv_transpose":
            # torch's ConvTranspose2d layout: (in, out, kh, kw)
            shapes[prefix + "weight"] = (layer["in"], layer["out"], *layer["kernel"])
        elif op == "batchnorm":
            n = layer["channels"]
            if layer.get("scale", True):
                shapes[prefix + "weight"] = (n,)
            if layer.get("center", True):
                shapes[prefix + "bias"] = (n,)
            shapes[prefix + "running_mean"] = (n,)
            shapes[prefix + "running_var"] = (n,)
        if op in ("dense", "conv", "conv_transpose") and layer.get("bias", True):
            shapes[prefix + "bias"] = (layer["out"],)
    return shapes


# ---- the network ------------------------------------------------------------------------------------


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


class _Dense(nn.Module):
    def __init__(self, layer: dict[str, Any]):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(layer["out"], layer["in"]))
        self.bias = nn.Parameter(torch.zeros(layer["out"])) if layer.get("bias", True) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _Conv(nn.Module):
    """Conv2d with TensorFlow's asymmetric "same" padding, or PyTorch's symmetric one."""

    def __init__(self, layer: dict[str, Any]):
        super().__init__()
        self.kernel, self.stride = _pair(layer["kernel"]), _pair(layer.get("stride", 1))
        self.padding = layer.get("padding", "valid")
        self.weight = nn.Parameter(torch.zeros(layer["out"], layer["in"], *self.kernel))
        self.bias = nn.Parameter(torch.zeros(layer["out"])) if layer.get("bias", True) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in, H, W) -> (B, out, H', W')
        if isinstance(self.padding, dict):
            return F.conv2d(x, self.weight, self.bias, self.stride, tuple(self.padding["torch"]))
        if self.padding == "same":
            (_, top, bottom), (_, left, right) = (
                _same_length(n, k, s) for n, k, s in zip(x.shape[2:], self.kernel, self.stride)
            )
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride)


class _ConvTranspose(nn.Module):
    """ConvTranspose2d; "same"/"valid" as Keras' Conv2DTranspose: the full result, cropped or extended."""

    def __init__(self, layer: dict[str, Any]):
        super().__init__()
        self.kernel, self.stride = _pair(layer["kernel"]), _pair(layer.get("stride", 1))
        self.padding = layer.get("padding", "valid")
        self.weight = nn.Parameter(torch.zeros(layer["in"], layer["out"], *self.kernel))
        self.bias = nn.Parameter(torch.zeros(layer["out"])) if layer.get("bias", True) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.padding, dict):
            padding = tuple(self.padding["torch"])
            extra = tuple(self.padding.get("output_padding", (0, 0)))
            return F.conv_transpose2d(x, self.weight, self.bias, self.stride, padding, extra)
        crops, extras, outs = [], [], []
        for n, k, s in zip(x.shape[2:], self.kernel, self.stride):
            out, crop = _transpose_length(n, k, s, self.padding)
            # when k < s the full result is shorter than Keras' output: the tail gets only the bias
            extras.append(max(out + crop - ((n - 1) * s + k), 0))
            crops.append(crop)
            outs.append(out)
        y = F.conv_transpose2d(x, self.weight, self.bias, self.stride, 0, tuple(extras))
        return y[:, :, crops[0] : crops[0] + outs[0], crops[1] : crops[1] + outs[1]]


class _BatchNorm(nn.Module):
    """Inference-only batch norm over dim 1, on (B, C) or (B, C, H, W); gamma/beta may be absent."""

    def __init__(self, layer: dict[str, Any]):
        super().__init__()
        n, self.eps = layer["channels"], float(layer["eps"])
        self.weight = nn.Parameter(torch.ones(n)) if layer.get("scale", True) else None
        self.bias = nn.Parameter(torch.zeros(n)) if layer.get("center", True) else None
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class _Reshape(nn.Module):
    def __init__(self, layer: dict[str, Any], in_shape: Shape):
        super().__init__()
        self.nhwc, self.in_shape = layer["order"] == "nhwc", in_shape
        self.target = tuple(layer["shape"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            # Keras reads the flat vector as (H, W, C); an image input is flattened that way too
            if x.dim() == 4:
                x = x.permute(0, 2, 3, 1)
            return x.reshape(x.shape[0], *self.target).permute(0, 3, 1, 2)
        return x.reshape(x.shape[0], *self.target)


class _Flatten(nn.Module):
    def __init__(self, layer: dict[str, Any]):
        super().__init__()
        self.nhwc = layer["order"] == "nhwc"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc and x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.reshape(x.shape[0], -1)


class _Upsample(nn.Module):
    def __init__(self, layer: dict[str, Any]):
        super().__init__()
        self.factor, self.mode = tuple(layer["factor"]), layer.get("mode", "nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[2] * self.factor[0], x.shape[3] * self.factor[1])
        if self.mode == "bilinear":
            # half-pixel centres, no corner alignment: TensorFlow's and JAX's resize when enlarging
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.interpolate(x, size=size, mode="nearest")


class _LeakyReLU(nn.Module):
    def __init__(self, layer: dict[str, Any]):
        super().__init__()
        self.slope = float(layer["slope"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.slope)


_SIMPLE = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "linear": nn.Identity,
    "dropout": nn.Identity,
}


def _build(layer: dict[str, Any], in_shape: Shape) -> nn.Module:
    op = layer["op"]
    if op == "reshape":
        return _Reshape(layer, in_shape)
    if op in _SIMPLE:
        return _SIMPLE[op]()
    builders = {
        "dense": _Dense,
        "conv": _Conv,
        "conv_transpose": _ConvTranspose,
        "batchnorm": _BatchNorm,
        "flatten": _Flatten,
        "upsample": _Upsample,
        "leaky_relu": _LeakyReLU,
    }
    return builders[op](layer)


class SequentialGenerator(nn.Module):
    """The network a spec describes; state-dict names are ``layers.{i}.weight`` and so on."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        validate_spec(spec)
        self.spec = spec
        modules, shape = [], (spec["latent_dim"],)
        for index, layer in enumerate(spec["layers"]):
            modules.append(_build(layer, shape))
            shape = _step(index, layer, shape)
        self.layers = nn.ModuleList(modules)

    def load_arrays(self, tensors: dict[str, Any]) -> None:
        """Load float32 numpy arrays (an ImportedNetwork's tensors); every expected name is required."""
        expected = expected_tensors(self.spec)
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing or extra:
            raise CheckpointError(f"tensors do not match the architecture: missing {missing}, unexpected {extra}")
        for name, shape in expected.items():
            if tuple(tensors[name].shape) != shape:
                raise CheckpointError(f"{name} has shape {tuple(tensors[name].shape)}, the architecture needs {shape}")
        self.load_state_dict({k: torch.as_tensor(v, dtype=torch.float32) for k, v in tensors.items()})

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, C, H, W) in the network's own output range (``spec["output_range"]``)."""
        x = z
        for layer in self.layers:
            x = layer(x)
        return x
