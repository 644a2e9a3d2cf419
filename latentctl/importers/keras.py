"""Read a Keras generator (Keras 2 or 3 ``.h5``, or a ``.keras`` zip) without TensorFlow or Keras.

Only data is read: the model's JSON config and its weight arrays, through h5py and zipfile. Nothing
in the file is ever run: a ``Lambda`` layer's stored bytecode and custom classes are refused by
name. Where each writer keeps what (checked against tf-keras 2.21 and Keras 3.15 files):

- Keras 2 ``model.save("g.h5")``: root attribute ``model_config``; ``model_weights/<layer>/`` with
  attribute ``weight_names`` (``dense/kernel:0``); long attribute lists are split over
  ``weight_names0``, ``weight_names1``, ... A sub-model of a saved GAN keeps all its weights in
  ``model_weights/<sub-model>/``, listed by ``<layer>/<variable>:0``, non-trainable ones last.
- Keras 3 ``.h5``: the same, with ``<model>/<layer>/<variable>`` names and no ``:0``.
- ``.keras`` zip: ``config.json`` and ``model.weights.h5`` with ``layers/<key>/vars/<i>``, where
  ``<key>`` is the snake-case class name made unique in layer order (``conv2d_transpose_1``), not
  the layer's name; Keras 3 also stores the layer's name as the ``vars`` group's ``name``
  attribute. Variables are numbered in the layer's own order (BatchNormalization: gamma if
  ``scale``, beta if ``center``, moving mean, moving variance).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from latentctl.errors import CheckpointError
from latentctl.importers.network import ImportedNetwork, choose_part, finish, one_line, refuse

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MODEL_CLASSES = ("Sequential", "Functional", "Model")
ACTIVATION_OPS = {"tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "linear": None}
# Keras' leaky_relu activation (Keras 3 and tf.nn) defaults to 0.2; the LeakyReLU layer to 0.3.
ACTIVATION_LEAKY_SLOPE = 0.2
LAYER_DEFAULT_LEAKY_SLOPE = 0.3


# ---- reading attributes and weights -----------------------------------------------------------------


def _text(value: Any) -> str:
    # h5py 3 gives str; older writers (and h5py 2) give bytes
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def read_attr_list(obj: Any, name: str) -> list[str]:
    """A list attribute, joined from ``name0``, ``name1``, ... when Keras split it (HDF5's 64 KB limit)."""
    if name in obj.attrs:
        chunks = [obj.attrs[name]]
    else:
        chunks, i = [], 0
        while f"{name}{i}" in obj.attrs:
            chunks.append(obj.attrs[f"{name}{i}"])
            i += 1
    return [_text(item) for chunk in chunks for item in np.atleast_1d(chunk) if np.size(chunk)]


def _variable(weight_name: str) -> tuple[str, str]:
    """``dense/kernel:0`` or ``gen/dense/kernel`` -> (``dense``, ``kernel``)."""
    parts = weight_name.split("/")
    return (parts[-2] if len(parts) > 1 else ""), parts[-1].split(":")[0]


def _h5_weights(group: Any, per_layer: bool) -> dict[str, dict[str, np.ndarray]]:
    """{layer name: {variable: array}} from a ``model_weights`` group (or a sub-model's group)."""
    weights: dict[str, dict[str, np.ndarray]] = {}
    if per_layer:
        for layer in read_attr_list(group, "layer_names"):
            for weight_name in read_attr_list(group[layer], "weight_names"):
                weights.setdefault(layer, {})[_variable(weight_name)[1]] = group[layer][weight_name][()]
    else:
        for weight_name in read_attr_list(group, "weight_names"):
            layer, variable = _variable(weight_name)
            weights.setdefault(layer, {})[variable] = group[weight_name][()]
    return weights


def snake_case(name: str) -> str:
    """Keras' ``to_snake_case``: ``Conv2DTranspose`` -> ``conv2d_transpose``, ``LeakyReLU`` -> ``leaky_re_lu``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _zip_keys(layers: list[dict[str, Any]]) -> list[str]:
    """The ``layers/<key>`` of each config layer: class names made unique by a counter, in layer order."""
    used: dict[str, int] = {}
    keys = []
    for layer in layers:
        key = snake_case(layer.get("class_name", ""))
        if key in used:
            used[key] += 1
            keys.append(f"{key}_{used[key]}")
        else:
            used[key] = 0
            keys.append(key)
    return keys


_ZIP_VARIABLES = {
    "Dense": ("kernel", "bias"),
    "Conv2D": ("kernel", "bias"),
    "Conv2DTranspose": ("kernel", "bias"),
}


def _zip_variable_names(layer: dict[str, Any]) -> list[str]:
    cfg = layer.get("config", {})
    if layer.get("class_name") == "BatchNormalization":
        names = ["gamma"] if cfg.get("scale", True) else []
        names += ["beta"] if cfg.get("center", True) else []
        return [*names, "moving_mean", "moving_variance"]
    names = _ZIP_VARIABLES.get(layer.get("class_name"), ())
    return [n for n in names if n != "bias" or cfg.get("use_bias", True)]


def _zip_weights(path: Path, group: Any, layers: list[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """{layer name: {variable: array}} from a ``.keras`` weights group holding ``layers/``."""
    # tf-keras 2.13/2.14 wrote _layer_checkpoint_dependencies/ where later writers write layers/
    container = group.get("layers") or group.get("_layer_checkpoint_dependencies")
    if container is None:
        raise refuse(path, "model.weights.h5 has no layers/ group")
    by_name = {_text(container[k]["vars"].attrs["name"]): k for k in container if "name" in container[k]["vars"].attrs}
    weights: dict[str, dict[str, np.ndarray]] = {}
    for layer, derived_key in zip(layers, _zip_keys(layers)):
        name = layer.get("config", {}).get("name", "")
        names = _zip_variable_names(layer)
        if not names:
            continue
        key = by_name.get(name, derived_key)
        if key not in container:
            raise refuse(path, f'no weights for layer "{name}" (looked for layers/{key})')
        stored = container[key]["vars"]
        if len(stored) != len(names):
            raise refuse(path, f'layer "{name}" has {len(stored)} weight arrays, expected {len(names)}')
        weights[name] = {var: stored[str(i)][()] for i, var in enumerate(names)}
    return weights


# ---- the model config -------------------------------------------------------------------------------


def _is_model(layer: dict[str, Any]) -> bool:
    return layer.get("class_name") in MODEL_CLASSES


def _inbound(layer: dict[str, Any]) -> list[list[str]]:
    """Per call of the layer, the names of the layers it reads (Keras 2 lists or Keras 3 dicts)."""
    calls = []
    for node in layer.get("inbound_nodes", []):
        names: list[str] = []
        if isinstance(node, dict):  # Keras 3: {"args": [{"config": {"keras_history": [name, 0, 0]}}], ...}
            _histories(node, names)
        else:  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
            names = [entry[0] for entry in node]
        calls.append(names)
    return calls


def _histories(value: Any, names: list[str]) -> None:
    if isinstance(value, dict):
        if "keras_history" in value:
            names.append(value["keras_history"][0])
        for item in value.values():
            if isinstance(item, (dict, list)):
                _histories(item, names)
    elif isinstance(value, list):
        for item in value:
            _histories(item, names)


def _linear_chain(path: Path, model: dict[str, Any]) -> list[dict[str, Any]]:
    """The layers of a Sequential, or of a Functional model that is one unbranched chain, in order."""
    config = model.get("config", {})
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise refuse(path, "the model config lists no layers")
    if model.get("class_name") == "Sequential":
        return layers
    names = [layer.get("config", {}).get("name", layer.get("name")) for layer in layers]
    readers: dict[str, int] = {}
    for layer, name in zip(layers, names):
        calls = _inbound(layer)
        if len(calls) > 1 or any(len(call) != 1 for call in calls):
            raise refuse(path, f'layer "{name}" takes several inputs; only linear chains of layers can be imported')
        for call in calls:
            readers[call[0]] = readers.get(call[0], 0) + 1
    outputs = config.get("output_layers", [[]])
    # Keras 3 writes a single output as ["name", 0, 0], Keras 2 as [["name", 0, 0]]
    single_output = isinstance(outputs, list) and (len(outputs) == 1 or (outputs and isinstance(outputs[0], str)))
    if any(count > 1 for count in readers.values()) or not single_output:
        raise refuse(path, "the model branches; only linear chains of layers can be imported")
    # a linear chain listed in any order: follow it from the layer nobody feeds
    by_input = {_inbound(layer)[0][0]: layer for layer in layers if _inbound(layer)}
    start = [layer for layer in layers if not _inbound(layer)]
    if len(start) != 1:
        raise refuse(path, "the model has several inputs; only linear chains of layers can be imported")
    chain = start
    while chain[-1].get("config", {}).get("name") in by_input:
        chain.append(by_input[chain[-1]["config"]["name"]])
    if len(chain) != len(layers):
        raise refuse(path, "the model is not one chain of layers; only linear chains can be imported")
    return chain


def _select(path: Path, config: dict[str, Any], part: str | None) -> tuple[dict[str, Any], str | None]:
    """The model to import: the whole model, or the sub-model ``part`` names (UsageError lists them)."""
    if not _is_model(config):
        raise refuse(path, f"the file holds a {config.get('class_name')!r}, not a Keras model")
    subs = [layer for layer in config.get("config", {}).get("layers", []) if _is_model(layer)]
    name = config.get("config", {}).get("name", "model")
    if not subs:
        if part is not None and part != name:
            choose_part(path, [name], part)
        return config, None
    chosen = choose_part(path, [s["config"]["name"] for s in subs], part)
    return next(s for s in subs if s["config"]["name"] == chosen), chosen


# ---- config layers -> spec ops ------------------------------------------------------------------------


def _activation(path: Path, name: str, value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):  # Keras 3 may serialise a built-in activation as {"config": "tanh", ...}
        value = value.get("config") if value.get("class_name") == "function" else value.get("class_name")
    if value == "leaky_relu":
        return [{"op": "leaky_relu", "slope": ACTIVATION_LEAKY_SLOPE, "name": name}]
    if value not in ACTIVATION_OPS:
        raise refuse(
            path, f'layer "{name}" uses the activation {value!r}; supported: tanh, sigmoid, relu, leaky_relu, linear'
        )
    op = ACTIVATION_OPS[value]
    return [{"op": op, "name": name}] if op else []


def _require(path: Path, name: str, ok: bool, why: str) -> None:
    if not ok:
        raise refuse(path, f'layer "{name}" {why}')


def _conv(path: Path, name: str, cls: str, cfg: dict[str, Any], w: dict[str, np.ndarray]) -> dict[str, Any]:
    _require(path, name, cfg.get("data_format") in (None, "channels_last"), "is channels_first; not supported")
    _require(path, name, list(cfg.get("dilation_rate", [1, 1])) in ([1, 1], 1), "is dilated; not supported")
    _require(path, name, cfg.get("groups", 1) == 1, "is a grouped convolution; not supported")
    _require(path, name, cfg.get("padding") in ("same", "valid"), f"has padding {cfg.get('padding')!r}")
    _require(path, name, cfg.get("output_padding") is None, "sets output_padding; not supported")
    _require(path, name, "kernel" in w, "has no kernel in the file")
    kh, kw, a, b = w["kernel"].shape
    cin, cout = (b, a) if cls == "Conv2DTranspose" else (a, b)
    op = "conv_transpose" if cls == "Conv2DTranspose" else "conv"
    return {
        "op": op,
        "in": int(cin),
        "out": int(cout),
        "kernel": [int(kh), int(kw)],
        "stride": [int(s) for s in cfg.get("strides", [1, 1])],
        "padding": cfg["padding"],
        "bias": bool(cfg.get("use_bias", True)),
        "name": name,
    }


def _batchnorm(path: Path, name: str, cfg: dict[str, Any], w: dict[str, np.ndarray]) -> dict[str, Any]:
    axis = cfg.get("axis", -1)
    axis = axis if isinstance(axis, list) else [axis]
    # the last axis: -1, or its index on (B, C) (1) or (B, H, W, C) (3) inputs; checked against the shape later
    _require(
        path,
        name,
        len(axis) == 1 and axis[0] in (-1, 1, 3),
        f"normalises axis {axis}; only the channel axis is supported",
    )
    _require(path, name, "moving_mean" in w and "moving_variance" in w, "has no moving statistics in the file")
    return {
        "op": "batchnorm",
        "channels": int(w["moving_mean"].shape[0]),
        "eps": float(cfg.get("epsilon", 1e-3)),
        "scale": bool(cfg.get("scale", True)),
        "center": bool(cfg.get("center", True)),
        "name": name,
        "axis": axis[0],
    }


def _relu(path: Path, name: str, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    _require(
        path, name, cfg.get("max_value") is None and not cfg.get("threshold"), "caps or thresholds ReLU; not supported"
    )
    slope = cfg.get("negative_slope") or 0.0
    return [{"op": "leaky_relu", "slope": float(slope), "name": name} if slope else {"op": "relu", "name": name}]


def _ops(path: Path, layer: dict[str, Any], w: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The spec ops of one Keras layer (an empty list for InputLayer)."""
    cls, cfg = layer.get("class_name"), layer.get("config", {})
    name = cfg.get("name", "?")
    if cls == "InputLayer":
        return []
    if cls == "Lambda":
        raise refuse(path, f'layer "{name}" is a Lambda layer, which stores Python code; refusing to import it')
    if cls == "Dense":
        _require(path, name, "kernel" in w, "has no kernel in the file")
        cin, cout = w["kernel"].shape
        dense = {"op": "dense", "in": int(cin), "out": int(cout), "bias": bool(cfg.get("use_bias", True)), "name": name}
        return [dense, *_activation(path, name, cfg.get("activation", "linear"))]
    if cls in ("Conv2D", "Conv2DTranspose"):
        return [_conv(path, name, cls, cfg, w), *_activation(path, name, cfg.get("activation", "linear"))]
    if cls == "BatchNormalization":
        return [_batchnorm(path, name, cfg, w)]
    if cls == "Reshape":
        target = cfg.get("target_shape")
        _require(
            path,
            name,
            isinstance(target, list) and len(target) in (1, 3) and -1 not in target,
            f"reshapes to {target}; only [H, W, C] or [N] are supported",
        )
        if len(target) == 1:
            return [{"op": "flatten", "order": "nhwc", "name": name}]
        return [{"op": "reshape", "shape": [int(t) for t in target], "order": "nhwc", "name": name}]
    if cls == "Flatten":
        _require(path, name, cfg.get("data_format") in (None, "channels_last"), "is channels_first; not supported")
        return [{"op": "flatten", "order": "nhwc", "name": name}]
    if cls == "LeakyReLU":
        slope = cfg.get("negative_slope", cfg.get("alpha", LAYER_DEFAULT_LEAKY_SLOPE))
        return [{"op": "leaky_relu", "slope": float(slope), "name": name}]
    if cls == "ReLU":
        return _relu(path, name, cfg)
    if cls == "Activation":
        return _activation(path, name, cfg.get("activation"))
    if cls == "UpSampling2D":
        _require(path, name, cfg.get("data_format") in (None, "channels_last"), "is channels_first; not supported")
        mode = cfg.get("interpolation", "nearest")
        _require(path, name, mode in ("nearest", "bilinear"), f"interpolates with {mode!r}; only nearest and bilinear")
        size = cfg.get("size", [2, 2])
        return [{"op": "upsample", "factor": [int(s) for s in size], "mode": mode, "name": name}]
    if cls == "Dropout":
        return [{"op": "dropout", "name": name}]
    if _is_model(layer):
        raise refuse(path, f'layer "{name}" is itself a model; nested models inside the generator are not supported')
    raise refuse(path, f'layer "{name}" is a {cls} layer, which latentctl cannot import')


def _input_dim(path: Path, layers: list[dict[str, Any]], model: dict[str, Any]) -> int:
    for candidate in (
        *(layer.get("config", {}) for layer in layers[:1]),
        model.get("config", {}),
        model.get("build_input_shape") and {"batch_shape": model["build_input_shape"]},
    ):
        if not candidate:
            continue
        for key in ("batch_shape", "batch_input_shape", "build_input_shape"):
            shape = candidate.get(key)
            if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int):
                return shape[1]
    raise refuse(path, "cannot tell the latent size: the model's input is not a flat (batch, latent) vector")


