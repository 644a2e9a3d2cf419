"""What the exploration side needs from a generator: the one definition every network meets.

`sample`, `render`, `interp`, `apply`, `directions`, `encode`, `score`, `steer` and `explore` reach
a network only through this interface, so a generator latentctl did not train (an imported Keras or
PyTorch DCGAN, NVIDIA's StyleGAN2) plugs in without touching a command:

``config`` (a ``ModelConfig``)
    ``latent_dim`` and ``latent_prior`` (normal or uniform: what a seed's latent is drawn from,
    ``seeds.latents_from_seeds``), ``image_size`` (square), ``channels`` (1, 3 or 4).
``forward(z)``
    (B, latent_dim) float -> (B, channels, size, size) in [-1, 1]; a network whose own output
    is in [0, 1] (a sigmoid) is rescaled by its wrapper, so pictures, scores and the explorer
    never need to know.
``sefa_weight()``
    (features, latent_dim): the linear map of the first layer that consumes z, whatever its form
    (a Dense layer, a transposed convolution on a 1x1 input, StyleGAN's first style affines), the
    matrix SeFa factorises.
``first_features(z)``
    (B, features): the activations just after that layer, which GANSpace takes its PCA of.

Optional, for a network whose explored latent is not its prior's sample (StyleGAN: commands work
in W or W+, made by the mapping network, where edits are most linear; ``config.mapped`` says so):

``z_dim`` and ``map_latents(z)``
    seeds and random draws give z ~ the prior (``z_dim``), and ``map_latents`` (B, z_dim) ->
    (B, latent_dim) turns them into the latents commands store and edit;
``latent_center``
    a (latent_dim,) buffer that truncation pulls toward (StyleGAN's average w); zero otherwise;
``use_space(space)``, ``use_noise(mode)``
    which latent space ``config.latent_dim`` counts (``config.SPACES``), and the noise mode;
``sefa_weight(layers)`` and ``sefa_lift(vectors, layers)``
    SeFa on a range of layers, and its directions carried into the explored space (W+).

The functions below are how the rest of latentctl asks for latents, so that all of this stays in
one place. The checkpoint supplies the rest: the stable model id stamped on store entries.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch


class GeneratorNetwork(Protocol):
    config: Any

    def __call__(self, z: torch.Tensor) -> torch.Tensor: ...

    def sefa_weight(self) -> torch.Tensor: ...

    def first_features(self, z: torch.Tensor) -> torch.Tensor: ...


def linear_map(layer: Any, dim: int, *, prefix: Any = None) -> torch.Tensor:
    """The matrix (features, dim) of an affine ``layer`` applied after the linear ``prefix``,
    measured by probing with the unit vectors: A e_k = f(e_k) - f(0). Works for any first layer
    (Dense, a transposed convolution on a 1x1 input, ...) without knowing its weight layout."""
    weight = next((p for p in getattr(layer, "parameters", lambda: iter(()))()), None)
    dtype = torch.float32 if weight is None else weight.dtype
    device = "cpu" if weight is None else weight.device
    probe = torch.cat([torch.zeros(1, dim), torch.eye(dim)]).to(device=device, dtype=dtype)
    with torch.no_grad():
        x = probe if prefix is None else prefix(probe)
        out = layer(x).reshape(dim + 1, -1).float()
    return (out[1:] - out[:1]).T.contiguous()


def seed_latents(generator: Any, seeds: list[int]) -> np.ndarray:
    """(len(seeds), latent_dim) float32: the latents ``seeds`` address for this generator, the same
    on every device: z = RandomState(seed) from the prior, mapped where the network maps it."""
    from latentctl.seeds import latents_from_seeds

    cfg = generator.config
    z = latents_from_seeds(seeds, getattr(generator, "z_dim", cfg.latent_dim), cfg.latent_prior)
    return _mapped(generator, z)


def random_latents(generator: Any, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` latents from the prior (float32), for work that needs many and no addresses."""
    from latentctl.seeds import draw

    cfg = generator.config
    z = draw(rng, (n, getattr(generator, "z_dim", cfg.latent_dim)), cfg.latent_prior).astype(np.float32)
    return _mapped(generator, z)


def random_latents_torch(generator: Any, n: int, stream: torch.Generator) -> torch.Tensor:
    """``n`` latents from the prior as a CPU tensor, drawn from ``stream`` (training loops)."""
    from latentctl.seeds import draw_torch

    cfg = generator.config
    z = draw_torch(n, getattr(generator, "z_dim", cfg.latent_dim), cfg.latent_prior, stream)
    if not _maps(generator):
        return z
    device = next(generator.parameters()).device
    with torch.no_grad():
        return generator.map_latents(z.to(device)).float().cpu()


def latent_center(generator: Any) -> np.ndarray | None:
    """What truncation pulls latents toward: StyleGAN's average w; None for a zero-centred prior."""
    center = getattr(generator, "latent_center", None)
    return None if center is None else center.detach().float().cpu().numpy()


def truncate(generator: Any, z: np.ndarray, psi: float) -> np.ndarray:
    """The truncation trick: ``z`` pulled toward the centre by ``psi`` (1 = unchanged). For a
    zero-centred prior it is ``z * psi`` (float32), as `sample --truncation` always drew."""
    center = latent_center(generator)
    if center is None:
        return z * np.float32(psi)
    return (center + np.float32(psi) * (z - center)).astype(np.float32)


def prior_pull(generator: Any, z: torch.Tensor) -> torch.Tensor:
    """(n,): how far each latent's mean square is from the prior's typical value (1 for N(0, I),
    1/3 for U(-1, 1)), squared; what projection adds, lightly, so it stays where the prior draws.
    Zero for a mapped space (StyleGAN's W): NVIDIA's projector puts no such term on w either."""
    if _maps(generator):
        return z.new_zeros(len(z))
    typical = 1.0 / 3.0 if generator.config.latent_prior == "uniform" else 1.0
    return (z.pow(2).mean(1) - typical).pow(2)


def use_space(generator: Any, space: str | None) -> None:
    """Explore ``space`` (``--space``; None: the model's own). A model with one latent space
    accepts only z; the UsageError says which spaces there are."""
    if space is None:
        return
    if hasattr(generator, "use_space"):
        generator.use_space(space)
    else:
        generator.config.in_space(space)  # z is its own space; anything else is refused there


def use_noise(generator: Any, mode: str | None) -> None:
    """The noise mode (``--noise``; None: the model's default) of a network with noise inputs."""
    generator.config.check_noise(mode)
    if mode is not None and hasattr(generator, "use_noise"):
        generator.use_noise(mode)


def _maps(generator: Any) -> bool:
    return bool(getattr(generator.config, "mapped", False))


def _mapped(generator: Any, z: np.ndarray) -> np.ndarray:
    if not _maps(generator):
        return z
    device = next(generator.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(z), 1024):
            zb = torch.from_numpy(np.ascontiguousarray(z[start : start + 1024])).to(device)
            out.append(generator.map_latents(zb).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, generator.config.latent_dim), np.float32)
