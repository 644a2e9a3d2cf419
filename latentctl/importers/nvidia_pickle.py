"""Read NVIDIA StyleGAN2-ADA / StyleGAN3 network snapshots without running any code from them.

A ``network-snapshot-*.pkl`` is a plain pickle of a dict (``G``, ``D``, ``G_ema``, ``augment_pipe``,
``training_set_kwargs``). Each network in it was written by NVIDIA's ``torch_utils.persistence`` as
a call ``_reconstruct_persistent_obj(meta)`` whose ``meta`` carries the Python source of the module
that defined the class; unpickling it normally *executes that source*. Here the pickle is read by
an unpickler that resolves only a short list of globals (``ALLOWED_GLOBALS``): the persistence
call is answered with an inert ``PersistentRecord`` (class name, sha256 of the source, the state),
tensors are rebuilt through ``torch.load(..., weights_only=True)``, and any other global stops the
load with a ``CheckpointError`` naming it.

The generator's records are then turned into a JSON-able ``config`` and float32 ``tensors`` named
as ``latentctl.models.stylegan2.StyleGAN2Generator`` names them (StyleGAN2), or as NVIDIA's
dotted state-dict names (StyleGAN3, whose synthesis is ported separately).
"""

from __future__ import annotations

import collections
import hashlib
import io
import math
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentctl.errors import CheckpointError, UsageError

DEFAULT_PARTS = ("G_ema", "G")  # what a user means by "the generator", best first


class SnapshotDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: the same items, no attribute access, no code."""


@dataclass
class PersistentRecord:
    """What NVIDIA's persistence call described, as data: nothing in it has been executed."""

    class_name: str
    module_sha256: str  # sha256 of the embedded module source, which is dropped unread
    version: Any
    record_type: str
    state: dict

    @property
    def parameters(self) -> dict:
        return dict(self.state.get("_parameters") or {})

    @property
    def buffers(self) -> dict:
        return dict(self.state.get("_buffers") or {})

    @property
    def children(self) -> dict:
        return {name: rec for name, rec in (self.state.get("_modules") or {}).items() if rec is not None}

    @property
    def init_kwargs(self) -> dict:
        return dict(self.state.get("_init_kwargs") or {})


@dataclass
class NvidiaNetwork:
    """One network taken from a snapshot, ready to build a latentctl model from."""

    kind: str  # "stylegan2" or "stylegan3"
    config: dict  # JSON-able
    tensors: dict[str, np.ndarray]  # float32 parameters and buffers
    w_avg: np.ndarray
    provenance: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# The restricted unpickler.


class _Refused(Exception):
    """A global outside the allowlist; turned into a CheckpointError naming the file."""


def _record_from_meta(meta: Any) -> PersistentRecord:
    # Called by the unpickler in place of NVIDIA's _reconstruct_persistent_obj: meta is data only.
    if not isinstance(meta, dict) or not isinstance(meta.get("class_name"), str):
        raise _Corrupt("a persistent-object record has no class name")
    source = meta.get("module_src")
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest() if isinstance(source, str) else ""
    state = meta.get("state")
    if not isinstance(state, dict):
        raise _Corrupt(f"the record of {meta['class_name']} has no state dict")
    return PersistentRecord(
        class_name=meta["class_name"],
        module_sha256=digest,
        version=meta.get("version"),
        record_type=str(meta.get("type")),
        state=state,
    )


class _Corrupt(Exception):
    """The pickle's content does not have the shape of a snapshot."""


def _storage_from_bytes(data: Any):
    # Tensors pickled outside torch.save carry their storage as bytes written by torch.save; read
    # them with torch's own restricted loader.
    import torch

    if not isinstance(data, (bytes, bytearray)):
        raise _Corrupt("a tensor storage is not stored as bytes")
    try:
        return torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises several types for a bad blob
        raise _Corrupt(f"a tensor storage cannot be read ({type(exc).__name__})") from exc


