"""Read a PyTorch generator's weights (``.pt/.pth/.tar/.bin`` state dicts, or ``.safetensors``).

Only ``torch.load(path, map_location="cpu", weights_only=True)`` is used, which unpickles tensors
and plain containers and refuses every other Python object without running it: a pickled
``nn.Module`` or a malicious ``__reduce__`` payload is refused, and the message says to save
``model.state_dict()`` instead. Safetensors files hold tensors only.

The state dict may be the whole file or nested under a key (``netG_state_dict``, ``generator``,
``G``, ``g_ema``, ``model``, ...); ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile)
prefixes are dropped. The PyTorch DCGAN tutorial's generator (``main.{0,3,6,...}`` ConvTranspose2d
with BatchNorm2d between, ReLU, Tanh last) is recognised from its tensor shapes at any depth.
Any other layout needs an architecture description.

The architecture description (a JSON file)
------------------------------------------
The same spec latentctl stores for imported networks, where each layer that has tensors names
their keys in the state dict instead of giving sizes; sizes are read from the tensors::

    {"latent_dim": 100,
     "layers": [
       {"op": "reshape", "shape": [100, 1, 1], "order": "nchw"},
       {"op": "conv_transpose", "weight": "main.0.weight", "stride": [1, 1], "padding": {"torch": [0, 0]}},
       {"op": "batchnorm", "weight": "main.1.weight", "bias": "main.1.bias",
        "running_mean": "main.1.running_mean", "running_var": "main.1.running_var", "eps": 1e-5},
       {"op": "relu"},
       {"op": "conv_transpose", "weight": "main.3.weight", "stride": [2, 2],
        "padding": {"torch": [1, 1], "output_padding": [0, 0]}},
       {"op": "tanh"}
     ]}

Ops and their keys:

- ``dense``: ``weight`` (out, in), optional ``bias``; input must be flat.
- ``conv``: ``weight`` (out, in, kh, kw), optional ``bias``, ``stride`` (default [1, 1]),
  ``padding``: ``{"torch": [ph, pw]}`` (the default, [0, 0]) or TensorFlow's ``"same"``/``"valid"``.
- ``conv_transpose``: ``weight`` (in, out, kh, kw), optional ``bias``, ``stride``, ``padding``:
  ``{"torch": [ph, pw], "output_padding": [oh, ow]}`` or ``"same"``/``"valid"``.
- ``batchnorm``: ``running_mean``, ``running_var``, optional ``weight`` and ``bias``; ``eps``
  (default 1e-5, PyTorch's).
- ``reshape``: ``shape`` and ``order``: ``"nchw"`` is ``tensor.view(B, C, H, W)``; ``"nhwc"`` reads
  the vector as (H, W, C) as Keras does. ``flatten``: ``order`` likewise.
- ``upsample``: ``factor`` [fh, fw], ``mode`` ``"nearest"`` or ``"bilinear"`` (align_corners=False).
- ``leaky_relu`` (``slope``), ``relu``, ``tanh``, ``sigmoid``, ``linear``, ``dropout``: no tensors.

``latent_dim`` may be left out when the first layer is ``dense``. Every float tensor of the chosen
state dict must be used (``num_batches_tracked`` aside), so a layer missing from the description
is caught rather than silently skipped.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from latentctl.errors import CheckpointError, UsageError
from latentctl.importers.network import ImportedNetwork, choose_part, finish, one_line, refuse

PREFIXES = ("module.", "_orig_mod.")
TORCH_BN_EPS = 1e-5
IGNORED_SUFFIXES = ("num_batches_tracked",)
TENSOR_KEYS = {
    "dense": ("weight", "bias"),
    "conv": ("weight", "bias"),
    "conv_transpose": ("weight", "bias"),
    "batchnorm": ("weight", "bias", "running_mean", "running_var"),
}


# ---- loading ------------------------------------------------------------------------------------------


def _refuse_pickle(path: Path, err: Exception) -> CheckpointError:
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    what = f" ({found.group(1)})" if found else ""
    return refuse(
        path,
        f"holds pickled Python objects{what}, which latentctl never loads; "
        "save the generator with torch.save(model.state_dict(), path) instead",
    )


def _load(path: Path, safetensors: bool) -> Any:
    if safetensors:
        from safetensors.numpy import load_file

        try:
            return load_file(str(path))
        except FileNotFoundError:
            raise refuse(path, "no such file") from None
        except Exception as err:  # safetensors raises its own SafetensorError and plain errors alike
            raise refuse(path, f"not a readable safetensors file ({one_line(err)})") from None
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise refuse(path, "no such file") from None
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            raise _refuse_pickle(path, err) from None
        raise refuse(
            path, f"not a readable PyTorch file; it may be truncated or damaged ({one_line(err)[:200]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError, KeyError) as err:
        raise refuse(
            path, f"not a readable PyTorch file; it may be truncated or damaged ({one_line(err)[:200]})"
        ) from None


def _is_tensor(value: Any) -> bool:
    return isinstance(value, np.ndarray) or type(value).__name__ in ("Tensor", "Parameter")


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    return value.detach().float().numpy() if value.is_floating_point() else value.detach().numpy()


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _state_dict(value: Any) -> dict[str, np.ndarray] | None:
    """``value`` as {key: array} when it is a state dict (a mapping of names to tensors), else None."""
    if not isinstance(value, dict) or not value:
        return None
    if not all(isinstance(k, str) and _is_tensor(v) for k, v in value.items()):
        return None
    return {_strip(k): _to_numpy(v) for k, v in value.items()}


def candidates(loaded: Any) -> dict[str, dict[str, np.ndarray]]:
    """Every state dict in the file, by where it sits ("" for the file itself, else the key path)."""
    found: dict[str, dict[str, np.ndarray]] = {}

    def visit(value: Any, where: str, depth: int) -> None:
        state = _state_dict(value)
        if state is not None:
            found[where] = state
        elif isinstance(value, dict) and depth < 3:
            for key, item in value.items():
                if isinstance(key, str):
                    visit(item, f"{where}.{key}" if where else key, depth + 1)

    visit(loaded, "", 0)
    return found


# ---- the PyTorch DCGAN tutorial's generator -----------------------------------------------------------


def _dcgan_layers(state: dict[str, np.ndarray]) -> tuple[int, list[dict[str, Any]], dict[str, str]] | None:
    """(nz, spec layers, {spec tensor name: state key}) if ``state`` is the tutorial's layout, else None.

    main.{3j} ConvTranspose2d(4x4; stride 1, padding 0 first, then stride 2, padding 1), main.{3j+1}
    BatchNorm2d and main.{3j+2} ReLU between them, Tanh after the last. z (B, nz) is viewed as
    (B, nz, 1, 1), as the tutorial feeds it.
    """
    keys = {k for k in state if not k.endswith(IGNORED_SUFFIXES)}
    convs = sorted(
        int(m.group(1)) for k in keys if (m := re.fullmatch(r"main\.(\d+)\.weight", k)) and state[k].ndim == 4
    )
    if not convs or convs != [3 * j for j in range(len(convs))]:
        return None
    first = state["main.0.weight"]
    nz = int(first.shape[0])
    layers: list[dict[str, Any]] = [{"op": "reshape", "shape": [nz, 1, 1], "order": "nchw"}]
    names: dict[str, str] = {}
    channels = nz
    for j, c in enumerate(convs):
        w = state[f"main.{c}.weight"]
        if w.shape[0] != channels or w.shape[2:] != (4, 4):
            return None
        stride, pad = ([1, 1], [0, 0]) if j == 0 else ([2, 2], [1, 1])
        bias = f"main.{c}.bias" in keys
        i = len(layers)
        layers.append(
            {
                "op": "conv_transpose",
                "in": channels,
                "out": int(w.shape[1]),
                "kernel": [4, 4],
                "stride": stride,
                "padding": {"torch": pad, "output_padding": [0, 0]},
                "bias": bias,
            }
        )
        names[f"layers.{i}.weight"] = f"main.{c}.weight"
        if bias:
            names[f"layers.{i}.bias"] = f"main.{c}.bias"
        channels = int(w.shape[1])
        if j < len(convs) - 1:
            bn = [f"main.{c + 1}.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
            if not all(k in keys and state[k].shape == (channels,) for k in bn):
                return None
            i = len(layers)
            layers.append({"op": "batchnorm", "channels": channels, "eps": TORCH_BN_EPS})
            names.update({f"layers.{i}.{p}": k for p, k in zip(("weight", "bias", "running_mean", "running_var"), bn)})
            layers.append({"op": "relu"})
    layers.append({"op": "tanh"})
    if set(names.values()) != keys:
        return None
    return nz, layers, names


# ---- an architecture description ----------------------------------------------------------------------


def _read_architecture(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise refuse(path, "no such architecture file") from None
    except (OSError, ValueError) as err:
        raise refuse(path, f"the architecture description is not valid JSON ({one_line(err)})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise refuse(path, 'the architecture description must be a JSON object with a "layers" list')
    return spec


def _described_layer(
    arch: Path, index: int, layer: dict[str, Any], state: dict[str, np.ndarray], names: dict[str, str]
) -> dict[str, Any]:
    """One described layer with sizes read from its tensors; ``names`` gets {spec name: state key}."""
    if not isinstance(layer, dict):
        raise refuse(arch, f"layer {index} is not a JSON object")
    op = layer.get("op")
    if op not in TENSOR_KEYS:
        return layer
    out = {k: v for k, v in layer.items() if k not in TENSOR_KEYS[op]}
    for role in TENSOR_KEYS[op]:
        key = layer.get(role)
        if key is None:
            continue
        if not isinstance(key, str) or key not in state:
            raise refuse(arch, f"layer {index} ({op}): {role} names {key!r}, which is not in the state dict")
        names[f"layers.{index}.{role}"] = key
    required = ("running_mean", "running_var") if op == "batchnorm" else ("weight",)
    for role in required:
        if role not in layer:
            raise refuse(arch, f"layer {index} ({op}) must name its {role} tensor")
    shape = state[layer[required[0]]].shape
    if op == "batchnorm":
        out.update(channels=int(shape[0]), eps=float(layer.get("eps", TORCH_BN_EPS)))
        out.update(scale="weight" in layer, center="bias" in layer)
        return out
    out["bias"] = "bias" in layer
    if op == "dense" and len(shape) == 2:
        out.update({"in": int(shape[1]), "out": int(shape[0])})
    elif op != "dense" and len(shape) == 4:
        cin, cout = (shape[0], shape[1]) if op == "conv_transpose" else (shape[1], shape[0])
        out.update({"in": int(cin), "out": int(cout), "kernel": [int(shape[2]), int(shape[3])]})
        out.setdefault("padding", {"torch": [0, 0]})
    else:
        raise refuse(arch, f"layer {index} ({op}): {layer['weight']} has shape {tuple(shape)}, which does not fit")
    return out


def _described(arch: Path, spec: dict[str, Any], state: dict[str, np.ndarray]):
    names: dict[str, str] = {}
    layers = [_described_layer(arch, i, layer, state, names) for i, layer in enumerate(spec["layers"])]
    latent = spec.get("latent_dim")
    if latent is None and layers and layers[0].get("op") == "dense":
        latent = layers[0]["in"]
    if not isinstance(latent, int) or isinstance(latent, bool):
        raise refuse(arch, "latent_dim is missing (it can be left out only when the first layer is dense)")
    unused = sorted(k for k in state if k not in set(names.values()) and not k.endswith(IGNORED_SUFFIXES))
    if unused:
        shown = ", ".join(unused[:5]) + (", ..." if len(unused) > 5 else "")
        raise refuse(arch, f"the description uses no layer for {len(unused)} tensor(s) of the state dict: {shown}")
    return latent, layers, names


# ---- choosing the state dict and putting it together --------------------------------------------------


def _choose(path: Path, found: dict[str, dict[str, np.ndarray]], part: str | None, fits) -> str:
    names = list(found)
    if names == [""]:  # the file is one state dict: nothing to choose
        if part is not None:
            raise UsageError(one_line(f"{path.name} is a single state dict; there is no part {part!r} to choose"))
        return ""
    if part is not None or len(names) == 1:
        return choose_part(path, names, part, what="state dicts")
    generators = [n for n in names if fits(found[n])]
    return choose_part(path, generators if len(generators) == 1 else names, None, what="state dicts")


def read_torch(
    path: Path, part: str | None = None, architecture: Path | None = None, *, safetensors: bool | None = None
) -> ImportedNetwork:
    """The generator in a PyTorch state dict or safetensors file; nothing in the file is run.

    ``part`` picks one state dict when the file holds several (``netG``, ``generator``, ...);
    ``architecture`` is a JSON description (see this module's docstring) for layouts latentctl
    does not recognise. ``safetensors``: what the file's content says it is (``importers.sniff``);
    None decides by the name's suffix.
    """
    path = Path(path)
    if safetensors is None:
        safetensors = path.suffix.lower() == ".safetensors"
    found = candidates(_load(path, safetensors))
    if not found:
        raise refuse(path, "holds no state dict (a mapping of names to tensors)")
    spec = _read_architecture(architecture) if architecture is not None else None
    if spec is not None:
        needed = {
            v
            for layer in spec["layers"]
            if isinstance(layer, dict)
            for k, v in layer.items()
            if k in {"weight", "bias", "running_mean", "running_var"}
        }
        chosen = _choose(path, found, part, lambda s: needed <= set(s))
    else:
        chosen = _choose(path, found, part, lambda s: _dcgan_layers(s) is not None)
    state = found[chosen]
    fmt = "safetensors" if safetensors else "torch-state-dict"
    if spec is not None:
        latent, layers, names = _described(architecture, spec, state)
    else:
        recognised = _dcgan_layers(state)
        if recognised is None:
            raise refuse(
                path,
                "the tensor layout is not one latentctl recognises (the PyTorch DCGAN tutorial's generator); "
                "describe the network in a JSON architecture description and pass it with the architecture option",
            )
        latent, layers, names = recognised
    tensors = {name: state[key] for name, key in names.items()}
    return finish(path, latent, layers, tensors, fmt, list(names.values()), chosen or None)
