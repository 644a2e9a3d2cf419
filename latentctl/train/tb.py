"""TensorBoard event files for a training run (optional: needs the ``tensorboard`` package).

A listener for the training loop's events, used beside the progress display: each step's losses
and images/s as scalars, each epoch's progress grid as an image, in ``RUN/tensorboard/``. Watch
with ``tensorboard --logdir RUN/tensorboard``. Library code: it never prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentctl.errors import UsageError
from latentctl.train.events import EpochEvent, Event, StepEvent

INSTALL = "pip install 'latentctl[tensorboard]'  (or: pip install tensorboard)"


def require_tensorboard() -> None:
    """Raise a one-line UsageError naming the install when the tensorboard package is missing:
    called when the option is parsed, so nothing trains before the user learns it is missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UsageError(f"--tensorboard needs the tensorboard package: {INSTALL}") from None


class TensorBoardListener:
    """Call ``update(event)`` for every training event; ``close()`` (or use ``with``) at the end."""

    def __init__(self, run_dir: Path, *, log_dir: Path | None = None, flush_secs: int = 30):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir) if log_dir else Path(run_dir) / "tensorboard"
        self.writer: Any = SummaryWriter(str(self.log_dir), flush_secs=flush_secs)
        self.global_step = 0

    def __enter__(self) -> TensorBoardListener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, event: Event) -> None:
        self.update(event)

    def update(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            self.global_step = event.global_step
            for name, value in event.losses.items():
                self.writer.add_scalar(f"loss/{name}", value, event.global_step)
            self.writer.add_scalar("speed/images_per_sec", event.images_per_sec, event.global_step)
        elif isinstance(event, EpochEvent) and event.grid is not None:
            import numpy as np
            from PIL import Image

            with Image.open(event.grid) as img:
                arr = np.asarray(img.convert("RGB"))
            # at the global step, so the grid lines up with the loss curves
            self.writer.add_image("progress_grid", arr, self.global_step, dataformats="HWC")
            self.writer.add_scalar("epoch", event.epoch, self.global_step)
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
