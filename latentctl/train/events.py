"""What the training loop reports while it runs. No torch here, so a progress display or a
health check can import these without the cost of importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class StepEvent:
    epoch: int  # 1-based
    step: int  # 1-based within the epoch
    steps_per_epoch: int
    global_step: int
    total_steps: int
    losses: dict[str, float]  # GAN: d_real, d_fake, g; AE/VAE: recon, kl, loss (per image)
    images_per_sec: float  # real images consumed per second (GAN: H per step; AE/VAE: B)


@dataclass
class EpochEvent:
    epoch: int
    grid: Path | None


@dataclass
class CheckpointEvent:
    path: Path
    epoch: int
    global_step: int


@dataclass
class NoticeEvent:
    """Something the user should know that does not stop training (a repaired metrics file, ...)."""

    message: str
    kind: str = "notice"  # health warnings carry theirs (health.D_WINS, health.SHORT_RUN, ...)


Event = StepEvent | EpochEvent | CheckpointEvent | NoticeEvent
