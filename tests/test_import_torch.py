"""Importing PyTorch generators: state dicts in every common wrapping reproduce the module exactly,
and files that would run code or cannot be understood are refused with one clear line."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from latentctl.errors import CheckpointError, UsageError
from latentctl.importers.torch_state import read_torch
from latentctl.models.sequential import SequentialGenerator, expected_tensors, spec_from_layers, validate_spec

# float32 outputs in [-1, 1] built from sums of a few hundred products: both sides round each
# product and sum to ~6e-8 relative, accumulated over a few layers; 1e-5 leaves a wide margin
# while any real mistake (a transposed kernel, a wrong eps, a shifted crop) is off by >1e-2.
TOLERANCE = 1e-5


class Generator(nn.Module):
    """The PyTorch DCGAN tutorial's generator, with its depth as a parameter (the tutorial has 4 x2 stages)."""

    def __init__(self, nz: int = 100, ngf: int = 4, nc: int = 3, stages: int = 4):
        super().__init__()
        widths = [ngf * 2 ** (stages - 1 - i) for i in range(stages)]
        layers = [nn.ConvTranspose2d(nz, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, nc: int = 3, ndf: int = 4):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2), nn.Conv2d(ndf, 1, 4))

    def forward(self, x):
        return self.main(x)


def _randomised(module: nn.Module, seed: int) -> nn.Module:
    """Random weights and BN statistics far from 0/1, so a wrong eps or a skipped stat shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 1.5 + 0.2)
            elif tensor.is_floating_point():
                scale = 1.0 / np.sqrt(max(tensor[0].numel(), 1)) if tensor.dim() > 1 else 0.3
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * scale)
    return module.eval()


def _assert_reproduces(net, reference: nn.Module, nz: int, view: bool = True) -> float:
    g = SequentialGenerator(net.spec).eval()
    g.load_arrays(net.tensors)
    z = torch.randn(3, nz, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = reference(z.view(3, nz, 1, 1) if view else z)
        got = g(z)
    assert got.shape == want.shape
    error = (got - want).abs().max().item()
    assert error <= TOLERANCE
    return error


@pytest.fixture(scope="module")
def tutorial():
    return _randomised(Generator(), seed=1)


def _save_plain(g, path):
    torch.save(g.state_dict(), path)


def _save_nested(g, path):
    # a training script's checkpoint: both networks, an optimizer with state, a counter
    d = Discriminator()
    opt = torch.optim.Adam(d.parameters())
    d(torch.randn(2, 3, 8, 8)).mean().backward()
    opt.step()
    bundle = {"netG_state_dict": g.state_dict(), "netD_state_dict": d.state_dict()}
    torch.save({**bundle, "optimizerD_state_dict": opt.state_dict(), "epoch": 5}, path)


def _save_data_parallel(g, path):
    torch.save({"state_dict": {f"module.{k}": v for k, v in g.state_dict().items()}}, path)


def _save_compiled(g, path):
    torch.save({f"_orig_mod.{k}": v for k, v in g.state_dict().items()}, path)


def _save_legacy(g, path):
    torch.save(g.state_dict(), path, _use_new_zipfile_serialization=False)


def _save_safetensors(g, path):
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(path))


@pytest.mark.parametrize(
    "save, name",
    [
        (_save_plain, "netG.pth"),
        (_save_nested, "checkpoint.tar"),
        (_save_data_parallel, "dp.pt"),
        (_save_compiled, "compiled.bin"),
        (_save_legacy, "legacy.pt"),
        (_save_safetensors, "g.safetensors"),
    ],
)
def test_tutorial_generator_is_reproduced_from_every_wrapping(tmp_path, tutorial, save, name):
    reference = Generator()
    reference.load_state_dict(tutorial.state_dict())
    reference.eval()
    save(reference, tmp_path / name)
    net = read_torch(tmp_path / name)
    assert net.spec["image_size"] == [64, 64] and net.spec["channels"] == 3
    assert net.spec["output_range"] == "tanh" and net.spec["latent_dim"] == 100
    assert net.source_format == ("safetensors" if name.endswith(".safetensors") else "torch-state-dict")
    assert net.layer_names[0] == "main.0.weight"
    _assert_reproduces(net, tutorial, 100)


def test_other_depths_and_grey_images_are_recognised(tmp_path):
    small = _randomised(Generator(nz=16, ngf=4, nc=1, stages=3), seed=2)
    torch.save(small.state_dict(), tmp_path / "g.pt")
    net = read_torch(tmp_path / "g.pt")
    assert net.spec["image_size"] == [32, 32] and net.spec["channels"] == 1
    _assert_reproduces(net, small, 16)


def test_several_generators_need_a_part(tmp_path, tutorial):
    torch.save({"G": tutorial.state_dict(), "g_ema": tutorial.state_dict()}, tmp_path / "two.pt")
    with pytest.raises(UsageError, match=r"G, g_ema") as err:
        read_torch(tmp_path / "two.pt")
    assert "\n" not in str(err.value) and "two.pt" in str(err.value)
    assert read_torch(tmp_path / "two.pt", part="g_ema").part == "g_ema"


def test_a_part_naming_nothing_lists_the_choices(tmp_path, tutorial):
    torch.save({"netG": tutorial.state_dict(), "netD": Discriminator().state_dict()}, tmp_path / "gan.pt")
    assert read_torch(tmp_path / "gan.pt").part == "netG"  # the only generator-shaped one
    with pytest.raises(UsageError, match=r"'generator'.*netG, netD"):
        read_torch(tmp_path / "gan.pt", part="generator")


class Custom(nn.Module):
    """A layout latentctl does not know: Linear -> view -> nearest upsample -> Conv2d(pad 1) -> sigmoid."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8 * 4 * 4)
        self.conv = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, z):
        x = self.fc(z).view(z.shape[0], 8, 4, 4)
        return torch.sigmoid(self.conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest")))


ARCHITECTURE = {
    "layers": [
        {"op": "dense", "weight": "fc.weight", "bias": "fc.bias"},
        {"op": "reshape", "shape": [8, 4, 4], "order": "nchw"},
        {"op": "upsample", "factor": [2, 2], "mode": "nearest"},
        {"op": "conv", "weight": "conv.weight", "bias": "conv.bias", "padding": {"torch": [1, 1]}},
        {"op": "sigmoid"},
    ]
}


def test_unknown_layout_points_to_the_architecture_description(tmp_path):
    torch.save(Custom().state_dict(), tmp_path / "custom.pt")
    with pytest.raises(CheckpointError, match="architecture description") as err:
        read_torch(tmp_path / "custom.pt")
    assert "\n" not in str(err.value) and "custom.pt" in str(err.value)


def test_an_architecture_description_rebuilds_an_unknown_layout(tmp_path):
    custom = _randomised(Custom(), seed=3)
    torch.save({"model": custom.state_dict()}, tmp_path / "custom.pt")
    (tmp_path / "arch.json").write_text(json.dumps(ARCHITECTURE))
    net = read_torch(tmp_path / "custom.pt", architecture=tmp_path / "arch.json")
    assert net.spec["latent_dim"] == 8 and net.spec["channels"] == 4 and net.spec["output_range"] == "sigmoid"
    _assert_reproduces(net, custom, 8, view=False)


def test_a_description_that_skips_tensors_is_refused(tmp_path):
    torch.save(Custom().state_dict(), tmp_path / "custom.pt")
    short = {"latent_dim": 8, "layers": ARCHITECTURE["layers"][:1]}
    (tmp_path / "arch.json").write_text(json.dumps(short))
    with pytest.raises(CheckpointError, match="conv.weight"):
        read_torch(tmp_path / "custom.pt", architecture=tmp_path / "arch.json")


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"weights": Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="state_dict") as err:
        read_torch(tmp_path / "evil.pt")
    assert not marker.exists()
    assert "\n" not in str(err.value) and "evil.pt" in str(err.value)


