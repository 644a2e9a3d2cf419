"""Inception-v3 as standard FID uses it: the graph of pytorch-fid's ``FIDInceptionA/C/E_1/E_2``
variant and its weights (``pt_inception-2015-12-05``) read from a local safetensors file.

Nothing is downloaded and nothing is unpickled: the user converts the weights once (docs/quality.md).
The graph is written here because latentctl has no torchvision; its parameter names are
torchvision's (``Mixed_5b.branch1x1.conv.weight`` ...), which is what the weights file holds.

What makes it *FID's* Inception rather than torchvision's ImageNet model, each of which shifts FID:

- the input is resized to 299x299 with bilinear interpolation (no antialiasing, ``align_corners``
  off) and mapped from [0, 1] to [-1, 1];
- the average pools inside the A, C and E blocks leave the zero padding out of the average
  (``count_include_pad=False``), as TensorFlow's original graph did;
- the last block (``Mixed_7c``) pools its pool branch with a 3x3 *max* pool, not an average;
- features are the 2048 channel means after ``Mixed_7c``; the classifier (``fc``, 1008 classes in
  this file, 1000 in torchvision's ImageNet weights) is not used.

``benchmarks/inception_check.py`` compares this graph with pytorch-fid's own on the same weights.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from latentctl.errors import DataError

INPUT_SIZE = 299
FEATURE_DIM = 2048
FID_CLASSES = 1008  # pt_inception-2015-12-05's classifier rows; torchvision's ImageNet weights have 1000
_BN_EPS = 1e-3
# Present in the weights file, not needed for the pool features.
_UNUSED_PREFIXES = ("fc.", "AuxLogits.")


class _Conv(nn.Module):
    """Convolution without bias, batch norm (eval: a fixed affine map), ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, padding: Any = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _A(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1 = _Conv(cin, 48, 1)
        self.branch5x5_2 = _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_avg3(x)),
            ],
            1,
        )


class _B(nn.Module):
    """Grid reduction 35 -> 17."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


class _C(nn.Module):
    """Factorised 7x7 convolutions at 17x17."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1 = _Conv(cin, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = _Conv(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = _Conv(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = _Conv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = _Conv(c7, 192, row[0], padding=row[1])
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = x
        for i in range(1, 6):
            dbl = getattr(self, f"branch7x7dbl_{i}")(dbl)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                dbl,
                self.branch_pool(_avg3(x)),
            ],
            1,
        )


class _D(nn.Module):
    """Grid reduction 17 -> 8."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = _Conv(cin, 192, 1)
        self.branch3x3_2 = _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x
        for i in range(1, 5):
            b = getattr(self, f"branch7x7x3_{i}")(b)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b, F.max_pool2d(x, 3, stride=2)], 1)


class _E(nn.Module):
    """Expanded filter bank at 8x8; ``max_pool`` marks the last block (FID's ``E_2``)."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(cin, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(d),
                self.branch3x3dbl_3b(d),
                self.branch_pool(pooled),
            ],
            1,
        )


class FIDInception(nn.Module):
    """(N, 3, H, W) float images in [0, 1], any size -> (N, 2048) pool features."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b = _A(192, 32)
        self.Mixed_5c = _A(256, 64)
        self.Mixed_5d = _A(288, 64)
        self.Mixed_6a = _B(288)
        self.Mixed_6b = _C(768, 128)
        self.Mixed_6c = _C(768, 160)
        self.Mixed_6d = _C(768, 160)
        self.Mixed_6e = _C(768, 192)
        self.Mixed_7a = _D(768)
        self.Mixed_7b = _E(1280, max_pool=False)
        self.Mixed_7c = _E(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


@functools.lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor the weights file must hold, with its shape (``num_batches_tracked`` aside).
    Cached: it builds the whole graph to ask (0.1 s); callers only read it."""
    return {k: tuple(v.shape) for k, v in FIDInception().state_dict().items() if not k.endswith("num_batches_tracked")}


def _wrong_file(path: Path, why: str) -> DataError:
    return DataError(
        f"--inception-weights {path}: {why}; FID needs pytorch-fid's pt_inception-2015-12-05 converted to "
        "safetensors as docs/quality.md shows"
    )


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Read and check the weights: every tensor the graph needs, at its shape. One-line errors name
    the first tensor that is missing or the wrong shape, and a torchvision ImageNet file by its
    1000-class head (its graph is the same, its FID is not comparable)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(f"--inception-weights {path}: is a folder; pass the .safetensors file")
    if not path.is_file():
        raise DataError(f"--inception-weights {path}: no such file")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise _wrong_file(path, f"not a safetensors file ({first[:120]})") from None
    fc = state.get("fc.weight")
    if fc is not None and fc.shape[0] != FID_CLASSES:
        raise _wrong_file(
            path,
            f"its classifier has {fc.shape[0]} classes, not {FID_CLASSES}: these look like torchvision's ImageNet "
            "weights, whose FID is not comparable with published numbers",
        )
    want = expected_shapes()
    missing = [k for k in want if k not in state]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise _wrong_file(path, f"it has no tensor {missing[0]!r}{more}")
    for k, shape in want.items():
        if tuple(state[k].shape) != shape:
            raise _wrong_file(path, f"tensor {k!r} has shape {tuple(state[k].shape)}, the graph needs {shape}")
        if not state[k].is_floating_point() or not bool(torch.isfinite(state[k]).all()):
            raise _wrong_file(path, f"tensor {k!r} is not finite floating-point numbers (a damaged file?)")
    extra = [k for k in state if k not in want and not k.endswith("num_batches_tracked")]
    extra = [k for k in extra if not k.startswith(_UNUSED_PREFIXES)]
    if extra:
        raise _wrong_file(path, f"it holds tensors this graph does not have, e.g. {extra[0]!r}")
    return {k: state[k].float() for k in want}


def from_state(state: dict[str, torch.Tensor]) -> FIDInception:
    """The graph with these weights (as ``load_state`` returns them), eval mode, no gradients, NCHW."""
    model = FIDInception()
    model.load_state_dict(state, strict=False)  # num_batches_tracked is not used in eval
    return model.eval().requires_grad_(False)


@functools.lru_cache(maxsize=2)
def load(path: str, device: str = "cpu") -> FIDInception:
    """The graph with the file's weights, float32, for ``score`` (cached per file and device)."""
    model = from_state(load_state(path))
    # Channels-last: oneDNN's fastest float32 layout on CPU (81 vs 106 ms an image on a 2-core
    # Xeon); it changes only the summation order, ~5e-6 of the features' spread.
    return model.to(device, memory_format=torch.channels_last)
