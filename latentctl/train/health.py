"""Is training working? Warnings, with the likely fix, for what a user cannot see in a loss column.

The checks read what the loop already has (the losses of each step, the fixed-seed progress grid)
and cost nothing measurable. Each kind of warning is given once, and again only after the run has
recovered from it, so a long run is not flooded. Thresholds are stated in the losses' own units:

* **D wins** (GAN): D's losses on reals and on fakes both below ``D_WINS_LOSS`` on average over a
  window of steps. For the seed's BCE that means D gives reals a probability above 0.95 and fakes
  below 0.05; for the hinge loss, both margins met on almost every image. G's gradient then
  carries no information.
* **G runs away** (GAN): G's loss above ``G_RUNAWAY_LOSS`` on average over the window: with BCE,
  D rates G's images below a 1% chance of being real.
* **Collapse** (GAN): the fixed-seed grid's images far closer to each other than real images are
  (mean pairwise distance below ``COLLAPSE_RATIO`` of the data's), i.e. different latents give
  nearly the same picture.
* **Too short**: fewer than ``USEFUL_STEPS`` steps in the whole run. Small GANs on a few thousand
  pictures need thousands of steps before samples look like the data; the warning says how long
  that many would take here, from the steps timed so far.
* **Large batch**: a batch above a tenth of the folder gives few steps per epoch and little noise.

Every message comes with its kind (``D_WINS`` ...), which ``NoticeEvent.kind`` carries, so a caller
that knows better can leave one out: the demo's run is short on purpose and ends with its own
measurement of how like its data the samples are, so it drops ``SHORT_RUN``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from latentctl.config import ModelConfig

D_WINS_LOSS = 0.05
G_RUNAWAY_LOSS = 5.0
COLLAPSE_RATIO = 0.3
USEFUL_STEPS = 3000
LONG_RUN_SECONDS = 3600  # past this, a CPU run's estimate comes with what to run for a first model sooner
TIMING_STEPS = 4  # steps timed before the run's cost is estimated (the first includes warm-up)

# The kinds of message (NoticeEvent.kind)
D_WINS, G_RUNAWAY, COLLAPSE, SHORT_RUN, LARGE_BATCH, COST, EXPECT = (
    "d_wins",
    "g_runaway",
    "collapse",
    "short_run",
    "large_batch",
    "cost",
    "expect",
)
Message = tuple[str, str]  # (kind, text)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {s:02d} s"
    return f"{s} s"


def diversity(images: np.ndarray) -> float:
    """Mean pairwise RMS distance (0-255 units) between images (n, S, S, C) uint8."""
    x = images.reshape(len(images), -1).astype(np.float64)
    if len(x) < 2:
        return 0.0
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0) / x.shape[1]
    iu = np.triu_indices(len(x), 1)
    return float(np.sqrt(d2[iu]).mean())


# Smaller models for a first result on a CPU, with what they measured per image against the seed's
# model at 64 px (7.2 img/s) on a 2-core AVX2-only EPYC (docs/getting-started.md, "On a CPU without
# bf16"). Cost grows with the pixels and the square of the width.
SMALL_MODELS = [
    ("--image-size 32 --arch lite --width 32", 32, 32, "about 23x faster per image than the seed's model at 64 px"),
    ("--image-size 64 --arch lite --width 32", 64, 32, "about 7x"),
]


def long_run_advice(model: ModelConfig | None = None) -> str:
    """What to run for a first model sooner, for a CPU run whose estimate passes an hour: the
    suggested models smaller than ``model`` (None: all of them)."""

    def cost(size: int, width: int) -> int:
        return size * size * width * width

    smaller = [
        (flags, note)
        for flags, size, width, note in SMALL_MODELS
        if model is None or cost(size, width) < cost(model.image_size, model.width)
    ]
    tail = "Ctrl-C stops here and --resume goes on later"
    if not smaller:
        return f"To finish sooner lower --epochs or --max-images; {tail}"
    shown = " or ".join(f"{flags} ({note})" for flags, note in smaller)
    return f"For a first model within the hour on this CPU: {shown} (docs/getting-started.md, 'On a CPU without bf16'); {tail}"


# What the measured curves say (docs/quality.md, "What to expect"): for a GAN of this (arch, image
# size, width, batch size), what its samples had reached within how many steps (the first scored
# budget that showed it), per data set, as `python -m benchmarks.quality --budget ...` measured
# them on a 2-core CPU. Steps, not minutes: they carry over to any machine at its own step time,
# which the line converts them with. The batch is part of the key: a step of another batch size
# shows the model another number of pictures, so its steps say nothing for this one.
MEASURED_STEPS: dict[tuple[str, int, int, int], list[tuple[str, int]]] = {
    ("lite", 32, 32, 64): [
        ("face photos (CBCL, ORL) better than the photos blurred by 1 px", 1550),
        ("cartoon faces better than the pictures blurred by 1.5 px, at 96 % of their colour", 2733),
        ("real digits as good as the digits blurred by 1 px", 3137),
    ],
    ("lite", 32, 32, 32): [  # the lite recipe's own batch
        ("face photos (CBCL, ORL) better than the photos blurred by 1 px", 2419),
        ("cartoon faces better than the pictures blurred by 1.5 px, at 97 % of their colour", 4414),
        ("real digits as good as the digits blurred by 1 px", 4743),
        ("cartoon faces within 2.1x the real-vs-real floor, at 99 % of their colour", 12355),
    ],
}


def expectation(model: ModelConfig | None, batch_size: int | None, per_step: float) -> str | None:
    """A line saying what the measured runs of this model's recipe and shape had drawn by how many
    steps, in steps and in this machine's time; None when nothing was measured for it."""
    if model is None or model.family != "gan" or batch_size is None:
        return None
    rows = MEASURED_STEPS.get((model.arch, model.image_size, model.width, batch_size))
    if not rows:
        return None
    said = "; ".join(
        f"{what} within {steps:,} steps ({format_duration(steps * per_step)} here)" for what, steps in rows
    )
    shape = f"{model.image_size} px, width {model.width}, batch {batch_size}"
    return f"what to expect at {shape} (measured, docs/quality.md): {said}"


