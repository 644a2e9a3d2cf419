"""The checkpoint format every command shares (docs/checkpoint-format.md).

A checkpoint is a safetensors file. Its ``__metadata__`` (strings only) holds the format name and
version, the latentctl version, the model config as JSON and, for training checkpoints, the train
config, optimizer hyper-parameters and training state (epoch, step, RNG states, data fingerprint).
Tensors are named ``G.*`` and ``D.*`` (GAN) or ``E.*`` (AE/VAE encoder) for the networks, and
``opt.<optimizer>.<index>.<key>`` (``opt.G``/``opt.D``, or ``opt.AE``) for Adam's state.

The header is read with the standard library only (``read_header``), so ``latentctl info`` needs no
torch. ``load`` is the one place that fixes up older or foreign layouts. Pickle-based files are
refused by name and, when a file is not valid safetensors, by content; they are never unpickled.
Every header entry, the metadata and (in ``load``) the tensor set are checked against the file and
its own config first, so a damaged or hostile file fails with one CheckpointError line.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import os
import re
import struct
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentctl._version import __version__
from latentctl.config import ModelConfig, TrainConfig, from_dict
from latentctl.errors import CheckpointError, StorageError
from latentctl.files.fsutil import atomic_writer, describe_os_error, display_name
from latentctl.files.workspace import checkpoint_in

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT = "latentctl-checkpoint"
FORMAT_VERSION = 1
KIND_TRAINING = "training"  # both nets, both optimizers, training state: resumable
KIND_GENERATOR = "generator"  # generator weights only: for sampling and sharing
EMA_PREFIX = "G_ema"  # tensors of the moving-average generator

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


@dataclass
class CheckpointInfo:
    """What a checkpoint's header says, read without torch."""

    path: Path
    kind: str
    format_version: int
    latentctl_version: str
    model: ModelConfig
    model_id: str
    run_id: str
    train: TrainConfig | None = None
    state: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw_metadata: dict[str, str] = field(default_factory=dict)

    @property
    def epoch(self) -> int | None:
        return self.state.get("epoch")

    @property
    def source(self) -> dict[str, Any]:
        """Where an imported generator came from (``latentctl import``): format, file name, size,
        sha256, original layer names. Empty for models latentctl trained."""
        try:
            value = json.loads(self.raw_metadata.get("source", "{}"))
        except (ValueError, RecursionError):
            return {}
        return value if isinstance(value, dict) else {}


# ---- recognising and validating the file (standard library only) ------------------------------

# Bits per element of every safetensors dtype (the sub-byte float types pack several per byte).
_DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # what a float32 weight may be stored as and copied from

# What resume reads from a training checkpoint's training_state (training.py, cli/train_cmd.py).
RESUME_KEYS = ("epoch", "step_in_epoch", "rng", "data")
RESUME_DATA_KEYS = ("root", "fingerprint")
_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "epoch": (int,),
    "step_in_epoch": (int,),
    "global_step": (int,),
    "steps_per_epoch": (int,),
    "elapsed_s": (int, float),
    "finished": (bool,),
    "rng": (dict,),
    "data": (dict,),
    "augment": (dict,),
    "best_fd": (int, float, type(None)),
}
_DATA_TYPES: dict[str, tuple[type, ...]] = {"root": (str,), "fingerprint": (str,), "count": (int,), "skipped": (int,)}


def _name(text: Any, limit: int = 80) -> str:
    """A name or value taken from the file, as one short printable piece of a message."""
    s = display_name(text if isinstance(text, str) else json.dumps(text, default=str))
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fits(value: Any, allowed: tuple[type, ...]) -> bool:
    # JSON true/false are Python bools, which are ints: a count or an epoch must not be one.
    if isinstance(value, bool):
        return bool in allowed
    return isinstance(value, allowed)


def _refuse_by_name(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: refusing to open a {path.suffix} file: those are Python pickles, which can run "
            "arbitrary code when loaded; latentctl reads only .safetensors checkpoints"
        )


