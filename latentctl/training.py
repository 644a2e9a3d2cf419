"""The seed's GAN training loop, resumable to the bit on CPU.

One step (batch B, half H = B/2), as the seed's Keras loop:
  1. D trains on H real images (label 1), drawn without repeats from this epoch's permutation;
  2. D trains on H generated images (label 0), a separate Adam step as Keras' train_on_batch;
  3. G trains on B latents through D (label 1); D's weights are not updated.
One generator forward of B latents serves steps 2 and 3: D sees the first H of its images, detached.
That matches the seed in distribution (independent standard-normal latents) and saves H generator
forwards per step.

The loop knows nothing about terminals: it reports through ``on_event`` (StepEvent, EpochEvent,
CheckpointEvent) and raises ``TrainingInterrupted`` / ``NonFiniteLossError`` for the CLI to map.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from latentctl import checkpoint
from latentctl.config import ModelConfig, TrainConfig
from latentctl.device import autocast
from latentctl.errors import DataError, NonFiniteLossError, StorageError, TrainingInterrupted
from latentctl.fsutil import atomic_write_text, describe_os_error, remove_stale_temps
from latentctl.generate import generate
from latentctl.grid import make_grid, save_png
from latentctl.models import build_models
from latentctl.seeds import latents_from_seeds
from latentctl.workspace import CHECKPOINT_NAME

if TYPE_CHECKING:  # pragma: no cover
    from latentctl.data import ImageDataset

GRID_SEEDS = list(range(36))  # progress grids show seeds 0-35: `sample --seeds 0-35` shows the same faces


@dataclass
class StepEvent:
    epoch: int  # 1-based
    step: int  # 1-based within the epoch
    steps_per_epoch: int
    global_step: int
    total_steps: int
    losses: dict[str, float]  # GAN: d_real, d_fake, g; AE/VAE: recon, kl, loss (per image)
    images_per_sec: float  # real images consumed per second (GAN: H per step; AE/VAE: B)


@dataclass
class EpochEvent:
    epoch: int
    grid: Path | None


@dataclass
class CheckpointEvent:
    path: Path
    epoch: int
    global_step: int


@dataclass
class NoticeEvent:
    """Something the user should know that does not stop training (a repaired metrics file, ...)."""

    message: str


Event = StepEvent | EpochEvent | CheckpointEvent | NoticeEvent


@dataclass(frozen=True)
class World:
    """This process's place among data-parallel workers (rank 0 of 1 when training alone)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, rows: np.ndarray | torch.Tensor):
        """This rank's contiguous share of a global batch (equal shares: batch % size == 0)."""
        n = len(rows) // self.size
        return rows[self.rank * n : (self.rank + 1) * n]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    # BCE on logits in float32: stable where sigmoid + log would under/overflow in bf16.
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class GANTrainer:
    """Networks, optimizers and one training step. Owns no files."""

    loss_names = ("d_real", "d_fake", "g")

    def __init__(
        self, model_config: ModelConfig, train_config: TrainConfig, device: torch.device, world: World = World()
    ):
        self.model_config = model_config
        self.config = train_config
        self.device = device
        self.world = world
        self.G, self.D = build_models(model_config)
        self.G.to(device)
        self.D.to(device)
        if train_config.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        # The updates go through DDP wrappers that average gradients across ranks; G's update reads
        # the plain D, whose weights it must not (and does not) synchronise.
        self.G_update, self.D_update = self.G, self.D
        if world.size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            import inspect

            # Each rank keeps its own BatchNorm running statistics between steps (rank 0's are
            # saved); torch 2.13 renamed the switch and warns about the old name.
            no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters else "broadcast_buffers"
            ids = [device.index] if device.type == "cuda" else None
            self.G_update = DDP(self.G, device_ids=ids, **{no_sync: False})
            self.D_update = DDP(self.D, device_ids=ids, **{no_sync: False})
        self._build_optimizers((train_config.beta1, train_config.beta2))

    def _build_optimizers(self, betas: tuple[float, float]) -> None:
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=self.config.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=self.config.lr, betas=betas)

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_G, "D": self.opt_D}

    @property
    def partner(self) -> torch.nn.Module:
        return self.D

    @property
    def real_per_step(self) -> int:
        return self.config.half_batch

    def prepare_real(self, batch: torch.Tensor) -> torch.Tensor:
        """(H, S, S, 3) uint8 -> (H, 3, S, S) float in [-1, 1] on the device."""
        x = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        # The permuted NHWC view already has channels-last strides; only plain layout needs a copy.
        x = x.float() if self.config.channels_last else x.contiguous().float()
        return x.mul_(1 / 127.5).sub_(1)

    def step(self, real: torch.Tensor) -> torch.Tensor:
        """One step on prepared real images (this rank's share); returns the three local losses."""
        cfg, dev, world = self.config, self.device, self.world
        half = real.shape[0]
        self.D.train()
        self.G.train()

        self.opt_D.zero_grad(set_to_none=True)
        with autocast(dev, cfg.precision):
            loss_real = _bce(self.D_update(real), 1.0)
        loss_real.backward()
        self.opt_D.step()

        # Every rank draws the whole batch's latents (so RNG streams stay identical across ranks)
        # and keeps its share, ordered so that its first `half` rows are its share of the latents
        # D sees: together the ranks compute exactly the single-process step.
        z = torch.randn(cfg.batch_size, self.model_config.latent_dim, device=dev)
        if world.size > 1:
            z = torch.cat([world.share(z[: cfg.half_batch]), world.share(z[cfg.half_batch :])])
        with autocast(dev, cfg.precision):
            fake = self.G_update(z)
        self.opt_D.zero_grad(set_to_none=True)
        with autocast(dev, cfg.precision):
            loss_fake = _bce(self.D_update(fake[:half].detach()), 0.0)
        loss_fake.backward()
        self.opt_D.step()

        # D is frozen for G's update: no gradients are computed for its weights at all.
        self.D.requires_grad_(False)
        try:
            self.opt_G.zero_grad(set_to_none=True)
            with autocast(dev, cfg.precision):
                loss_g = _bce(self.D(fake), 1.0)
            loss_g.backward()
            self.opt_G.step()
        finally:
            self.D.requires_grad_(True)
        return torch.stack([loss_real.detach(), loss_fake.detach(), loss_g.detach()])


