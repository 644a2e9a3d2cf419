"""An encoder for a trained GAN, learned from the GAN's own samples.

A GAN has no encoder, and projection by optimisation costs seconds per image. This module learns
E: image -> z from pairs (z, G(z)) drawn fresh each step from the prior, so it needs no data and
no labels: loss = |E(G(z)) - z|^2 (latent regression) + image_weight * the projection's image loss
between G(E(G(z))) and G(z). The second term (one more G forward and a backward through G to its
input) asks E for latents that redraw the picture, not only latents near z: many directions of z
barely change the image, and regression alone spends effort on them. Measured on the demo's model
(docs/directions.md): encoder alone RMS 37.0 -> 34.5, with 30 refinement steps 27.1 -> 26.5, for
2.1x the training time. E(x) is then a start in milliseconds that a short projection (``encode.project`` with
``init``) can refine. The file sits beside the checkpoint (``gan-encoder.safetensors`` in a run
folder) with its config and the generator's model id in ``__metadata__`` (format
``latentctl-gan-encoder``), in the checkpoint's style: never a pickle. Library code: progress goes
to a callback, nothing is printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentctl._version import __version__
from latentctl.errors import CheckpointError, UsageError
from latentctl.files.fsutil import atomic_writer

FORMAT = "latentctl-gan-encoder"
FORMAT_VERSION = 1
MAX_STEPS = 100_000


@dataclass(frozen=True)
class GanEncoderConfig:
    image_size: int
    channels: int
    latent_dim: int
    width: int = 32
    steps: int = 500  # minutes for the 32 px demo GAN on 2 CPU cores (measured time: docs/directions.md)
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    image_weight: float = 1.0  # 0: latent regression only (files written before this field)


def encoder_path(checkpoint: Path, space: str = "") -> Path:
    """Where the encoder of ``checkpoint`` lives: RUN/gan-encoder.safetensors for a run's own
    checkpoint.safetensors, else NAME.gan-encoder.safetensors beside the file. A StyleGAN explored
    in another space than its own (``--space z`` or ``w+``) keeps one encoder per space
    (gan-encoder-z, gan-encoder-wplus): each predicts that space's latents."""
    checkpoint = Path(checkpoint)
    tag = {"": "", "w+": "-wplus"}.get(space, f"-{space}")
    if checkpoint.name == "checkpoint.safetensors":
        return checkpoint.parent / f"gan-encoder{tag}.safetensors"
    return checkpoint.with_name(f"{checkpoint.stem}.gan-encoder{tag}.safetensors")


def build(config: GanEncoderConfig) -> Any:
    """Stride-2 convolutions down to 4x4, then one linear layer to z: small enough to train on a
    CPU in about a minute for 32-64 px models."""
    from torch import nn

    layers: list[Any] = []
    c_in, size, w = config.channels, config.image_size, config.width
    while size > 4:
        c_out = min(w * 2 ** len(layers[::2]), 8 * w)
        layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        c_in, size = c_out, size // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * size * size, config.latent_dim))


def train(
    generator: Any,
    config: GanEncoderConfig,
    device: Any = "cpu",
    on_progress: Callable[[int, int, float], None] | None = None,
    thread_tuner: Any = "auto",
) -> tuple[Any, dict]:
    """Fit an encoder on fresh (z, G(z)) pairs; ``on_progress(step, steps, loss)``.
    ``thread_tuner`` as in ``perf.resolve_tuner`` (by default training's rule)."""
    import torch

    from latentctl.perf import resolve_tuner, tuned_step

    if not 1 <= config.steps <= MAX_STEPS:
        raise UsageError(f"--encoder-steps must be from 1 to {MAX_STEPS:,}, got {config.steps}")
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    net = build(config).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    # Cosine decay: the last steps polish instead of bouncing at the initial rate.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    from latentctl.models.interface import random_latents_torch
    from latentctl.space.image_loss import image_loss  # the projection's own loss: what the refinement then minimises
    from latentctl.space.steer import frozen

    tuner = resolve_tuner(thread_tuner, device)
    start, loss_value = time.perf_counter(), float("nan")
    with frozen(generator):  # only E learns; the image term back-propagates through G to its input
        for step in range(config.steps):
            z = random_latents_torch(generator, config.batch_size, gen).to(device)
            with tuned_step(tuner):
                with torch.no_grad():
                    x = generator(z)
                guess = net(x)
                latent = (guess - z).pow(2).mean()
                loss = latent
                if config.image_weight:
                    loss = loss + config.image_weight * image_loss(generator(guess), x).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
            loss_value = float(latent.detach())
            if on_progress and (step % 10 == 9 or step == config.steps - 1):
                on_progress(step + 1, config.steps, loss_value)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, {"final_latent_mse": loss_value, "seconds": round(time.perf_counter() - start, 2)}


