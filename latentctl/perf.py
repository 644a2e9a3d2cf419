"""CPU speed levers for `train` and `sample`, each a small function the CLI calls (and can skip).

Measured on a 2-core AVX2 EPYC (docs/performance.md; `python -m benchmarks.bench --scan`):

- ``tune_allocator``: keep big activation buffers in the process instead of having glibc map and
  unmap them (and the kernel zero-fill every page) on every step. The largest single lever on CPU.
- ``use_all_cores``: make sure torch's intra-op pool uses every core this process may run on;
  ``set_threads`` (``--threads N``) overrides it and ``thread_choice`` describes the result.
- ``openmp_env``: OpenMP pool threads sleep instead of spinning when idle, which keeps 2 threads
  faster than 1 on a machine other programs keep busy (must run before torch is imported).
- ``inplace_activations``: LeakyReLU in place, one fewer activation-sized buffer per layer.
- ``prepare_for_sampling``: eval mode, channels-last weights and in-place activations for a
  generator that only samples (`sample`, `interp`, `apply`, progress grids).

Nothing here imports torch at module import time, so the CLI may import this module early (for
example to call ``tune_allocator`` before the first big allocation) without slowing `--help`.
Every function is safe to call more than once and is a no-op where it does not apply.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# mallopt(3) parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# mallopt takes an int but glibc stores these two thresholds as size_t: -1 means "no limit", i.e.
# never serve an allocation with its own mmap, and never give the top of the heap back to the OS.
# A finite value does not do: the largest that fits an int is 2 GiB, while one activation of the
# seed's 128 px model at batch 128 is exactly 1 GiB and the heap's free top is several GiB between
# steps, so with INT_MAX glibc still unmaps/trims (and the kernel re-faults) gigabytes every step.
NEVER = -1
MMAP_THRESHOLD = NEVER
TRIM_THRESHOLD = NEVER
# Where glibc refuses "no limit" for the mmap threshold (very old versions capped it), fall back to
# its historical maximum on 64-bit.
_MMAP_THRESHOLD_FALLBACK = 32 << 20

_allocator_tuned: bool | None = None  # the result of the first call: mallopt settings are process-wide


def _glibc() -> Any | None:
    """The running glibc as a ctypes library, or None (musl, macOS, Windows, static builds)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        gnu_get_libc_version = libc.gnu_get_libc_version  # absent on musl
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    gnu_get_libc_version.restype = ctypes.c_char_p
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return libc


