"""GAN steerability (Jahanian et al. 2020): a linear walk in z that performs a known image edit.

    w* = argmin_w  E_{z, α} masked-L2( G(z + α w), edit(G(z), α) )

with G frozen and Adam on w only. Geometric edits (zoom, shift, rotate) warp G(z) with
affine_grid/grid_sample; the pixels they pull in from outside the picture are unknown, so a
validity mask leaves them out of the loss. Brightness and colour are additive offsets.

α is in the edit's own units (``EDITS[name].units``), and the saved walk is scaled so that
``apply --add NAME=α`` asks for that α: e.g. ``steer-shift-x=0.1`` shifts by a tenth of the width.
Library code: progress goes to a callback, nothing is printed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentctl.errors import NonFiniteLossError, UsageError


@dataclass(frozen=True)
class Edit:
    name: str
    alpha_max: float  # α is sampled from [-alpha_max, alpha_max]
    units: str


EDITS: dict[str, Edit] = {
    e.name: e
    for e in (
        Edit("zoom", 1.0, "log2 of the zoom factor (+1 = twice as large, -1 = half)"),
        Edit("shift-x", 0.25, "fraction of the image width (+ moves the content right)"),
        Edit("shift-y", 0.25, "fraction of the image height (+ moves the content down)"),
        Edit("rotate", 30.0, "degrees (+ turns the content counter-clockwise)"),
        Edit("brightness", 0.5, "offset on the [-1, 1] pixel scale (+0.5 = a quarter of the range brighter)"),
        Edit("color", 0.5, "offset of one channel (--channel) on the [-1, 1] pixel scale"),
    )
}
CHANNELS = ("red", "green", "blue")


def check_edit(name: str, channel: str = "red") -> Edit:
    if name not in EDITS:
        raise UsageError(f"unknown --edit {name!r}; choose one of {', '.join(EDITS)}")
    if channel not in CHANNELS:
        raise UsageError(f"unknown --channel {channel!r}; choose red, green or blue")
    return EDITS[name]


def apply_edit(x: Any, edit: str, alpha: Any, *, channel: str = "red") -> tuple[Any, Any]:
    """(edited images, validity mask) for images ``x`` (B, C, S, S) in [-1, 1] and per-image
    ``alpha`` (B,). The mask (B, 1, S, S) is 1 where the edited pixel comes from inside the image."""
    import torch
    import torch.nn.functional as F

    check_edit(edit, channel)
    a = alpha.to(x.dtype).reshape(-1)
    b = x.shape[0]
    ones = torch.ones(b, 1, *x.shape[2:], dtype=x.dtype, device=x.device)
    if edit in ("brightness", "color"):
        offset = torch.zeros(b, x.shape[1], 1, 1, dtype=x.dtype, device=x.device)
        if edit == "brightness":
            offset += a[:, None, None, None]
        else:
            offset[:, CHANNELS.index(channel) % x.shape[1]] = a[:, None, None]
        # Clamped like any image: the generator cannot paint beyond tanh's range either.
        return (x + offset).clamp(-1.0, 1.0), ones
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    # affine_grid maps each output pixel to where it samples the input (normalised coordinates, y
    # down), so every transform below is the inverse of the motion the content makes.
    if edit == "zoom":
        inv = torch.pow(2.0, -a)
        theta[:, 0, 0] = inv
        theta[:, 1, 1] = inv
    elif edit == "shift-x":
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = -2.0 * a  # the normalised width is 2
    elif edit == "shift-y":
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 1, 2] = -2.0 * a
    else:  # rotate; y points down, so a counter-clockwise turn on screen samples at +angle
        r = a * (math.pi / 180.0)
        theta[:, 0, 0] = torch.cos(r)
        theta[:, 0, 1] = -torch.sin(r)
        theta[:, 1, 0] = torch.sin(r)
        theta[:, 1, 1] = torch.cos(r)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    edited = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    coverage = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # A pixel half blended with the zero padding is not a target worth matching.
    return edited, (coverage > 0.99).to(x.dtype)


def _masked_mse(a: Any, b: Any, mask: Any) -> Any:
    """Per image: mean squared difference over the valid pixels (all channels)."""
    err = ((a - b) ** 2 * mask).sum(dim=(1, 2, 3))
    return err / (mask.sum(dim=(1, 2, 3)) * a.shape[1]).clamp_min(1.0)


@dataclass
class AlphaError:
    alpha: float
    walk: float  # masked RMS (0-255 scale) between G(z + αw) and edit(G(z), α)
    zero: float  # the same for the zero walk, G(z) itself


@dataclass
class SteerResult:
    edit: str
    direction: np.ndarray  # (d,) float32 in the edit's units per unit strength
    errors: list[AlphaError] = field(default_factory=list)
    final_loss: float = float("nan")
    meta: dict[str, Any] = field(default_factory=dict)

    def wins(self) -> tuple[int, int]:
        """(strengths where the walk beats doing nothing, nonzero strengths measured)."""
        moved = [e for e in self.errors if e.alpha != 0]
        return sum(e.walk < e.zero for e in moved), len(moved)


def walk_errors(
    generator: Any,
    direction: np.ndarray,
    edit: str,
    z: np.ndarray,
    alphas: list[float],
    *,
    channel: str = "red",
    device: Any = "cpu",
    on_progress: Callable[[int, int], None] | None = None,
) -> list[AlphaError]:
    """How well ``z + α·direction`` matches the edited image, per α, next to doing nothing;
    ``on_progress(done, len(alphas))`` after each α (each is a pass of G over ``z``)."""
    import torch

    device = torch.device(device)
    zt = torch.from_numpy(np.asarray(z, np.float32)).to(device)
    w = torch.from_numpy(np.asarray(direction, np.float32)).to(device)
    out = []
    with torch.inference_mode():
        x = generator(zt)
        for alpha in alphas:
            a = torch.full((len(zt),), float(alpha), device=device)
            target, mask = apply_edit(x, edit, a, channel=channel)
            moved = generator(zt + float(alpha) * w)
            # x 127.5: from the [-1, 1] scale to 0-255 steps, as the other commands report errors.
            walk = float(_masked_mse(moved, target, mask).mean().sqrt()) * 127.5
            zero = float(_masked_mse(x, target, mask).mean().sqrt()) * 127.5
            out.append(AlphaError(float(alpha), walk, zero))
            if on_progress is not None:
                on_progress(len(out), len(alphas))
    return out


def eval_alphas(alpha_max: float, n: int = 7) -> list[float]:
    return [float(a) for a in np.linspace(-alpha_max, alpha_max, n)]


def finite_loss(loss: Any, learning: str, step: int, alpha_max: float, lr: float) -> float:
    """``loss`` as a float, or the error that stops learning a direction once it is NaN or infinite:
    Adam would carry the NaN into the direction, which would only fail when it is saved."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"learning {learning} went to NaN or infinity at step {step}; "
            f"lower --alpha-max ({alpha_max:g}) or --lr ({lr:g})"
        )
    return value