def _not_safetensors(path: Path, head: bytes, reason: str) -> CheckpointError:
    """The error for a file that failed the safetensors structure check. Only now is the first byte
    a hint: a valid safetensors header length can start with 0x80 (or spell "PK") too."""
    if head[:2] == b"PK":
        what = "a zip archive (torch.save's format, a pickled PyTorch file)"
    elif head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        what = f"a Python pickle (protocol {head[1]}, a pickled PyTorch file)"
    else:
        return CheckpointError(f"{path}: not a safetensors file ({reason})")
    return CheckpointError(
        f"{path}: this looks like {what}, not safetensors; latentctl never unpickles files because "
        "they can run arbitrary code"
    )


def _reject_constant(name: str) -> Any:
    # safetensors' own (Rust) parser rejects NaN and Infinity; so does this one, to agree with it.
    raise ValueError(f"{name} is not JSON")


def _check_entries(path: Path, header: dict[str, Any], data_len: int) -> None:
    """Every tensor entry is well-formed, and together they tile the data exactly, as safetensors
    requires: no gap, no overlap, nothing past the end, no trailing bytes."""
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: its safetensors __metadata__ is not a map of strings; the file is damaged")
    spans = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: tensor {_name(name)}"
        if not isinstance(spec, dict):
            raise CheckpointError(f"{where} has no dtype/shape/data_offsets entry; the file is damaged")
        dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in _DTYPE_BITS:
            raise CheckpointError(f"{where} has unknown dtype {_name(dtype)}; the file is damaged")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise CheckpointError(f"{where} has an invalid shape {_name(shape)}; the file is damaged")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_int(o) and o >= 0 for o in offsets)
            and offsets[0] <= offsets[1]
        ):
            raise CheckpointError(f"{where} has invalid data_offsets {_name(offsets)}; the file is damaged")
        begin, end = offsets
        if end > data_len:
            raise CheckpointError(
                f"{where} ends at data byte {end} but the file holds only {data_len}; is it truncated?"
            )
        bits = math.prod(shape) * _DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            raise CheckpointError(
                f"{where} is {dtype} {shape}, which does not fill its {end - begin} data bytes; the file is damaged"
            )
        spans.append((begin, end, name))
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            raise CheckpointError(
                f"{path}: tensor {_name(name)} starts at data byte {begin}, not {pos}: tensors overlap or "
                "leave a gap; the file is damaged"
            )
        pos = end
    if pos != data_len:
        raise CheckpointError(
            f"{path}: its tensors cover {pos} of the {data_len} data bytes; the file has trailing bytes or is damaged"
        )


def read_raw_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header: 8-byte little-endian length, then that many bytes of JSON.

    A file is recognised as safetensors by that structure alone: a length that fits the file and
    the limit, then a JSON object. Its tensor entries are then checked against the file's size."""
    path = checkpoint_in(path)
    _refuse_by_name(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: file is too short ({len(head)} bytes) to be a safetensors checkpoint")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise _not_safetensors(
                    path, head, f"bad header length {n} for a file of {size} bytes; is it truncated?"
                )
            raw = f.read(n)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except OSError as err:
        raise StorageError(describe_os_error(err, "read the checkpoint", path)) from None
    try:
        # RecursionError: deeply nested arrays; ValueError also covers ints too long to convert.
        header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _not_safetensors(path, head, "header is not JSON") from None
    if not isinstance(header, dict):
        raise _not_safetensors(path, head, "header is not a JSON object")
    _check_entries(path, header, size - 8 - n)
    return header


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # evaluates the annotations' strings: once per class