def _tensor_from_storage(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    import torch

    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise _Corrupt("a tensor refers to something that is not a storage")
    from torch._utils import _rebuild_tensor_v2

    return _rebuild_tensor_v2(storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())


def _parameter_as_tensor(data, requires_grad=False, hooks=None, *state):
    import torch

    if not isinstance(data, torch.Tensor):
        raise _Corrupt("a parameter holds no tensor")
    return data.detach()


def _numpy_multiarray(name: str):
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return getattr(multiarray, name)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _record_from_meta,
        ("torch._utils", "_rebuild_tensor_v2"): _tensor_from_storage,
        ("torch._utils", "_rebuild_parameter"): _parameter_as_tensor,
        ("torch._utils", "_rebuild_parameter_with_state"): _parameter_as_tensor,
        ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
        ("collections", "OrderedDict"): collections.OrderedDict,
        # Python 3.7's default protocol 3 writes a module's empty set of non-persistent buffers as
        # a call to set().
        ("builtins", "set"): set,
        ("dnnlib.util", "EasyDict"): SnapshotDict,
        ("dnnlib", "EasyDict"): SnapshotDict,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = _numpy_multiarray("_reconstruct")
        table[(module, "scalar")] = _numpy_multiarray("scalar")
    return table


ALLOWED_GLOBALS = tuple(f"{module}.{name}" for module, name in _allowed_globals())


def _printable(text: str, limit: int = 120) -> str:
    # A global's name comes from the file: keep the message on one line and short.
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _SnapshotUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed: dict[tuple[str, str], Any]):
        super().__init__(file)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        # Only torch.save's own format uses persistent ids; a snapshot pickle never does.
        raise _Corrupt("it uses persistent ids (a torch.save file, not an NVIDIA snapshot pickle)")


def _unpickle(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    try:
        return _SnapshotUnpickler(io.BytesIO(data), _allowed_globals()).load()
    except _Refused as exc:
        raise CheckpointError(
            f"{path}: refused to load: the pickle asks for the Python global {_printable(str(exc))}, which an NVIDIA "
            "StyleGAN snapshot never needs (latentctl never runs code from a pickle)"
        ) from None
    except _Corrupt as exc:
        raise CheckpointError(f"{path}: not a readable NVIDIA snapshot: {exc}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a readable NVIDIA snapshot: nested too deeply") from None
    except Exception as exc:  # a truncated or garbled pickle can raise nearly anything
        raise CheckpointError(
            f"{path}: not a readable NVIDIA snapshot: the pickle is truncated or corrupt ({type(exc).__name__})"
        ) from None


# ----------------------------------------------------------------------------------------------
# From records to config and tensors.


def _to_numpy(value: Any) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float32).cpu().numpy().copy()
    return np.asarray(value, dtype=np.float32)


def _collect_tensors(record: PersistentRecord, prefix: str = "") -> dict[str, np.ndarray]:
    """Every parameter and buffer under ``record``, by NVIDIA's dotted state-dict name."""
    out: dict[str, np.ndarray] = {}
    for name, value in {**record.parameters, **record.buffers}.items():
        if value is not None:
            out[prefix + name] = _to_numpy(value)
    for name, child in record.children.items():
        if not isinstance(child, PersistentRecord):
            raise _Corrupt(f"submodule {prefix}{name} is not a persistent record")
        out.update(_collect_tensors(child, f"{prefix}{name}."))
    return out


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of init kwargs / attributes; anything else becomes its type name."""
    if depth > 8:
        return "..."
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.ndarray) and value.size <= 64 and value.dtype.kind in "biuf":
        return _jsonable(value.tolist(), depth + 1)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    return f"<{type(value).__name__}>"


def _module_attributes(record: PersistentRecord) -> dict:
    """Plain attributes a module set on itself (gains, sizes, flags), without torch's bookkeeping."""
    return {
        key: _jsonable(value)
        for key, value in record.state.items()
        if not key.startswith("_") and key != "training" and not isinstance(value, PersistentRecord)
    }


