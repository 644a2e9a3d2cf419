"""Growing the resolution during training (``--grow-steps``, lite GANs only; Karras et al. 2018).

A run starts at 16 px: G stops after its first up-sampling stage and draws through its own to_rgb,
D reads the picture through its own from_rgb into its last stage. A 16 px step of the lite recipe
took 0.46x the time of a 32 px one on a 2-core CPU, and a fading step 1.15x, since both sizes are
drawn (``python -m benchmarks.grow_speed``): the first steps, which learn the layout and colours,
are cheap. Each doubling then takes two phases of ``grow_steps``
steps: the new stages fade in (their output blended with the previous resolution's, enlarged, by
a share rising from 0 to 1), then train alone. Nothing is added to the networks: every stage's
features have the same width, so one to_rgb and one from_rgb serve every resolution, and the
checkpoint is the same as without growing.

The level a step trains at is a number: 1.0 is 16 px, 1.5 is halfway through fading in 32 px,
2.0 is 32 px. It depends on the step alone, so a resumed run continues at the level it stopped at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from latentctl.config import BASE_RESOLUTION, ModelConfig, TrainConfig
from latentctl.errors import UsageError

if TYPE_CHECKING:  # torch loads in the functions that use it: run planning (and --dry-run) needs none
    import torch

GROW_FROM = 1  # stages a run starts with: 16 px (8 px, the dense layer's own, holds only blobs)


def level_at(step: int, grow_steps: int, stages: int) -> float | None:
    """The level step ``step`` trains at, or None at full resolution (and when not growing)."""
    if grow_steps <= 0 or stages <= GROW_FROM:
        return None
    phase, within = divmod(step, grow_steps)
    level = GROW_FROM + phase // 2 + (within / grow_steps if phase % 2 else 0.0)
    return None if level >= stages else level


def full_size_from(grow_steps: int, stages: int) -> int:
    """The first step at full resolution: each doubling fades in and then trains alone."""
    return 0 if grow_steps <= 0 else 2 * grow_steps * max(0, stages - GROW_FROM)


def resolution(level: float) -> int:
    """The size of the pictures a step at ``level`` draws and D reads (the new one while fading)."""
    stages = int(level) + (level != int(level))
    return BASE_RESOLUTION << stages


def describe(level: float | None) -> str:
    """The stage a step at ``level`` trains, in words: "16 px", "fading in 32 px", "full size"."""
    if level is None:
        return "full size"
    return f"fading in {resolution(level)} px" if level % 1 else f"{resolution(level)} px"


def reals_at(real: torch.Tensor, level: float) -> torch.Tensor:
    """Real pictures as the generator draws them at ``level``: shrunk by averaging and, while a
    resolution fades in, blended with the previous one enlarged as G's output is (ProGAN), so
    that D cannot tell reals from fakes by the blend alone."""
    import torch
    import torch.nn.functional as F

    size = resolution(level)
    x = F.adaptive_avg_pool2d(real, size) if real.shape[-1] != size else real
    fade = level - int(level)
    if fade:
        coarse = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
        x = torch.lerp(coarse, x, fade)
    return x


def check(model: ModelConfig, train: TrainConfig, total_steps: int | None = None) -> None:
    """A UsageError when ``--grow-steps`` cannot apply: another architecture than lite GAN's, or a
    run that ends before it reaches full resolution (its checkpoint would draw with stages that
    never trained)."""
    if not train.grow_steps:
        return
    if model.arch != "lite" or model.family != "gan":
        raise UsageError("--grow-steps grows the lite GAN's resolution: use it with --arch lite")
    end = full_size_from(train.grow_steps, model.stages)
    if total_steps is not None and total_steps < end + train.grow_steps:
        raise UsageError(
            f"--grow-steps {train.grow_steps} reaches {model.image_size} px at step {end:,}, and this run has "
            f"{total_steps:,} steps: it would end unfinished or barely trained at full size. "
            f"Lower --grow-steps (at most {max(1, total_steps // (2 * (model.stages - GROW_FROM) + 1)):,}) or train longer"
        )