def _check_config_types(path: Path, cls: type, key: str, data: Any) -> dict[str, Any]:
    """A config from the file is a JSON object whose values have the dataclass' types, so that
    no wrong-typed value (a float width, a bool latent size) reaches the networks."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: checkpoint metadata '{key}' is not a JSON object")
    hints = _type_hints(cls)
    for name, value in data.items():
        tp = hints.get(name)
        if tp is None:
            continue  # from_dict names unknown keys as a newer writer's
        allowed = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
        if float in allowed:
            allowed += (int,)  # a number written without a decimal point is still a number
        if not _fits(value, allowed):
            expected = " or ".join(
                _TYPE_WORDS[a] for a in allowed if a in _TYPE_WORDS and not (a is int and float in allowed)
            )
            raise CheckpointError(
                f"{path}: checkpoint metadata '{key}' has {name} = {_name(value, 40)}, which is not {expected}"
            )
    return data


def _check_state(path: Path, state: Any, kind: str) -> dict[str, Any]:
    """The training state's known keys have their types; a training checkpoint has all that resume
    reads. Used by ``save`` too, so latentctl never writes a file it would refuse."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint metadata 'training_state' is not a JSON object")
    for table, where, keys in (
        (_STATE_TYPES, "training_state", RESUME_KEYS),
        (_DATA_TYPES, "training_state.data", RESUME_DATA_KEYS),
    ):
        obj = state if table is _STATE_TYPES else state.get("data", {})
        for key, allowed in table.items():
            if key not in obj:
                if kind == KIND_TRAINING and key in keys:
                    raise CheckpointError(
                        f"{path}: a training checkpoint whose {where} lacks '{key}'; it cannot be resumed"
                    )
                continue
            value = obj[key]
            if not _fits(value, allowed) or (_is_int(value) and value < 0):
                raise CheckpointError(f"{path}: {where}.{key} = {_name(value, 40)} is not valid; the file is damaged")
    rng = state.get("rng", {})
    streams = [("torch", rng.get("torch"))] if "torch" in rng or kind == KIND_TRAINING else []
    cuda = rng.get("cuda", [])
    streams += [("cuda", s) for s in (cuda if isinstance(cuda, list) else [cuda])]
    for stream, text in streams:
        try:
            if not isinstance(text, str):
                raise ValueError
            base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            raise CheckpointError(
                f"{path}: training_state.rng.{stream} is not a base64 RNG state; the file is damaged"
            ) from None
    return state


def _check_optimizers(path: Path, opts: Any) -> dict[str, Any]:
    if not isinstance(opts, dict) or not opts:
        raise CheckpointError(
            f"{path}: a training checkpoint whose 'optimizers' metadata is not a JSON object naming them"
        )
    for name, m in opts.items():
        groups = m.get("param_groups") if isinstance(m, dict) else None
        ok = (
            re.fullmatch(r"[A-Za-z0-9_]+", name, re.ASCII) is not None
            and isinstance(groups, list)
            and groups
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
            and all(_is_int(i) and i >= 0 for g in groups for i in g["params"])
        )
        if not ok:
            raise CheckpointError(f"{path}: optimizer {_name(name)}'s param_groups are malformed; the file is damaged")
    return opts


def read_header(path: Path) -> CheckpointInfo:
    """Parse and validate a latentctl checkpoint's metadata without loading any tensor."""
    path = checkpoint_in(path)
    header = read_raw_header(path)
    meta = header.pop("__metadata__", None) or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a latentctl checkpoint (no '{FORMAT}' metadata)")
    try:
        version = int(meta["format_version"])
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: checkpoint metadata has no valid format_version") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this latentctl reads "
            f"({FORMAT_VERSION}); upgrade latentctl"
        )
    if version < 1:
        raise CheckpointError(f"{path}: checkpoint format_version {version} is not valid (the first is 1)")
    kind = meta.get("kind", KIND_GENERATOR)
    if kind not in (KIND_TRAINING, KIND_GENERATOR):
        raise CheckpointError(
            f"{path}: checkpoint kind {_name(kind, 40)} is neither '{KIND_TRAINING}' nor '{KIND_GENERATOR}'"
        )

    def _json(key: str, required: bool = True) -> Any:
        if key not in meta:
            if required:
                raise CheckpointError(f"{path}: checkpoint metadata lacks '{key}'")
            return None
        try:
            return json.loads(meta[key])
        except (ValueError, RecursionError):
            raise CheckpointError(f"{path}: checkpoint metadata '{key}' is not valid JSON") from None

    model = from_dict(
        ModelConfig, _check_config_types(path, ModelConfig, "model_config", _json("model_config")), source=str(path)
    )
    train_dict = _json("train_config", required=False)
    train = None
    if train_dict is not None and _check_config_types(path, TrainConfig, "train_config", train_dict):
        train = from_dict(TrainConfig, train_dict, source=str(path))
    state = _json("training_state", required=kind == KIND_TRAINING)
    state = _check_state(path, {} if state is None else state, kind)
    if kind == KIND_TRAINING:
        _check_optimizers(path, _json("optimizers"))
    return CheckpointInfo(
        path=path,
        kind=kind,
        format_version=version,
        latentctl_version=meta.get("latentctl_version", "?"),
        model=model,
        model_id=meta.get("model_id", ""),
        run_id=meta.get("run_id", ""),
        train=train,
        state=state,
        tensors=header,
        raw_metadata=dict(meta),
    )


