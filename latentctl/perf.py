"""CPU speed levers for `train` and `sample`, each a small function the CLI calls (and can skip).

Measured on a 2-core AVX2 EPYC (docs/performance.md; `python -m benchmarks.bench --scan`):

- ``tune_allocator``: keep big activation buffers in the process instead of having glibc map and
  unmap them (and the kernel zero-fill every page) on every step. The largest single lever on CPU.
- ``use_all_cores``: make sure torch's intra-op pool uses every core this process may run on.
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


# OpenMP settings for torch's intra-op thread pool. ACTIVE: idle pool threads spin instead of
# sleeping on a futex between the many short parallel regions of a step, so they are awake (and
# their vCPU scheduled) when the next region starts; close: threads stay on neighbouring cores.
OPENMP_ENV = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_PROC_BIND": "close"}


def openmp_env(environ: Any = None) -> dict[str, str]:
    """Set ``OPENMP_ENV`` in ``environ`` (default ``os.environ``) where the user has not set those
    variables; return what was set.

    OpenMP reads them once, when torch loads its OpenMP runtime (at ``import torch``), so this only
    has an effect if it runs before torch is imported: the CLI's entry point should call it first
    thing in ``main()`` for `train` and `sample` (latentctl's commands import torch lazily). Returns
    {} (and sets nothing) when torch is already imported.

    Cost: idle pool threads busy-wait, so the process shows ~100 % CPU per thread even between
    steps. That suits a dedicated training or sampling process, not a library call inside someone
    else's program.
    """
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules:
        return {}
    applied = {k: v for k, v in OPENMP_ENV.items() if k not in environ}
    environ.update(applied)
    return applied


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def use_all_cores() -> int:
    """Raise torch's intra-op thread count to the available cores if torch picked fewer; return it.

    Never lowers a count the user set (``OMP_NUM_THREADS`` or ``torch.set_num_threads``): torch's
    own default is already the number of physical cores, so this only matters where that guess is
    short (containers, some hypervisors). One thread instead of two halves training speed.
    """
    import torch

    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    cores = available_cores()
    if torch.get_num_threads() < cores:
        torch.set_num_threads(cores)
    return torch.get_num_threads()


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
