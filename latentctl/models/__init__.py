"""Networks, built from a ``ModelConfig`` (imports torch). Every generator meets the interface in
``models/interface.py``; imported ones are built from the description their config carries."""

from latentctl.models.autoencoder import Encoder
from latentctl.models.gan import Discriminator, Generator, count_parameters
from latentctl.models.lite import LiteDiscriminator, LiteGenerator

_GENERATORS = {"seed": Generator, "lite": LiteGenerator}
_DISCRIMINATORS = {"seed": Discriminator, "lite": LiteDiscriminator}


def build_generator(config):
    if config.arch == "sequential":
        from latentctl.models.imported import ImportedSequential

        return ImportedSequential(config)
    if config.arch in ("stylegan2", "stylegan3"):
        from latentctl.models.stylegan import ImportedStyleGAN

        return ImportedStyleGAN(config)
    return _GENERATORS[config.arch](config)


def build_models(config):
    """(decoder, partner): the generator and, by family, the discriminator (gan) or encoder (ae,
    vae). An imported generator has no partner (None): it came without its discriminator."""
    if config.imported:
        return build_generator(config), None
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
