"""Which training levers each architecture turns on by default (docs/model-families.md).

"seed" is the blog post's experiment and keeps every TrainConfig default (BCE, two D steps, no
augmentation, no EMA). "lite" turns on what helps a few thousand pictures on a CPU budget, as
measured by benchmarks/quality.py (docs/quality.md). A user's explicit option always wins.
"""

from __future__ import annotations

from typing import Any

from latentctl.config import ModelConfig

RECIPES: dict[str, dict[str, Any]] = {
    "seed": {},
    "lite": {
        "loss": "hinge",  # with spectral norm in D (SNGAN)
        "augment": "ada",  # DiffAugment's transforms, ADA's adaptive strength
        "ema": True,
        "d_update": "joint",
        "beta2": 0.99,
        # Smaller batches buy steps, and on a CPU a step's time follows its batch: at batch 32 the
        # lite model took 1.6-1.8x the steps of batch 64 in the same 10 minutes and scored better
        # on cartoon faces, ORL photos and emoji, as well on digits (docs/quality.md, "Batch 32
        # becomes the lite recipe's"). A GPU
        # runs a larger batch in nearly the same time: there --batch-size 128 is the one to try.
        "batch_size": 32,
    },
}
# The lite recipe's Adam learning rate is LITE_LR at width LITE_LR_WIDTH and falls as 1/width
# above it. Why so much higher than the seed's 2e-4: pixel norm after G's convolutions and spectral
# norm on D's make those layers blind to their weights' scale, and as the weights grow each of
# Adam's fixed-size steps turns them less; at 2e-4 a 2-minute run still drew blobs. Why 1/width:
# Adam moves every weight by about lr whatever the layer's size, and a convolution's output sums
# 9 x width of them, so a wider model takes a larger step per lr (muP's rule for hidden layers).
# Measured (docs/quality.md): 1.6e-3 beat 2e-4..8e-4 on faces and digits at width 32 and trained
# at width 64, while at width 128 it drew black squares and 4e-4 drew faces. Not raised below
# width 32, where nothing was measured.
LITE_LR, LITE_LR_WIDTH = 1.6e-3, 32
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "seed": {},
    "lite": {"dropout": 0.0},  # spectral norm and the minibatch deviation take dropout's place
}
GAN_ONLY = ("loss", "augment", "ema", "d_update", "batch_size")  # measured on GANs only
AUTOENCODER_LR = 1e-3  # the seed's 2e-4 suits the adversarial game; reconstruction learns faster at 1e-3


def train_defaults(arch: str, model: ModelConfig) -> dict[str, Any]:
    """The TrainConfig values ``arch`` sets for ``model`` when the user gave none: GAN levers only
    for GANs, and every learning rate that differs from TrainConfig's (the seed's 2e-4)."""
    recipe = dict(RECIPES[arch])
    if model.family != "gan":
        for key in GAN_ONLY:
            recipe.pop(key, None)
        recipe["lr"] = AUTOENCODER_LR
    elif arch == "lite":
        recipe["lr"] = lite_lr(model.width)
    return recipe


def lite_lr(width: int) -> float:
    return LITE_LR * min(1.0, LITE_LR_WIDTH / width)


def model_defaults(arch: str) -> dict[str, Any]:
    return dict(MODEL_DEFAULTS[arch])
