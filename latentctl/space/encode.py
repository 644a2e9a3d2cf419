"""Real images into the latent space.

AE and VAE models have an encoder (a VAE's code is its mean). A GAN has none, so its latent is
found by optimisation (projection): from several random starts, Adam moves z to minimise a pixel
loss plus a cheap structural term (differences of neighbouring pixels and a 4x-downsampled
comparison, which reward the right edges and layout rather than only the right average colour),
with a light pull towards the prior's typical norm. The best start per image wins.

With a GAN encoder (``latentctl.space.gan_encoder``) each image starts from the encoder's guess instead,
and a few L-BFGS steps on the same loss (``refine``) finish the job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from latentctl.errors import UsageError
from latentctl.files.checkpoint import Loaded
from latentctl.models.interface import latent_center, prior_pull, seed_latents
from latentctl.perf import resolve_tuner, tuned_step
from latentctl.space.generate import generate
from latentctl.space.image_loss import image_loss  # noqa: F401  (re-exported: its old home)


@dataclass
class Encoded:
    z: np.ndarray  # (n, latent_dim) float32
    reconstructions: np.ndarray  # (n, S, S, 3) uint8
    errors: np.ndarray  # (n,) RMS pixel error of each reconstruction, in 0-255 units
    method: str  # "encoder" or "projection"


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(n, S, S, 3) uint8 -> (n, 3, S, S) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


def rms_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image RMS difference of two uint8 stacks, in 0-255 units."""
    d = a.astype(np.float64) - b.astype(np.float64)
    return np.sqrt((d**2).reshape(len(a), -1).mean(axis=1))


@torch.inference_mode()
def encode_with_encoder(loaded: Loaded, images: np.ndarray, device: torch.device, batch_size: int = 64) -> np.ndarray:
    enc = loaded.encoder
    enc.eval()
    out = []
    for i in range(0, len(images), batch_size):
        mean, _ = enc(to_tensor(images[i : i + batch_size], device))
        out.append(mean.float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)


REFINE_METHODS = {"lbfgs": "L-BFGS", "adam": "Adam"}  # refine_method -> the name the method string uses


