"""Importing NVIDIA StyleGAN snapshots: parity with NVIDIA's own outputs, and safety of the reader.

The fixtures in tests/data/stylegan/ were written by tests/writers/stylegan_fixtures.py, which ran
NVIDIA's code (stylegan2-ada-pytorch and stylegan3) on tiny random generators and saved its ws and
images. Tolerance: 1e-4 absolute. Both sides compute in float32 with the same operations up to
summation order (grouped conv vs. conv, transposed conv then FIR filter); across ~10 layers
that reorders float32 rounding, observed at <= 1e-5 on images of magnitude ~10 (these untrained
nets do not squash to [-1, 1]) and <= 1.2e-6 on ws. A real mistake -- a missing bias, gain, noise
term, flipped kernel or off-by-one filter pad -- moves outputs by 1e-2 or more.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from latentctl.errors import CheckpointError, UsageError
from latentctl.importers.nvidia_pickle import PersistentRecord, read_nvidia_pickle, read_snapshot
from latentctl.models import stylegan2
from latentctl.models.stylegan2 import StyleGAN2Generator

DATA = Path(__file__).parent / "data" / "stylegan"
SG2_FIXTURES = [
    "sg2ada_orig_32",
    "sg2ada_skip_32",
    "sg2ada_resnet_32",
    "sg2ada_cond_skip_32",
    "sg3repo_stylegan2_skip_32",
]
SG3_FIXTURES = ["sg3_t_32", "sg3_r_32"]
TOLERANCE = 1e-4


def _build(net) -> StyleGAN2Generator:
    gen = StyleGAN2Generator.from_config(net.config)
    gen.load_state_dict({name: torch.from_numpy(value) for name, value in net.tensors.items()}, strict=True)
    return gen.eval()


def _inputs(expected, gen):
    z = torch.from_numpy(expected["z"])
    c = torch.from_numpy(expected["c"]) if gen.c_dim else None
    return z, c


def _assert_one_line_naming(err: pytest.ExceptionInfo, path: Path, *needles: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    for needle in needles:
        assert needle in message


@pytest.fixture(scope="module")
def sg2_models():
    return {
        name: (read_nvidia_pickle(DATA / f"{name}.pkl"), np.load(DATA / f"{name}.expected.npz"))
        for name in SG2_FIXTURES
    }


# ---- parity with NVIDIA -----------------------------------------------------------------------


@pytest.mark.parametrize("phases", [True, False], ids=["phase-convs", "transposed-conv"])
@pytest.mark.parametrize("name", SG2_FIXTURES)
def test_imported_generator_reproduces_nvidia_ws_and_images(sg2_models, name, phases, monkeypatch):
    # Both ways of upsampling: the four phase convolutions sampling uses, and the transposed
    # convolution that runs where gradients are needed (projection).
    monkeypatch.setattr(stylegan2, "_PHASES", phases)
    net, expected = sg2_models[name]
    assert net.kind == "stylegan2"
    gen = _build(net)
    z, c = _inputs(expected, gen)
    psi, cutoff = float(expected["psi_truncated"]), int(expected["cutoff"])
    with torch.no_grad():
        ws1 = gen.mapping(z, c)
        ws_psi = gen.mapping(z, c, psi=psi)
        ws_cut = gen.mapping(z, c, psi=psi, cutoff=cutoff)
        outputs = {
            "ws_psi1": ws1,
            "ws_psi07": ws_psi,
            "ws_psi07_cutoff2": ws_cut,
            "img_const_psi1": gen.synthesis(ws1, noise_mode="const"),
            "img_const_psi07": gen.synthesis(ws_psi, noise_mode="const"),
            "img_none_psi1": gen.synthesis(ws1, noise_mode="none"),
        }
    for key, ours in outputs.items():
        assert ours.shape == expected[key].shape, key
        err = np.abs(ours.numpy() - expected[key]).max()
        assert err <= TOLERANCE, f"{name} {key}: max abs error {err:.2e}"


def test_fixture_latents_follow_the_seed_convention(sg2_models):
    _, expected = sg2_models["sg2ada_skip_32"]
    for row, seed in enumerate(expected["seeds"]):
        np.testing.assert_array_equal(expected["z"][row], np.random.RandomState(int(seed)).randn(1, 32)[0])


def test_forward_is_mapping_then_synthesis_and_random_noise_differs(sg2_models):
    net, expected = sg2_models["sg2ada_cond_skip_32"]
    gen = _build(net)
    z, c = _inputs(expected, gen)
    with torch.no_grad():
        full = gen(z, c, psi=0.7)
        assert np.abs(full.numpy() - expected["img_const_psi07"]).max() <= TOLERANCE
        torch.manual_seed(0)
        random = gen(z, c, noise_mode="random")
    assert random.shape == full.shape and torch.isfinite(random).all()
    assert not torch.allclose(random, gen(z, c, noise_mode="const"))


def test_config_and_provenance_describe_the_snapshot(sg2_models):
    net, _ = sg2_models["sg2ada_resnet_32"]
    assert net.config["architecture"] == "resnet" and net.config["conv_clamp"] == 0.5
    assert net.config["resolution"] == 32 and net.config["num_ws"] == _build(net).num_ws
    json.dumps(net.config)  # JSON-able
    assert net.provenance["part"] == "G_ema"
    assert set(net.provenance["snapshot_keys"]) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert all("sha256:" in v for v in net.provenance["module_sources"].values())
    np.testing.assert_array_equal(net.w_avg, net.tensors["w_avg"])


def test_g_ema_is_taken_by_default_and_part_selects_another(sg2_models):
    _, expected = sg2_models["sg2ada_skip_32"]
    raw = read_nvidia_pickle(DATA / "sg2ada_skip_32.pkl", part="G")
    assert raw.provenance["part"] == "G"
    gen = _build(raw)
    with torch.no_grad():
        img = gen(*_inputs(expected, gen))
    # The writer perturbed G away from G_ema: the training copy must not reproduce G_ema's images.
    assert np.abs(img.numpy() - expected["img_const_psi1"]).max() > 1e-2


def test_part_naming_no_network_is_a_usage_error_listing_them():
    path = DATA / "sg2ada_orig_32.pkl"
    with pytest.raises(UsageError) as err:
        read_nvidia_pickle(path, part="Gema")
    _assert_one_line_naming(err, path, "G_ema", "augment_pipe")
    with pytest.raises(CheckpointError) as err:
        read_nvidia_pickle(path, part="D")
    _assert_one_line_naming(err, path, "Discriminator")


def test_fixture_pickles_do_not_embed_nvidia_source():
    for pkl in DATA.glob("*.pkl"):
        data = pkl.read_bytes()
        assert b"NVIDIA CORPORATION" not in data and b"def forward" not in data, pkl.name


# ---- StyleGAN3 snapshots are classified, not built ------------------------------------------


@pytest.mark.parametrize("name", SG3_FIXTURES)
def test_stylegan3_snapshots_are_recognised_with_their_config(name):
    net = read_nvidia_pickle(DATA / f"{name}.pkl")
    expected = np.load(DATA / f"{name}.expected.npz")
    assert net.kind == "stylegan3"
    assert net.config["num_ws"] == expected["ws_psi1"].shape[1]
    assert net.config["z_dim"] == expected["z"].shape[1] and net.config["c_dim"] == expected["c"].shape[1]
    assert net.config["modules"]["synthesis.input"]["class_name"] == "SynthesisInput"
    assert "synthesis.input.freqs" in net.tensors and "synthesis.input.transform" in net.tensors
    assert all(v.dtype == np.float32 for v in net.tensors.values())
    json.dumps(net.config)


# ---- hostile and broken files -----------------------------------------------------------------


class _Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize(
    "func, global_name",
    [
        (os.system, f"{os.system.__module__}.system"),
        (eval, "builtins.eval"),
        (subprocess.Popen, "subprocess.Popen"),
    ],
)
def test_a_pickle_asking_for_a_dangerous_global_is_refused_naming_it(tmp_path, func, global_name):
    marker = tmp_path / "marker"
    command = f"touch {marker}"
    args = {eval: (f"open({str(marker)!r}, 'w')",), subprocess.Popen: (["touch", str(marker)],)}.get(func, (command,))
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Payload(func, *args)}))
    with pytest.raises(CheckpointError) as err:
        read_nvidia_pickle(path)
    _assert_one_line_naming(err, path, global_name)
    assert not marker.exists()


@pytest.fixture
def fake_persistence(monkeypatch):
    """A stand-in ``torch_utils.persistence`` so the test can write NVIDIA-style records itself."""
    package = types.ModuleType("torch_utils")
    module = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called: only its name is pickled
        raise AssertionError("the reader must not call back into the pickle's own code")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)

    def record(class_name, module_src="", modules=None):
        state = {"_parameters": {}, "_buffers": {}, "_modules": modules or {}, "_init_kwargs": {}}
        meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)
        return _Payload(_reconstruct_persistent_obj, meta)

    return record


def test_embedded_module_source_is_kept_as_inert_data(tmp_path, fake_persistence):
    marker = tmp_path / "marker"
    source = f"open({str(marker)!r}, 'w').write('executed')\nclass Generator: pass\n"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": fake_persistence("Generator", module_src=source), "note": "hi"}))
    snapshot = read_snapshot(path)
    record = snapshot["G_ema"]
    assert isinstance(record, PersistentRecord)
    assert record.class_name == "Generator" and record.version == 6
    assert record.module_sha256 == hashlib.sha256(source.encode()).hexdigest()
    assert not marker.exists()
    with pytest.raises(CheckpointError) as err:
        read_nvidia_pickle(path)  # a Generator with no mapping/synthesis inside
    _assert_one_line_naming(err, path, "mapping/synthesis")
    assert not marker.exists()


def test_unknown_class_names_in_records_are_named(tmp_path, fake_persistence):
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps({"G_ema": fake_persistence("MysteryNet")}))
    with pytest.raises(CheckpointError) as err:
        read_nvidia_pickle(path)
    _assert_one_line_naming(err, path, "MysteryNet")

    synthesis = fake_persistence("SynthesisNetwork", modules={"b4": fake_persistence("WarpBlock")})
    gen = fake_persistence("Generator", modules={"mapping": fake_persistence("MappingNetwork"), "synthesis": synthesis})
    path.write_bytes(pickle.dumps({"G_ema": gen}))
    with pytest.raises(CheckpointError) as err:
        read_nvidia_pickle(path)
    _assert_one_line_naming(err, path, "WarpBlock")


def test_a_truncated_snapshot_is_a_checkpoint_error(tmp_path):
    data = (DATA / "sg2ada_orig_32.pkl").read_bytes()
    path = tmp_path / "network-snapshot-000100.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        read_nvidia_pickle(path)
    _assert_one_line_naming(err, path, "truncated")


def test_a_pickled_plain_torch_module_is_refused(tmp_path):
    path = tmp_path / "model.pkl"
    buffer = io.BytesIO()
    pickle.dump(torch.nn.Linear(3, 2), buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError) as err:
        read_nvidia_pickle(path)
    _assert_one_line_naming(err, path, "torch.nn.modules.linear.Linear")


def test_a_pickle_that_is_not_a_snapshot_is_refused(tmp_path):
    path = tmp_path / "numbers.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CheckpointError) as err:
        read_nvidia_pickle(path)
    _assert_one_line_naming(err, path, "list")


# ---- upsampling as phase convolutions ----------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 4, 5])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("size", [(1, 2), (4, 7)])
def test_phase_convolutions_are_the_stride_2_transposed_convolution(k, channels_last, size):
    """Each output phase of a stride-2 transposed convolution is a plain convolution with every
    other tap. The same products summed in another order: float32 rounding only, a few ulps of
    the largest sums (about 1e-6 of the output's scale for these 6 x 9 sized sums)."""
    torch.manual_seed(k)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 6, *size).contiguous(memory_format=fmt)
    weight = torch.randn(5, 6, k, k)
    expected = torch.nn.functional.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    got = stylegan2._phase_conv(x, stylegan2._phase_kernels(channels_last)(weight), k)
    assert got.shape == expected.shape
    assert got.is_contiguous(memory_format=fmt)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_sampling_upsamples_with_phase_convolutions_and_projection_with_the_transposed_one(sg2_models, monkeypatch):
    """The speed lever is in use where it should be: no modulated transposed convolution while
    sampling (batch 1 and batch 3), and the transposed convolution where gradients flow. The RGB
    skip's depthwise upsampling (one input channel per group) is not counted."""
    net, expected = sg2_models["sg2ada_skip_32"]
    gen = _build(net)
    z, c = _inputs(expected, gen)
    modulated = []
    real = torch.nn.functional.conv_transpose2d

    def counting(x, weight, *args, **kwargs):
        if weight.shape[1] > 1:  # (in, out / groups, k, k): a modulated convolution, not the FIR
            modulated.append(tuple(weight.shape))
        return real(x, weight, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv_transpose2d", counting)
    with torch.no_grad():
        gen(z[:1], None if c is None else c[:1], noise_mode="const")
        gen(z[:1].repeat(3, 1), None if c is None else c[:1].repeat(3, 1), noise_mode="const")
    assert modulated == []
    ws = gen.mapping(z[:1], None if c is None else c[:1]).detach().requires_grad_(True)
    gen.synthesis(ws, noise_mode="const").square().mean().backward()
    assert modulated, "the projection path no longer upsamples with the transposed convolution"
