"""Data-parallel training over several processes (``latentctl train --devices N``).

Each worker process joins a ``torch.distributed`` group (NCCL on CUDA GPUs, gloo on CPUs), trains
on its share of every global batch with DistributedDataParallel, and rank 0 alone writes the
checkpoint, grids and metrics. Library errors raised in a worker travel back to the caller as the
same error class, so the CLI maps them to exit codes as for single-process training.
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from latentctl import errors
from latentctl.errors import LatentctlError, UsageError

ListenerFactory = Callable[[], Any]  # returns a context manager with .update(event)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_threads_per_process(processes: int) -> int:
    """Intra-op threads for each of ``processes`` CPU training processes on this machine: the cores
    split evenly (oversubscribing them is far slower than using fewer threads)."""
    from latentctl.perf import available_cores

    return max(1, available_cores() // processes)


def check_devices(n: int, device: torch.device) -> None:
    if n < 1:
        raise UsageError(f"--devices must be at least 1, got {n}")
    if device.type == "cuda" and n > torch.cuda.device_count():
        raise UsageError(f"--devices {n}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    if device.type == "mps" and n > 1:
        raise UsageError("--devices: several processes are not supported on Apple's MPS; use --devices 1")


def _worker(
    rank: int, size: int, port: int, device_type: str, kwargs: dict, listener: ListenerFactory | None, results
) -> None:
    import torch.distributed as dist

    from latentctl.train.training import World, train

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    device = _enter_group(device_type, rank, size, rank=rank, world_size=size)
    try:
        if listener is not None and rank == 0:
            with listener() as progress:
                path = train(device=device, world=World(rank, size), on_event=progress.update, **kwargs)
        else:
            path = train(device=device, world=World(rank, size), **kwargs)
        dist.barrier()  # every rank finishes its collectives before any tears the group down
        results.put((rank, "ok", str(path), None))
    except LatentctlError as err:
        results.put((rank, "error", type(err).__name__, (str(err), getattr(err, "checkpoint", None))))
    except BaseException:  # reported to the parent; the process exits non-zero either way
        results.put((rank, "crash", traceback.format_exc(), None))
        raise
    finally:
        dist.destroy_process_group()
    exit_after_teardown()


def _enter_group(device_type: str, local_rank: int, local_size: int, **init: Any) -> torch.device:
    """Pin this process to its device (cuda:LOCAL_RANK, or its share of the CPU cores, so that
    every launch computes alike) and join the process group; returns the device."""
    import torch.distributed as dist

    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        from latentctl.perf import chosen_threads

        if chosen_threads() is None:  # an explicit --threads N stands; otherwise split the cores
            torch.set_num_threads(cpu_threads_per_process(local_size))
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", **init)
    return device


def _rebuild_error(name: str, message: str, checkpoint: str | None = None) -> LatentctlError:
    """The library error another process reported by class name and message."""
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, LatentctlError)):
        return LatentctlError(message)
    return cls(message, checkpoint=checkpoint) if cls is errors.TrainingInterrupted else cls(message)


def exit_after_teardown() -> None:
    """End a training process whose work is done and reported, skipping interpreter finalisation.

    Why: now and then (about 1 run in 12-30 on 2 CPU cores) a gloo process aborted while Python
    shut down, after training had finished and the group had been destroyed: "terminate called
    without an active exception", exit -6, which made a finished run look failed.
    """
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def train_parallel(
    n: int,
    device: torch.device,
    *,
    listener: ListenerFactory | None = None,
    **train_kwargs: Any,
) -> Path:
    """Run ``training.train(**train_kwargs)`` on ``n`` worker processes; return the checkpoint path.

    ``train_kwargs`` are ``run_dir``, ``dataset``, ``model_config``, ``train_config`` and optionally
    ``resume``; they are sent to the workers by pickling (the dataset's images stay a memory map).
    """
    import signal

    import torch.multiprocessing as mp

    check_devices(n, device)
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    port = _free_port()
    procs = [
        ctx.Process(target=_worker, args=(r, n, port, device.type, train_kwargs, listener, results), daemon=False)
        for r in range(n)
    ]
    # Ctrl-C reaches every worker (same process group); they agree on a step, save and stop.
    # The parent only waits for them.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    reports = {}
    while not results.empty():
        rank, status, a, b = results.get()
        reports[rank] = (status, a, b)
    status, a, b = reports.get(0, ("crash", "worker 0 ended without a report", None))
    if status == "ok" and all(reports.get(r, ("",))[0] == "ok" for r in range(n)):
        # every rank trained, synchronised and reported: the checkpoint is complete even if a
        # process then failed to shut down cleanly (see exit_after_teardown)
        return Path(a)
    if status == "error":
        raise _rebuild_error(a, *b)
    crashed = next((r for r in reports.values() if r[0] == "crash"), None)
    detail = crashed[1].strip().splitlines()[-1] if crashed else f"exit codes {[p.exitcode for p in procs]}"
    raise LatentctlError(f"a training worker failed: {detail}")


# --------------------------------------------------------------------------------------------------
# Launched by torchrun (or any launcher that sets torch.distributed's env:// variables)


class LaunchedGroup:
    """This process as one of several started by ``torchrun`` (one per GPU, possibly over several
    machines): joins the process group from the environment torchrun sets and helps the CLI keep
    one writer (rank 0) for everything that touches files.

    ``torchrun --nproc-per-node 4 -m latentctl train DIR`` trains on 4 GPUs of this machine; each
    process computes its share of every global batch, exactly as ``--devices 4`` does.
    """

    def __init__(self, rank: int, size: int, local_rank: int, local_size: int):
        self.rank, self.size, self.local_rank, self.local_size = rank, size, local_rank, local_size
        self.device: torch.device | None = None

    @classmethod
    def from_environment(cls, environ: Any = None) -> LaunchedGroup | None:
        """The group this process was launched into, or None when it runs alone (no WORLD_SIZE, or 1)."""
        env = os.environ if environ is None else environ
        if "WORLD_SIZE" not in env:
            return None
        try:
            size = int(env["WORLD_SIZE"])
            if size <= 1:
                return None
            rank = int(env["RANK"])
            local_rank = int(env.get("LOCAL_RANK", rank))
            local_size = int(env.get("LOCAL_WORLD_SIZE", size))
        except KeyError as missing:
            raise UsageError(
                f"WORLD_SIZE is {env['WORLD_SIZE']} but {missing.args[0]} is not set; launch with torchrun, or unset WORLD_SIZE to train in one process"
            ) from None
        except ValueError:
            raise UsageError(
                "WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers; launch with torchrun"
            ) from None
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in env:
                raise UsageError(
                    f"WORLD_SIZE is {size} but {name} is not set; launch with torchrun, or unset WORLD_SIZE to train in one process"
                )
        return cls(rank, size, local_rank, local_size)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def join(self, device: torch.device) -> torch.device:
        """Join the process group; returns this process's device (cuda:LOCAL_RANK on GPUs)."""
        if device.type == "mps":
            raise UsageError("torchrun: several processes are not supported on Apple's MPS")
        if device.type == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise UsageError(
                    f"torchrun started {self.local_size} processes on this machine but only "
                    f"{torch.cuda.device_count()} CUDA GPU(s) are visible; lower --nproc-per-node"
                )
        # (torchrun sets OMP_NUM_THREADS=1 for every process; the cores are split instead, as
        # --devices splits them)
        self.device = _enter_group(device.type, self.local_rank, self.local_size, init_method="env://")
        return self.device

    def leave(self, finished: bool) -> None:
        """Leave the group; after a finished run, only once every rank has finished, and then end
        the process at once (see exit_after_teardown)."""
        import torch.distributed as dist

        if dist.is_initialized():
            if finished:
                dist.barrier()
            dist.destroy_process_group()
        if finished:
            exit_after_teardown()

    def _broadcast(self, obj: Any) -> Any:
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(
            box, src=0, device=self.device if self.device is not None and self.device.type == "cuda" else None
        )
        return box[0]

    def _gather(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def main_first(self, fn: Callable[[], Any], *, rest: bool = True) -> Any:
        """Run ``fn`` on rank 0, then (``rest``) on every other rank, so that rank 0 alone writes
        what ``fn`` may create (the image cache, a run folder) and the others find it. When ``rest``
        is False, the others receive rank 0's result instead. A library error on any rank is raised
        on every rank, so none is left waiting in a collective.

        With ``rest``, the others go in two waves: first the first process of every other machine
        (LOCAL_RANK 0), then the remaining processes of each machine. Where machines have their own
        disks, each machine's image cache is thus built once, by one process, and its other
        processes find it; on a shared disk the first wave finds rank 0's. (RANK numbers processes
        over all machines, LOCAL_RANK within one; only the latter says who shares a disk.)"""
        if self.is_main:
            try:
                value = fn()
            except BaseException as err:
                self._broadcast(_failure(err))
                raise
            self._broadcast(("ok", None if rest else value))
        else:
            status, *detail = self._broadcast(None)
            if status == "error":
                raise _rebuild_error(*detail)
            if not rest:
                return detail[0]
            value = None
        if not rest:
            return value
        for wave in (lambda: self.local_rank == 0, lambda: self.local_rank != 0):
            mine, report = not self.is_main and wave(), ("ok",)
            if mine:
                try:
                    value = fn()
                except BaseException as err:
                    report = _failure(err, f"rank {self.rank}")
                    self._gather(report)
                    raise
            failed = next((r for r in self._gather(report) if r[0] == "error"), None)
            if failed is not None:  # (the rank that failed has raised already)
                raise _rebuild_error(*failed[1:])
        return value


def _failure(err: BaseException, who: str = "rank 0") -> tuple:
    """How a rank reports its failure to the others: a library error by class and message."""
    if isinstance(err, LatentctlError):
        return ("error", type(err).__name__, str(err))
    return ("error", "LatentctlError", f"{who} failed: {err!r}")
