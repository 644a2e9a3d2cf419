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


def check_devices(n: int, device: torch.device) -> None:
    if n < 1:
        raise UsageError(f"--devices must be at least 1, got {n}")
    if device.type == "cuda" and n > torch.cuda.device_count():
        raise UsageError(f"--devices {n}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    if device.type == "mps" and n > 1:
        raise UsageError("--devices: several processes are not supported on Apple's MPS; use --devices 1")


def _worker(rank: int, size: int, port: int, device_type: str, kwargs: dict, listener: ListenerFactory | None, results) -> None:
    import torch.distributed as dist

    from latentctl.training import World, train

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    if device_type == "cuda":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        # the cores are shared between the workers; oversubscribing them is far slower
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", rank=rank, world_size=size)
    try:
        if listener is not None and rank == 0:
            with listener() as progress:
                path = train(device=device, world=World(rank, size), on_event=progress.update, **kwargs)
        else:
            path = train(device=device, world=World(rank, size), **kwargs)
        results.put((rank, "ok", str(path), None))
    except LatentctlError as err:
        results.put((rank, "error", type(err).__name__, (str(err), getattr(err, "checkpoint", None))))
    except BaseException:  # reported to the parent; the process exits non-zero either way
        results.put((rank, "crash", traceback.format_exc(), None))
        raise
    finally:
        dist.destroy_process_group()


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
    if status == "ok" and all(p.exitcode == 0 for p in procs):
        return Path(a)
    if status == "error":
        cls = getattr(errors, a, LatentctlError)
        message, ckpt = b
        raise cls(message, checkpoint=ckpt) if cls is errors.TrainingInterrupted else cls(message)
    crashed = next((r for r in reports.values() if r[0] == "crash"), None)
    detail = crashed[1].strip().splitlines()[-1] if crashed else f"exit codes {[p.exitcode for p in procs]}"
    raise LatentctlError(f"a training worker failed: {detail}")