class HealthMonitor:
    def __init__(
        self,
        *,
        gan: bool,
        total_steps: int,
        done_steps: int = 0,
        window: int | None = None,
        cpu: bool = False,
        model: ModelConfig | None = None,
        batch_size: int | None = None,
    ):
        self.gan = gan
        self.cpu = cpu
        self.model = model  # the run's ModelConfig: a long CPU run's advice names only smaller models
        self.batch_size = batch_size  # with the model, which measured curve (if any) this run follows
        self.total_steps = total_steps
        self.done_steps = done_steps
        self.window = window or max(20, min(200, total_steps // 10))
        self.recent: deque[dict[str, float]] = deque(maxlen=self.window)
        self.active: set[str] = set()
        self._times: list[float] = []
        self.data_diversity: float | None = None

    def at_start(self, images: int, batch_size: int, real_per_step: int) -> list[Message]:
        out = []
        if self.total_steps < USEFUL_STEPS:
            out.append(
                (
                    SHORT_RUN,
                    f"this run is only {self.total_steps:,} steps; a GAN or VAE usually needs {USEFUL_STEPS:,} or "
                    "more before its samples look like the data: raise --epochs or --steps (the time it takes here "
                    "follows after a few steps)",
                )
            )
        if batch_size > images / 10:
            out.append(
                (
                    LARGE_BATCH,
                    f"--batch-size {batch_size} is more than a tenth of the {images} images: few steps per epoch "
                    "and little gradient noise; a batch of at most a tenth of the folder usually trains better",
                )
            )
        return out

    def on_step(self, losses: dict[str, float], seconds: float, global_step: int) -> list[Message]:
        out = []
        if len(self._times) < TIMING_STEPS:
            self._times.append(seconds)
            if len(self._times) == TIMING_STEPS:
                out += self._cost()
        self.recent.append(losses)
        if not self.gan or len(self.recent) < self.window:
            return out
        mean = {k: float(np.mean([r[k] for r in self.recent])) for k in ("d_real", "d_fake", "g")}
        out += self._flag(
            D_WINS,
            mean["d_real"] < D_WINS_LOSS and mean["d_fake"] < D_WINS_LOSS,
            f"the discriminator is winning (d_real {mean['d_real']:.3f}, d_fake {mean['d_fake']:.3f} over the "
            f"last {self.window} steps, at step {global_step}): the generator learns nothing from it. Likely fixes: "
            "--arch lite (augmentation, spectral norm), a lower --lr-d, or more images",
        )
        out += self._flag(
            G_RUNAWAY,
            mean["g"] > G_RUNAWAY_LOSS,
            f"the generator's loss is running away (g {mean['g']:.2f} over the last {self.window} steps, at step "
            f"{global_step}). Likely fixes: --arch lite, a lower --lr-d, or resume from an earlier snapshot",
        )
        return out

    def on_grid(self, grid_images: np.ndarray, epoch: int) -> list[Message]:
        if not self.gan or self.data_diversity is None or self.data_diversity <= 0:
            return []
        ratio = diversity(grid_images) / self.data_diversity
        return self._flag(
            COLLAPSE,
            ratio < COLLAPSE_RATIO,
            f"samples look alike (epoch {epoch}: the progress grid's images differ {ratio:.0%} as much as real "
            "images do): the generator is collapsing to a few outputs. Likely fixes: --arch lite (minibatch "
            "deviation, augmentation), or resume from an earlier snapshot",
        )

    def _flag(self, kind: str, bad: bool, message: str) -> list[Message]:
        if bad and kind not in self.active:
            self.active.add(kind)
            return [(kind, message)]
        if not bad:
            self.active.discard(kind)
        return []

    def _cost(self) -> list[Message]:
        per_step = float(np.median(self._times[1:]))  # the first step includes warm-up
        left = max(0, self.total_steps - self.done_steps - len(self._times))
        text = f"{self.total_steps:,} steps at {per_step:.3g} s per step: about {format_duration(left * per_step)} left on this machine"
        if self.total_steps < USEFUL_STEPS:
            short = (
                f"{USEFUL_STEPS:,} steps would take about {format_duration(USEFUL_STEPS * per_step)} here "
                "(lower --image-size or --width to go faster)"
            )
            out = [(COST, text), (SHORT_RUN, short)]
        else:
            if self.cpu and left * per_step > LONG_RUN_SECONDS:
                text += ". " + long_run_advice(self.model)
            out = [(COST, text)]
        expected = expectation(self.model, self.batch_size, per_step)
        return out + ([(EXPECT, expected)] if expected else [])
