"""The yardstick: the seed's GAN and training loop written the plain way, float32, eager.

Nothing here is tuned. The networks are the same as ``latentctl.models.gan`` (same layers, same
"same" padding, same parameter count) but built with ``nn.Sequential`` in PyTorch's default
(contiguous, NCHW) layout, and the loop is the seed's Keras loop transcribed literally:

  1. D trains on H = B/2 real images (label 1);
  2. D trains, in a separate Adam step, on H images generated from fresh latents (label 0);
     as Keras' ``generator.predict`` the generator runs without gradients here;
  3. G trains on B fresh latents through D (label 1), with a fresh generator forward. Only G's
     optimizer steps; D's weight gradients are computed and thrown away at D's next zero_grad,
     which is what a straightforward PyTorch port does.

Losses are ``BCEWithLogitsLoss`` (the sigmoid lives in the loss). Adam(lr 2e-4, betas (0.5, 0.999)).
"""

from __future__ import annotations

import torch
from torch import nn

LATENT_DIM = 100
WIDTH = 128
BASE = 8  # the dense layer reshapes to WIDTH x 8 x 8


def _stages(image_size: int) -> int:
    stages = (image_size // BASE).bit_length() - 1
    if BASE << stages != image_size:
        raise ValueError(f"image size must be 8 * 2**k, got {image_size}")
    return stages


def make_generator(image_size: int = 128, latent_dim: int = LATENT_DIM, width: int = WIDTH) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, width * BASE * BASE),
        nn.LeakyReLU(0.2),
        nn.Unflatten(1, (width, BASE, BASE)),
    ]
    for _ in range(_stages(image_size)):
        layers += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
    # Keras "same" with an 8x8 kernel pads 3 before and 4 after.
    layers += [nn.ZeroPad2d((3, 4, 3, 4)), nn.Conv2d(width, 3, 8), nn.Tanh()]
    return nn.Sequential(*layers)


def make_discriminator(image_size: int = 128, width: int = WIDTH, dropout: float = 0.4) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.LeakyReLU(0.2)]
    for _ in range(_stages(image_size)):
        layers += [nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
    layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * BASE * BASE, 1)]
    return nn.Sequential(*layers)


def prepare_real(batch_uint8: torch.Tensor) -> torch.Tensor:
    """(H, S, S, 3) uint8 -> (H, 3, S, S) float32 in [-1, 1], contiguous NCHW."""
    return batch_uint8.permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1.0


class PlainGAN:
    """Both networks, their optimizers and one training step of the seed's loop."""

    def __init__(
        self, image_size: int = 128, batch_size: int = 128, device: str | torch.device = "cpu", width: int = WIDTH
    ):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.G = make_generator(image_size, width=width).to(self.device)
        self.D = make_discriminator(image_size, width=width).to(self.device)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.loss = nn.BCEWithLogitsLoss()

    def step(self, real: torch.Tensor) -> tuple[float, float, float]:
        half = real.shape[0]
        dev = self.device

        # 1. D on real images
        self.opt_D.zero_grad()
        out = self.D(real).view(-1)
        loss_real = self.loss(out, torch.ones(half, device=dev))
        loss_real.backward()
        self.opt_D.step()

        # 2. D on generated images (a separate step, as Keras' train_on_batch)
        with torch.no_grad():
            fake = self.G(torch.randn(half, LATENT_DIM, device=dev))
        self.opt_D.zero_grad()
        out = self.D(fake).view(-1)
        loss_fake = self.loss(out, torch.zeros(half, device=dev))
        loss_fake.backward()
        self.opt_D.step()

        # 3. G on B fresh latents through D (only G's optimizer steps)
        self.opt_G.zero_grad()
        fake = self.G(torch.randn(self.batch_size, LATENT_DIM, device=dev))
        out = self.D(fake).view(-1)
        loss_g = self.loss(out, torch.ones(self.batch_size, device=dev))
        loss_g.backward()
        self.opt_G.step()
        return loss_real.item(), loss_fake.item(), loss_g.item()


@torch.inference_mode()
def sample(G: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Plain sampling: eval mode, one forward, uint8 NHWC images out."""
    G.eval()
    x = G(z)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