# ---- torch side -------------------------------------------------------------------------------


def model_id_of(generator: torch.nn.Module) -> str:
    """A short hash of the generator's weights: latents record it to know which model made them."""
    h = hashlib.sha256()
    for name, t in sorted(generator.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


def encode_rng(state: torch.Tensor) -> str:
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def decode_rng(text: str) -> torch.Tensor:
    import torch

    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def _optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            tensors[f"{prefix}.{idx}.{key}"] = value.detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups}


# Adam's per-parameter state: "step" is a scalar, the moments have the parameter's shape.
_ADAM_MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_OPT_TENSOR = re.compile(r"opt\.([A-Za-z0-9_]+)\.([0-9]+)\.([A-Za-z0-9_]+)", re.ASCII)
_NUMBER_HYPERS = ("lr", "eps", "weight_decay")
_FLAG_HYPERS = ("amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused", "decoupled_weight_decay")
# Flags that change where and how a step runs; latentctl never sets them, so a saved value that
# differs from a fresh optimizer's would only make the first resumed step fail.
_DEVICE_FLAGS = ("capturable", "differentiable", "fused")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]


def _check_param_group(path: Path, name: str, saved: dict, live: dict) -> None:
    for key in _NUMBER_HYPERS:
        if key in live and not (key in saved and _fits(saved[key], (int, float))):
            raise CheckpointError(f"{path}: optimizer {name}'s {key} is missing or not a number; the file is damaged")
    betas = saved.get("betas")
    if "betas" in live and not (
        isinstance(betas, list) and len(betas) == 2 and all(_fits(b, (int, float)) for b in betas)
    ):
        raise CheckpointError(f"{path}: optimizer {name}'s betas are missing or not two numbers; the file is damaged")
    for key in _FLAG_HYPERS:
        if key in saved and saved[key] is not None and not isinstance(saved[key], bool):
            raise CheckpointError(
                f"{path}: optimizer {name}'s {key} = {_name(saved[key], 40)} is not true, false or null"
            )
    for key in _DEVICE_FLAGS:
        if key in saved and key in live and bool(saved[key]) != bool(live[key]):
            raise CheckpointError(
                f"{path}: optimizer {name} was saved with {key}={saved[key]}, which latentctl never uses; "
                "the file was not written by latentctl or is damaged"
            )


def _restore_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict, path: Path) -> None:
    """Check the saved state against the live optimizer's own parameters before handing it over:
    torch accepts moments of the wrong shape or a missing one and fails only at the next step."""
    import torch

    name = prefix.split(".", 1)[1]
    saved_groups, live_groups = meta["param_groups"], opt.param_groups
    if len(saved_groups) != len(live_groups):
        raise CheckpointError(
            f"{path}: optimizer {name} has {len(saved_groups)} parameter groups but the model's has {len(live_groups)}"
        )
    params: dict[int, torch.Tensor] = {}
    for saved, live in zip(saved_groups, live_groups):
        if len(saved["params"]) != len(live["params"]):
            raise CheckpointError(
                f"{path}: optimizer {name} holds {len(saved['params'])} parameters but the model's has "
                f"{len(live['params'])}; the file does not match its own config"
            )
        _check_param_group(path, name, saved, live)
        params.update(zip(saved["params"], live["params"]))
    if len(params) != sum(len(g["params"]) for g in live_groups):
        raise CheckpointError(f"{path}: optimizer {name} lists a parameter index twice; the file is damaged")
    state: dict[int, dict[str, Any]] = {}
    for tname, value in tensors.items():
        m = _OPT_TENSOR.fullmatch(tname)
        if not tname.startswith(prefix + ".") or m is None:
            continue  # load() has checked that every opt.* name has this form
        idx, key = int(m.group(2)), m.group(3)
        if idx not in params:
            raise CheckpointError(
                f"{path}: {_name(tname)} is for parameter {idx}, which optimizer {name} does not have"
            )
        want = [] if key == "step" else list(params[idx].shape)
        if list(value.shape) != want:
            raise CheckpointError(
                f"{path}: {_name(tname)} has shape {list(value.shape)} but its parameter needs {want}; "
                "the file does not match its own config"
            )
        state.setdefault(idx, {})[key] = value
    if isinstance(opt, torch.optim.Adam):
        for idx, st in state.items():
            group = next(g for g in saved_groups if idx in g["params"])
            needed = {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if group.get("amsgrad") else set())
            if needed - set(st):
                raise CheckpointError(
                    f"{path}: optimizer {name}'s state for parameter {idx} lacks {', '.join(sorted(needed - set(st)))}; "
                    "the file is damaged"
                )
    try:
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path}: optimizer state does not fit the model: {_one_line(err)}") from None


