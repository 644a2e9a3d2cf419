import pytest
import torch
from conftest import tiny

from latentctl.config import IMAGE_SIZES, ModelConfig
from latentctl.errors import UsageError
from latentctl.models import build_models, count_parameters


@pytest.mark.parametrize("size", IMAGE_SIZES)
def test_every_size_runs_forward_with_the_right_shapes(size):
    cfg = tiny(image_size=size)
    G, D = build_models(cfg)
    x = G(torch.randn(3, cfg.latent_dim))
    assert x.shape == (3, 3, size, size) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.abs().max() <= 1
    logits = D(x)
    assert logits.shape == (3,) and torch.isfinite(logits).all()


def test_default_model_matches_the_seeds_parameter_counts():
    # BRIEF.md: generator about 1.9 M parameters, discriminator about 0.6 M
    G, D = build_models(ModelConfig())
    assert count_parameters(G) == 1_901_059
    assert count_parameters(D) == 602_113


def test_channels_last_gives_the_same_images():
    torch.manual_seed(0)
    G, D = build_models(tiny())
    z = torch.randn(2, tiny().latent_dim)
    ref = G(z)
    G.to(memory_format=torch.channels_last)
    torch.testing.assert_close(G(z), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kwargs", [{"image_size": 48}, {"latent_dim": 0}, {"width": 0}, {"family": "diffusion"}])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(UsageError):
        ModelConfig(**kwargs)