@contextlib.contextmanager
def frozen(generator: Any) -> Iterator[None]:
    """The generator in eval mode with no parameter gradients, restored afterwards: only the
    direction is trained, and the caller's model comes back exactly as it was."""
    was_training = generator.training
    flags = [(p, p.requires_grad) for p in generator.parameters()]
    generator.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        generator.train(was_training)


def learn_walk(
    generator: Any,
    edit: str,
    *,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 0.05,
    seed: int = 0,
    channel: str = "red",
    alpha_max: float | None = None,
    eval_seeds: int = 32,
    device: Any = "cpu",
    on_step: Callable[[int, int, float], None] | None = None,
    on_eval: Callable[[int, int], None] | None = None,
) -> SteerResult:
    """Learn the linear walk for ``edit``; errors are measured on held-out latents.
    ``on_step(step, steps, loss)`` while learning, ``on_eval(done, total)`` while measuring."""
    import torch

    spec = check_edit(edit, channel)
    if steps < 1 or batch_size < 1:
        raise UsageError(f"--steps and --batch-size must be at least 1, got {steps} and {batch_size}")
    amax = float(alpha_max if alpha_max is not None else spec.alpha_max)
    if not amax > 0:
        raise UsageError(f"--alpha-max must be positive, got {amax}")
    device = torch.device(device)
    from latentctl.models.interface import random_latents, random_latents_torch

    dim = generator.config.latent_dim
    gen = torch.Generator(device="cpu").manual_seed(seed)
    # The walk is learnt per *normalised* α in [-1, 1], so Adam's step means the same for degrees
    # as for fractions of the width; it is rescaled to the edit's units at the end.
    w = torch.zeros(dim, device=device, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    loss_value = float("nan")
    with frozen(generator):
        for step in range(steps):
            z = random_latents_torch(generator, batch_size, gen).to(device)
            t = (torch.rand(batch_size, generator=gen) * 2 - 1).to(device)
            with torch.no_grad():
                target, mask = apply_edit(generator(z), edit, t * amax, channel=channel)
            loss = _masked_mse(generator(z + t[:, None] * w), target, mask).mean()
            # e.g. a zoom of 2^1e6: the edited target itself is NaN, and so would the walk be
            loss_value = finite_loss(loss, f"the {edit} walk", step + 1, amax, lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step(step + 1, steps, loss_value)
    direction = (w.detach().cpu().numpy() / amax).astype(np.float32)
    # Held-out latents from their own seed stream, never the ones trained on.
    z_eval = random_latents(generator, np.random.default_rng([seed, 1]), eval_seeds)
    alphas = eval_alphas(amax)
    if on_eval is not None:
        on_eval(0, len(alphas))  # the measuring begins: G runs over the held-out latents len(alphas) times
    errors = walk_errors(
        generator, direction, edit, z_eval, alphas, channel=channel, device=device, on_progress=on_eval
    )
    meta = {
        "edit": edit,
        "alpha_range": [-amax, amax],
        "units": spec.units,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "scale": "edit units: strength α asks for edit α",
    }
    if edit == "color":
        meta["channel"] = channel
    return SteerResult(edit, direction, errors, loss_value, meta)