def test_a_pickled_module_is_refused_with_the_state_dict_hint(tmp_path, tutorial):
    torch.save(tutorial, tmp_path / "whole.pth")
    with pytest.raises(CheckpointError, match=r"model\.state_dict\(\)") as err:
        read_torch(tmp_path / "whole.pth")
    assert "\n" not in str(err.value) and "whole.pth" in str(err.value)


@pytest.mark.parametrize("name", ["g.pt", "g.safetensors"])
def test_a_truncated_file_is_refused(tmp_path, tutorial, name):
    full = tmp_path / f"full-{name}"
    (_save_safetensors if name.endswith("safetensors") else _save_plain)(tutorial, full)
    data = full.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        read_torch(tmp_path / name)
    assert "\n" not in str(err.value) and name in str(err.value)


# ---- the spec itself ----------------------------------------------------------------------------------


def _conv_t(kernel, stride, padding, cin=2, cout=3):
    return {
        "op": "conv_transpose",
        "in": cin,
        "out": cout,
        "kernel": [kernel] * 2,
        "stride": [stride] * 2,
        "padding": padding,
    }


def test_tensorflow_same_transposed_conv_is_not_a_torch_padding():
    # TF "same", k=5, s=2 on 4 px: the full 11-px result cropped 1 before and 2 after, to 8 px.
    # torch's padding=2, output_padding=1 crops 2 before instead: the same size, shifted by one pixel.
    layers = [{"op": "reshape", "shape": [2, 4, 4], "order": "nchw"}, _conv_t(5, 2, "same")]
    g = SequentialGenerator(spec_from_layers(32, [*layers, {"op": "tanh"}])).eval()
    weight = torch.randn(2, 3, 5, 5)
    g.layers[1].weight.data.copy_(weight)
    g.layers[1].bias.data.zero_()
    z = torch.randn(1, 32)
    full = nn.functional.conv_transpose2d(z.view(1, 2, 4, 4), weight, stride=2)
    with torch.no_grad():
        got = g(z)
    assert got.shape == (1, 3, 8, 8)
    torch.testing.assert_close(got, torch.tanh(full[:, :, 1:9, 1:9]))
    shifted = nn.functional.conv_transpose2d(z.view(1, 2, 4, 4), weight, stride=2, padding=2, output_padding=1)
    assert not torch.allclose(got, torch.tanh(shifted))