def _torch_tensors(index: int, op: dict[str, Any], w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One op's weights, renamed to ``layers.{index}.*`` and moved to torch layout."""
    p = f"layers.{index}."
    if op["op"] == "dense":
        out = {p + "weight": w["kernel"].T}
    elif op["op"] in ("conv", "conv_transpose"):
        # Conv2D (kh, kw, in, out) -> (out, in, kh, kw); Conv2DTranspose (kh, kw, out, in) -> (in, out, kh, kw)
        out = {p + "weight": w["kernel"].transpose(3, 2, 0, 1)}
    else:
        renames = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
        return {p + renames[k]: v for k, v in w.items() if k in renames}
    if op.get("bias", True):
        out[p + "bias"] = w["bias"]
    return out


def _convert(
    path: Path, model: dict[str, Any], weights: dict[str, dict[str, np.ndarray]], fmt: str, part: str | None
) -> ImportedNetwork:
    layers = _linear_chain(path, model)
    ops: list[dict[str, Any]] = []
    tensors: dict[str, np.ndarray] = {}
    names: list[str] = []
    for layer in layers:
        name = layer.get("config", {}).get("name", "?")
        w = weights.get(name, {})
        layer_ops = _ops(path, layer, w)
        for op in layer_ops:
            if op["op"] in ("dense", "conv", "conv_transpose", "batchnorm"):
                tensors.update(_torch_tensors(len(ops), op, w))
            ops.append(op)
        if layer_ops:
            names.append(name)
    _check_batchnorm_axes(path, ops, _input_dim(path, layers, model))
    return finish(path, _input_dim(path, layers, model), ops, tensors, fmt, names, part)


def _check_batchnorm_axes(path: Path, ops: list[dict[str, Any]], latent: int) -> None:
    # axis 1 is the channel axis only of a flat input; axis 3 only of an image; -1 of either
    rank = 2
    for op in ops:
        if op["op"] in ("reshape",):
            rank = 4
        elif op["op"] == "flatten":
            rank = 2
        elif op["op"] == "batchnorm":
            axis = op.pop("axis")
            if axis not in (-1, rank - 1):
                raise refuse(
                    path,
                    f'layer "{op["name"]}" normalises axis {axis} of a rank-{rank} input; only the channel axis is supported',
                )


# ---- files --------------------------------------------------------------------------------------------


def _load_config(path: Path, raw: Any) -> dict[str, Any]:
    try:
        config = json.loads(_text(raw))
    except (ValueError, UnicodeDecodeError) as err:
        raise refuse(path, f"the model config is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise refuse(path, "the model config is not a JSON object")
    return config


def _read_h5(path: Path, part: str | None) -> ImportedNetwork:
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise refuse(
                path,
                "an HDF5 file but not a saved Keras model (no model_config; weights-only files cannot be imported)",
            )
        config = _load_config(path, raw)
        if "model_weights" not in f:
            raise refuse(path, "a Keras model saved without its weights (no model_weights group)")
        version = _text(f.attrs.get("keras_version", "2"))
        fmt = "keras3-h5" if version.startswith("3") else "keras2-h5"
        model, chosen = _select(path, config, part)
        root = f["model_weights"]
        weights = _h5_weights(root[chosen], per_layer=False) if chosen else _h5_weights(root, per_layer=True)
    return _convert(path, model, weights, fmt, chosen)


def _read_zip(path: Path, part: str | None) -> ImportedNetwork:
    import io

    import h5py

    with zipfile.ZipFile(path) as archive:
        entries = set(archive.namelist())
        if "config.json" not in entries:
            raise refuse(path, "a zip file but not a Keras .keras model (no config.json)")
        if "model.weights.h5" not in entries:
            raise refuse(path, "a .keras archive without model.weights.h5")
        config = _load_config(path, archive.read("config.json"))
        blob = archive.read("model.weights.h5")
    model, chosen = _select(path, config, part)
    with h5py.File(io.BytesIO(blob), "r") as f:
        group = f
        if chosen:
            top = config["config"]["layers"]
            key = _zip_keys(top)[
                next(i for i, layer in enumerate(top) if layer.get("config", {}).get("name") == chosen)
            ]
            container = f.get("layers") or f.get("_layer_checkpoint_dependencies")
            if container is None or key not in container:
                raise refuse(path, f"model.weights.h5 has no weights for {chosen!r}")
            group = container[key]
        weights = _zip_weights(path, group, _linear_chain(path, model))
    return _convert(path, model, weights, "keras-zip", chosen)


def read_keras(path: Path, part: str | None = None) -> ImportedNetwork:
    """The generator in a Keras file (``part`` picks a sub-model of a saved GAN); nothing in it is run."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
        if head.startswith(b"PK") or path.suffix == ".keras":
            return _read_zip(path, part)
        if head != HDF5_SIGNATURE:
            raise refuse(path, "neither an HDF5 (.h5) nor a .keras file")
        return _read_h5(path, part)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError) as err:
        raise refuse(path, f"not a readable .keras archive; it may be truncated or damaged ({one_line(err)})") from None
    except FileNotFoundError:
        raise refuse(path, "no such file") from None
    except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise refuse(
            path, f"cannot be read as a Keras model; it may be truncated or damaged ({one_line(err)})"
        ) from None
