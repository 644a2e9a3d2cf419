"""Networks, built from a ``ModelConfig`` (imports torch)."""

from latentctl.models.gan import Discriminator, Generator, build_models, count_parameters

__all__ = ["Discriminator", "Generator", "build_models", "count_parameters"]
