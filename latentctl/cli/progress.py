"""Progress on stderr, the CLI's one place for it: ``step`` for any long step a command takes
(encoder training, projection, scoring, directions, steering, decoding images, loading a model),
and ``TrainingProgress``, the listener for the training loop's events.

``step``: on a terminal, a transient bar with the step's name, the count and the time left; anywhere
else (a log file, CI, ``2> log``) plain lines: the name when the step starts, a line at most every
10 % or 10 s, and "NAME: done in 12.3 s" at the end, so that a log shows what each wait was.

``TrainingProgress``: on a terminal, a live status: epoch, a bar, the step within the epoch, the global step, the ETA,
images/s and the losses, on one line when the terminal is wide enough and on two otherwise (the
losses on the second), so that nothing a user watches is cut at 80 columns. Anywhere else (a log file, CI, ``2> train.log``) a live bar would be a wall of control
characters, so one summary line per epoch is printed instead. Saved grids, checkpoints and
notices get a line of their own in both cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, ProgressColumn, SpinnerColumn
from rich.text import Text

from latentctl.train.events import CheckpointEvent, EpochEvent, Event, NoticeEvent, StepEvent

BAR_WIDTH = 12


def clock(seconds: float | None) -> str:
    """1:23, 12:05, 1:02:03; '?' while unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(max(0.0, seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = round(width * min(1.0, max(0.0, fraction)))
    return "━" * filled + "╺" + "─" * max(0, width - filled - 1) if filled < width else "━" * width


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
        bar = _bar(ev.step / max(1, ev.steps_per_epoch))
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


# ---- one long step ----------------------------------------------------------------------------------

PLAIN_EVERY_PERCENT = 10  # off a terminal, a progress line each time another 10 % is done...
PLAIN_EVERY_SECONDS = 10.0  # ...or 10 s have passed since the last line, whichever comes first


def duration(seconds: float) -> str:
    """0.4 s, 12.3 s, 3:36, 1:02:03: how long a finished step took."""
    return f"{seconds:.1f} s" if seconds < 60 else clock(seconds)


class _StepColumn(ProgressColumn):
    """The step's whole live line, laid out by us for the console's width (as ``_LineColumn``)."""

    def __init__(self, owner: Step):
        super().__init__()
        self.owner = owner

    def render(self, task) -> Text:
        return Text(self.owner.live_line(self.owner.console.width - 2), no_wrap=True, overflow="crop")


class Step:
    """One long step's progress on ``console`` (a context manager; see ``step``).

    Called as ``advance(done, total=None, info=None)`` with the count so far (library callbacks of
    the form ``(done, total)`` can be handed it as they are), or ``advance.add(k)`` for callbacks
    that report each batch's size. ``info`` is a short extra, e.g. the current loss."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        console: Console,
        lazy: bool = False,
        quiet: bool = False,
        finished: str = "done",
    ):
        self.label, self.total, self.console = label, total, console
        self.live = console.is_terminal  # else a log: plain lines
        self.lazy, self.quiet, self.finished = lazy, quiet, finished
        self.count = 0
        self.info: str | None = None
        self.clock: Callable[[], float] = time.monotonic
        self.t0 = 0.0
        self.started = False  # announced: the start line printed or the bar shown
        self.progress: Progress | None = None
        self.task = None
        self.last_line_at = 0.0
        self.last_decile = 0

    # --- the callable a library gets ---------------------------------------------------------------

    def __call__(self, done: int, total: int | None = None, info: str | None = None) -> None:
        self.count = done
        if total is not None:
            self.total = total
        if info is not None:
            self.info = info
        if self.quiet:
            return
        if not self.started:
            self._start()
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=self.total)
        else:
            self._maybe_line()

    def add(self, k: int = 1, info: str | None = None) -> None:
        """``k`` more done (for callbacks such as ``score``'s ``on_batch(k)``)."""
        self(self.count + k, None, info)

    def then(self, label: str, total: int | None = None) -> None:
        """End this part (its "done" line) and go on with the next, ``label``, from zero: for one
        library call that does two things, e.g. learning a walk and then measuring it."""
        self._finish(None, None, None)
        self.label, self.total, self.count, self.info = label, total, 0, None
        self.started, self.progress, self.task, self.last_decile = False, None, None, 0
        self.t0 = self.clock()
        if not self.quiet:
            self._start()

    # --- what is shown -----------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def left(self) -> float | None:
        """Seconds left at the rate so far; None while unknown."""
        if not self.total or self.count <= 0 or self.elapsed() <= 0:
            return None
        return (self.total - self.count) * self.elapsed() / self.count

    def line(self) -> str:
        """The plain progress line: "scoring: 40 % (400/1000), 1:02 left, loss 0.1"."""
        if self.total:
            pct = int(100 * self.count / self.total)
            text = f"{self.label}: {pct} % ({self.count:,}/{self.total:,}), {clock(self.left())} left"
        else:
            so_far = f"{self.count:,} so far, " if self.count else ""
            text = f"{self.label}: {so_far}{clock(self.elapsed())} elapsed"
        return f"{text}, {self.info}" if self.info else text

    def live_line(self, width: int = 80) -> str:
        """The terminal's line, at most ``width`` characters: "NAME ━━━━╺─── 120/500  0:42 left
        loss 0.1"; the extra goes first when it does not fit, then the end of the name."""
        if self.total:
            where = f"{_bar(self.count / self.total)} {self.count:,}/{self.total:,}  {clock(self.left())} left"
        else:
            where = (f"{self.count:,} so far  " if self.count else "") + f"{clock(self.elapsed())} elapsed"
        tail = f"{where}  {self.info}" if self.info else where
        if len(self.label) + 1 + len(tail) > width:
            tail = where
        room = width - 1 - len(tail)
        return f"{_cut(self.label, max(room, 8))} {tail}"[:width]

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _start(self) -> None:
        self.started = True
        if self.live:
            self.progress = Progress(
                SpinnerColumn(),
                _StepColumn(self),
                console=self.console,
                transient=True,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task(self.label, total=self.total, completed=self.count)
        else:
            self._print(f"{self.label}…")
            self.last_line_at = self.clock()

    def _maybe_line(self) -> None:
        now = self.clock()
        decile = int(100 * self.count / self.total) // PLAIN_EVERY_PERCENT if self.total else 0
        finished = bool(self.total) and self.count >= self.total  # the "done" line says it
        if finished:
            return
        if decile > self.last_decile or now - self.last_line_at >= PLAIN_EVERY_SECONDS:
            self.last_decile, self.last_line_at = decile, now
            self._print(self.line())

    # --- the context -------------------------------------------------------------------------------

    def __enter__(self) -> Step:
        self.t0 = self.clock()
        if not self.lazy and not self.quiet:
            self._start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._finish(exc_type, exc, tb)

    def _finish(self, exc_type, exc, tb) -> None:
        if self.progress is not None:
            self.progress.__exit__(exc_type, exc, tb)
        # After a failure or Ctrl-C the error edge has the last word; a "done" would be false.
        if exc_type is None and self.started:
            self._print(f"{self.label}: {self.finished} in {duration(self.elapsed())}")


def step(
    label: str,
    total: int | None = None,
    *,
    lazy: bool = False,
    quiet: bool = False,
    finished: str = "done",
    console: Console | None = None,
) -> Step:
    """A long step's progress on stderr, as a context manager giving the ``advance`` callable::

        with step("training the GAN encoder", total=500) as advance:
            GE.train(..., on_progress=lambda n, total, loss: advance(n, total, f"latent MSE {loss:.3f}"))

    ``total`` may come later, with ``advance``; without one the terminal shows a spinner and the time
    so far, and a log the count so far, at most every 10 s. ``lazy``: say nothing until the first ``advance`` (a step that may
    turn out to have no work, such as decoding images that are cached). ``quiet``: say nothing at
    all (a worker process that is not the one that speaks). ``finished``: the word of the last
    line, "NAME: done in 12.3 s"."""
    if console is None:
        from latentctl.cli.common import err_console

        console = err_console
    return Step(label, total, console=console, lazy=lazy, quiet=quiet, finished=finished)
