"""The "lite" GAN: the seed's shape, with the changes that make small data sets train on a CPU.

Generator: Dense(latent -> width*8*8) -> reshape -> pixel norm + LeakyReLU -> stages x [nearest
upsample x2 -> Conv(3x3) -> pixel norm -> LeakyReLU] -> Conv(3x3, channels) + tanh.
  * Resize-then-convolve instead of a stride-2 transposed convolution: every output pixel sees
    the same number of kernel taps, so no checkerboard pattern (Odena et al. 2016).
  * Pixel norm (ProGAN) after each convolution: keeps activations at unit scale without batch
    statistics, so a sample does not depend on what else is in its batch (BatchNorm would), and
    the EMA generator needs no running statistics.
  * The first layer stays one Dense layer that consumes z, so SeFa (`latentctl directions`) reads
    its weight exactly as on the seed's model.
Discriminator: Conv(3x3) -> stages x [Conv(4x4, stride 2)] with LeakyReLU, a minibatch standard
deviation channel (ProGAN: lets D see a batch's lack of variety, which counters mode collapse),
Conv(3x3), Dense(1); every weight under spectral normalisation (Miyato et al. 2018), which bounds
D's Lipschitz constant so that it cannot win by an ever-sharper boundary on a few thousand images.
With ``d_reconstruct`` (lightweight-gan, FastGAN: Liu et al. 2021) D also decodes its coarsest
features into the real picture it was shown, and a random quarter of the finer ones into that
quarter of it: D must keep a description of the whole picture, not only the few features that
tell this training set's reals from today's fakes, which is what overfits on small data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from latentctl.config import BASE_RESOLUTION, ModelConfig
from latentctl.models.gan import NEGATIVE_SLOPE, _memory_format

MBSTD_GROUP = 4  # samples per group for the minibatch standard deviation (ProGAN's default)
# D's decoders draw at most 32 px (4x their 8x8 input): enough to need the picture's layout and
# colours, and cheap beside D at any image size (FastGAN decodes to 128 px from 8x8 with LPIPS).
DECODER_MAX_UPSAMPLES = 2
STAGE_MODULES = 4  # G's up-sampling stage: upsample, convolution, pixel norm, LeakyReLU


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mean over channels in float32: in bf16 the sum of squares of 128 channels loses digits
        return x * torch.rsqrt(x.float().pow(2).mean(dim=1, keepdim=True) + 1e-8).to(x.dtype)


class LiteGenerator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.fc = nn.Linear(config.latent_dim, w * BASE_RESOLUTION * BASE_RESOLUTION)
        self.norm = PixelNorm()
        ups: list[nn.Module] = []
        for _ in range(config.stages):
            ups += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(w, w, 3, padding=1),
                PixelNorm(),
                nn.LeakyReLU(NEGATIVE_SLOPE),
            ]
        self.ups = nn.Sequential(*ups)
        # FastGAN (Liu et al. 2021): the coarse 8x8 features, pooled to 4x4, give each channel of the
        # last stage a gate in (0, 1): a shortcut for the gradient from the output to the first
        # layers, and global content (a background's colour) set once for every pixel.
        self.excite = (
            nn.Sequential(
                nn.AdaptiveAvgPool2d(4),
                nn.Conv2d(w, w, 4),
                nn.LeakyReLU(NEGATIVE_SLOPE),
                nn.Conv2d(w, w, 1),
                nn.Sigmoid(),
            )
            if config.skip_excitation
            else None
        )
        self.to_rgb = nn.Conv2d(w, config.channels, 3, padding=1)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, a=NEGATIVE_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.to_rgb.weight)  # tanh output: keep its input near unit scale

    def forward(self, z: torch.Tensor, level: float | None = None) -> torch.Tensor:
        """(B, latent_dim) -> (B, C, S, S) in [-1, 1]. ``level`` (growing, latentctl.train.growing):
        stop after int(level) stages, and while the next one fades in blend its picture with this
        one's, enlarged; S is then that resolution."""
        x = self.fc(z).view(z.shape[0], self.config.width, BASE_RESOLUTION, BASE_RESOLUTION)
        x = nn.functional.leaky_relu(self.norm(x), NEGATIVE_SLOPE)
        x = x.contiguous(memory_format=_memory_format(z, self.to_rgb.weight))
        if level is None or level >= self.config.stages:
            return torch.tanh(self._rgb(self.ups(x), x))
        stages, fade = int(level), level - int(level)
        h = self.ups[: STAGE_MODULES * stages](x)
        rgb = self._rgb(h, x)
        if fade:
            new = self._rgb(self.ups[STAGE_MODULES * stages : STAGE_MODULES * (stages + 1)](h), x)
            rgb = torch.lerp(F.interpolate(rgb, scale_factor=2, mode="nearest"), new, fade)
        return torch.tanh(rgb)

    def _rgb(self, h: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        # every stage has `width` channels, so the one to_rgb (and the excitation's gate) serves any
        if self.excite is not None:
            h = h * self.excite(coarse)
        return self.to_rgb(h)

    def sefa_weight(self) -> torch.Tensor:
        """(width*8*8, latent_dim): the Dense layer that consumes z (models/interface.py)."""
        return self.fc.weight

    def first_features(self, z: torch.Tensor) -> torch.Tensor:
        # The activations GANSpace has always taken here: the Dense output through the slope.
        return nn.functional.leaky_relu(self.fc(z), NEGATIVE_SLOPE)


class MinibatchStd(nn.Module):
    """Appends one channel: the mean standard deviation of the features over groups of samples."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = MBSTD_GROUP if b % MBSTD_GROUP == 0 else 1
        if g == 1:  # a batch that does not split into groups: one group of the whole batch
            g = b
        y = x.float().reshape(g, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/g,)
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


class LiteDiscriminator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = [
            spectral_norm(nn.Conv2d(config.channels, w, 3, padding=1)),
            nn.LeakyReLU(NEGATIVE_SLOPE),
        ]
        for _ in range(config.stages):
            layers += [spectral_norm(nn.Conv2d(w, w, 4, stride=2, padding=1)), nn.LeakyReLU(NEGATIVE_SLOPE)]
        self.features = nn.Sequential(*layers)
        self.mbstd = MinibatchStd()
        self.final = nn.Sequential(spectral_norm(nn.Conv2d(w + 1, w, 3, padding=1)), nn.LeakyReLU(NEGATIVE_SLOPE))
        self.fc = spectral_norm(nn.Linear(w * BASE_RESOLUTION * BASE_RESOLUTION, 1))
        # One upsample fewer than D's stages: the quarter of the 16x16 features is decoded to its
        # own share of the picture at the same size as the whole is.
        self.decoder_upsamples = min(DECODER_MAX_UPSAMPLES, config.stages - 1)
        self.decoders = (
            nn.ModuleDict({"whole": self._decoder(), "part": self._decoder()}) if config.d_reconstruct else None
        )

    def _decoder(self) -> nn.Sequential:
        # no spectral norm: the decoders' task is to read the features out, not to bound D
        w, layers = self.config.width, []
        for _ in range(self.decoder_upsamples):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, w, 3, padding=1)]
            layers.append(nn.LeakyReLU(NEGATIVE_SLOPE))
        layers.append(nn.Conv2d(w, self.config.channels, 3, padding=1))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, reconstruct: bool = False, level: float | None = None):
        """(B, C, S, S) in [-1, 1] -> (B,) logits (real > 0). With ``reconstruct`` (a D built with
        d_reconstruct, shown reals): (logits, the decoders' mean squared error in float32).
        A picture smaller than the model's (growing) enters at the stage of its size; ``level``
        says whether that stage is fading in (latentctl.train.growing)."""
        if not reconstruct and level is None:
            h = self.features(x)
        else:
            h, fine = self._grown_features(x, level)
        out = self.final(self.mbstd(h))
        logits = self.fc(out.reshape(out.shape[0], -1)).squeeze(1)
        return (logits, self._reconstruction_error(x, h, fine)) if reconstruct else logits

    def _grown_features(self, x: torch.Tensor, level: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        """D's 8x8 features, and the 16x16 ones the last stage took (for the decoders), for a
        picture of any of the model's resolutions. While a stage fades in (level's fraction), its
        output is blended with what from_rgb reads from the picture shrunk by averaging (ProGAN)."""
        stages = self.config.stages
        first = stages - ((x.shape[-1] // BASE_RESOLUTION).bit_length() - 1)  # the stage of this size
        read = self.features[:2]  # from_rgb and its LeakyReLU: one for every resolution
        h = read(x)
        fade = 0.0 if level is None or level >= stages else level - int(level)
        if fade:
            h = torch.lerp(read(F.avg_pool2d(x, 2)), self._stage(first)(h), fade)
            first += 1
        fine = h
        for i in range(first, stages):
            fine = h
            h = self._stage(i)(h)
        return h, fine

    def _stage(self, i: int) -> nn.Sequential:
        return self.features[2 + 2 * i : 4 + 2 * i]  # stride-2 convolution and its LeakyReLU

    def _reconstruction_error(self, x: torch.Tensor, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """lightweight-gan's self-supervision: the 8x8 features decoded into the whole picture, a
        random quarter of the 16x16 ones into that quarter (one quarter per batch), each compared
        with the picture shrunk to the decoders' size by averaging."""
        if self.decoders is None:
            raise ValueError("this discriminator was built without decoders (d_reconstruct)")
        size = BASE_RESOLUTION << self.decoder_upsamples  # (pictures smaller while growing are enlarged)
        qy, qx = (int(q) for q in torch.randint(0, 2, (2,)))  # from torch's stream: seeded, every rank alike
        f, s = fine.shape[-1] // 2, x.shape[-1] // 2
        part = fine[..., qy * f : (qy + 1) * f, qx * f : (qx + 1) * f]
        target_part = x[..., qy * s : (qy + 1) * s, qx * s : (qx + 1) * s]
        error = 0.0
        for name, features, target in (("whole", coarse, x), ("part", part, target_part)):
            target = F.adaptive_avg_pool2d(target.float(), size) if target.shape[-1] != size else target.float()
            error = error + F.mse_loss(self.decoders[name](features).float(), target)
        return error


class GrowingView(nn.Module):
    """A growing generator as progress grids and scores see it: drawn at the level it trains at
    and enlarged (nearest) to the model's size, so a grid of a 16 px stage is not mistaken for
    noise from the stages that have not trained yet. Owns no weights of its own."""

    def __init__(self, generator: LiteGenerator, level: float):
        super().__init__()
        self.generator, self.level, self.config = generator, level, generator.config
        self.train(generator.training)  # generate() restores this mode: it must be the wrapped one's

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        return F.interpolate(self.generator(z, level=self.level), size=(size, size), mode="nearest")
