"""The training progress bar: the CLI's listener for the training loop's events."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from latentctl.training import CheckpointEvent, EpochEvent, Event, NoticeEvent, StepEvent


class TrainingProgress:
    """Epoch, step, D and G loss, images/s and ETA on stderr; a line per saved grid/checkpoint."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("{task.fields[losses]}  {task.fields[ips]:.1f} img/s"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = None
        self.ips: float | None = None

    def __enter__(self) -> TrainingProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            # a smoothed rate: single steps are noisy on shared machines
            self.ips = event.images_per_sec if self.ips is None else 0.9 * self.ips + 0.1 * event.images_per_sec
            losses = "  ".join(f"{k} {v:.3g}" for k, v in event.losses.items())
            fields = dict(epoch=f"{event.epoch}", losses=losses, ips=self.ips)
            if self.task is None:
                self.task = self.progress.add_task("train", total=event.total_steps, **fields)
            self.progress.update(self.task, completed=event.global_step, **fields)
        elif isinstance(event, EpochEvent) and event.grid is not None:
            self.progress.console.print(f"epoch {event.epoch}: grid {event.grid}", highlight=False)
        elif isinstance(event, CheckpointEvent):
            self.progress.console.print(f"checkpoint saved: {event.path}", highlight=False)
        elif isinstance(event, NoticeEvent):
            self.progress.console.print(f"[bold yellow]Note:[/] {escape(event.message)}", highlight=False)


def stderr_progress() -> TrainingProgress:
    """A progress bar on this process's stderr (for a training worker process)."""
    return TrainingProgress(Console(stderr=True, highlight=False, soft_wrap=True))
