"""StyleGAN3 generators (configs T and R) imported from NVIDIA snapshots: parity with NVIDIA's outputs.

The fixtures in tests/data/stylegan/ were written by tests/writers/stylegan_fixtures.py, which ran
NVIDIA's stylegan3 code on CPU (float32) on tiny random generators and saved its ws and images.

Tolerance: 1e-4 absolute. Both sides compute the same float32 operations and differ only in
summation order: dense resampling matrices here vs. zero-stuffed depthwise convolutions there, an
einsum vs. a batched matmul for the Fourier features. Over 7 layers that reorders float32 rounding
(~6e-8 relative per operation); observed <= 6e-7 on images of magnitude ~1 and <= 5e-7 on ws of
magnitude ~5. A real mistake -- a filter pad off by one sample, a missing magnitude_ema gain or bias,
a flipped filter, the wrong output_scale, a transposed input transform -- moves outputs by 1e-2 or
more, so the bound leaves two orders of magnitude either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latentctl.errors import CheckpointError
from latentctl.importers.nvidia_pickle import read_nvidia_pickle
from latentctl.models.stylegan3 import (
    StyleGAN3Generator,
    _downsample,
    _upsample,
    config_from_nvidia,
    convert_nvidia,
)

DATA = Path(__file__).parent / "data" / "stylegan"
FIXTURES = ["sg3_t_32", "sg3_r_32"]
TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def one_thread():
    """These nets are tiny: a second thread buys little and, on a loaded machine, thread hand-offs
    multiplied the suite's wall time several fold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def snapshots():
    return {
        name: (read_nvidia_pickle(DATA / f"{name}.pkl"), np.load(DATA / f"{name}.expected.npz")) for name in FIXTURES
    }


def _inputs(expected, gen):
    z = torch.from_numpy(expected["z"])
    c = torch.from_numpy(expected["c"]) if gen.c_dim else None
    return z, c


def _max_err(ours: torch.Tensor, theirs: np.ndarray) -> float:
    assert tuple(ours.shape) == theirs.shape
    return float(np.abs(ours.numpy() - theirs).max())


@pytest.mark.parametrize("name", FIXTURES)
def test_imported_generator_reproduces_nvidia_ws_and_images(snapshots, name):
    net, expected = snapshots[name]
    assert net.kind == "stylegan3"
    gen = StyleGAN3Generator.from_nvidia(net.config, net.tensors)
    z, c = _inputs(expected, gen)
    psi, cutoff = float(expected["psi_truncated"]), int(expected["cutoff"])
    with torch.no_grad():
        ws1 = gen.mapping(z, c)
        ws_psi = gen.mapping(z, c, psi=psi)
        outputs = {
            "ws_psi1": ws1,
            "ws_psi07": ws_psi,
            "ws_psi07_cutoff2": gen.mapping(z, c, psi=psi, cutoff=cutoff),
            "img_const_psi1": gen.synthesis(ws1, noise_mode="const"),
            "img_const_psi07": gen.synthesis(ws_psi, noise_mode="const"),
        }
        # StyleGAN3 has no noise inputs: NVIDIA's "none" image is the same picture.
        outputs["img_none_psi1"] = gen.synthesis(ws1, noise_mode="none")
    for key, ours in outputs.items():
        err = _max_err(ours, expected[key])
        assert err <= TOLERANCE, f"{name} {key}: max abs error {err:.2e}"


def test_forward_is_mapping_then_synthesis_and_batch_matches_single_images(snapshots):
    net, expected = snapshots["sg3_r_32"]
    gen = StyleGAN3Generator.from_nvidia(net.config, net.tensors)
    z, c = _inputs(expected, gen)
    with torch.no_grad():
        batch = gen(z, c, psi=0.7)
        singles = torch.cat([gen(z[i : i + 1], c[i : i + 1], psi=0.7) for i in range(len(z))])
    assert _max_err(batch, expected["img_const_psi07"]) <= TOLERANCE
    assert _max_err(singles, expected["img_const_psi07"]) <= TOLERANCE


