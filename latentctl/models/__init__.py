"""Networks, built from a ``ModelConfig`` (imports torch)."""

from latentctl.models.autoencoder import Encoder
from latentctl.models.gan import Discriminator, Generator, count_parameters
from latentctl.models.lite import LiteDiscriminator, LiteGenerator

_GENERATORS = {"seed": Generator, "lite": LiteGenerator}
_DISCRIMINATORS = {"seed": Discriminator, "lite": LiteDiscriminator}


def build_generator(config):
    return _GENERATORS[config.arch](config)


def build_models(config):
    """(decoder, partner): the generator and, by family, the discriminator (gan) or encoder (ae, vae)."""
    partner = _DISCRIMINATORS[config.arch](config) if config.family == "gan" else Encoder(config)
    return build_generator(config), partner


def partner_prefix(config) -> str:
    """Tensor-name prefix of the second network in checkpoints: D (discriminator) or E (encoder)."""
    return "D" if config.family == "gan" else "E"


__all__ = [
    "Discriminator",
    "Encoder",
    "Generator",
    "LiteDiscriminator",
    "LiteGenerator",
    "build_generator",
    "build_models",
    "count_parameters",
    "partner_prefix",
]
