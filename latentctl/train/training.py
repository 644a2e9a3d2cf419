"""The seed's GAN training loop, resumable to the bit on CPU.

One step (batch B, half H = B/2), as the seed's Keras loop:
  1. D trains on H real images (label 1), drawn without repeats from this epoch's permutation;
  2. D trains on H generated images (label 0), a separate Adam step as Keras' train_on_batch;
  3. G trains on B latents through D (label 1); D's weights are not updated.
One generator forward of B latents serves steps 2 and 3: D sees the first H of its images, detached.
That matches the seed in distribution (independent standard-normal latents) and saves H generator
forwards per step.

The loop knows nothing about terminals or pictures: it reports through ``on_event`` (StepEvent,
EpochEvent, CheckpointEvent) to its caller and through ``EpochEnd`` to its listeners
(``latentctl.train.listeners``: grids, loss curve, snapshots, scores), and raises ``TrainingInterrupted``
/ ``NonFiniteLossError`` for the CLI to map.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentctl.config import ModelConfig, TrainConfig
from latentctl.errors import DataError, NonFiniteLossError, StorageError, TrainingInterrupted
from latentctl.files import checkpoint
from latentctl.files.fsutil import atomic_write_text, describe_os_error, remove_stale_temps
from latentctl.files.workspace import CHECKPOINT_NAME
from latentctl.train import growing
from latentctl.train.events import CheckpointEvent, EpochEvent, Event, NoticeEvent, StepEvent  # noqa: F401  (re-exported)
from latentctl.train.health import HealthMonitor, diversity
from latentctl.train.listeners import GRID_SEEDS, EpochEnd, Listener
from latentctl.train.trainers import AutoencoderTrainer, GANTrainer, World, make_trainer  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # pragma: no cover
    from latentctl.pictures.data import ImageDataset


class _StopRequest:
    """Turns the first Ctrl-C (or SIGTERM) into a request honoured at the next step boundary, so the
    checkpoint written for it is a consistent state; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": checkpoint.encode_rng(torch.get_rng_state())}
    if device.type == "cuda":
        state["cuda"] = [checkpoint.encode_rng(s) for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(checkpoint.decode_rng(state["torch"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all([checkpoint.decode_rng(s) for s in state["cuda"]])


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order real images are drawn in during ``epoch``: a function of (seed, epoch) alone, so a
    resumed run draws exactly what the uninterrupted one would have."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class _RealBatches:
    """Real images for a step. Keeps the whole uint8 set on the GPU when it fits in a quarter of its
    memory (one copy, no per-step transfer); otherwise indexes the host array (memory-mapped)."""

    def __init__(self, images: np.ndarray, device: torch.device):
        self.host = images
        self.on_device: torch.Tensor | None = None
        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            if images.nbytes < free // 4:
                self.on_device = torch.from_numpy(np.ascontiguousarray(images)).to(device)

    def __call__(self, idx: np.ndarray) -> torch.Tensor:
        if self.on_device is not None:
            return self.on_device[torch.from_numpy(idx).to(self.on_device.device)]
        # sorted reads are sequential in the memory map; the order within a batch does not matter
        batch = torch.from_numpy(np.ascontiguousarray(self.host[np.sort(idx)]))
        return batch.pin_memory() if torch.cuda.is_available() else batch


def _truncate_metrics(path: Path, global_step: int) -> int:
    """Drop metric lines past the checkpoint we resume from (written before a crash), and any line
    that is not a whole JSON record (a crash mid-write tears the last one). Returns how many torn
    lines were dropped."""
    if not path.exists():
        return 0
    keep, torn = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            step = record.get("global_step", 0)
        except (json.JSONDecodeError, AttributeError):
            torn += 1
            continue
        if isinstance(step, (int, float)) and step <= global_step:
            keep.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in keep))
    return torn


def train(
    run_dir: Path,
    dataset: ImageDataset,
    model_config: ModelConfig,
    train_config: TrainConfig,
    device: torch.device,
    *,
    resume: checkpoint.Loaded | None = None,
    on_event: Callable[[Event], None] | None = None,
    world: World | None = None,
    thread_tuner: Any = None,
    listeners: list[Listener] | tuple[Listener, ...] = (),
) -> Path:
    """Train into ``run_dir`` (checkpoint.safetensors, metrics.jsonl, and what ``listeners`` draw:
    ``listeners.standard()`` gives a run folder its grids, loss curve, snapshots and scores);
    return the checkpoint.

    With ``resume`` (a training checkpoint loaded with ``checkpoint.load(..., training=True)``) the
    run continues from the exact step it stopped at. With a ``world`` of several ranks (see
    ``latentctl.train.distributed``) each rank trains on its share of every batch and rank 0 alone
    writes files and reports events. ``thread_tuner`` (``perf.ThreadTuner``) picks the CPU thread
    count from measured step times; without it the count stays as set, which keeps a run's float
    rounding, and so its resume, exact.
    """
    loop = _Loop(Path(run_dir), dataset, model_config, train_config, device, resume, on_event, world or World())
    loop.tuner = thread_tuner
    loop.listeners = list(listeners) if loop.world.is_main else []
    try:
        return loop.run()
    except OSError as err:
        # A full disk or a folder made read-only mid-run: the checkpoint is replaced atomically, so
        # the last one written is whole; say which epoch it holds.
        if loop.saved_epoch is not None and loop.ckpt_path.exists():
            intact = (
                f"the last checkpoint, epoch {loop.saved_epoch}, is intact in {loop.run_dir}; free space and resume"
            )
        else:
            intact = "no checkpoint was written yet"
        raise StorageError(f"{describe_os_error(err, 'write the run')}; {intact}") from None


class _Loop:
    """The training loop cut into its phases: set-up (or resume), steps, the end of an epoch
    (listeners, checkpoint, listeners), the end of the run. Rank 0 alone writes and reports."""

    def __init__(self, run_dir, dataset, model_config, cfg, device, resume, on_event, world):
        self.run_dir, self.dataset, self.model_config, self.cfg = run_dir, dataset, model_config, cfg
        self.device, self.world = device, world
        self.emit = (on_event or (lambda event: None)) if world.is_main else (lambda event: None)
        self.n = len(dataset)
        self.steps_per_epoch = self.n // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise DataError(
                f"{dataset.root} has {self.n} usable images, fewer than one batch (--batch-size {cfg.batch_size}); "
                "add images or lower --batch-size"
            )
        self.total_steps = cfg.total_steps(self.n)

        torch.manual_seed(cfg.seed)  # weights and the latent/dropout stream start from the run's seed
        self.trainer = make_trainer(model_config, cfg, device, world)
        if self.trainer.real_per_step % world.size:
            raise DataError(
                f"--batch-size {cfg.batch_size} cannot be split over {world.size} workers: "
                f"use a multiple of {2 * world.size}"
            )
        self.data_state = {
            "root": str(dataset.root),
            "fingerprint": dataset.fingerprint,
            "count": self.n,
            "skipped": len(dataset.skipped),
        }
        self.epoch, self.step_in_epoch, self.elapsed = 0, 0, 0.0
        self.run_id = uuid.uuid4().hex[:12]
        self.saved_epoch: int | None = None
        self.tuner = None
        self.listeners: list[Listener] = []
        self.kept: dict[str, Any] = {"best_fd": None}  # listeners' state that resume restores
        if resume is not None:
            self._resume(resume)
        self.global_step = self.epoch * self.steps_per_epoch + self.step_in_epoch
        self.trainer.steps_done = self.global_step
        self.ckpt_path = run_dir / CHECKPOINT_NAME
        self.metrics_path = run_dir / "metrics.jsonl"
        self.real_batches = _RealBatches(dataset.images, device)
        self.health = HealthMonitor(
            gan=model_config.family == "gan",
            total_steps=self.total_steps,
            done_steps=self.global_step,
            cpu=device.type == "cpu",
            model=model_config,
            batch_size=self.cfg.batch_size,
        )

    def _resume(self, resume: checkpoint.Loaded) -> None:
        t = self.trainer
        t.G.load_state_dict(resume.raw_generator.state_dict())
        t.partner.load_state_dict(resume.partner.state_dict())
        if t.G_ema is not None:
            # A run that kept no EMA before starts its EMA from the current weights.
            t.G_ema.load_state_dict((resume.ema or resume.raw_generator).state_dict())
        resume.restore_optimizers(t.optimizers)
        st = resume.info.state
        self.epoch, self.step_in_epoch = st["epoch"], st["step_in_epoch"]
        self.elapsed = st.get("elapsed_s", 0.0)
        self.run_id = resume.info.run_id or self.run_id
        self.saved_epoch = self.epoch
        t.ada.load(st.get("augment", {}))
        self.kept["best_fd"] = st.get("best_fd")
        _set_rng_state(st["rng"], self.device)

    # ---- the run ---------------------------------------------------------------------------

    def run(self) -> Path:
        if self.world.is_main:
            self._prepare_folder()
        with (
            _StopRequest() as self.stop,
            open(self.metrics_path if self.world.is_main else os.devnull, "a") as self.metrics,
        ):
            while self.epoch < self.cfg.epochs and not self._budget_spent():
                order = epoch_order(self.cfg.seed, self.epoch, self.n)
                self.t_last = time.perf_counter()
                while self.step_in_epoch < self.steps_per_epoch and not self._budget_spent():
                    self._step(order)
                if self.step_in_epoch == self.steps_per_epoch:
                    self._end_epoch()
        if self.world.is_main and (
            not self.ckpt_path.exists()
            or checkpoint.read_header(self.ckpt_path).state.get("global_step") != self.global_step
        ):
            self.save(finished=True)
        return self.ckpt_path

    def _budget_spent(self) -> bool:
        return self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps

    def _tell(self, messages: list[tuple[str, str]]) -> None:
        """Health messages (kind, text) as notices for the caller."""
        for kind, message in messages:
            self.emit(NoticeEvent(message, kind))

    def _prepare_folder(self) -> None:
        (self.run_dir / "grids").mkdir(parents=True, exist_ok=True)
        # A process killed mid-save leaves its hidden temporary file; this run owns its folder.
        for stem in (CHECKPOINT_NAME, "generator-epoch-*.safetensors", "metrics.jsonl"):
            remove_stale_temps(self.run_dir, stem)
        torn = _truncate_metrics(self.metrics_path, self.global_step)
        if torn:
            self.emit(
                NoticeEvent(
                    f"{self.metrics_path}: dropped {torn} torn line{'s' if torn > 1 else ''} "
                    "(written when the run was stopped mid-write)"
                )
            )
        self._tell(self.health.at_start(self.n, self.cfg.batch_size, self.trainer.real_per_step))
        if self.health.gan:
            pick = np.random.default_rng(self.cfg.seed).choice(self.n, size=min(self.n, len(GRID_SEEDS)), replace=False)
            self.health.data_diversity = diversity(np.asarray(self.dataset.images[np.sort(pick)]))

    def _step(self, order: np.ndarray) -> None:
        trainer, world, half = self.trainer, self.world, self.trainer.real_per_step
        idx = world.share(order[self.step_in_epoch * half : (self.step_in_epoch + 1) * half])
        if self.tuner is not None:
            self.tuner.before_step()
        losses = trainer.step(trainer.prepare_real(self.real_batches(idx)))
        agreed_stop = False
        if world.size > 1:
            # One collective per step: the global mean losses, and whether any rank was asked to
            # stop, so every rank stops at the same step.
            losses, agreed_stop = _agree(losses, self.stop.requested, world)
        losses = losses.tolist()
        now = time.perf_counter()
        dt, self.t_last = now - self.t_last, now
        if self.tuner is not None:
            self.tuner.after_step(dt)
        if not all(math.isfinite(v) for v in losses):
            self._diverged(losses)
        self.step_in_epoch += 1
        self.global_step += 1
        self.elapsed += dt
        named = dict(zip(trainer.loss_names, losses))
        event = StepEvent(
            self.epoch + 1,
            self.step_in_epoch,
            self.steps_per_epoch,
            self.global_step,
            self.total_steps,
            named,
            images_per_sec=half / dt if dt > 0 else float("inf"),
        )
        record = asdict(event)
        record.update(record.pop("losses"))
        if self.device.type == "cpu":
            record["threads"] = torch.get_num_threads()
        if trainer.ada.adaptive or trainer.ada.p > 0:
            record["augment_p"] = round(trainer.ada.p, 5)
        self.metrics.write(json.dumps(record) + "\n")
        self.emit(event)
        self._tell(self.health.on_step(named, dt, self.global_step))
        if agreed_stop if world.size > 1 else self.stop.requested:
            self.metrics.flush()
            path = self.save()
            raise TrainingInterrupted(
                f"stopped at epoch {self.epoch + 1}, step {self.step_in_epoch} of {self.steps_per_epoch}; "
                f"checkpoint saved to {path}",
                checkpoint=str(path),
            )

    def _diverged(self, losses: list[float]) -> None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in zip(self.trainer.loss_names, losses))
        last = (
            f"the last good checkpoint is {self.ckpt_path}"
            if self.ckpt_path.exists()
            else "no checkpoint was written yet"
        )
        raise NonFiniteLossError(
            f"training diverged at epoch {self.epoch + 1}, step {self.step_in_epoch + 1} ({shown}); nothing from "
            f"this step was saved ({last}); try a lower --lr or --precision fp32"
        )

    def _end_epoch(self) -> None:
        cfg = self.cfg
        self.epoch += 1
        self.step_in_epoch = 0
        self.metrics.flush()
        last = self.epoch == cfg.epochs or self._budget_spent()
        checkpointed = self.epoch % cfg.checkpoint_every == 0 or last
        end = self._epoch_end(last, checkpointed)
        for listener in self.listeners:
            listener.before_checkpoint(end)
        self.emit(EpochEvent(self.epoch, end.grid))
        if checkpointed:
            self.save(finished=last)
        for listener in self.listeners:
            listener.after_checkpoint(end)

    def _epoch_end(self, last: bool, checkpointed: bool) -> EpochEnd:
        def record(line: dict) -> None:
            self.metrics.write(json.dumps(line) + "\n")
            self.metrics.flush()

        level = self.trainer.level
        return EpochEnd(
            epoch=self.epoch,
            global_step=self.global_step,
            last=last,
            checkpointed=checkpointed,
            run_dir=self.run_dir,
            sampler=self.trainer.sampler,
            growing=None if level is None else growing.describe(level),
            model_config=self.model_config,
            train_config=self.cfg,
            dataset=self.dataset,
            device=self.device,
            health=self.health,
            save_generator=self.save_generator,
            record=record,
            notify=self.emit,
            kept=self.kept,
        )

    # ---- files -----------------------------------------------------------------------------

    def save(self, finished: bool = False) -> Path:
        if not self.world.is_main:
            return self.ckpt_path
        t = self.trainer
        state = {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "steps_per_epoch": self.steps_per_epoch,
            "elapsed_s": round(self.elapsed, 3),
            "finished": finished,
            "rng": _rng_state(self.device),
            "data": self.data_state,
            "augment": t.ada.state(),
            "best_fd": self.kept["best_fd"],
        }
        path = checkpoint.save(
            self.ckpt_path,
            generator=t.G,
            ema=t.G_ema,
            partner=t.partner,
            optimizers=t.optimizers,
            model_config=self.model_config,
            train_config=self.cfg,
            state=state,
            run_id=self.run_id,
        )
        self.saved_epoch = self.epoch
        self.emit(CheckpointEvent(path, self.epoch, self.global_step))
        return path

    def save_generator(self, path: Path, state: dict) -> Path:
        """A generator checkpoint of the run as it is now (snapshots, the best so far): G and its
        EMA, and an autoencoder's encoder, which ``encode`` needs; a GAN's discriminator stays out."""
        t = self.trainer
        return checkpoint.save(
            path,
            generator=t.G,
            ema=t.G_ema,
            partner=t.partner if self.model_config.family != "gan" else None,
            model_config=self.model_config,
            run_id=self.run_id,
            state={"epoch": self.epoch, "global_step": self.global_step, "data": self.data_state, **state},
        )


def _agree(losses: torch.Tensor, stopping: bool, world: World) -> tuple[torch.Tensor, bool]:
    import torch.distributed as dist

    # NaN on any rank survives the mean, so every rank sees the same non-finite loss and stops.
    packed = torch.cat([losses.float(), torch.tensor([float(stopping)], device=losses.device)])
    dist.all_reduce(packed)
    return packed[:3] / world.size, bool(packed[3] > 0)