def tune_allocator(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds so large tensors are reused, not re-mapped every step.

    By default glibc serves every allocation above its (dynamic, at most 32 MiB) mmap threshold with a
    fresh ``mmap`` and ``munmap``s it on free, and trims the heap's free top, so each training step
    page-faults (and the kernel zero-fills) every activation buffer again: gigabytes per step at
    128 px. With both thresholds at "no limit" (the defaults, ``NEVER``) the heap keeps that memory and
    later steps reuse it. The cost: memory freed by the process is not returned to the OS until it
    exits, so peak resident memory grows (see docs/performance.md for measured figures). Call it in
    processes that do one big job (train, sample), not in a long-lived host process.

    Returns True when both settings were applied, False where this is not glibc (musl, macOS,
    Windows) or mallopt refused them; never raises. Process-wide and idempotent: later calls return
    the first call's result and change nothing.
    """
    global _allocator_tuned
    if _allocator_tuned is not None:
        return _allocator_tuned
    libc = _glibc()
    ok = False
    if libc is not None:
        try:
            mmap_ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)))
            if not mmap_ok and int(mmap_threshold) < 0:
                mmap_ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_FALLBACK))
            ok = bool(libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))) and mmap_ok
        except (OSError, ValueError, ctypes.ArgumentError):
            ok = False
    _allocator_tuned = ok
    return ok


# OpenMP settings for torch's intra-op thread pool (torch's Linux wheels use GNU libgomp).
#
# PASSIVE: a pool thread that reaches the end of a parallel region sleeps on a futex at once
# instead of spinning. libgomp's default spins up to GOMP_SPINCOUNT (300,000 iterations, about a
# millisecond) before sleeping, and ACTIVE spins forever. On a machine whose cores are all taken
# by someone else, a spinning thread holds a core that the thread it waits for needs: every one of
# a step's thousands of barriers then waits for a scheduler time slice (milliseconds), and 2
# threads ran a training several times slower than 1 (benchmarks/contention.py, docs/performance.md
# "Busy machine"). Asleep, the waiting thread gives its core back. On a quiet machine the cost is a
# futex wake per region, measured there as within noise of the default.
#
# No OMP_PROC_BIND: pinning each thread to a core keeps it on that core even when a neighbour's
# process is running there; unpinned, the kernel moves it to whichever core is free.
OPENMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

# Where the user set either variable, their choice stands: GOMP_SPINCOUNT is libgomp's finer knob
# for the same thing (OMP_WAIT_POLICY=PASSIVE means a spin count of 0).
_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def openmp_env(environ: Any = None) -> dict[str, str]:
    """Set ``OPENMP_ENV`` in ``environ`` (default ``os.environ``) unless the user has chosen how
    OpenMP threads wait (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set); return what was set.

    OpenMP reads them once, when torch loads its OpenMP runtime (at ``import torch``), so this only
    has an effect if it runs before torch is imported: the CLI's entry point calls it first thing in
    ``main()`` (latentctl's commands import torch lazily). Returns {} (and sets nothing) when torch
    is already imported. Child processes (``--devices``, torchrun workers started after it) inherit
    the setting through the environment.
    """
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules:
        return {}
    if any(k in environ for k in _WAIT_VARIABLES):
        return {}
    applied = dict(OPENMP_ENV)
    environ.update(applied)
    return applied


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_threads_chosen: int | None = None  # set by set_threads (the CLI's --threads)


def use_all_cores() -> int:
    """Raise torch's intra-op thread count to the available cores if torch picked fewer; return it.

    Never lowers a count the user set (``--threads`` via ``set_threads``, ``OMP_NUM_THREADS`` or
    ``torch.set_num_threads``): torch's own default is already the number of physical cores, so
    this only matters where that guess is short (containers, some hypervisors). One thread instead
    of two halves training speed on a quiet machine.
    """
    import torch

    if _threads_chosen is not None or "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    cores = available_cores()
    if torch.get_num_threads() < cores:
        torch.set_num_threads(cores)
    return torch.get_num_threads()


def set_threads(n: int | None) -> int:
    """Use ``n`` intra-op threads (the CLI's ``--threads N``); ``None`` or 0 keeps the default
    (every available core, see ``use_all_cores``). Returns the count now in use.

    Takes precedence over ``OMP_NUM_THREADS``. More threads than available cores is allowed (the
    user asked) but is never faster: threads then wait for each other's time slices.
    """
    global _threads_chosen
    import torch

    if n is None or n == 0:
        _threads_chosen = None
        return use_all_cores()
    if n < 0:
        raise ValueError(f"thread count must be at least 1 (or 0 for every core), got {n}")
    _threads_chosen = int(n)
    torch.set_num_threads(_threads_chosen)
    return torch.get_num_threads()


def chosen_threads() -> int | None:
    """The count given to ``set_threads`` (``--threads N``), or None when none was."""
    return _threads_chosen


def thread_choice() -> str:
    """One line saying how many intra-op threads this process uses, why, and how they wait, for
    a run's header and metrics, e.g. "2 threads (every available core), OpenMP waits passive"."""
    import torch

    n = torch.get_num_threads()
    cores = available_cores()
    if _threads_chosen is not None:
        why = "--threads"
    elif "OMP_NUM_THREADS" in os.environ:
        why = "OMP_NUM_THREADS"
    elif n == cores:
        why = "every available core"
    else:
        why = f"of {cores} available cores"
    policy = os.environ.get("OMP_WAIT_POLICY")
    spin = os.environ.get("GOMP_SPINCOUNT")
    if policy:
        wait = f"OpenMP waits {policy.lower()}"
    elif spin is not None:
        wait = f"OpenMP spin count {spin}"
    else:
        wait = "OpenMP waits by its default (spin, then sleep)"
    return f"{n} thread{'s' if n != 1 else ''} ({why}), {wait}"


def inplace_activations(module: Any) -> int:
    """Switch every ``nn.LeakyReLU`` under ``module`` to in-place; return how many were switched.

    Safe for training and sampling in latentctl's models: each LeakyReLU follows a convolution whose
    backward needs the convolution's input, not its output, and LeakyReLU's own backward (slope > 0)
    works from its output. Saves one activation-sized buffer (and its page faults) per layer.
    """
    from torch import nn

    n = 0
    for m in module.modules():
        if isinstance(m, nn.LeakyReLU) and not m.inplace:
            m.inplace = True
            n += 1
    return n


def prepare_for_sampling(generator: Any, device: Any = "cpu", *, channels_last: bool | None = None) -> Any:
    """Make a generator that will only sample faster; returns it (changed in place).

    eval mode; channels-last weights on CPU and CUDA (``channels_last=None`` picks per device; the
    generator follows its weights' layout); in-place activations. The output images are the same
    (to float rounding) as without.
    """
    import torch

    dev = torch.device(device)
    if channels_last is None:
        channels_last = dev.type in ("cpu", "cuda")
    generator.eval()
    if channels_last:
        generator.to(memory_format=torch.channels_last)
    inplace_activations(generator)
    return generator


def cpu_speedups(device, *, allocator: bool = True) -> None:
    """The CPU levers measured in docs/performance.md: every core, and glibc's allocator tuned."""
    if device.type != "cpu":
        return
    use_all_cores()
    if allocator:
        tune_allocator()


def auto_tuner(device: Any, *, group: Any = None, devices: int = 1) -> ThreadTuner | None:
    """The one rule for when a run's CPU thread count follows measured step times: a single CPU
    process whose count nobody fixed (``set_threads`` / ``--threads``, or ``OMP_NUM_THREADS``).
    A fixed count keeps a run's float rounding, and so its resume, exact; data-parallel workers
    keep theirs because every rank must run the same kernels."""
    if getattr(device, "type", str(device)) != "cpu" or group is not None or devices != 1:
        return None
    if _threads_chosen is not None or "OMP_NUM_THREADS" in os.environ:
        return None
    return ThreadTuner()


def resolve_tuner(thread_tuner: Any, device: Any, *, group: Any = None, devices: int = 1) -> ThreadTuner | None:
    """A library call's ``thread_tuner`` argument: "auto" applies ``auto_tuner`` (so a Python
    caller gets the CLI's rule), None keeps the thread count as set, a ``ThreadTuner`` is used."""
    return auto_tuner(device, group=group, devices=devices) if thread_tuner == "auto" else thread_tuner


@contextmanager
def tuned_step(tuner: ThreadTuner | None) -> Iterator[None]:
    """Bracket one step of a loop for ``tuner`` (None: nothing happens)."""
    if tuner is None:
        yield
        return
    tuner.before_step()
    start = time.perf_counter()
    yield
    tuner.after_step(time.perf_counter() - start)


class ThreadTuner:
    """Picks the intra-op thread count from measured step times, and checks again now and then.

    Why: on a machine whose cores are shared with other busy programs, a parallel region of n
    threads ends only when its slowest thread does, and a thread that shares its core with a
    neighbour waits for time slices at every one of the thousands of barriers in a step: with one
    busy neighbour on 2 cores, 2 threads trained several times slower than 1 (benchmarks/contention.py),
    whatever OpenMP's wait policy. Which count is fastest depends on load that comes and goes, so
    it is measured, not guessed: each candidate runs a few real training steps (no work is thrown
    away, some steps just run at the slower setting), the fastest is kept for ``interval`` seconds,
    then the others are tried again — at once when ``slow_steps`` steps in a row take more than
    ``cutoff`` times the chosen count's measured time. A re-probe does not run the chosen count
    again: its last ``slow_steps`` ordinary steps are its measurement (they are the load as it is
    now), so the only steps a re-probe can waste are the other candidates' — and a candidate more
    than ``cutoff`` times slower than that yardstick is dropped after one step.

    The caller brackets each step: ``tuner.before_step()`` ... step ... ``tuner.after_step(seconds)``.
    The first ``settle`` steps after each switch are run but not counted (a new team size re-creates
    OpenMP's thread team, and oneDNN may pick other kernels). Cost on a quiet machine: the slower
    candidates' ``settle + probe`` steps once per ``interval``.
    """

    def __init__(
        self,
        candidates: list[int] | None = None,
        *,
        interval: float = 120.0,
        probe: int = 2,
        settle: int = 1,
        cutoff: float = 2.0,
        slow_steps: int = 3,
    ):
        cores = available_cores()
        self.candidates = sorted(set(candidates or [cores, 1]), reverse=True)
        self.interval, self.probe, self.settle, self.cutoff = interval, probe, settle, cutoff
        self.slow_steps, self._slow = slow_steps, 0
        self._recent: list[float] = []  # the chosen count's last ordinary (counted) steps
        self._unsettled = 0  # ordinary steps still to skip after a switch before they count
        self.choice = self.candidates[0]
        self.measured: dict[int, float] = {}
        self.probes = 0  # how many probes have finished
        self._queue: list[tuple[int, bool]] = []  # (threads, counted) for the steps of a probe
        self._times: dict[int, list[float]] = {}
        self._since_probe = 0.0
        self._current: tuple[int, bool] | None = None
        self._start_probe()

    def _start_probe(self) -> None:
        # The current choice is the yardstick that lets a far slower candidate be dropped after
        # one step (under load a step at the wrong count can cost 10x). Its recent steps measure
        # it; only the first probe, with none yet, runs it first.
        others = [c for c in self.candidates if c != self.choice]
        if self._recent:
            self._times = {self.choice: list(self._recent), **{c: [] for c in others}}
            order = others
        else:
            self._times = {c: [] for c in [self.choice, *others]}
            order = [self.choice, *others]
        self._queue = [(c, i >= self.settle) for c in order for i in range(self.settle + self.probe)]
        if not self._queue:  # a single candidate (one core): nothing to compare
            self._finish_probe()

    def before_step(self) -> int:
        """Set the thread count for the coming step; returns it."""
        import torch

        self._current = self._queue.pop(0) if self._queue else (self.choice, False)
        threads = self._current[0]
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return threads

    def after_step(self, seconds: float) -> None:
        """Record the step just run (``seconds``, wall clock)."""
        if self._current is None:
            return
        threads, counted = self._current
        self._current = None
        if threads in self._times and (counted or self._queue and self._queue[0][0] == threads):
            best = min((t for ts in self._times.values() for t in ts), default=None)
            if best is not None and seconds > self.cutoff * best:  # hopeless: stop trying this count
                self._times[threads] = [seconds]
                self._queue = [q for q in self._queue if q[0] != threads]
            elif counted:
                self._times[threads].append(seconds)
            if not self._queue:  # probe finished: keep the fastest (median of its counted steps)
                self._finish_probe()
            return
        self._since_probe += seconds
        if self._unsettled:
            self._unsettled -= 1
        else:
            self._recent = [*self._recent, seconds][-self.slow_steps :]
        # Load that arrives mid-interval (a second job starts) can make every step many times
        # slower; a few such steps in a row start a probe at once instead of waiting out the interval.
        usual = self.measured.get(self.choice)
        self._slow = self._slow + 1 if usual is not None and seconds > self.cutoff * usual else 0
        if (self._since_probe >= self.interval or self._slow >= self.slow_steps) and self._recent:
            self._slow = 0
            self._start_probe()

    def _finish_probe(self) -> None:
        self.measured = {c: sorted(t)[len(t) // 2] for c, t in self._times.items() if t}
        choice = min(self.measured, key=self.measured.get)
        # Steps at the count that is running now need no settling, and its counted ones are
        # already a fair yardstick; a switch back re-creates the thread team first.
        last = next(reversed(self._times))
        stays = choice == last
        self._unsettled = 0 if stays else self.settle
        self._recent = self._times[choice][-self.slow_steps :] if stays else []
        self.choice = choice
        self._since_probe = 0.0
        self.probes += 1

    def describe(self) -> str:
        """e.g. "1 thread (fastest measured: 1 thread 0.21 s/step, 2 threads 0.95 s/step)"."""
        if not self.measured:
            return f"{self.choice} thread{'s' if self.choice != 1 else ''} (not measured yet)"
        shown = ", ".join(f"{c} thread{'s' if c != 1 else ''} {s:.3g} s/step" for c, s in sorted(self.measured.items()))
        return f"{self.choice} thread{'s' if self.choice != 1 else ''} (fastest measured: {shown})"