def test_spec_errors_name_the_layer():
    layers = [{"op": "reshape", "shape": [2, 4, 4], "order": "nchw"}, _conv_t(4, 2, "same", cin=5)]
    with pytest.raises(CheckpointError, match=r"layer 1 \(conv_transpose\): expects 5 input channels"):
        spec_from_layers(32, layers)
    with pytest.raises(CheckpointError, match=r"outputs 5 channels"):
        spec_from_layers(32, [layers[0], _conv_t(4, 2, "same", cout=5)])
    with pytest.raises(CheckpointError, match=r"layer 1 \(warp\): unknown op"):
        validate_spec({"latent_dim": 32, "layers": [layers[0], {"op": "warp"}]})


def test_expected_tensors_follow_torch_layouts():
    spec = spec_from_layers(
        8,
        [
            {"op": "dense", "in": 8, "out": 32, "bias": False},
            {"op": "batchnorm", "channels": 32, "eps": 1e-3, "scale": False},
            {"op": "reshape", "shape": [4, 4, 2], "order": "nhwc"},  # Keras' (H, W, C)
            _conv_t(3, 2, "valid", cin=2, cout=3),
        ],
    )
    assert spec["image_size"] == [9, 9] and spec["output_range"] == "linear"
    assert expected_tensors(spec) == {
        "layers.0.weight": (32, 8),
        "layers.1.bias": (32,),
        "layers.1.running_mean": (32,),
        "layers.1.running_var": (32,),
        "layers.3.weight": (2, 3, 3, 3),
        "layers.3.bias": (3,),
    }