class AutoencoderTrainer(GANTrainer):
    """AE / VAE: the encoder mirrors the discriminator, the decoder is the generator.

    Loss per image: summed squared error of the reconstruction (in [-1, 1] units) plus, for a VAE,
    ``kl_weight`` times the KL divergence of the code distribution from N(0, I). One Adam optimizer
    over both networks with the run's learning rate and betas.
    """

    loss_names = ("recon", "kl", "loss")

    def _build_optimizers(self, betas: tuple[float, float]) -> None:
        self.E = self.D  # build_models gave the encoder as the partner network
        self.opt = torch.optim.Adam([*self.G.parameters(), *self.E.parameters()], lr=self.config.lr, betas=betas)

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"AE": self.opt}

    @property
    def real_per_step(self) -> int:
        return self.config.batch_size

    def step(self, real: torch.Tensor) -> torch.Tensor:
        cfg, dev = self.config, self.device
        self.G.train()
        self.E.train()
        self.opt.zero_grad(set_to_none=True)
        with autocast(dev, cfg.precision):
            mean, logvar = self.D_update(real)
            if logvar is None:
                z, kl = mean, torch.zeros((), device=dev)
            else:
                mean, logvar = mean.float(), logvar.float()
                z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
                kl = (-0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1)).mean()
            recon = self.G_update(z)
        rec = (recon.float() - real).pow(2).flatten(1).sum(1).mean()
        loss = rec + cfg.kl_weight * kl
        loss.backward()
        self.opt.step()
        return torch.stack([rec.detach(), kl.detach(), loss.detach()])


