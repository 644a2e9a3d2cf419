"""Fuzzing the checkpoint reader: whatever bytes a file holds, ``read_header`` and ``load`` either
succeed or raise CheckpointError, never another exception (which the CLI would show as a traceback).

The valid checkpoints are built once per module; every example rewrites one file in a module-scoped
folder (hypothesis reruns a test body many times, so function-scoped tmp_path would be shared anyway).
"""

from __future__ import annotations

import json
import os
import pickle
import struct

import pytest
import torch
from conftest import tiny
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentctl.config import ModelConfig, TrainConfig
from latentctl.errors import CheckpointError
from latentctl.files import checkpoint
from latentctl.models import build_generator, build_models

CFG = tiny(width=1, latent_dim=2)  # a 2 KB generator: every truncation is cheap
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,  # nothing written into the checkout; failures print their reproducing example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _state() -> dict:
    return {
        "epoch": 1,
        "step_in_epoch": 2,
        "global_step": 5,
        "steps_per_epoch": 3,
        "elapsed_s": 0.5,
        "finished": False,
        "rng": {"torch": checkpoint.encode_rng(torch.get_rng_state())},
        "data": {"root": "/data", "fingerprint": "f00", "count": 9, "skipped": 0},
    }


SG3_NET = {  # a 16 px StyleGAN3-T with 3 layers
    "resolution": 16,
    "z_dim": 4,
    "w_dim": 4,
    "img_channels": 3,
    "mapping_layers": 2,
    "channel_base": 256,
    "channel_max": 4,
    "num_layers": 3,
    "num_critical": 2,
    "margin_size": 10,
    "output_scale": 0.25,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(folder, generator checkpoint bytes, training checkpoint bytes)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("fuzz")
    G, D = build_models(CFG)
    opts = {"G": torch.optim.Adam(G.parameters()), "D": torch.optim.Adam(D.parameters())}
    # Adam's state as a step leaves it, set directly: a real first step imports torch._dynamo (seconds).
    for opt in opts.values():
        for p in (p for g in opt.param_groups for p in g["params"]):
            opt.state[p] = {"step": torch.tensor(1.0), "exp_avg": torch.randn_like(p), "exp_avg_sq": torch.rand_like(p)}
    gen = checkpoint.save(folder / "g.safetensors", generator=G, model_config=CFG).read_bytes()
    full = checkpoint.save(
        folder / "c.safetensors",
        generator=G,
        partner=D,
        optimizers=opts,
        model_config=CFG,
        train_config=TrainConfig(),
        state=_state(),
    ).read_bytes()
    # Imported generators carry their network's own description in model_config (a layer spec;
    # NVIDIA's StyleGAN2 settings): the mutations below reach into those too.
    seq = ModelConfig(arch="sequential", image_size=8, channels=1, latent_dim=2, network=SEQ_SPEC)
    seq_bytes = checkpoint.save(folder / "s.safetensors", generator=build_generator(seq), model_config=seq).read_bytes()
    sg2 = ModelConfig(arch="stylegan2", image_size=8, channels=3, latent_dim=4, network=SG2_NET)
    sg2_bytes = checkpoint.save(folder / "w.safetensors", generator=build_generator(sg2), model_config=sg2).read_bytes()
    sg3 = ModelConfig(arch="stylegan3", image_size=16, channels=3, latent_dim=4, network=SG3_NET)
    sg3_bytes = checkpoint.save(folder / "t.safetensors", generator=build_generator(sg3), model_config=sg3).read_bytes()
    return folder, gen, full, seq_bytes, sg2_bytes, sg3_bytes


SEQ_SPEC = {
    "latent_dim": 2,
    "channels": 1,
    "image_size": [8, 8],
    "output_range": "tanh",
    "layers": [
        {"op": "dense", "in": 2, "out": 16, "bias": True},
        {"op": "reshape", "shape": [4, 4, 1], "order": "nhwc"},
        {"op": "batchnorm", "channels": 1, "eps": 1e-3},
        {
            "op": "conv_transpose",
            "in": 1,
            "out": 1,
            "kernel": [5, 5],
            "stride": [2, 2],
            "padding": "same",
            "bias": True,
        },
        {"op": "tanh"},
    ],
}
SG2_NET = {
    "resolution": 8,
    "z_dim": 4,
    "w_dim": 4,
    "img_channels": 3,
    "mapping_layers": 2,
    "channel_base": 16,
    "channel_max": 2,
    "architecture": "skip",
}


def _read_everything(path) -> None:
    """Every way a command reads a checkpoint; only CheckpointError may come out."""
    try:
        checkpoint.read_header(path)
    except CheckpointError:
        pass
    try:
        checkpoint.load(path)
    except CheckpointError:
        pass
    try:
        loaded = checkpoint.load(path, training=True)
    except CheckpointError:
        return
    G, D = build_models(loaded.info.model)
    try:  # resuming also hands the optimizer state to fresh optimizers
        loaded.restore_optimizers({"G": torch.optim.Adam(G.parameters()), "D": torch.optim.Adam(D.parameters())})
    except CheckpointError:
        pass


def _write(folder, data: bytes):
    path = folder / "fuzz.safetensors"
    # A fresh file each time: truncating one that holds data can wait for the file system to flush.
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    return path


def _split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def test_the_valid_files_read(files):
    folder, gen, full, seq, sg2, sg3 = files
    checkpoint.load(_write(folder, gen))
    checkpoint.load(_write(folder, full), training=True)
    assert checkpoint.load(_write(folder, seq)).info.model.arch == "sequential"
    assert checkpoint.load(_write(folder, sg2)).info.model.arch == "stylegan2"
    assert checkpoint.load(_write(folder, sg3)).info.model.arch == "stylegan3"


def test_every_truncation_is_a_checkpoint_error(files):
    folder, gen = files[:2]
    path = _write(folder, gen)
    for length in reversed(range(len(gen))):
        os.truncate(path, length)  # cutting the one file shorter and shorter is far cheaper than rewriting it
        with pytest.raises(CheckpointError):
            checkpoint.read_header(path)
        with pytest.raises(CheckpointError):
            checkpoint.load(path)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(files, data):
    _read_everything(_write(files[0], data))


@FUZZ
@given(n=st.integers(0, 4096), body=st.binary(max_size=1024))
def test_random_bytes_after_a_plausible_header_length(files, n, body):
    _read_everything(_write(files[0], struct.pack("<Q", n) + body))


@FUZZ
@given(
    which=st.sampled_from([1, 2]),
    flips=st.lists(st.tuples(st.integers(0, 2**32), st.integers(1, 255)), min_size=1, max_size=8),
)
def test_byte_flips_in_the_header(files, which, flips):
    data = bytearray(files[which])
    (n,) = struct.unpack("<Q", data[:8])
    for pos, xor in flips:
        data[pos % (8 + n)] ^= xor
    _read_everything(_write(files[0], bytes(data)))


@FUZZ
@given(which=st.sampled_from([1, 2]), n=st.one_of(st.integers(0, 2**64 - 1), st.integers(-64, 64)))
def test_a_changed_header_length(files, which, n):
    data = files[which]
    (old,) = struct.unpack("<Q", data[:8])
    new = n if n > 64 else max(0, old + n)  # small values: near the true length
    _read_everything(_write(files[0], struct.pack("<Q", new) + data[8:]))


# Any JSON value, to put where the header had something else.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


class _Embedded:
    """A metadata string that is itself JSON (model_config, training_state, ...), opened up so the
    mutation can reach inside it; written back as a string."""

    def __init__(self, value):
        self.value = value


def _open(node):
    if isinstance(node, dict):
        return {k: _open(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_open(v) for v in node]
    if isinstance(node, str) and node[:1] in "{[":
        try:
            return _Embedded(_open(json.loads(node)))
        except ValueError:
            return node
    return node


def _close(node):
    if isinstance(node, _Embedded):
        return json.dumps(_close(node.value))
    if isinstance(node, dict):
        return {k: _close(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_close(v) for v in node]
    return node


@FUZZ
@given(which=st.sampled_from([1, 2, 3, 4, 5]), steps=st.data())
def test_json_mutations(files, which, steps):
    header, body = _split(files[which])
    root = {"": _open(header)}
    parent, key = root, ""
    # Walk down from the header to some node, then replace it, delete it or add a key beside it.
    while True:
        node = parent[key]
        inner = node.value if isinstance(node, _Embedded) else node
        keys = list(inner) if isinstance(inner, dict) else list(range(len(inner))) if isinstance(inner, list) else []
        if not keys or steps.draw(st.integers(0, 7)) == 0:  # stop early now and then, mostly go deep
            break
        # Half the time into the metadata, which holds most of what the reader checks; the
        # header's other keys are dozens of alike tensor entries.
        if "__metadata__" in keys and steps.draw(st.booleans()):
            parent, key = inner, "__metadata__"
        else:
            parent, key = inner, steps.draw(st.sampled_from(keys))
    action = steps.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace" or parent is root:
        parent[key] = steps.draw(JSON)
    elif action == "delete":
        del parent[key]
    elif isinstance(parent, dict):
        parent[steps.draw(st.text(max_size=8))] = steps.draw(JSON)
    else:
        parent.append(steps.draw(JSON))
    _read_everything(_write(files[0], _join(_close(root[""]), body)))


@pytest.mark.parametrize("protocol", [2, 4])
def test_pickles_are_refused(files, protocol):
    with pytest.raises(CheckpointError, match="pickle"):
        checkpoint.read_header(_write(files[0], pickle.dumps({"w": list(range(100))}, protocol=protocol)))