def _state_dict_cpu(module: torch.nn.Module, prefix: str) -> dict:
    # clone: safetensors refuses tensors that share memory, and the copy must not change while saved
    return {f"{prefix}.{k}": v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def save(
    path: Path,
    *,
    generator: torch.nn.Module,
    model_config: ModelConfig,
    run_id: str = "",
    partner: torch.nn.Module | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    train_config: TrainConfig | None = None,
    state: dict[str, Any] | None = None,
    ema: torch.nn.Module | None = None,
    source: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically. With optimizers it is a training checkpoint (resumable);
    without, a small one for sampling and sharing. ``partner`` is the second network: the
    discriminator (GAN, needed only to resume) or the encoder (AE/VAE, needed by ``encode``).
    ``ema`` is the moving-average generator (``G_ema.*``), which sampling then uses by default.
    ``source`` records where an imported generator came from (``CheckpointInfo.source``)."""
    from safetensors.torch import save as st_save

    from latentctl.config import dumps, to_dict
    from latentctl.models import partner_prefix

    generator = unwrap(generator)
    tensors = _state_dict_cpu(generator, "G")
    if ema is not None:
        tensors.update(_state_dict_cpu(unwrap(ema), EMA_PREFIX))
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "latentctl_version": __version__,
        "model_config": dumps(to_dict(model_config)),
        # The identity of the generator that sampling uses: latents are stamped with it.
        "model_id": model_id_of(unwrap(ema) if ema is not None else generator),
        "run_id": run_id,
        "kind": KIND_GENERATOR,
    }
    if source:
        meta["source"] = dumps(source)
    if partner is not None:
        tensors.update(_state_dict_cpu(unwrap(partner), partner_prefix(model_config)))
    if optimizers:
        opt_meta = {}
        for name, opt in (optimizers or {}).items():
            t, m = _optimizer_tensors(f"opt.{name}", opt)
            tensors.update(t)
            opt_meta[name] = m
        meta.update(
            kind=KIND_TRAINING,
            train_config=dumps(to_dict(train_config)) if train_config else "{}",
            optimizers=dumps(opt_meta),
            training_state=dumps(state or {}),
        )
    elif state:
        meta["training_state"] = dumps(state)
    try:  # the same check read_header makes: never write a file latentctl would refuse
        _check_state(Path(path), json.loads(meta.get("training_state", "{}")), meta["kind"])
    except CheckpointError as err:
        raise CheckpointError(f"refusing to write {err}") from None
    data = st_save(tensors, metadata=meta)
    with atomic_writer(Path(path)) as f:
        f.write(data)
    return Path(path)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel or torch.compile wrappers."""
    while True:
        inner = getattr(module, "module", None) or getattr(module, "_orig_mod", None)
        if inner is None:
            return module
        module = inner


def _fixed_name(name: str) -> str:
    # Older or foreign writers saved wrapped modules (torch.compile's "_orig_mod", DDP's "module");
    # dropping those whole name parts maps their names onto the plain module's, here once.
    return ".".join(part for part in name.split(".") if part not in ("_orig_mod", "module"))


def _fix_names(tensors: dict) -> dict:
    return {_fixed_name(name): t for name, t in tensors.items()}


def _describe(cfg: ModelConfig) -> str:
    channels = f", {cfg.channels} channels" if cfg.channels != 3 else ""
    if cfg.imported:
        return f"imported {cfg.arch} {cfg.image_size}px, latent {cfg.latent_dim}{channels}"
    return f"{cfg.family} {cfg.image_size}px, width {cfg.width}, latent {cfg.latent_dim}{channels}"


def _expected_tensors(info: CheckpointInfo) -> dict[str, dict[str, Any]]:
    """Name -> (shape, dtype) of every network tensor the config describes, from modules built on
    torch's "meta" device: no memory is spent on a config the file's tensors may not match."""
    import warnings

    import torch

    from latentctl.models import build_models, partner_prefix

    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # zero-element layers warn that initialising them is a no-op
            G, partner = build_models(info.model)
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError, CheckpointError) as err:
        raise CheckpointError(
            f"{info.path}: its model_config ({_describe(info.model)}) cannot be built: {_one_line(err)}"
        ) from None
    expected = {
        prefix: {f"{prefix}.{k}": (list(v.shape), v.dtype) for k, v in module.state_dict().items()}
        for prefix, module in (("G", G), (partner_prefix(info.model), partner))
        if module is not None
    }
    # The EMA generator (when the run keeps one) has G's tensors under its own prefix.
    expected[EMA_PREFIX] = {EMA_PREFIX + name[1:]: spec for name, spec in expected["G"].items()}
    return expected


def _check_tensor_set(info: CheckpointInfo, training: bool) -> bool:
    """Compare the header's tensor entries with what the config needs, before anything is built or
    read: a wrong shape is named here rather than surfacing as torch's "size mismatch". Returns
    whether the partner network (discriminator or encoder) is stored."""
    import torch

    from latentctl.models import partner_prefix

    path, cfg = info.path, info.model
    expected = _expected_tensors(info)
    fixed: dict[str, str] = {}
    for name in info.tensors:
        plain = _fixed_name(name)
        if plain in fixed:
            raise CheckpointError(f"{path}: holds {_name(plain)} twice (as {_name(fixed[plain])} and {_name(name)})")
        fixed[plain] = name
    partner = partner_prefix(cfg)
    has_partner = any(n.startswith(partner + ".") for n in fixed)
    if training and not has_partner:
        raise CheckpointError(f"{path}: a training checkpoint without its {partner}.* tensors; it cannot be resumed")
    if has_partner and partner not in expected:
        raise CheckpointError(
            f"{path}: holds {partner}.* tensors, which an imported {cfg.arch} generator does not have"
        )
    for prefix, want in expected.items():
        if prefix == partner and not has_partner:
            continue
        if prefix == EMA_PREFIX and not any(n.startswith(EMA_PREFIX + ".") for n in fixed):
            continue
        stored = {n for n in fixed if n.startswith(prefix + ".")}
        missing, unexpected = sorted(set(want) - stored), sorted(stored - set(want))
        if missing:
            raise CheckpointError(
                f"{path}: lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}, which the config "
                f"({_describe(cfg)}) needs; the file does not match its own config"
            )
        if unexpected:
            raise CheckpointError(
                f"{path}: holds {', '.join(_name(n) for n in unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}, "
                f"which the model its config ({_describe(cfg)}) describes does not have"
            )
        for plain, (shape, dtype) in want.items():
            spec = info.tensors[fixed[plain]]
            if spec["shape"] != shape:
                raise CheckpointError(
                    f"{path}: {plain} has shape {spec['shape']} but the config ({_describe(cfg)}) needs {shape}; "
                    "the file does not match its own config"
                )
            if dtype.is_floating_point and spec["dtype"] not in FLOAT_DTYPES:
                raise CheckpointError(
                    f"{path}: {plain} is {spec['dtype']}, not floating-point weights; the file is damaged"
                )
    if training:
        opts = json.loads(info.raw_metadata["optimizers"])  # read_header checked its structure
        indices = {name: {i for g in m["param_groups"] for i in g["params"]} for name, m in opts.items()}
        for plain in fixed:
            if not plain.startswith("opt."):
                continue
            m = _OPT_TENSOR.fullmatch(plain)
            if m is None or m.group(1) not in indices:
                raise CheckpointError(
                    f"{path}: {_name(plain)} is not named opt.<optimizer>.<index>.<key> for an optimizer in its metadata"
                )
            if int(m.group(2)) not in indices[m.group(1)]:
                raise CheckpointError(f"{path}: {_name(plain)} is for a parameter optimizer {m.group(1)} does not have")
            if info.tensors[fixed[plain]]["dtype"] not in FLOAT_DTYPES:
                raise CheckpointError(
                    f"{path}: {_name(plain)} is {info.tensors[fixed[plain]]['dtype']}, not floating-point; the file is damaged"
                )
        rng_bytes = len(base64.b64decode(info.state["rng"]["torch"]))
        if rng_bytes != torch.get_rng_state().numel():
            raise CheckpointError(
                f"{path}: training_state.rng.torch holds {rng_bytes} bytes, not the {torch.get_rng_state().numel()} "
                "of a torch CPU RNG state; the file is damaged"
            )
    return has_partner


@dataclass
class Loaded:
    info: CheckpointInfo
    raw_generator: torch.nn.Module  # G as trained
    partner: torch.nn.Module | None = None  # discriminator (gan) or encoder (ae, vae), when stored
    tensors: dict = field(default_factory=dict)
    ema: torch.nn.Module | None = None  # the moving-average generator, when the run kept one
    use_ema: bool = True

    @property
    def generator(self) -> torch.nn.Module:
        """What sampling uses: the EMA generator when there is one (unless loaded with ema=False)."""
        return self.ema if (self.ema is not None and self.use_ema) else self.raw_generator

    @property
    def discriminator(self) -> torch.nn.Module | None:
        return self.partner if self.info.model.family == "gan" else None

    @property
    def encoder(self) -> torch.nn.Module | None:
        return self.partner if self.info.model.family != "gan" else None

    def restore_optimizers(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        meta = json.loads(self.info.raw_metadata.get("optimizers", "{}"))
        for name, opt in optimizers.items():
            if name not in meta:
                raise CheckpointError(f"{self.info.path}: no optimizer state for {name}")
            _restore_optimizer(f"opt.{name}", opt, self.tensors, meta[name], self.info.path)


def load(path: Path, *, device: Any = "cpu", training: bool = False, ema: bool = True) -> Loaded:
    """Rebuild the model(s) a checkpoint describes and load their weights.

    ``training=True`` also builds the discriminator and keeps the optimizer tensors, and requires a
    training checkpoint. The header and the tensor set are checked against the config first, so a
    damaged or hostile file is refused with one line and nothing is allocated for it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from latentctl.models import build_models, partner_prefix

    path = checkpoint_in(path)
    info = read_header(path)
    if training and info.kind != KIND_TRAINING:
        raise CheckpointError(f"{path} holds only a generator; resuming training needs the run's full checkpoint")
    has_partner = _check_tensor_set(info, training)
    try:
        tensors = _fix_names(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read tensors ({_one_line(err)}); the file may be damaged") from None
    G, D = build_models(info.model)

    def _load(module: torch.nn.Module, prefix: str) -> None:
        sd = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        try:
            module.load_state_dict(sd)
        except RuntimeError as err:  # _check_tensor_set should have named any mismatch already
            raise CheckpointError(
                f"{path}: {prefix} weights do not fit the model in its config: {_one_line(err)}"
            ) from None

    _load(G, "G")
    G.to(device)
    G_ema = None
    if any(k.startswith(EMA_PREFIX + ".") for k in tensors):
        from latentctl.models import build_generator

        G_ema = build_generator(info.model)
        _load(G_ema, EMA_PREFIX)
        G_ema.to(device)
    if not has_partner:
        return Loaded(info=info, raw_generator=G, ema=G_ema, use_ema=ema)
    prefix = partner_prefix(info.model)
    _load(D, prefix)
    D.to(device)
    return Loaded(info=info, raw_generator=G, partner=D, tensors=tensors if training else {}, ema=G_ema, use_ema=ema)
