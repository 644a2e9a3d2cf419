"""Typed configuration. Plain dataclasses with no torch import, so ``--help`` and ``info`` stay fast.

A checkpoint stores ``ModelConfig`` and ``TrainConfig`` as JSON; ``from_dict`` is the one place that
reads them back, so defaults added in later versions fill in for old checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from latentctl.errors import CheckpointError, UsageError

IMAGE_SIZES = (32, 64, 128, 256)
FAMILIES = ("gan", "vae", "ae")
# "seed": the blog post's DCGAN, exactly (the experiment we reproduce). "lite": the same latent and
# first dense layer, with resize-then-conv upsampling and pixel norm in G, spectral norm and a
# minibatch-stddev feature in D: for a few thousand pictures on a CPU budget (docs/model-families.md).
TRAINABLE_ARCHS = ("seed", "lite")
# Generators written by other tools and opened with `latentctl import` (latentctl.importers): a
# layer sequence (Keras, PyTorch DCGANs) or NVIDIA's StyleGAN2 and StyleGAN3. They sample and explore like any
# model, but have no discriminator, so they cannot be trained or resumed here.
IMPORTED_ARCHS = ("sequential", "stylegan2", "stylegan3")
ARCHS = TRAINABLE_ARCHS + IMPORTED_ARCHS
MAPPED_ARCHS = ("stylegan2", "stylegan3")  # explored in W: seeds go through the mapping network
# The latent spaces a mapped generator is explored in (models/stylegan.py): z, the prior's sample;
# w, the mapping network's output, given to every layer; w+, one w per layer, flattened into one
# vector of num_ws * w_dim numbers so that means, differences and edits stay plain vector arithmetic.
SPACES = ("z", "w", "w+")
NOISE_MODES = ("const", "random", "none")  # StyleGAN2's noise: the stored maps, fresh draws, or none
PRIORS = ("normal", "uniform")  # the latent prior: seeds draw z ~ N(0, I) or U(-1, 1)
CHANNELS = (1, 3, 4)
# bce: the seed's (non-saturating for G); hinge: SNGAN's; rpgan: R3GAN's relativistic pairing
# (D scores each fake against a real, not on an absolute scale), with R2 beside --r1-gamma's R1.
LOSSES = ("bce", "hinge", "rpgan")
AUGMENT_OPS = ("colour", "translation", "cutout")  # --augment's transforms, in the order they apply


def parse_augment_ops(text: str) -> tuple[str, ...]:
    """``--augment-ops``: a comma-separated subset of AUGMENT_OPS, returned in their order."""
    names = {t.strip().lower().replace("color", "colour") for t in str(text).split(",") if t.strip()}
    if not names or names - set(AUGMENT_OPS):
        ops = ", ".join(AUGMENT_OPS)
        raise UsageError(f"--augment-ops {text!r}: name one or more of {ops}, separated by commas")
    return tuple(op for op in AUGMENT_OPS if op in names)


BASE_RESOLUTION = 8  # the seed's dense layer reshapes to 128 x 8 x 8


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the networks. The defaults are the seed's model."""

    family: str = "gan"
    arch: str = "seed"
    image_size: int = 128
    channels: int = 3
    latent_dim: int = 100
    width: int = 128  # channels of every hidden layer (the seed: 128)
    dropout: float = 0.4  # before the discriminator's last dense layer
    latent_prior: str = "normal"  # normal | uniform: what a seed's latent is drawn from
    # An imported generator's own description (arch sequential: its layer spec; stylegan2: NVIDIA's
    # constructor arguments); None for the networks latentctl builds from the fields above.
    network: dict | None = None
    # Which of a mapped generator's latent spaces latent_dim counts (SPACES); "" means the model's
    # own: z for every generator latentctl trains, w for a StyleGAN. Set by ``in_space``; to_dict
    # leaves it out when "", so checkpoints never carry it.
    space: str = ""
    # FastGAN's skip-layer excitation (lite generator only): the 8x8 features gate the channels of
    # the last stage's. Left out of checkpoints when off, like space.
    skip_excitation: bool = False
    # lightweight-gan's self-supervised discriminator (lite only): D also decodes its coarsest
    # features back into the real picture it saw. Adds D weights, so the checkpoint must say so;
    # left out when off.
    d_reconstruct: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise UsageError(f"model family {self.family!r} is not one of {', '.join(FAMILIES)}")
        if self.arch not in ARCHS:
            raise UsageError(f"architecture {self.arch!r} is not one of {', '.join(ARCHS)}")
        if self.channels not in CHANNELS:
            raise UsageError(f"channels must be 1 (grey), 3 (RGB) or 4 (RGBA), got {self.channels}")
        if self.latent_prior not in PRIORS:
            raise UsageError(f"latent prior {self.latent_prior!r} is not one of {', '.join(PRIORS)}")
        if self.imported:
            if self.family != "gan" or not isinstance(self.network, dict):
                raise UsageError(f"an imported {self.arch} model is a GAN generator with its network description")
            if not 1 <= self.image_size <= 4096:
                raise UsageError(f"image size {self.image_size} is outside 1-4096 pixels")
        elif self.network is not None:
            raise UsageError(f"the {self.arch} architecture takes no network description")
        elif self.image_size not in IMAGE_SIZES:
            raise UsageError(
                f"image size {self.image_size} is not supported; pick one of " + ", ".join(map(str, IMAGE_SIZES))
            )
        if self.space and self.space not in (SPACES if self.arch in MAPPED_ARCHS else ("z",)):
            raise UsageError(f"latent space {self.space!r} is not one of {', '.join(self.spaces)}")
        if not 1 <= self.latent_dim <= (1 << 16 if self.space == "w+" else 4096):
            raise UsageError(f"--latent-dim must be between 1 and 4096, got {self.latent_dim}")
        if not 1 <= self.width <= 1024:
            raise UsageError(f"--width must be between 1 and 1024, got {self.width}")
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.skip_excitation and (self.arch != "lite" or self.family != "gan"):
            raise UsageError("--skip-excitation is a part of the lite GAN's generator: use it with --arch lite")
        if self.d_reconstruct and (self.arch != "lite" or self.family != "gan"):
            raise UsageError("--d-reconstruct is a part of the lite GAN's discriminator: use it with --arch lite")

    @property
    def imported(self) -> bool:
        """Written by another tool: it samples and explores, but cannot be trained here."""
        return self.arch in IMPORTED_ARCHS

    @property
    def mapped(self) -> bool:
        """Its explored latents are its prior's samples mapped by the network (StyleGAN's W and
        W+), so a seed's latent needs the network (models/interface.py)."""
        return self.arch in MAPPED_ARCHS and self.latent_space != "z"

    @property
    def latent_space(self) -> str:
        """The space ``latent_dim`` counts: ``space``, or the model's own when that is ""."""
        return self.space or self.own_space

    @property
    def own_space(self) -> str:
        """The space explored when none is asked for: w for a StyleGAN, z for every other model."""
        return "w" if self.arch in MAPPED_ARCHS else "z"

    @property
    def spaces(self) -> tuple[str, ...]:
        """The latent spaces this model can be explored in."""
        return SPACES if self.arch in MAPPED_ARCHS else ("z",)

    @property
    def num_ws(self) -> int:
        """How many ws a StyleGAN's synthesis takes (one per styled layer; NVIDIA's ``num_ws``):
        2 log2(resolution) - 2 for StyleGAN2, num_layers + 2 for StyleGAN3; 1 for other models."""
        net = self.network or {}
        if self.arch == "stylegan2":
            return 2 * (int(net["resolution"]).bit_length() - 1) - 2
        if self.arch == "stylegan3":
            return int(net.get("num_layers", 14)) + 2
        return 1

    def check_noise(self, mode: str | None) -> None:
        """A UsageError when ``mode`` (``--noise``) is not a noise mode this model has: only
        StyleGAN2's layers take noise (StyleGAN3 and every other model draw from the latent alone)."""
        if mode is None or mode == "const":  # the default: what every model draws without noise inputs
            return
        if mode not in NOISE_MODES:
            raise UsageError(f"--noise {mode!r} is not one of {', '.join(NOISE_MODES)}")
        if self.arch == "stylegan3" and mode != "const":
            raise UsageError(f"--noise {mode}: StyleGAN3 has no noise inputs (its pictures depend on w alone)")
        if self.arch != "stylegan2" and self.arch != "stylegan3":
            raise UsageError(
                f"--noise {mode}: only StyleGAN2 models have noise inputs; this model draws from its latent alone"
            )

    def in_space(self, space: str | None) -> ModelConfig:
        """This config with ``latent_dim`` counting ``space`` (None: the model's own). One line
        naming the spaces there are when this model has no such space."""
        if space is None or space == self.latent_space:
            return self
        if space not in self.spaces:
            raise UsageError(
                f"--space {space}: this {self.arch} model has one latent space, z (w and w+ belong to "
                "StyleGAN models, whose mapping network makes them)"
                if self.arch not in MAPPED_ARCHS
                else f"--space {space!r} is not one of {', '.join(SPACES)}"
            )
        net = self.network or {}
        dims = {"z": int(net["z_dim"]), "w": int(net["w_dim"]), "w+": self.num_ws * int(net["w_dim"])}
        return dataclasses.replace(self, latent_dim=dims[space], space=space)

    @property
    def stages(self) -> int:
        """Up-sampling stages in G (= down-sampling stages in D): 8 px doubled up to image_size."""
        return (self.image_size // BASE_RESOLUTION).bit_length() - 1


@dataclass(frozen=True)
class TrainConfig:
    """How a run trains. The defaults are the seed's loop (BRIEF.md)."""

    epochs: int = 100
    batch_size: int = 128  # D sees batch/2 real + batch/2 generated; G trains on batch latents
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    max_images: int | None = None  # the seed used 15,000 of UTKFace's 23,708
    sample_every: int = 1  # epochs between progress grids
    checkpoint_every: int = 5  # epochs between checkpoints (and always at the end)
    snapshot_every: int = 20  # epochs between kept generator snapshots (the seed saved every 20)
    kl_weight: float = 1.0  # VAE only: weight of the KL term against the summed squared error
    precision: str = "fp32"  # fp32 | bf16 (autocast); resolved from "auto" before it is stored
    channels_last: bool = False
    # The recipe levers (docs/model-families.md). Defaults are the seed's loop; `--arch lite` turns
    # on the ones measured to help (latentctl.train.recipes).
    loss: str = "bce"
    augment: str = "off"  # off | ada (probability adapted as StyleGAN2-ADA does) | a fixed p in [0, 1]
    augment_ops: str = "colour,translation,cutout"  # which transforms --augment applies
    augment_target: float = 0.6  # ADA's target for E[sign(D(real))]
    mirror: bool = False  # random horizontal flips of the real images
    ema: bool = False  # keep an exponential moving average of G, used for sampling
    ema_kimg: float = 10.0  # EMA half-life in thousands of images (ramped up early in a run)
    r1_gamma: float = 0.0  # R1 penalty weight on real images (0 = off), applied every r1_every steps
    r1_every: int = 16
    lr_d: float | None = None  # D's learning rate when it differs from G's (--lr)
    max_steps: int | None = None  # a budget in steps; training stops there even mid-epoch
    score_every: int = 0  # epochs between quality scores (latentctl.quality.score) in the metrics; 0 = never
    d_update: str = "split"  # split: the seed's two D steps (reals, then fakes); joint: one step on both
    # Progressive growing (lite only, latentctl.train.growing): steps per phase, starting at 16 px,
    # each doubling fading in over grow_steps steps and then training alone for as many; 0 = off.
    grow_steps: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2 or self.batch_size % 2:
            raise UsageError(f"--batch-size must be an even number >= 2, got {self.batch_size}")
        if self.lr <= 0:
            raise UsageError(f"--lr must be positive, got {self.lr}")
        if self.kl_weight < 0:
            raise UsageError(f"--kl-weight must be >= 0, got {self.kl_weight}")
        if self.max_images is not None and self.max_images < 1:
            raise UsageError(f"--max-images must be at least 1, got {self.max_images}")
        if min(self.sample_every, self.checkpoint_every, self.snapshot_every) < 1:
            raise UsageError("--sample-every, --checkpoint-every and --snapshot-every must be at least 1")
        if self.precision not in ("fp32", "bf16"):
            raise UsageError(f"--precision must be fp32, bf16 or auto, got {self.precision!r}")
        if self.loss not in LOSSES:
            raise UsageError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.augment not in ("off", "ada"):
            try:
                p = float(self.augment)
            except ValueError:
                p = -1.0
            if not 0.0 <= p <= 1.0:
                raise UsageError(f"--augment must be off, ada or a probability in [0, 1], got {self.augment!r}")
        # canonical (in the order they apply), so two spellings of one choice compare and resume alike
        object.__setattr__(self, "augment_ops", ",".join(parse_augment_ops(self.augment_ops)))
        if not 0.0 < self.augment_target < 1.0:
            raise UsageError(f"--augment-target must be in (0, 1), got {self.augment_target}")
        if not self.ema_kimg > 0:
            raise UsageError(f"--ema-kimg must be positive, got {self.ema_kimg}")
        if self.r1_gamma < 0 or self.r1_every < 1:
            raise UsageError("--r1-gamma must be >= 0 and its interval at least 1")
        if self.lr_d is not None and self.lr_d <= 0:
            raise UsageError(f"--lr-d must be positive, got {self.lr_d}")
        if self.score_every < 0:
            raise UsageError(f"--score-every must be >= 0, got {self.score_every}")
        if self.d_update not in ("split", "joint"):
            raise UsageError(f"d_update must be split or joint, got {self.d_update!r}")
        if self.loss == "rpgan" and self.d_update != "joint":
            # the pairing needs D's verdicts on reals and fakes in one step; the seed's split has two
            raise UsageError("--loss rpgan pairs each fake with a real in one D step: use it with --arch lite")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--steps must be at least 1, got {self.max_steps}")
        if isinstance(self.grow_steps, bool) or not isinstance(self.grow_steps, int) or self.grow_steps < 0:
            raise UsageError(f"--grow-steps must be a whole number of steps >= 0, got {self.grow_steps!r}")

    @property
    def half_batch(self) -> int:
        return self.batch_size // 2

    def total_steps(self, images: int) -> int:
        """The steps a run over ``images`` pictures takes: whole batches per epoch, times the epochs,
        cut at ``max_steps``."""
        total = images // self.batch_size * self.epochs
        return total if self.max_steps is None else min(total, self.max_steps)

    @property
    def d_lr(self) -> float:
        return self.lr if self.lr_d is None else self.lr_d


# Keys that may change when a run is resumed: schedule and speed settings, which a user may want to
# change when moving a run to another machine. Everything else defines what a step computes.
RESUMABLE_KEYS = frozenset(
    {
        "epochs",
        "sample_every",
        "checkpoint_every",
        "snapshot_every",
        "precision",
        "channels_last",
        "max_steps",
        "score_every",
    }
)

C = TypeVar("C", ModelConfig, TrainConfig)
# Fields added after checkpoints were first written, which to_dict leaves out at their defaults.
LATER_FIELDS = {ModelConfig: ("space", "skip_excitation", "d_reconstruct"), TrainConfig: ("augment_ops", "grow_steps")}


def to_dict(cfg: ModelConfig | TrainConfig) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    # Fields added later are stored only when they differ from their defaults, so a file that does
    # not use them opens in the latentctl versions from before them. (The space explored is a
    # session's choice, not the model's: a checkpoint never stores it.)
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    for name in LATER_FIELDS[type(cfg)]:
        if out[name] == defaults[name]:
            del out[name]
    return out


def from_dict(cls: type[C], data: dict[str, Any], *, source: str = "checkpoint") -> C:
    """Rebuild a config; unknown keys mean a newer latentctl wrote it, which we say plainly."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CheckpointError(
            f"{source} has {cls.__name__} keys this latentctl does not know ({', '.join(unknown)}); "
            "it was probably written by a newer version: upgrade latentctl"
        )
    try:
        return cls(**data)
    except (TypeError, UsageError) as err:
        raise CheckpointError(f"{source} has an invalid {cls.__name__}: {err}") from None


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` lines for every key that differs (missing keys count as differing)."""
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
