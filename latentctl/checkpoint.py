"""The checkpoint format every command shares (docs/checkpoint-format.md).

A checkpoint is a safetensors file. Its ``__metadata__`` (strings only) holds the format name and
version, the latentctl version, the model config as JSON and, for training checkpoints, the train
config, optimizer hyper-parameters and training state (epoch, step, RNG states, data fingerprint).
Tensors are named ``G.*`` / ``D.*`` for the networks and ``opt.G.*`` / ``opt.D.*`` for Adam's state.

The header is read with the standard library only (``read_header``), so ``latentctl info`` needs no
torch. ``load`` is the one place that fixes up older or foreign layouts. Pickle-based files are
refused by name and by content, and never unpickled.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentctl import __version__
from latentctl.config import ModelConfig, TrainConfig, from_dict
from latentctl.errors import CheckpointError
from latentctl.fsutil import atomic_writer
from latentctl.workspace import checkpoint_in

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT = "latentctl-checkpoint"
FORMAT_VERSION = 1
KIND_TRAINING = "training"  # both nets, both optimizers, training state: resumable
KIND_GENERATOR = "generator"  # generator weights only: for sampling and sharing

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


def _refuse_pickles(path: Path, head: bytes) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: refusing to open a {path.suffix} file: those are Python pickles, which can run "
            "arbitrary code when loaded; latentctl reads only .safetensors checkpoints"
        )
    # Zip (torch.save) and raw pickle (protocol 2+ starts with 0x80) files under another name.
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise CheckpointError(
            f"{path}: this looks like a pickled PyTorch file, not safetensors; latentctl never "
            "unpickles files because they can run arbitrary code"
        )


def read_raw_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header: 8-byte little-endian length, then that many bytes of JSON."""
    path = checkpoint_in(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            _refuse_pickles(path, head)
            if len(head) < 8:
                raise CheckpointError(f"{path}: file is too short to be a safetensors checkpoint")
            (n,) = struct.unpack("<Q", head)
            size = path.stat().st_size
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise CheckpointError(
                    f"{path}: not a safetensors file (bad header length); is it truncated?"
                )
            header = json.loads(f.read(n).decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (header is not a JSON object)")
    return header


def read_header(path: Path) -> CheckpointInfo:
    """Parse and validate a latentctl checkpoint's metadata without loading any tensor."""
    path = checkpoint_in(path)
    header = read_raw_header(path)
    meta = header.pop("__metadata__", None) or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: a safetensors file, but not a latentctl checkpoint (no '{FORMAT}' metadata)"
        )
    try:
        version = int(meta["format_version"])
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: checkpoint metadata has no valid format_version") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this latentctl reads "
            f"({FORMAT_VERSION}); upgrade latentctl"
        )

    def _json(key: str, required: bool = True) -> Any:
        if key not in meta:
            if required:
                raise CheckpointError(f"{path}: checkpoint metadata lacks '{key}'")
            return None
        try:
            return json.loads(meta[key])
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: checkpoint metadata '{key}' is not valid JSON") from None

    model = from_dict(ModelConfig, _json("model_config"), source=str(path))
    train_dict = _json("train_config", required=False)
    return CheckpointInfo(
        path=path,
        kind=meta.get("kind", KIND_GENERATOR),
        format_version=version,
        latentctl_version=meta.get("latentctl_version", "?"),
        model=model,
        model_id=meta.get("model_id", ""),
        run_id=meta.get("run_id", ""),
        train=from_dict(TrainConfig, train_dict, source=str(path)) if train_dict else None,
        state=_json("training_state", required=False) or {},
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


def _restore_optimizer(
    prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict, path: Path
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith(prefix + "."):
            continue
        idx, key = name[len(prefix) + 1 :].split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    try:
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: optimizer state does not fit the model: {err}") from None


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
) -> Path:
    """Write a checkpoint atomically. With optimizers it is a training checkpoint (resumable);
    without, a small one for sampling and sharing. ``partner`` is the second network: the
    discriminator (GAN, needed only to resume) or the encoder (AE/VAE, needed by ``encode``)."""
    from safetensors.torch import save as st_save

    from latentctl.config import dumps, to_dict
    from latentctl.models import partner_prefix

    generator = unwrap(generator)
    tensors = _state_dict_cpu(generator, "G")
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "latentctl_version": __version__,
        "model_config": dumps(to_dict(model_config)),
        "model_id": model_id_of(generator),
        "run_id": run_id,
        "kind": KIND_GENERATOR,
    }
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


def _fix_names(tensors: dict) -> dict:
    # Older or foreign writers saved wrapped modules; strip their prefixes here, once.
    fixed = {}
    for name, t in tensors.items():
        for junk in ("_orig_mod.", "module."):
            name = name.replace(junk, "")
        fixed[name] = t
    return fixed


@dataclass
class Loaded:
    info: CheckpointInfo
    generator: torch.nn.Module
    partner: torch.nn.Module | None = None  # discriminator (gan) or encoder (ae, vae), when stored
    tensors: dict = field(default_factory=dict)

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


def load(path: Path, *, device: Any = "cpu", training: bool = False) -> Loaded:
    """Rebuild the model(s) a checkpoint describes and load their weights.

    ``training=True`` also builds the discriminator and keeps the optimizer tensors, and requires a
    training checkpoint.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from latentctl.models import build_models, partner_prefix

    path = checkpoint_in(path)
    info = read_header(path)
    if training and info.kind != KIND_TRAINING:
        raise CheckpointError(
            f"{path} holds only a generator; resuming training needs the run's full checkpoint"
        )
    try:
        tensors = _fix_names(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read tensors ({err}); the file may be damaged") from None
    G, D = build_models(info.model)

    def _load(module: torch.nn.Module, prefix: str) -> None:
        sd = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        missing, unexpected = module.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{path}: {prefix} weights do not fit the model in its config "
                f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
            )

    _load(G, "G")
    G.to(device)
    prefix = partner_prefix(info.model)
    if not any(k.startswith(prefix + ".") for k in tensors):
        return Loaded(info=info, generator=G)
    _load(D, prefix)
    D.to(device)
    return Loaded(info=info, generator=G, partner=D, tensors=tensors if training else {})