def make_trainer(model_config: ModelConfig, train_config: TrainConfig, device: torch.device, world: World = World()) -> GANTrainer:
    cls = GANTrainer if model_config.family == "gan" else AutoencoderTrainer
    return cls(model_config, train_config, device, world)


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
    world: World = World(),
) -> Path:
    """Train into ``run_dir`` (checkpoint.safetensors, grids/, metrics.jsonl); return the checkpoint.

    With ``resume`` (a training checkpoint loaded with ``checkpoint.load(..., training=True)``) the
    run continues from the exact step it stopped at. With a ``world`` of several ranks (see
    ``latentctl.distributed``) each rank trains on its share of every batch and rank 0 alone
    writes files and reports events.
    """
    run_dir = Path(run_dir)
    emit = (on_event or (lambda event: None)) if world.is_main else (lambda event: None)
    cfg = train_config
    n = len(dataset)
    steps_per_epoch = n // cfg.batch_size
    if steps_per_epoch < 1:
        raise DataError(
            f"{dataset.root} has {n} usable images, fewer than one batch (--batch-size {cfg.batch_size}); "
            "add images or lower --batch-size"
        )
    total_steps = steps_per_epoch * cfg.epochs

    torch.manual_seed(cfg.seed)  # weights and the latent/dropout stream start from the run's seed
    trainer = make_trainer(model_config, cfg, device, world)
    if trainer.real_per_step % world.size:
        raise DataError(
            f"--batch-size {cfg.batch_size} cannot be split over {world.size} workers: "
            f"use a multiple of {2 * world.size}"
        )
    data_state = {
        "root": str(dataset.root),
        "fingerprint": dataset.fingerprint,
        "count": n,
        "skipped": len(dataset.skipped),
    }
    epoch, step_in_epoch, elapsed = 0, 0, 0.0
    run_id = uuid.uuid4().hex[:12]
    if resume is not None:
        trainer.G.load_state_dict(resume.generator.state_dict())
        trainer.partner.load_state_dict(resume.partner.state_dict())
        resume.restore_optimizers(trainer.optimizers)
        st = resume.info.state
        epoch, step_in_epoch = st["epoch"], st["step_in_epoch"]
        elapsed = st.get("elapsed_s", 0.0)
        run_id = resume.info.run_id or run_id
        _set_rng_state(st["rng"], device)
    global_step = epoch * steps_per_epoch + step_in_epoch

    metrics_path = run_dir / "metrics.jsonl"
    if world.is_main:
        (run_dir / "grids").mkdir(parents=True, exist_ok=True)
        # A process killed mid-save leaves its hidden temporary file; this run owns its folder.
        for stem in (CHECKPOINT_NAME, "generator-epoch-*.safetensors", "metrics.jsonl"):
            remove_stale_temps(run_dir, stem)
        torn = _truncate_metrics(metrics_path, global_step)
        if torn:
            emit(NoticeEvent(f"{metrics_path}: dropped {torn} torn line{'s' if torn > 1 else ''} "
                             "(written when the run was stopped mid-write)"))
    ckpt_path = run_dir / CHECKPOINT_NAME
    real_batches = _RealBatches(dataset.images, device)
    grid_z = latents_from_seeds(GRID_SEEDS, model_config.latent_dim)
    half = trainer.real_per_step  # real images per step

    def save(finished: bool = False) -> Path:
        if not world.is_main:
            return ckpt_path
        state = {
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": global_step,
            "steps_per_epoch": steps_per_epoch,
            "elapsed_s": round(elapsed, 3),
            "finished": finished,
            "rng": _rng_state(device),
            "data": data_state,
        }
        path = checkpoint.save(
            ckpt_path,
            generator=trainer.G,
            partner=trainer.partner,
            optimizers=trainer.optimizers,
            model_config=model_config,
            train_config=cfg,
            state=state,
            run_id=run_id,
        )
        saved["epoch"] = epoch
        emit(CheckpointEvent(path, epoch, global_step))
        return path

    saved = {"epoch": epoch if resume is not None else None}

    try:
        with _StopRequest() as stop, open(metrics_path if world.is_main else os.devnull, "a") as metrics:
            while epoch < cfg.epochs:
                order = epoch_order(cfg.seed, epoch, n)
                t_last = time.perf_counter()
                while step_in_epoch < steps_per_epoch:
                    idx = world.share(order[step_in_epoch * half : (step_in_epoch + 1) * half])
                    losses = trainer.step(trainer.prepare_real(real_batches(idx)))
                    agreed_stop = False
                    if world.size > 1:
                        # One collective per step: the global mean losses, and whether any rank was
                        # asked to stop, so every rank stops at the same step.
                        losses, agreed_stop = _agree(losses, stop.requested, world)
                    losses = losses.tolist()
                    now = time.perf_counter()
                    dt, t_last = now - t_last, now
                    if not all(math.isfinite(v) for v in losses):
                        shown = ", ".join(f"{k} {v:.4g}" for k, v in zip(trainer.loss_names, losses))
                        raise NonFiniteLossError(
                            f"training diverged at epoch {epoch + 1}, step {step_in_epoch + 1} ({shown}); nothing from "
                            f"this step was saved ({'the last good checkpoint is ' + str(ckpt_path) if ckpt_path.exists() else 'no checkpoint was written yet'}); "
                            "try a lower --lr or --precision fp32"
                        )
                    step_in_epoch += 1
                    global_step += 1
                    elapsed += dt
                    event = StepEvent(
                        epoch + 1, step_in_epoch, steps_per_epoch, global_step, total_steps,
                        dict(zip(trainer.loss_names, losses)), images_per_sec=half / dt if dt > 0 else float("inf"),
                    )
                    record = asdict(event)
                    record.update(record.pop("losses"))
                    metrics.write(json.dumps(record) + "\n")
                    emit(event)
                    if agreed_stop if world.size > 1 else stop.requested:
                        metrics.flush()
                        path = save()
                        raise TrainingInterrupted(
                            f"stopped at epoch {epoch + 1}, step {step_in_epoch} of {steps_per_epoch}; "
                            f"checkpoint saved to {path}",
                            checkpoint=str(path),
                        )
                epoch += 1
                step_in_epoch = 0
                metrics.flush()
                grid_path = None
                if world.is_main and (epoch % cfg.sample_every == 0 or epoch == cfg.epochs):
                    images = generate(trainer.G, grid_z, device=device, precision=cfg.precision)
                    grid_path = save_png(make_grid(images), run_dir / "grids" / f"epoch-{epoch:04d}.png")
                emit(EpochEvent(epoch, grid_path))
                if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
                    save(finished=epoch == cfg.epochs)
                if world.is_main and epoch % cfg.snapshot_every == 0:
                    checkpoint.save(
                        run_dir / f"generator-epoch-{epoch:04d}.safetensors",
                        generator=trainer.G,
                        partner=trainer.partner if model_config.family != "gan" else None,  # encode needs it
                        model_config=model_config,
                        run_id=run_id,
                        state={"epoch": epoch, "global_step": global_step, "data": data_state},
                    )
        if world.is_main and (
            not ckpt_path.exists() or checkpoint.read_header(ckpt_path).state.get("global_step") != global_step
        ):
            save(finished=True)
    except OSError as err:
        # A full disk or a folder made read-only mid-run: the checkpoint is replaced atomically, so
        # the last one written is whole; say which epoch it holds.
        if saved["epoch"] is not None and ckpt_path.exists():
            intact = f"the last checkpoint, epoch {saved['epoch']}, is intact in {run_dir}; free space and resume"
        else:
            intact = "no checkpoint was written yet"
        raise StorageError(f"{describe_os_error(err, 'write the run')}; {intact}") from None
    return ckpt_path


def _agree(losses: torch.Tensor, stopping: bool, world: World) -> tuple[torch.Tensor, bool]:
    import torch.distributed as dist

    # NaN on any rank survives the mean, so every rank sees the same non-finite loss and stops.
    packed = torch.cat([losses.float(), torch.tensor([float(stopping)], device=losses.device)])
    dist.all_reduce(packed)
    return packed[:3] / world.size, bool(packed[3] > 0)
