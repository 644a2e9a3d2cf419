"""Networks, built from a ``ModelConfig`` (imports torch)."""

from latentctl.models.autoencoder import Encoder
from latentctl.models.gan import Discriminator, Generator, count_parameters


def build_models(config):
    """(decoder, partner): the generator and, by family, the discriminator (gan) or encoder (ae, vae)."""
    partner = Discriminator(config) if config.family == "gan" else Encoder(config)
    return Generator(config), partner


def partner_prefix(config) -> str:
    """Tensor-name prefix of the second network in checkpoints: D (discriminator) or E (encoder)."""
    return "D" if config.family == "gan" else "E"


__all__ = ["Discriminator", "Encoder", "Generator", "build_models", "count_parameters", "partner_prefix"]
