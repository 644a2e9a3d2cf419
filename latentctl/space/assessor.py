"""GANalyze (Goetschalckx et al. 2019): a direction that moves an assessor's score, and the small
CNN attribute classifier used as that assessor.

    θ* = argmin_θ  E_{z, α} [ A(G(z')) − (A(G(z)) + α) ]²,   z' = (z + αθ) · ‖z‖ / ‖z + αθ‖

A is the classifier's logit, so strength α asks for α more logit. G and A are frozen; Adam
trains θ only. The classifier is saved as safetensors with its config in ``__metadata__``
(format ``latentctl-assessor``), in the checkpoint's style: never a pickle.
Library code: progress goes to callbacks, nothing is printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentctl._version import __version__
from latentctl.errors import CheckpointError, DataError, UsageError
from latentctl.files.fsutil import atomic_writer

FORMAT = "latentctl-assessor"
FORMAT_VERSION = 1
DEFAULT_ALPHA_MAX = 2.0  # logits: the strengths a GANalyze direction is trained for, -2..2


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 64  # generated images are resized to this before scoring
    channels: int = 3
    width: int = 32


def build_classifier(config: ClassifierConfig) -> Any:
    """Three stride-2 convolutions, global average pooling, one logit: small enough to train on a
    CPU in seconds, and it sees the whole picture whatever the size."""
    from torch import nn

    w = config.width
    return nn.Sequential(
        nn.Conv2d(config.channels, w, 3, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * w, 1),
        nn.Flatten(0),
    )


@dataclass
class Assessor:
    config: ClassifierConfig
    net: Any  # torch module: (B, C, S, S) in [-1, 1] -> (B,) logits
    meta: dict[str, Any] = field(default_factory=dict)

    def logits(self, x: Any) -> Any:
        """Scores for images in [-1, 1] at any size (resized to the classifier's) and with 1, 3 or 4
        channels (brought to the classifier's as its training pictures were decoded)."""
        import torch.nn.functional as F

        x = _match_channels(x, self.config.channels)
        s = self.config.image_size
        if x.shape[-1] != s or x.shape[-2] != s:
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=x.shape[-1] > s)
        return self.net(x)

    def score_uint8(self, images: np.ndarray, device: Any = "cpu") -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
            return self.logits(x.to(device)).float().cpu().numpy()


_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, what Pillow's convert("L") uses


def _match_channels(x: Any, channels: int) -> Any:
    """(B, C, S, S) images in [-1, 1] -> ``channels`` channels, differentiably (steer follows the
    gradient through it): grey is repeated, RGBA composited over white (as ``images.to_rgb``
    decodes a transparent picture for training), RGB to grey by its luma."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 4:
        alpha = (x[:, 3:] + 1) / 2
        x, c = x[:, :3] * alpha + (1 - alpha), 3
        if channels == 3:
            return x
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if c == 3 and channels == 1:
        r, g, b = _LUMA
        return r * x[:, :1] + g * x[:, 1:2] + b * x[:, 2:3]
    raise UsageError(f"this classifier reads {channels}-channel images and cannot score {c}-channel ones")


@dataclass
class TrainReport:
    n_pos: int
    n_neg: int
    train_accuracy: float
    val_accuracy: float  # on a held-out fifth of the images


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    config: ClassifierConfig = ClassifierConfig(),
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    device: Any = "cpu",
    on_epoch: Callable[[int, int, float], None] | None = None,
) -> tuple[Assessor, TrainReport]:
    """Train on (N, H, W, 3) uint8 ``images`` with boolean ``labels``; a fifth is held out."""
    import torch
    import torch.nn.functional as F

    images = np.asarray(images)
    y = np.asarray(labels, dtype=bool)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) != len(y):
        raise DataError(
            f"a classifier trains on (N, H, W, 3) uint8 images with one label each, got {images.shape} {images.dtype} and {len(y)} labels"
        )
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if min(n_pos, n_neg) < 2:
        raise DataError(f"a classifier needs at least 2 positive and 2 negative images, got {n_pos} and {n_neg}")
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {epochs}")
    device = torch.device(device)
    torch.manual_seed(seed)  # the network's initial weights
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_val = max(1, len(y) // 5)
    val, tr = order[:n_val], order[n_val:]
    net = build_classifier(config).to(device)
    assessor = Assessor(config, net)

    def batch(idx: np.ndarray) -> tuple[Any, Any]:
        x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(device)
        return x, torch.from_numpy(y[idx].astype(np.float32)).to(device)

    # Classes weighted to count equally, so 30 positives among 2000 images still shape the logit.
    pos_weight = torch.tensor(max(n_neg, 1) / max(n_pos, 1), device=device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for epoch in range(epochs):
        net.train()
        total = 0.0
        tr = tr[rng.permutation(len(tr))]
        for start in range(0, len(tr), batch_size):
            x, t = batch(tr[start : start + batch_size])
            loss = F.binary_cross_entropy_with_logits(assessor.logits(x), t, pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(t)
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs, total / len(tr))
    net.eval()

    def accuracy(idx: np.ndarray) -> float:
        with torch.inference_mode():
            hits = 0
            for start in range(0, len(idx), 256):
                x, t = batch(idx[start : start + 256])
                hits += int(((assessor.logits(x) > 0) == (t > 0.5)).sum())
        return hits / len(idx)

    return assessor, TrainReport(n_pos, n_neg, accuracy(tr), accuracy(val))


def save_classifier(path: Path, assessor: Assessor, *, force: bool = False) -> Path:
    from safetensors.torch import save as st_save

    path = Path(path).expanduser()
    if path.suffix != ".safetensors":
        raise UsageError(f"{path}: a classifier is saved as .safetensors; give a name ending in .safetensors")
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; pass --force to replace it")
    tensors = {f"A.{k}": v.detach().cpu().contiguous().clone() for k, v in assessor.net.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "latentctl_version": __version__,
        "classifier_config": json.dumps(asdict(assessor.config), sort_keys=True),
        "training": json.dumps(assessor.meta, sort_keys=True, default=str),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, overwrite=force) as f:
        f.write(st_save(tensors, metadata=meta))
    return path


def load_classifier(path: Path, device: Any = "cpu") -> Assessor:
    """Read a classifier written by ``save_classifier``; pickles are refused like checkpoints."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from latentctl.files.checkpoint import read_raw_header

    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"no classifier at {path}; train one with 'latentctl classifier train'")
    meta = read_raw_header(path).get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a latentctl classifier (no '{FORMAT}' metadata)")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: classifier format {meta['format_version']} is newer than this latentctl reads; upgrade latentctl"
        )
    try:
        config = ClassifierConfig(**json.loads(meta["classifier_config"]))
        training = json.loads(meta.get("training", "{}"))
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: classifier metadata is damaged ({e})") from None
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read tensors ({err}); the file may be damaged") from None
    net = build_classifier(config)
    sd = {k[2:]: v for k, v in tensors.items() if k.startswith("A.")}
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError:
        raise CheckpointError(f"{path}: its weights do not fit the classifier its metadata describes") from None
    import torch

    net.to(torch.device(device)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return Assessor(config, net, training)


# ---- GANalyze ----------------------------------------------------------------------------------


def _renormalised(z: Any, moved: Any) -> Any:
    return moved * (z.norm(dim=1, keepdim=True) / moved.norm(dim=1, keepdim=True).clamp_min(1e-8))


@dataclass
class CurvePoint:
    strength: float
    score: float  # mean assessor logit of G(z'), z' renormalised as GANalyze trains it
    score_added: float  # the same for plain z + sθ, what `apply --add` renders
    target: float  # mean A(G(z)) + strength


@dataclass
class GanalyzeResult:
    direction: np.ndarray  # θ (d,), float32
    curve: list[CurvePoint]
    final_loss: float
    meta: dict[str, Any]


def score_curve(
    generator: Any,
    assessor: Assessor,
    direction: np.ndarray,
    z: np.ndarray,
    strengths: list[float],
    device: Any = "cpu",
) -> list[CurvePoint]:
    import torch

    device = torch.device(device)
    zt = torch.from_numpy(np.asarray(z, np.float32)).to(device)
    th = torch.from_numpy(np.asarray(direction, np.float32)).to(device)
    out = []
    with torch.inference_mode():
        base = float(assessor.logits(generator(zt)).mean())
        for s in strengths:
            moved = zt + float(s) * th
            renorm = float(assessor.logits(generator(_renormalised(zt, moved))).mean())
            added = float(assessor.logits(generator(moved)).mean())
            out.append(CurvePoint(float(s), renorm, added, base + float(s)))
    return out


def learn_direction(
    generator: Any,
    assessor: Assessor,
    *,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 0.05,
    alpha_max: float = DEFAULT_ALPHA_MAX,
    seed: int = 0,
    eval_seeds: int = 256,  # the curve's mean logit: 64 seeds left dips of ~0.5 logit that were noise
    device: Any = "cpu",
    on_step: Callable[[int, int, float], None] | None = None,
) -> GanalyzeResult:
    import torch

    if steps < 1 or batch_size < 1:
        raise UsageError(f"--steps and --batch-size must be at least 1, got {steps} and {batch_size}")
    if not alpha_max > 0:
        raise UsageError(f"--alpha-max must be positive, got {alpha_max}")
    device = torch.device(device)
    dim = generator.config.latent_dim
    from latentctl.models.interface import random_latents, random_latents_torch
    from latentctl.space.steer import finite_loss, frozen

    gen = torch.Generator(device="cpu").manual_seed(seed)
    # A small random start: at θ = 0 the renormalisation's gradient is still defined, but a
    # nonzero start keeps the first steps from all pointing the same way for every seed.
    theta = (0.01 * torch.randn(dim, generator=gen)).to(device).requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    loss_value = float("nan")
    with frozen(generator):
        for step in range(steps):
            z = random_latents_torch(generator, batch_size, gen).to(device)
            a = ((torch.rand(batch_size, generator=gen) * 2 - 1) * alpha_max).to(device)
            with torch.no_grad():
                target = assessor.logits(generator(z)) + a
            moved = _renormalised(z, z + a[:, None] * theta)
            loss = ((assessor.logits(generator(moved)) - target) ** 2).mean()
            loss_value = finite_loss(loss, "the GANalyze direction", step + 1, alpha_max, lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step(step + 1, steps, loss_value)
    direction = theta.detach().cpu().numpy().astype(np.float32)
    z_eval = random_latents(generator, np.random.default_rng([seed, 1]), eval_seeds)
    strengths = [float(s) for s in np.linspace(-alpha_max, alpha_max, 9)]
    curve = score_curve(generator, assessor, direction, z_eval, strengths, device=device)
    meta = {
        "alpha_range": [-alpha_max, alpha_max],
        "units": "assessor logit",
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "renormalised": True,
        "scale": "strength α asks for α more assessor logit (GANalyze renormalises z + αθ to |z|; apply adds αθ as is)",
    }
    return GanalyzeResult(direction, curve, loss_value, meta)
