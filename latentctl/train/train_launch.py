"""What `latentctl train` settles and says around a run (``runs`` is the run itself): whether the
processes asked for can train it, what ``--dry-run`` reports, the line that describes a run before
it starts, and how a CPU run's thread count is chosen. Library code: it returns data and text, and
the command prints them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from latentctl.config import to_dict
from latentctl.errors import UsageError


def check_processes(plan: Any, dev: Any, devices: int, group: Any = None) -> None:
    """A UsageError when ``devices`` worker processes (``--devices``) cannot train ``plan`` (a
    runs.RunPlan) on ``dev``: inside a torchrun ``group``, with too few devices, or with R1."""
    if group is not None and devices > 1:
        raise UsageError(
            f"--devices {devices}: this process is one of {group.size} started by torchrun, which already "
            "runs one process per device; leave --devices out"
        )
    if devices > 1:
        from latentctl.train.distributed import check_devices

        check_devices(devices, dev)
    if devices > 1 and plan.train.r1_gamma:
        raise UsageError(
            "--r1-gamma is not supported with --devices yet (it needs a double backward through DDP); leave one out"
        )


def dry_run(plan: Any, ws: Any, dev: Any, *, strict: bool = False) -> dict[str, Any]:
    """What the run would be, with the folder read (decoded into the cache, which a real run then
    reuses): the configs, images found and skipped, steps per epoch and in all."""
    from latentctl.train import runs

    dataset = runs.open_data(plan, ws, strict=strict)
    per_epoch = len(dataset) // plan.train.batch_size
    total = plan.train.total_steps(len(dataset))
    return {
        "model": to_dict(plan.model),
        "train": to_dict(plan.train),
        "device": str(dev),
        "data": str(plan.data),
        "images": len(dataset),
        "skipped": len(dataset.skipped),
        "steps_per_epoch": per_epoch,
        "total_steps": total,
        "resume": plan.resuming,
    }


def describe(plan: Any, dataset: Any, dev: Any) -> str:
    """The run in one line, as its header says it: images, size, channels, architecture, epochs
    and steps, device and precision."""
    m, t = plan.model, plan.train
    return (
        f"{len(dataset)} images, {m.image_size}px, {m.channels} channel{'s' if m.channels > 1 else ''}, {m.arch} "
        f"architecture, {t.epochs} epochs of {len(dataset) // t.batch_size} steps"
        + (f" (budget {t.max_steps} steps)" if t.max_steps else "")
        + f", device {dev}, {t.precision}"
        + (", channels-last" if t.channels_last else "")
    )


def cpu_threads(dev: Any, threads: int | None, *, group: Any = None, devices: int = 1) -> tuple[Any, str | None]:
    """(tuner, line) for a run on ``dev``: the perf.ThreadTuner that picks the thread count as the
    run goes (None when ``threads``, --threads, fixed it, or the rule says no), and the header line
    about the choice (None off the CPU)."""
    if dev.type != "cpu":
        return None, None
    from latentctl import perf

    # On a busy machine all threads can be several times slower than one (docs/performance.md,
    # "Busy machine"): measure, unless the user fixed the count.
    tuner = perf.auto_tuner(dev, group=group, devices=devices) if threads is None else None
    line = perf.thread_choice() + (
        "; the count follows measured step times (1 or all cores), --threads N fixes it" if tuner else ""
    )
    return tuner, line


def prepare_process(dev: Any, *, threads: int | None = None, allocator: bool = True, tensorboard: bool = False) -> None:
    """This process made ready to train on ``dev``: TensorBoard's package present when its files
    are asked for (before any work), then the CPU levers: every core, or ``threads`` (--threads),
    and glibc's allocator tuned (``allocator``, --tune-allocator)."""
    from latentctl import perf

    if tensorboard:
        from latentctl.train.tb import require_tensorboard

        require_tensorboard()
    perf.cpu_speedups(dev, allocator=allocator)
    if dev.type == "cpu" and threads is not None:
        perf.set_threads(threads)


@contextmanager
def joined(group: Any, dev: Any) -> Iterator[Any]:
    """The device this process trains on as one of a torchrun ``group`` (distributed.LaunchedGroup;
    None: a process of its own, ``dev`` as it is). The group is left on the way out, telling the
    others whether this process finished or failed."""
    if group is None:
        yield dev
        return
    dev = group.join(dev)
    finished = False
    try:
        yield dev
        finished = True
    finally:
        group.leave(finished)
