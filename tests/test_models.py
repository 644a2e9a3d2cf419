import pytest
import torch
from conftest import tiny

from latentctl.config import IMAGE_SIZES, ModelConfig
from latentctl.errors import UsageError
from latentctl.models import Encoder, build_models, count_parameters


@pytest.mark.parametrize("size", IMAGE_SIZES)
def test_every_size_runs_forward_with_the_right_shapes(size):
    cfg = tiny(image_size=size)
    G, D = build_models(cfg)
    x = G(torch.randn(3, cfg.latent_dim))
    assert x.shape == (3, 3, size, size) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.abs().max() <= 1
    logits = D(x)
    assert logits.shape == (3,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("size", IMAGE_SIZES)
@pytest.mark.parametrize("family", ["ae", "vae"])
@pytest.mark.parametrize("arch", ["seed", "lite"])
def test_every_size_encodes_and_decodes_with_the_right_shapes(size, family, arch):
    # width 4: only the shapes are checked, and 256 px is the largest feature map any test builds
    cfg = tiny(family=family, arch=arch, image_size=size, width=4)
    decoder, encoder = build_models(cfg)
    assert isinstance(encoder, Encoder)
    torch.manual_seed(0)
    x = torch.rand(3, cfg.channels, size, size) * 2 - 1
    with torch.no_grad():
        mean, logvar = encoder(x)
        assert mean.shape == (3, cfg.latent_dim) and mean.dtype == torch.float32 and torch.isfinite(mean).all()
        if family == "vae":
            assert logvar.shape == (3, cfg.latent_dim) and torch.isfinite(logvar).all()
        else:
            assert logvar is None
        images = decoder(mean)
    assert images.shape == (3, cfg.channels, size, size) and torch.isfinite(images).all()
    assert images.abs().max() <= 1


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
