"""Importing Keras generators: files written by real Keras 2 and Keras 3 (tests/writers/) give the
writers' own outputs, and files that would run code or are not Keras models are refused in one line."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from latentctl.errors import CheckpointError, UsageError
from latentctl.importers.keras import read_attr_list, read_keras
from latentctl.models.sequential import SequentialGenerator

DATA = Path(__file__).parent / "data" / "keras"
# the path the Lambda fixture's stored function writes to if anything runs it (tests/writers/keras_fixtures.py)
LAMBDA_MARKER = Path(tempfile.gettempdir()) / "latentctl-keras-lambda-ran"

# Outputs are float32 in [-1, 1] (tanh) or [0, 1] (sigmoid). Each value is a sum of at most ~1000
# float32 products (the 8x8x8 RGB conv: 512 terms), so reordered summation differs by about
# sqrt(1000) * 6e-8 relative to the sum's magnitude, ~1e-6 at worst through a few layers; tanh and
# sigmoid only shrink errors. 1e-5 is that bound with margin, and far below any real mistake (a
# transposed kernel, a wrong eps or pad side changes outputs by 1e-2 or more). Measured: <= 6e-7.
TOLERANCE = 1e-5

FIXTURES = [
    ("seed_g.h5", None, "keras2-h5", [128, 128], 3, "tanh"),
    ("tf_dcgan.h5", None, "keras2-h5", [28, 28], 1, "tanh"),
    ("combined_gan.h5", "generator", "keras2-h5", [16, 16], 3, "tanh"),
    ("keras2_zip.keras", None, "keras-zip", [12, 12], 3, "tanh"),
    ("keras2_functional.h5", None, "keras2-h5", [8, 8], 3, "tanh"),
    ("functional.keras", None, "keras-zip", [14, 14], 4, "sigmoid"),
    ("keras3_seq.h5", None, "keras3-h5", [14, 14], 3, "tanh"),
]


def _max_error(path: Path, part: str | None = None, fixture: str | None = None) -> float:
    net = read_keras(path, part)
    g = SequentialGenerator(net.spec).eval()
    g.load_arrays(net.tensors)
    expected = np.load(DATA / f"{(fixture or path.name).split('.')[0]}.expected.npz")
    with torch.no_grad():
        out = g(torch.from_numpy(expected["z"])).permute(0, 2, 3, 1).numpy()  # NCHW -> the writer's NHWC
    assert out.shape == expected["out"].shape
    return float(np.abs(out - expected["out"]).max())


@pytest.mark.parametrize("name, part, fmt, size, channels, output_range", FIXTURES)
def test_keras_generators_reproduce_the_writers_outputs(name, part, fmt, size, channels, output_range):
    net = read_keras(DATA / name, part)
    assert net.source_format == fmt and net.part == part
    assert net.spec["image_size"] == size and net.spec["channels"] == channels
    assert net.spec["output_range"] == output_range
    assert _max_error(DATA / name, part) <= TOLERANCE


def test_writer_facts_survive_in_the_spec():
    spec = read_keras(DATA / "tf_dcgan.h5").spec
    slopes = [op["slope"] for op in spec["layers"] if op["op"] == "leaky_relu"]
    assert slopes == pytest.approx([0.3, 0.3, 0.3])  # LeakyReLU() without arguments: Keras' 0.3, not torch's 0.01
    assert [op["eps"] for op in spec["layers"] if op["op"] == "batchnorm"] == pytest.approx([1e-3, 0.05, 1e-3])
    assert read_keras(DATA / "seed_g.h5").layer_names[0] == "dense"


def test_a_saved_gan_lists_its_sub_models_without_a_part():
    with pytest.raises(UsageError, match="generator, discriminator") as err:
        read_keras(DATA / "combined_gan.h5")
    assert "\n" not in str(err.value) and "combined_gan.h5" in str(err.value)


def test_a_part_naming_nothing_lists_the_choices():
    with pytest.raises(UsageError, match=r"'gen'.*generator, discriminator"):
        read_keras(DATA / "combined_gan.h5", part="gen")
    with pytest.raises(UsageError, match="seed_generator"):
        read_keras(DATA / "seed_g.h5", part="generator")


def test_a_lambda_layer_is_refused_without_running_it():
    LAMBDA_MARKER.unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match=r'"lambda" is a Lambda layer') as err:
        read_keras(DATA / "lambda.h5")
    assert "\n" not in str(err.value) and "lambda.h5" in str(err.value)
    assert not LAMBDA_MARKER.exists()


def _rewrite_config(src: Path, dst: Path, change) -> None:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        change(config)
        f.attrs["model_config"] = json.dumps(config)


def test_a_custom_layer_class_is_refused_by_name(tmp_path):
    def rename(config):
        config["config"]["layers"][2]["class_name"] = "PixelShuffleBlock"

    _rewrite_config(DATA / "seed_g.h5", tmp_path / "custom.h5", rename)
    with pytest.raises(CheckpointError, match=r'custom\.h5: layer "\w+" is a PixelShuffleBlock layer'):
        read_keras(tmp_path / "custom.h5")


@pytest.mark.parametrize("name", ["seed_g.h5", "functional.keras"])
def test_a_truncated_file_is_refused_in_one_line(tmp_path, name):
    data = (DATA / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        read_keras(tmp_path / name)
    assert "\n" not in str(err.value) and name in str(err.value)


def test_an_hdf5_file_that_is_not_a_keras_model_is_refused(tmp_path):
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["images"] = np.zeros((2, 4, 4), dtype="float32")
    with pytest.raises(CheckpointError, match=r"data\.h5: .*not a saved Keras model"):
        read_keras(tmp_path / "data.h5")


def test_a_zip_without_config_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "g.keras", "w") as archive:
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(CheckpointError, match=r"g\.keras: .*no config\.json"):
        read_keras(tmp_path / "g.keras")


def test_a_branching_functional_model_is_refused(tmp_path):
    def branch(config):
        layers = config["config"]["layers"]
        # feed the third layer from the first too: a merge, as an Add of two tensors would be
        layers[2]["inbound_nodes"][0]["args"].append(layers[2]["inbound_nodes"][0]["args"][0])

    with zipfile.ZipFile(DATA / "functional.keras") as src, zipfile.ZipFile(tmp_path / "b.keras", "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":
                config = json.loads(data)
                branch(config)
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with pytest.raises(CheckpointError, match="only linear chains"):
        read_keras(tmp_path / "b.keras")


def test_chunked_byte_attribute_lists_are_joined(tmp_path):
    # Keras splits attributes over 64 KB into name0, name1, ...; old writers store bytes, not str
    path = tmp_path / "chunked.h5"
    shutil.copy(DATA / "seed_g.h5", path)
    with h5py.File(path, "r+") as f:
        for group, attr in [(f["model_weights"], "layer_names"), (f["model_weights/dense"], "weight_names")]:
            names = [n.encode() for n in read_attr_list(group, attr)]
            del group.attrs[attr]
            group.attrs[f"{attr}0"] = np.array(names[:1], dtype="S")
            group.attrs[f"{attr}1"] = np.array(names[1:], dtype="S")
    with h5py.File(io.BytesIO(path.read_bytes()), "r") as f:
        assert read_attr_list(f["model_weights/dense"], "weight_names") == ["dense/kernel:0", "dense/bias:0"]
    assert _max_error(path, fixture="seed_g.h5") <= TOLERANCE