def save(path: Path, net: Any, config: GanEncoderConfig, *, model_id: str, meta: dict) -> Path:
    from safetensors.torch import save as st_save

    path = Path(path)
    tensors = {f"E.{k}": v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    header = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "latentctl_version": __version__,
        "encoder_config": json.dumps(asdict(config), sort_keys=True),
        "model_id": model_id,
        "training": json.dumps(meta, sort_keys=True, default=str),
    }
    with atomic_writer(path, overwrite=True) as f:
        f.write(st_save(tensors, metadata=header))
    return path


def load(path: Path, device: Any = "cpu", *, model_id: str | None = None) -> tuple[Any, GanEncoderConfig, dict]:
    """(net, config, header) from ``save``'s file; CheckpointError when it is not one, or when it
    was trained for another generator (``model_id``), so a stale encoder is never used silently."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from latentctl.files.checkpoint import read_raw_header

    path = Path(path)
    meta = read_raw_header(path).get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: a safetensors file, but not a latentctl GAN encoder; delete it or retrain with --train-encoder"
        )
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: GAN encoder format {meta['format_version']} is newer than this latentctl reads; upgrade latentctl"
        )
    if model_id is not None and meta.get("model_id") != model_id:
        raise CheckpointError(
            f"{path} was trained for another generator; retrain it with 'latentctl encode --train-encoder'"
        )
    try:
        fields = json.loads(meta["encoder_config"])
        if not isinstance(fields, dict):
            raise TypeError("encoder_config is not an object")
        fields.setdefault("image_weight", 0.0)  # written before the image term existed
        config = GanEncoderConfig(**fields)
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: GAN encoder metadata is damaged ({e}); retrain with --train-encoder") from None
    try:
        tensors = load_file(str(path), device="cpu")
        net = build(config)
        net.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("E.")}, strict=True)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(
            f"{path}: cannot load the GAN encoder ({str(err).splitlines()[0]}); retrain with --train-encoder"
        ) from None
    net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, config, meta


def encode(net: Any, images: np.ndarray, device: Any = "cpu", batch_size: int = 256) -> np.ndarray:
    """(n, S, S, C) uint8 -> (n, latent_dim) float32."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)
            x = x.permute(0, 3, 1, 2).float() / 127.5 - 1
            out.append(net(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def ensure(
    loaded: Any,
    checkpoint: Path,
    device: Any = "cpu",
    *,
    train_new: bool = False,
    steps: int | None = None,
    width: int | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> tuple[Any, Path, bool]:
    """(net, path, trained_now): the stored encoder of ``checkpoint``, trained first when there is
    none, when it belongs to another generator, or when ``train_new``."""
    cfg = loaded.generator.config  # the space explored (a StyleGAN's z, W or W+), not the header's own
    path = encoder_path(checkpoint, cfg.space)
    model_id = loaded.info.model_id
    if path.exists() and not train_new:
        try:
            net, stored, _ = load(path, device, model_id=model_id)
            if stored.latent_dim == cfg.latent_dim:
                return net, path, False
        except CheckpointError:
            pass  # stale or damaged: retrained below, and the file replaced
    config = GanEncoderConfig(
        image_size=cfg.image_size,
        channels=cfg.channels,
        latent_dim=cfg.latent_dim,
        **({"steps": steps} if steps else {}),
        **({"width": width} if width else {}),
    )
    net, meta = train(loaded.generator, config, device, on_progress)
    save(path, net, config, model_id=model_id, meta=meta)
    return net, path, True