@contextlib.contextmanager
def _frozen(generator: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no weight gradients while latents are optimised; trainable again after."""
    generator.eval()
    for p in generator.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in generator.parameters():
            p.requires_grad_(True)


def projection_loss(generator: torch.nn.Module, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """What projection minimises, per image (n,): ``image_loss`` plus a light pull that keeps z
    near the prior's typical set (``models.interface.prior_pull``: |z|² / d near 1 for N(0, I))."""
    return image_loss(generator(z), target) + 1e-3 * prior_pull(generator, z)


def project(
    generator: torch.nn.Module,
    images: np.ndarray,
    device: torch.device,
    *,
    steps: int = 300,
    lr: float = 0.05,
    restarts: int = 4,
    seed: int = 0,
    init: np.ndarray | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    thread_tuner: object | None = None,
) -> np.ndarray:
    """Latents whose generated images match ``images`` (n, S, S, 3) uint8, by optimisation.

    ``init`` (n, d) starts each image from a given latent (e.g. a GAN encoder's guess) instead of
    random seeds; restart 0 starts there and any further restarts from random seeds. A
    ``perf.ThreadTuner`` sets the thread count of each step (a step is a forward and backward
    through G, as in training, and as slow with a busy neighbour at the wrong count)."""
    dim = generator.config.latent_dim
    with _frozen(generator):
        n = len(images)
        target = to_tensor(images, device).repeat(restarts, 1, 1, 1)  # (restarts * n, ...)
        # restart r of image i starts from seed seed + r * n + i: reproducible, all different
        z0 = seed_latents(generator, [seed + k for k in range(restarts * n)])
        center = latent_center(generator)
        if center is not None:  # StyleGAN's W: the first start is the average w, as NVIDIA's projector
            z0[:n] = center
        if init is not None:
            z0[:n] = np.asarray(init, np.float32).reshape(n, dim)
        z = torch.tensor(z0, device=device, requires_grad=True)
        opt = torch.optim.Adam([z], lr=lr)
        for step in range(steps):
            with tuned_step(thread_tuner):
                opt.zero_grad(set_to_none=True)
                projection_loss(generator, z, target).sum().backward()
                opt.step()
            if on_progress:
                on_progress(step + 1, steps)
        with torch.no_grad():
            final = (generator(z) - target).pow(2).flatten(1).mean(1).view(restarts, n)
            best = final.argmin(0)  # (n,)
            chosen = z.detach().view(restarts, n, dim)[best, torch.arange(n, device=device)]
        return chosen.cpu().numpy().astype(np.float32)


def _objective(generator: torch.nn.Module, target: torch.Tensor, tuner) -> Callable:
    """Projection's per-image loss (pixels, edges, layout, the prior's pull) and its gradient."""

    def fn(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with tuned_step(tuner):
            z = z.detach().requires_grad_(True)
            f = projection_loss(generator, z, target)
            (g,) = torch.autograd.grad(f.sum(), z)
        return f.detach(), g

    return fn


def refine(
    generator: torch.nn.Module,
    images: np.ndarray,
    init: np.ndarray,
    device: torch.device,
    *,
    steps: int = 30,
    thread_tuner: object | None = None,
) -> np.ndarray:
    """Latents for ``images`` from a guess ``init`` (n, d): ``steps`` L-BFGS steps on projection's
    loss, every image on its own (``latentctl.space.lbfgs``). Each step is one forward and backward
    through G, plus one at the guess for its first gradient: ``steps + 1`` passes in all."""
    from latentctl.space import lbfgs

    with _frozen(generator):
        target = to_tensor(images, device)
        z0 = torch.tensor(np.asarray(init, np.float32), device=device)
        z = lbfgs.minimize(_objective(generator, target, thread_tuner), z0, evals=steps + 1)
        return z.cpu().numpy().astype(np.float32)


def encode_images(
    loaded: Loaded,
    images: np.ndarray,
    device: torch.device,
    *,
    steps: int = 300,
    lr: float = 0.05,
    restarts: int = 4,
    batch_size: int = 32,
    gan_encoder: object | None = None,
    refine_steps: int = 0,
    refine_method: str = "lbfgs",
    refine_lr: float = 0.1,
    on_progress: Callable[[int, int], None] | None = None,
    thread_tuner: object | None = "auto",
) -> Encoded:
    """Latents for real images, with their reconstructions and errors.

    With ``gan_encoder`` (a net from ``latentctl.space.gan_encoder``) a GAN's latents come from it in
    milliseconds, then, with ``refine_steps``, from that many steps on projection's loss started
    there: L-BFGS (``refine``), or with ``refine_method="adam"`` Adam at ``refine_lr`` as projection
    runs it (one start per image: the encoder's guess replaces the random restarts). ``thread_tuner`` as in
    ``perf.resolve_tuner``: by default projection steps follow ``perf.auto_tuner``, as training does."""
    if refine_method not in REFINE_METHODS:
        raise UsageError(f"refine_method {refine_method!r}: choose {' or '.join(REFINE_METHODS)}")
    tuner = resolve_tuner(thread_tuner, device)
    if gan_encoder is not None and loaded.encoder is None:
        from latentctl.space import gan_encoder as GE

        z = GE.encode(gan_encoder, images, device)
        method = "gan-encoder"
        if refine_steps:
            chunks = []
            for i in range(0, len(images), batch_size):
                batch, guess = images[i : i + batch_size], z[i : i + batch_size]
                if refine_method == "lbfgs":
                    # From the same guesses 30 L-BFGS steps end 0-3 % below a full 300-step
                    # projection's error, 30 Adam steps 4-15 % above it (docs/directions.md).
                    chunks.append(
                        refine(loaded.generator, batch, guess, device, steps=refine_steps, thread_tuner=tuner)
                    )
                else:
                    # Adam moves each coordinate about lr per step: 0.1 was best for 30 steps.
                    chunks.append(
                        project(
                            loaded.generator,
                            batch,
                            device,
                            steps=refine_steps,
                            lr=refine_lr,
                            restarts=1,
                            init=guess,
                            thread_tuner=tuner,
                        )
                    )
                if on_progress:
                    on_progress(min(i + batch_size, len(images)), len(images))
            z, method = np.concatenate(chunks), f"gan-encoder + {refine_steps} {REFINE_METHODS[refine_method]} steps"
        elif on_progress:
            on_progress(len(images), len(images))
    elif loaded.encoder is not None:
        z, method = encode_with_encoder(loaded, images, device), "encoder"
        if on_progress:
            on_progress(len(images), len(images))
    else:
        chunks = []
        for i in range(0, len(images), batch_size):

            def progress(step: int, total: int, done: int = i) -> None:
                if on_progress:
                    on_progress(done * steps + step * min(batch_size, len(images) - done), len(images) * steps)

            chunks.append(
                project(
                    loaded.generator,
                    images[i : i + batch_size],
                    device,
                    steps=steps,
                    lr=lr,
                    restarts=restarts,
                    seed=i * restarts,
                    on_progress=progress,
                    thread_tuner=tuner,
                )
            )
        z, method = np.concatenate(chunks), "projection"
    recon = generate(loaded.generator, z, device=device)
    return Encoded(z=z, reconstructions=recon, errors=rms_error(recon, images), method=method)


def mean_image_error(images: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The trivial baseline: each image's RMS error when "reconstructed" as the mean image."""
    mean = (reference if reference is not None else images).astype(np.float64).mean(axis=0)
    mean_u8 = np.broadcast_to(np.clip(np.round(mean), 0, 255).astype(np.uint8), images.shape)
    return rms_error(mean_u8, images)


__all__ = [
    "Encoded",
    "encode_images",
    "image_loss",
    "labelled_latents",
    "labelled_latents_with_others",
    "mean_image_error",
    "project",
    "rms_error",
]


def labelled_latents(*args, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Encode a labelled image folder: (latents (n, d), label values (n,)), unlabelled files dropped
    (``labelled_latents_with_others`` without the other columns)."""
    z, values, _ = labelled_latents_with_others(*args, **kwargs)
    return z, values


def labelled_latents_with_others(
    session,
    images_dir,
    column: str,
    labels_csv=None,
    pattern: str | None = None,
    max_images: int = 2000,
    *,
    steps: int = 300,
    gan_encoder: object | None = None,
    refine_steps: int = 0,
    on_note: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Encode a labelled image folder: (latents (n, d), label values (n,), the other label columns
    {name: values (n,)}), files without a ``column`` label dropped.

    Values are floats (NaN: no label), or strings (an object array, None: no label) for a text
    column. ``session`` is a ``session.ModelSession``; messages go to ``on_note``, progress to
    ``on_progress``."""
    from pathlib import Path

    from latentctl.errors import DataError, UsageError
    from latentctl.pictures.data import prepare_dataset
    from latentctl.pictures.labels import UTKFACE_PATTERN, compile_pattern, labels_from_names, read_labels_csv

    note = on_note or (lambda message: None)
    images_dir = Path(images_dir).expanduser()
    csv = labels_csv or (
        images_dir / "labels.csv" if (images_dir / "labels.csv").exists() and pattern is None else None
    )
    # The labels and the column are checked before the images are read, which is the slow part.
    if csv:
        labels = read_labels_csv(csv, images_dir)
        labels.column([], column)  # UsageError naming the columns there are
    else:
        groups = list(compile_pattern(pattern or UTKFACE_PATTERN).groupindex)
        if column not in groups:
            raise UsageError(f"no label column {column!r}; the name pattern gives: {', '.join(groups)}")
    model = session.info.model
    ds = prepare_dataset(images_dir, model.image_size, session.ws.cache, max_images=max_images, channels=model.channels)
    if not csv:
        labels = labels_from_names(ds.files, pattern or UTKFACE_PATTERN)
    note(labels.summary())
    values = labels.column(ds.files, column)
    keep = np.array([v is not None for v in values], dtype=bool) if values.dtype == object else np.isfinite(values)
    if not keep.any():
        raise DataError(f"no image in {images_dir} has a '{column}' label")
    enc = encode_images(
        session.loaded,
        np.asarray(ds.images)[keep],
        session.device,
        steps=steps,
        gan_encoder=gan_encoder,
        refine_steps=refine_steps,
        on_progress=on_progress,
    )
    note(
        f"encoded {len(enc.z)} labelled images by {enc.method}: mean reconstruction error "
        f"{enc.errors.mean():.1f} (RMS, 0-255)"
    )
    others = {name: labels.column(ds.files, name)[keep] for name in [*labels.names, *labels.text] if name != column}
    return enc.z, values[keep], others
