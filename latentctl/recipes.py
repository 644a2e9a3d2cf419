"""Which training levers each architecture turns on by default (docs/model-families.md).

"seed" is the blog post's experiment and keeps every TrainConfig default (BCE, two D steps, no
augmentation, no EMA). "lite" turns on what helps a few thousand pictures on a CPU budget, as
measured by benchmarks/quality.py (docs/quality.md). A user's explicit option always wins.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    "seed": {},
    "lite": {
        "loss": "hinge",  # with spectral norm in D (SNGAN)
        "augment": "ada",  # DiffAugment's transforms, ADA's adaptive strength
        "ema": True,
        "d_update": "joint",
        "beta2": 0.99,
    },
}
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "seed": {},
    "lite": {"dropout": 0.0},  # spectral norm and the minibatch deviation take dropout's place
}
GAN_ONLY = ("loss", "augment", "ema", "d_update")


def train_defaults(arch: str, family: str) -> dict[str, Any]:
    """The TrainConfig values ``arch`` sets when the user gave none (GAN levers only for GANs)."""
    recipe = dict(RECIPES[arch])
    if family != "gan":
        for key in GAN_ONLY:
            recipe.pop(key, None)
    return recipe


def model_defaults(arch: str) -> dict[str, Any]:
    return dict(MODEL_DEFAULTS[arch])