def _classify(record: PersistentRecord, part: str, path: Path) -> str:
    """ "stylegan2" or "stylegan3", told apart by the classes inside the synthesis network.

    The outer class is called ``Generator`` in every NVIDIA repository and the module source is
    never trusted (or even kept), so the submodules decide: StyleGAN2 synthesis holds
    ``SynthesisBlock`` stages named ``b4``, ``b8``...; StyleGAN3 synthesis holds a Fourier-feature
    ``SynthesisInput`` called ``input`` and ``SynthesisLayer`` children.
    """
    if record.class_name != "Generator":
        raise CheckpointError(
            f"{path}: {part} is a {_printable(record.class_name)}, not a Generator this importer knows "
            "(known: StyleGAN2-ADA and StyleGAN3 Generator)"
        )
    synthesis = record.children.get("synthesis")
    mapping = record.children.get("mapping")
    if not isinstance(synthesis, PersistentRecord) or not isinstance(mapping, PersistentRecord):
        raise CheckpointError(f"{path}: {part} has no mapping/synthesis networks")
    if synthesis.class_name != "SynthesisNetwork" or mapping.class_name != "MappingNetwork":
        raise CheckpointError(
            f"{path}: {part} has unknown parts {_printable(mapping.class_name)}/{_printable(synthesis.class_name)}"
        )
    child_classes = {name: child.class_name for name, child in synthesis.children.items()}
    blocks = {name: cls for name, cls in child_classes.items() if re.fullmatch(r"b\d+", name)}
    if blocks and all(cls == "SynthesisBlock" for cls in child_classes.values()):
        return "stylegan2"
    if child_classes.get("input") == "SynthesisInput" and any(
        cls == "SynthesisLayer" for name, cls in child_classes.items() if name != "input"
    ):
        return "stylegan3"
    unknown = sorted(set(child_classes.values()) - {"SynthesisBlock", "SynthesisInput", "SynthesisLayer"})
    raise CheckpointError(
        f"{path}: {part}'s synthesis network has an unrecognised layout"
        + (f" (unknown classes: {_printable(', '.join(unknown))})" if unknown else "")
    )


def _stylegan2_config(gen: PersistentRecord, tensors: dict[str, np.ndarray], path: Path) -> dict:
    mapping = gen.children["mapping"]
    synthesis = gen.children["synthesis"]
    init = gen.init_kwargs
    # stylegan2-ada nests the synthesis kwargs; stylegan3's copy of StyleGAN2 takes them flat.
    syn_kwargs = dict(init.get("synthesis_kwargs") or {}) or init
    blocks = sorted(((int(name[1:]), rec) for name, rec in synthesis.children.items()), key=lambda item: item[0])
    resolution = blocks[-1][0]
    last = blocks[-1][1]
    conv = last.children.get("conv1")
    if conv is None:
        raise CheckpointError(f"{path}: the last synthesis block has no conv1 layer")
    architectures = {str(rec.state.get("architecture")) for _, rec in blocks}
    # The resnet shortcut is built without a clamp; the clamp that matters is the styled layers'.
    clamps = {
        _jsonable(layer.state.get("conv_clamp"))
        for _, rec in blocks
        for name, layer in rec.children.items()
        if name in ("conv0", "conv1", "torgb")
    }
    fc0 = mapping.children.get("fc0")
    if len(architectures) != 1 or len(clamps) != 1 or fc0 is None:
        raise CheckpointError(f"{path}: the generator mixes architectures or clamps, which latentctl cannot build")
    num_layers = int(mapping.state.get("num_layers", 0))
    w_dim = int(gen.state["w_dim"])
    c_dim = int(gen.state["c_dim"])
    first_width = tensors["mapping.fc0.weight"].shape[1]
    embed_features = tensors["mapping.embed.weight"].shape[0] if c_dim > 0 else None
    layer_features = tensors["mapping.fc0.weight"].shape[0] if num_layers > 1 else None
    fir = tensors.get(f"synthesis.b{resolution}.resample_filter")
    config = {
        "resolution": int(gen.state["img_resolution"]),
        "img_channels": int(gen.state["img_channels"]),
        "z_dim": int(gen.state["z_dim"]),
        "w_dim": w_dim,
        "c_dim": c_dim,
        "num_ws": int(gen.state.get("num_ws", synthesis.state.get("num_ws"))),
        "mapping_layers": num_layers,
        "mapping_lr_multiplier": float(fc0.state.get("bias_gain", 0.01)),
        "mapping_activation": str(fc0.state.get("activation", "lrelu")),
        "embed_features": embed_features,
        "layer_features": layer_features,
        "channel_base": int(syn_kwargs.get("channel_base", 32768)),
        "channel_max": int(syn_kwargs.get("channel_max", 512)),
        "architecture": architectures.pop(),
        "conv_clamp": clamps.pop(),
        "use_noise": bool(conv.state.get("use_noise", True)),
        "kernel_size": int(tensors[f"synthesis.b{resolution}.conv1.weight"].shape[-1]),
        "activation": str(conv.state.get("activation", "lrelu")),
        "fir_shape": list(fir.shape) if fir is not None else [4, 4],
        "num_fp16_res": sum(1 for _, rec in blocks if rec.state.get("use_fp16")),
        "w_avg_beta": _jsonable(mapping.state.get("w_avg_beta")),
        "source_init_kwargs": _jsonable(init),
    }
    if first_width != config["z_dim"] + (embed_features or 0):
        raise CheckpointError(f"{path}: the mapping network's input width does not match z_dim + label embedding")
    return config


