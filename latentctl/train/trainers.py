"""One training step for each model family, and the networks and optimizers it needs.

``GANTrainer`` is the seed's step (and, with its levers on, the "lite" recipe's): D on reals, D on
fakes, G through a frozen D. ``AutoencoderTrainer`` is the AE / VAE step. A trainer owns no files;
``latentctl.train.training`` runs the loop around it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from latentctl.config import ModelConfig, TrainConfig, parse_augment_ops
from latentctl.device import autocast
from latentctl.models import build_models
from latentctl.train import growing
from latentctl.train.augment import AdaptiveP, augment, mirror

EMA_RAMPUP = 0.05  # the EMA half-life is at most this fraction of the images seen (StyleGAN2-ADA)


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


def pairing_loss(winner: torch.Tensor, loser: torch.Tensor) -> torch.Tensor:
    """R3GAN's relativistic pairing loss (Huang et al. 2024): softplus(loser - winner) row by row,
    the shorter side repeated to the longer's length (G's step scores twice the fakes D saw reals
    for). D wants reals to win, G wants its fakes to; only the difference counts, so D cannot win
    by shifting every verdict."""
    n = max(winner.shape[0], loser.shape[0])
    winner, loser = winner.float().repeat(n // winner.shape[0]), loser.float().repeat(n // loser.shape[0])
    return F.softplus(loser - winner).mean()


class GANTrainer:
    """Networks, optimizers and one training step. Owns no files."""

    loss_names = ("d_real", "d_fake", "g")

    def __init__(
        self, model_config: ModelConfig, train_config: TrainConfig, device: torch.device, world: World = World()
    ):
        growing.check(model_config, train_config)
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
            import inspect

            from torch.nn.parallel import DistributedDataParallel as DDP

            # Each rank keeps its own BatchNorm running statistics between steps (rank 0's are
            # saved); torch 2.13 renamed the switch and warns about the old name.
            no_sync = (
                "forward_sync_buffers"
                if "forward_sync_buffers" in inspect.signature(DDP).parameters
                else "broadcast_buffers"
            )
            ids = [device.index] if device.type == "cuda" else None
            # while growing, the stages of the resolutions not reached yet take no gradient
            unused = {"find_unused_parameters": bool(train_config.grow_steps)}
            self.G_update = DDP(self.G, device_ids=ids, **{no_sync: False}, **unused)
            self.D_update = DDP(self.D, device_ids=ids, **{no_sync: False}, **unused)
        self._build_optimizers((train_config.beta1, train_config.beta2))
        self.steps_done = 0  # set from the checkpoint on resume (lazy R1, the EMA ramp, growing use it)
        self._at: dict[str, float] = {}  # {"level": ...} while this step trains below full size
        self.ada = AdaptiveP(train_config.augment, train_config.augment_target, self.real_per_step * world.size)
        self._augment_ops = parse_augment_ops(train_config.augment_ops)  # once, not on every D pass
        self.G_ema: torch.nn.Module | None = None
        if train_config.ema and model_config.family == "gan":
            self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)

    def _build_optimizers(self, betas: tuple[float, float]) -> None:
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=self.config.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=self.config.d_lr, betas=betas)

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

    def _d_loss(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        if self.config.loss == "hinge":
            return F.relu(1.0 - logits.float()).mean() if real else F.relu(1.0 + logits.float()).mean()
        return _bce(logits, 1.0 if real else 0.0)

    def _g_loss(self, logits: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
        # bce: the seed's non-saturating loss (G's fakes labelled real); hinge: -D(G(z)) (SNGAN);
        # rpgan: each fake against a real's verdict from this step's D pass (before D's update: one
        # D forward saved per step; the value is a constant for G's gradient anyway).
        if self.config.loss == "rpgan":
            return pairing_loss(logits, real_logits.detach())
        return -logits.float().mean() if self.config.loss == "hinge" else _bce(logits, 1.0)

    def _d_pass(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """D's verdicts on (augmented) reals and, with ``--d-reconstruct``, its decoders' error on
        the same pictures (0.0 without: nothing is computed or allocated on the seed's path)."""
        x = self._augmented(x)
        if self.model_config.d_reconstruct:
            return self.D_update(x, reconstruct=True, **self._at)
        return self.D_update(x, **self._at), 0.0

    def _d_on_reals(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | float]:
        """D's verdicts on the reals, its loss on them, and the decoders' error, which joins D's
        backward pass but stays out of the reported losses."""
        logits, decoded = self._d_pass(real)
        return logits, self._d_loss(logits, real=True), decoded

    def _augmented(self, x: torch.Tensor) -> torch.Tensor:
        return augment(x, self.ada.p, self._augment_ops) if self.ada.p > 0 else x

    def step(self, real: torch.Tensor) -> torch.Tensor:
        """One step on prepared real images (this rank's share); returns the three local losses.

        The seed's loop (``d_update="split"``): D takes one Adam step on reals, then one on fakes.
        ``"joint"``: one step on both. Augmentation, mirroring, R1 and the EMA act only when
        their levers are on, so the seed's recipe computes exactly what it always did."""
        cfg, dev, world = self.config, self.device, self.world
        half = real.shape[0]
        self.D.train()
        self.G.train()
        if cfg.mirror:
            real = mirror(real)
        level = self.level
        self._at = {} if level is None else {"level": level}
        if level is not None:
            real = growing.reals_at(real, level)
        split = cfg.d_update == "split"

        if split:
            self.opt_D.zero_grad(set_to_none=True)
            with autocast(dev, cfg.precision):
                real_logits, loss_real, decoded = self._d_on_reals(real)
            (loss_real + decoded).backward()
            self.opt_D.step()

        # Every rank draws the whole batch's latents (so RNG streams stay identical across ranks)
        # and keeps its share, ordered so that its first `half` rows are its share of the latents
        # D sees: together the ranks compute exactly the single-process step.
        z = torch.randn(cfg.batch_size, self.model_config.latent_dim, device=dev)
        if world.size > 1:
            z = torch.cat([world.share(z[: cfg.half_batch]), world.share(z[cfg.half_batch :])])
        with autocast(dev, cfg.precision):
            fake = self.G_update(z, **self._at)
        self.opt_D.zero_grad(set_to_none=True)
        with autocast(dev, cfg.precision):
            if not split:
                real_logits, loss_real, decoded = self._d_on_reals(real)
            fake_logits = self.D_update(self._augmented(fake[:half].detach()), **self._at)
            if cfg.loss == "rpgan":
                # one loss for the pair, reported under both D columns so health's checks read it
                loss_real = loss_fake = pairing_loss(real_logits, fake_logits)
            else:
                loss_fake = self._d_loss(fake_logits, real=False)
        (loss_fake if split else (loss_fake if cfg.loss == "rpgan" else loss_real + loss_fake) + decoded).backward()
        self.opt_D.step()
        self.ada.observe(real_logits)
        if cfg.r1_gamma > 0 and self.steps_done % cfg.r1_every == 0:
            self._r1(real)
            if cfg.loss == "rpgan":  # R3GAN's R2: the same penalty on the fakes D just saw
                self._r1(fake[:half])

        # D is frozen for G's update: no gradients are computed for its weights at all.
        self.D.requires_grad_(False)
        try:
            self.opt_G.zero_grad(set_to_none=True)
            with autocast(dev, cfg.precision):
                loss_g = self._g_loss(self.D(self._augmented(fake), **self._at), real_logits)
            loss_g.backward()
            self.opt_G.step()
        finally:
            self.D.requires_grad_(True)
        self.steps_done += 1
        if self.G_ema is not None:
            self._update_ema()
        return torch.stack([loss_real.detach(), loss_fake.detach(), loss_g.detach()])

    def _r1(self, real: torch.Tensor) -> None:
        """Lazy R1 (StyleGAN2): gamma/2 * |grad_x D(x)|^2 on reals, every r1_every steps, scaled by
        the interval so the average pull is that of a penalty on every step. In float32: the
        gradient of a gradient loses too much in bf16. Given fakes, it is R3GAN's R2."""
        cfg = self.config
        x = real.detach().requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        logits, decoded = self._d_pass(x)
        (grad,) = torch.autograd.grad(logits.float().sum(), x, create_graph=True)
        penalty = grad.float().pow(2).flatten(1).sum(1).mean() * (cfg.r1_gamma / 2 * cfg.r1_every)
        # The logits (for D's last bias, which no input gradient depends on) and the decoders join
        # at weight 0: data-parallel training expects a gradient for every weight after a backward.
        (penalty + 0.0 * (logits.float().sum() + decoded)).backward()
        self.opt_D.step()

    @torch.no_grad()
    def _update_ema(self) -> None:
        """G_ema <- beta G_ema + (1 - beta) G, beta for a half-life of ema_kimg thousand images,
        ramped up as StyleGAN2-ADA does (at most 5% of the images seen so far), so that a short
        run's EMA is not stuck near its random start."""
        seen = self.steps_done * self.config.batch_size
        half_life = min(self.config.ema_kimg * 1000, max(seen * EMA_RAMPUP, 1e-8))
        beta = 0.5 ** (self.config.batch_size / half_life)
        ema, raw = list(self.G_ema.parameters()), list(self.G.parameters())
        torch._foreach_lerp_(ema, raw, 1.0 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    @property
    def level(self) -> float | None:
        """The resolution level the next step trains at (latentctl.train.growing); None: full size."""
        return growing.level_at(self.steps_done, self.config.grow_steps, self.model_config.stages)

    @property
    def sampler(self) -> torch.nn.Module:
        """The generator that progress grids and checkpoints' users sample: the EMA one if kept;
        while growing, drawn at the level it trains at, enlarged to the model's size."""
        g = self.G_ema if self.G_ema is not None else self.G
        level = self.level
        if level is not None:
            from latentctl.models.lite import GrowingView

            return GrowingView(g, level)
        return g


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


def make_trainer(
    model_config: ModelConfig, train_config: TrainConfig, device: torch.device, world: World = World()
) -> GANTrainer:
    cls = GANTrainer if model_config.family == "gan" else AutoencoderTrainer
    return cls(model_config, train_config, device, world)
