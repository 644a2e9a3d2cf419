"""The training progress display: the CLI's listener for the training loop's events.

On a terminal, a live status: epoch, a bar, the step within the epoch, the global step, the ETA,
images/s and the losses, on one line when the terminal is wide enough and on two otherwise (the
losses on the second), so that nothing a user watches is cut at 80 columns. Anywhere else (a log file, CI, ``2> train.log``) a live bar would be a wall of control
characters, so one summary line per epoch is printed instead. Saved grids, checkpoints and
notices get a line of their own in both cases.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, ProgressColumn
from rich.text import Text

from latentctl.events import CheckpointEvent, EpochEvent, Event, NoticeEvent, StepEvent

BAR_WIDTH = 12


def clock(seconds: float | None) -> str:
    """1:23, 12:05, 1:02:03; '?' while unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(max(0.0, seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _losses(losses: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.3g}" for k, v in losses.items())


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


class _LineColumn(ProgressColumn):
    """The whole status as one column, laid out for the console's width by us rather than wrapped
    by rich's table layout (which would break the ETA or a loss in the middle)."""

    def __init__(self, owner: TrainingProgress):
        super().__init__()
        self.owner = owner

    def render(self, task) -> Text:
        return Text(self.owner.line(self.owner.console.width), no_wrap=True, overflow="crop")


class TrainingProgress:
    """Epoch, step, global step, ETA, losses and images/s on stderr; a line per saved
    grid/checkpoint and per notice."""

    def __init__(self, console: Console, *, live: bool | None = None):
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.progress = (
            Progress(_LineColumn(self), console=console, auto_refresh=True, refresh_per_second=4) if self.live else None
        )
        self.task = None
        self.ips: float | None = None
        self.last: StepEvent | None = None
        self.t0: float | None = None  # time and global step of the first step seen (a resume starts late)
        self.g0 = 0
        self.epoch_sums: dict[str, float] = {}
        self.epoch_steps = 0
        self.clock = time.monotonic

    def __enter__(self) -> TrainingProgress:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    # --- what is shown -----------------------------------------------------------------------

    def elapsed(self) -> float:
        return 0.0 if self.t0 is None else self.clock() - self.t0

    def eta(self) -> float | None:
        ev = self.last
        if ev is None or ev.global_step <= self.g0 or self.elapsed() <= 0:
            return None  # after a single step there is no rate yet: "?", not "ETA 0:00"
        rate = (ev.global_step - self.g0) / max(self.elapsed(), 1e-9)
        return (ev.total_steps - ev.global_step) / rate

    def lines(self, width: int = 80) -> list[str]:
        """The live status, each line at most ``width`` characters: one line when everything fits,
        else the progress (epoch, bar, steps, ETA, img/s) and, below it, the losses."""
        ev = self.last
        if ev is None:
            return ["starting..."]
        epochs = max(1, -(-ev.total_steps // max(1, ev.steps_per_epoch)))
        filled = round(BAR_WIDTH * ev.step / max(1, ev.steps_per_epoch))
        bar = "━" * filled + "╺" + "─" * max(0, BAR_WIDTH - filled - 1) if filled < BAR_WIDTH else "━" * BAR_WIDTH
        where = f"epoch {ev.epoch}/{epochs} {bar} step {ev.step}/{ev.steps_per_epoch}  global {ev.global_step}/{ev.total_steps}"
        speed = f"ETA {clock(self.eta())}  {self.ips or 0:.1f} img/s"
        losses = _losses(ev.losses)
        one = f"{where}  {speed}  {losses}" if losses else f"{where}  {speed}"
        if len(one) <= width:
            return [one]
        # The bar is the first thing to go: it repeats what "step 12/40" says.
        first = f"{where}  {speed}"
        if len(first) > width:
            first = f"epoch {ev.epoch}/{epochs} step {ev.step}/{ev.steps_per_epoch}  global {ev.global_step}/{ev.total_steps}  {speed}"
        return [_cut(first, width)] + ([_cut("  " + losses, width)] if losses else [])

    def line(self, width: int = 80) -> str:
        """``lines(width)`` as one string (one or two lines)."""
        return "\n".join(self.lines(width))

    def epoch_summary(self, ev: StepEvent) -> str:
        epochs = max(1, -(-ev.total_steps // max(1, ev.steps_per_epoch)))
        mean = {k: v / max(1, self.epoch_steps) for k, v in self.epoch_sums.items()}
        return (
            f"epoch {ev.epoch}/{epochs}  step {ev.global_step}/{ev.total_steps}  {_losses(mean)}  "
            f"{self.ips or 0:.1f} img/s  elapsed {clock(self.elapsed())}  ETA {clock(self.eta())}"
        )

    # --- events ----------------------------------------------------------------------------------

    def update(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            self._step(event)
        elif isinstance(event, EpochEvent) and event.grid is not None:
            self._print(f"epoch {event.epoch}: grid {event.grid}")
        elif isinstance(event, CheckpointEvent):
            self._print(f"checkpoint saved: {event.path}")
        elif isinstance(event, NoticeEvent):
            self.console.print(f"[bold yellow]Note:[/] {escape(event.message)}", highlight=False)

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)  # a log line is never folded

    def _step(self, event: StepEvent) -> None:
        if self.t0 is None:
            self.t0, self.g0 = self.clock(), event.global_step - 1
        # a smoothed rate: single steps are noisy on shared machines
        self.ips = event.images_per_sec if self.ips is None else 0.9 * self.ips + 0.1 * event.images_per_sec
        if self.last is not None and event.epoch != self.last.epoch:
            self.epoch_sums, self.epoch_steps = {}, 0
        self.last = event
        for k, v in event.losses.items():
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
        self.epoch_steps += 1
        if self.progress is not None:
            if self.task is None:
                self.task = self.progress.add_task("train", total=event.total_steps)
            self.progress.update(self.task, completed=event.global_step)
        elif event.step == event.steps_per_epoch:
            self._print(self.epoch_summary(event))


def stderr_progress() -> TrainingProgress:
    """A progress display on this process's stderr (for a training worker process)."""
    return TrainingProgress(Console(stderr=True, highlight=False, soft_wrap=True))