_UNUSED = ""  # a tensor NVIDIA stores but never reads


def _stylegan2_names(nvidia_name: str) -> str | None:
    """NVIDIA state-dict name -> StyleGAN2Generator state-dict name (None: not a known tensor)."""
    if nvidia_name == "mapping.w_avg":
        return "w_avg"
    match = re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", nvidia_name)
    if match:
        layer = "embed" if match[1] == "embed" else f"layers.{match[2]}"
        return f"mapping_net.{layer}.{match[3]}"
    match = re.fullmatch(r"synthesis\.b(\d+)\.(.+)", nvidia_name)
    if not match:
        return None
    stage = f"stages.{int(math.log2(int(match[1]))) - 2}"
    rest = match[2]
    if rest in ("const", "resample_filter"):
        return f"{stage}.{'fir' if rest == 'resample_filter' else rest}"
    layer, _, leaf = rest.partition(".")
    if layer == "conv1" and leaf == "resample_filter":
        return _UNUSED  # the non-upsampling convolution keeps a filter it does not use
    layer = {"conv0": "up_conv", "conv1": "conv", "torgb": "rgb", "skip": "shortcut"}.get(layer)
    if layer is None:
        return None
    leaf = {"affine.weight": "style.weight", "affine.bias": "style.bias", "resample_filter": "fir"}.get(leaf, leaf)
    if leaf not in ("weight", "bias", "noise_strength", "noise_const", "fir", "style.weight", "style.bias"):
        return None
    return f"{stage}.{layer}.{leaf}"


def _stylegan3_config(gen: PersistentRecord) -> dict:
    synthesis = gen.children["synthesis"]
    return {
        "resolution": int(gen.state["img_resolution"]),
        "img_channels": int(gen.state["img_channels"]),
        "z_dim": int(gen.state["z_dim"]),
        "w_dim": int(gen.state["w_dim"]),
        "c_dim": int(gen.state["c_dim"]),
        "num_ws": int(gen.state.get("num_ws", synthesis.state.get("num_ws"))),
        "tensor_names": "nvidia",  # tensors keep NVIDIA's dotted state-dict names
        "source_init_kwargs": _jsonable(gen.init_kwargs),
        # Per-module attributes (sampling rates, cutoffs, sizes, gains...) under NVIDIA's names.
        "modules": _module_tree(gen),
    }