def test_fixture_latents_follow_the_seed_convention(snapshots):
    for net, expected in snapshots.values():
        z_dim = int(net.config["z_dim"])
        for row, seed in enumerate(expected["seeds"]):
            np.testing.assert_array_equal(expected["z"][row], np.random.RandomState(int(seed)).randn(1, z_dim)[0])


@pytest.mark.parametrize("name", FIXTURES)
def test_fresh_network_designs_the_snapshot_filters_and_shapes(snapshots, name):
    """Built from settings alone, the schedule gives NVIDIA's tensor shapes and filter taps."""
    net, _ = snapshots[name]
    config, state = convert_nvidia(net.config, net.tensors)
    fresh = StyleGAN3Generator.from_config(config).state_dict()
    assert set(fresh) == set(state)
    for key, value in state.items():
        assert tuple(fresh[key].shape) == value.shape, key
        if key.endswith("_filter"):
            # Designed in float64, stored in float32: equal up to float32 rounding.
            np.testing.assert_allclose(fresh[key].numpy(), value, rtol=0, atol=1e-7, err_msg=key)


def test_public_attributes_match_the_snapshot(snapshots):
    net, _ = snapshots["sg3_r_32"]
    gen = StyleGAN3Generator.from_nvidia(net.config, net.tensors)
    assert (gen.num_ws, gen.z_dim, gen.w_dim, gen.c_dim) == (8, 32, 32, 2)
    assert (gen.img_resolution, gen.img_channels) == (32, 3)
    np.testing.assert_array_equal(gen.w_avg.numpy(), net.w_avg)
    # The importer's config (NVIDIA's terms) builds the same network as the translated one.
    assert StyleGAN3Generator.from_config(net.config).state_dict().keys() == gen.state_dict().keys()


def test_snapshot_whose_layers_disagree_with_its_settings_is_refused(snapshots):
    net, _ = snapshots["sg3_t_32"]
    config = dict(net.config)
    # Half the channel base: the last layers would be 16 channels wide, the snapshot's are 32.
    config["source_init_kwargs"] = {**config["source_init_kwargs"], "channel_base": 512}
    with pytest.raises(CheckpointError, match="the StyleGAN3 schedule gives"):
        config_from_nvidia(config)
    with pytest.raises(CheckpointError, match="does not know: synthesis.extra.weight"):
        convert_nvidia(net.config, {**net.tensors, "synthesis.extra.weight": np.zeros(3, np.float32)})


@pytest.mark.parametrize(("up", "pad"), [(2, (9, 8)), (4, (-6, -9))])
def test_dense_and_convolution_resampling_agree(monkeypatch, up, pad):
    """Large images resample with convolutions, 32 px ones with matrices: both must be the same map."""
    from latentctl.models import stylegan3

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 38, 38, generator=gen)
    # Unit-DC-gain random filters keep values ~1, so float32 reordering shows as ~1e-6.
    up_taps, separable, radial = (torch.rand(shape, generator=gen) for shape in ((6 * up,), (12,), (12, 12)))
    up_taps, separable, radial = up_taps / up_taps.sum(), separable / separable.sum(), radial / radial.sum()
    dense = _upsample(x, up_taps, up, pad)
    dense_down = (_downsample(dense, separable, 2), _downsample(dense, radial, 2))
    monkeypatch.setattr(stylegan3, "_DENSE_RESAMPLE_MAX", 0)
    conv = _upsample(x, up_taps, up, pad)
    torch.testing.assert_close(dense, conv, rtol=0, atol=1e-5)
    torch.testing.assert_close(dense_down[0], _downsample(conv, separable, 2), rtol=0, atol=1e-5)
    torch.testing.assert_close(dense_down[1], _downsample(conv, radial, 2), rtol=0, atol=1e-5)