def _module_tree(record: PersistentRecord, prefix: str = "") -> dict:
    out = {prefix.rstrip(".") or "": {"class_name": record.class_name, **_module_attributes(record)}}
    for name, child in record.children.items():
        out.update(_module_tree(child, f"{prefix}{name}."))
    return out


def read_snapshot(path: Path) -> Any:
    """The snapshot's content as inert data: networks become ``PersistentRecord`` objects.

    Raises ``CheckpointError`` (one line, naming the file) for a global outside
    ``ALLOWED_GLOBALS`` or a truncated/corrupt pickle.
    """
    return _unpickle(Path(path))


def read_nvidia_pickle(path: Path, part: str | None = None) -> NvidiaNetwork:
    """Read one generator from an NVIDIA ``network-snapshot-*.pkl`` without executing its code.

    ``part`` names the snapshot entry (``G_ema`` by default, else ``G``). Raises ``CheckpointError``
    for anything unsafe, truncated or not an NVIDIA generator, and ``UsageError`` when ``part``
    names no network in the file.
    """
    path = Path(path)
    loaded = _unpickle(path)
    if isinstance(loaded, PersistentRecord):
        loaded = {"G": loaded}  # a bare network pickled on its own
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path}: not an NVIDIA snapshot: the pickle holds a {type(loaded).__name__}, not a dict")
    networks = sorted(str(k) for k, v in loaded.items() if isinstance(v, PersistentRecord))
    if not networks:
        raise CheckpointError(
            f"{path}: not an NVIDIA snapshot: it holds no networks (keys: {_printable(', '.join(map(str, loaded)))})"
        )
    if part is None:
        part = next((p for p in DEFAULT_PARTS if p in networks), None)
        if part is None:
            raise CheckpointError(
                f"{path}: holds no generator (networks: {', '.join(networks)}); pick one with --part NAME"
            )
    elif part not in networks:
        raise UsageError(f"{path}: no network {part!r} in this snapshot; it holds: {', '.join(networks)}")
    gen = loaded[part]
    kind = _classify(gen, part, path)

    try:
        nvidia_tensors = _collect_tensors(gen)
    except _Corrupt as exc:
        raise CheckpointError(f"{path}: not a readable NVIDIA snapshot: {exc}") from None
    if "mapping.w_avg" not in nvidia_tensors:
        raise CheckpointError(f"{path}: {part} has no w_avg (mapping built without truncation support)")
    try:
        if kind == "stylegan2":
            config = _stylegan2_config(gen, nvidia_tensors, path)
            tensors = {}
            for name, value in nvidia_tensors.items():
                ours = _stylegan2_names(name)
                if ours is None:
                    raise CheckpointError(f"{path}: {part} has a tensor latentctl does not know: {_printable(name)}")
                if ours != _UNUSED:
                    tensors[ours] = value
        else:
            config = _stylegan3_config(gen)
            tensors = nvidia_tensors
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: {part} is missing a field a {kind} generator needs ({exc!s:.80})") from None

    def records(rec: PersistentRecord, prefix: str = ""):
        yield prefix.rstrip(".") or "", rec
        for name, child in rec.children.items():
            yield from records(child, f"{prefix}{name}.")

    provenance = {
        "file": str(path),
        "part": part,
        "snapshot_keys": sorted(str(k) for k in loaded),
        "networks": {name: loaded[name].class_name for name in networks},
        "persistence_versions": sorted({_jsonable(rec.version) for _, rec in records(gen)}, key=str),
        "module_sources": {
            name or "<root>": f"{rec.class_name} sha256:{rec.module_sha256}" for name, rec in records(gen)
        },
        "training_set_kwargs": _jsonable(loaded.get("training_set_kwargs")),
    }
    return NvidiaNetwork(
        kind=kind,
        config=config,
        tensors=tensors,
        w_avg=nvidia_tensors["mapping.w_avg"].copy(),
        provenance=provenance,
    )
