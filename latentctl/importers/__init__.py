"""Opening generators written by other tools (`latentctl import`), without running any code from
the file: Keras ``.h5``/``.keras`` (read with h5py), PyTorch state dicts (``torch.load`` with
``weights_only=True``), safetensors state dicts, and NVIDIA's StyleGAN2 and StyleGAN3 network pickles (a
restricted unpickler that turns NVIDIA's persistent objects into inert records).

Each reader returns the network's own description and its tensors; ``import_generator`` turns that
into a latentctl checkpoint (config in the header, where it came from in ``source``) in a run
folder of the workspace, and every command then opens it as it opens a trained run.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentctl.config import PRIORS, ModelConfig
from latentctl.errors import CheckpointError, UsageError
from latentctl.files.fsutil import describe_os_error
from latentctl.files.workspace import CHECKPOINT_NAME, Workspace, slug

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
TORCH_SUFFIXES = (".pt", ".pth", ".tar", ".bin", ".ckpt")
NVIDIA_MARK = b"torch_utils.persistence"  # the module of NVIDIA's persistent objects, early in the pickle
PROVENANCE_FILE = "import.json"
WHAT_WE_READ = (
    "Keras .h5/.keras, a PyTorch state dict (.pt, .pth, .bin, .tar), a safetensors state dict, "
    "or an NVIDIA StyleGAN2 / StyleGAN3 network pickle (.pkl)"
)
STYLEGAN_LICENCE = (
    "NVIDIA's StyleGAN weights are under NVIDIA's own licence (non-commercial for their released "
    "models); the converted checkpoint keeps that licence"
)


@dataclass
class Imported:
    """What ``read`` found: the config latentctl rebuilds it from, its tensors (numpy, torch
    layout, named as the wrapper's state dict), and the record of where it came from."""

    config: ModelConfig
    tensors: dict[str, Any]
    source: dict[str, Any]


def sniff(path: Path) -> str:
    """Which reader a file needs, by its content first (a renamed file is still recognised) and
    its suffix where the content alone does not tell: keras, torch, safetensors or nvidia."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise UsageError(f"no file at {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder; give the generator's file") from None
    except OSError as err:
        raise CheckpointError(describe_os_error(err, "read", path)) from None
    suffix = path.suffix.lower()
    if _looks_like_safetensors(head, path):  # first: its length prefix can start with 0x80 or "PK"
        return "safetensors"
    if head.startswith(HDF5_MAGIC):
        return "keras"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            raise CheckpointError(f"{path}: a damaged or truncated zip archive; save the model again") from None
        if "config.json" in names or suffix == ".keras":
            return "keras"
        return "torch"
    if head[:1] == b"\x80":
        return "nvidia" if NVIDIA_MARK in head or suffix == ".pkl" else "torch"
    if suffix == ".safetensors":
        return "safetensors"
    if suffix in KERAS_SUFFIXES:
        raise CheckpointError(f"{path}: not an HDF5 file or a .keras zip (is it truncated or damaged?)")
    raise CheckpointError(f"{path}: not a file latentctl can import; it reads {WHAT_WE_READ}")


def _looks_like_safetensors(head: bytes, path: Path) -> bool:
    """safetensors' structure: an 8-byte little-endian header length that fits the file, then a
    JSON object. A pickle or zip never starts that way (their 9th byte is not '{' with such a length)."""
    if len(head) < 10 or head[8:9] != b"{":
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 8 + n <= path.stat().st_size


def read(
    path: Path,
    *,
    part: str | None = None,
    architecture: Path | None = None,
    prior: str = "normal",
    class_index: int | None = None,
) -> Imported:
    """The generator in ``path`` as a latentctl config and tensors; nothing from the file runs."""
    path = Path(path).expanduser()
    if prior not in PRIORS:
        raise UsageError(f"--latent {prior!r} is not one of: {', '.join(PRIORS)}")
    kind = sniff(path)
    if architecture is not None and kind != "torch" and kind != "safetensors":
        raise UsageError("--architecture describes a PyTorch or safetensors state dict; this file carries its own")
    if kind == "nvidia":
        return _from_nvidia(path, part, prior, class_index)
    if class_index is not None:
        raise UsageError("--class picks the class of a conditional StyleGAN; this file is not one")
    if kind == "safetensors":
        _refuse_own_checkpoint(path)
    if kind == "keras":
        from latentctl.importers.keras import read_keras

        net = read_keras(path, part)
    else:
        from latentctl.importers.torch_state import read_torch

        net = read_torch(path, part, architecture, safetensors=kind == "safetensors")
    return _from_sequential(path, net, prior)


def _refuse_own_checkpoint(path: Path) -> None:
    """A latentctl checkpoint (whatever its name: checkpoint.read_raw_header refuses .pt names)
    needs no import; say so rather than reading it as another tool's state dict."""
    from latentctl.files.checkpoint import FORMAT, MAX_HEADER_BYTES

    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n)) if n <= MAX_HEADER_BYTES else {}
    except (OSError, ValueError, struct.error, RecursionError):
        return  # the state-dict reader says what is wrong with it
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if isinstance(meta, dict) and meta.get("format") == FORMAT:
        raise UsageError(f"{path} is already a latentctl checkpoint: use it as it is (latentctl sample {path})")


def _from_sequential(path: Path, net: Any, prior: str) -> Imported:
    spec = net.spec
    height, width = spec["image_size"]
    if height != width:
        raise CheckpointError(
            f"{path}: the generator draws {width}x{height} pictures; latentctl explores square pictures only for now"
        )
    if spec.get("output_range") not in ("tanh", "sigmoid"):
        raise CheckpointError(
            f"{path}: the generator's last layer is not tanh or sigmoid, so the range of its pixels is unknown; "
            "latentctl imports generators that end in one of them"
        )
    try:
        config = ModelConfig(
            family="gan",
            arch="sequential",
            image_size=int(height),
            channels=int(spec["channels"]),
            latent_dim=int(spec["latent_dim"]),
            latent_prior=prior,
            network=spec,
        )
    except UsageError as err:
        raise CheckpointError(f"{path}: {err}") from None
    source = _record(path, net.source_format, part=net.part, layers=list(net.layer_names))
    return Imported(config, {f"net.{k}": v for k, v in net.tensors.items()}, source)


def _from_nvidia(path: Path, part: str | None, prior: str, class_index: int | None) -> Imported:
    from latentctl.importers.nvidia_pickle import read_nvidia_pickle

    if prior != "normal":
        raise UsageError("--latent uniform: StyleGAN's z is standard normal by construction; leave --latent out")
    net = read_nvidia_pickle(path, part)
    if net.kind not in ("stylegan2", "stylegan3"):
        raise CheckpointError(f"{path}: a {net.kind} network; latentctl opens NVIDIA's StyleGAN2 and StyleGAN3")
    tensors = net.tensors
    if net.kind == "stylegan3":  # into the names and settings of latentctl's own StyleGAN3
        from latentctl.models.stylegan3 import convert_nvidia

        ours, tensors = convert_nvidia(net.config, net.tensors)
        net.config = {**ours, "source_init_kwargs": net.config.get("source_init_kwargs")}
    cfg = dict(net.config)
    c_dim = int(cfg.get("c_dim", 0))
    if class_index is not None:
        if not c_dim:
            raise UsageError(f"--class {class_index}: {path.name} is not a conditional model (it has no classes)")
        if not 0 <= class_index < c_dim:
            raise UsageError(f"--class {class_index}: {path.name} has classes 0-{c_dim - 1}")
    cfg["class_index"] = class_index or 0
    try:
        # Commands explore W (models/stylegan.py), so the latent they store is w_dim long.
        config = ModelConfig(
            family="gan",
            arch=net.kind,
            image_size=int(cfg["resolution"]),
            channels=int(cfg["img_channels"]),
            latent_dim=int(cfg["w_dim"]),
            network=cfg,
        )
    except (UsageError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its generator's settings are not usable: {err}") from None
    provenance = dict(net.provenance)
    provenance.pop("file", None)  # the reader's full path: the record keeps the name, not the folder
    source = _record(path, "nvidia-pickle", part=provenance.pop("part", part), layers=None)
    source.update(provenance)
    source["licence"] = STYLEGAN_LICENCE
    return Imported(config, {f"net.{k}": v for k, v in tensors.items()}, source)


def _record(path: Path, fmt: str, *, part: str | None, layers: list[str] | None) -> dict[str, Any]:
    """Where the weights came from: the file's name (not its folder, which says whose disk it was
    on), size and sha256, its format, the part taken and the original layer names."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    record: dict[str, Any] = {"format": fmt, "file": path.name, "size": path.stat().st_size, "sha256": h.hexdigest()}
    if part:
        record["part"] = part
    if layers is not None:
        record["layers"] = layers
    return record


@dataclass
class ImportResult:
    run_dir: Path
    checkpoint: Path
    config: ModelConfig
    source: dict[str, Any]
    replaced: bool


def import_generator(
    ws: Workspace,
    path: Path,
    *,
    name: str | None = None,
    part: str | None = None,
    architecture: Path | None = None,
    prior: str = "normal",
    class_index: int | None = None,
    force: bool = False,
) -> ImportResult:
    """Convert ``path`` into a run of the workspace (``runs/NNNN-NAME/checkpoint.safetensors`` and
    ``import.json``) and make it current. A run of that name is never replaced without ``force``,
    and never when it is a run latentctl trained. The generator is built and run once on a latent
    before anything is written, so a file whose weights draw NaN is refused, not saved."""
    import torch

    from latentctl.files import checkpoint
    from latentctl.files.fsutil import atomic_write_text
    from latentctl.models import build_generator

    path = Path(path).expanduser()
    run_name = slug(name if name is not None else path.stem)
    existing = _run_named(ws, run_name)
    if existing is not None and not (existing / PROVENANCE_FILE).is_file():
        raise UsageError(f"{existing} is a run latentctl trained, not an import; import under another --name")
    if existing is not None and not force:
        raise UsageError(
            f"the workspace already has a run named {run_name} ({existing}); pass --force to replace it, "
            "or --name to import under another name"
        )
    found = read(path, part=part, architecture=architecture, prior=prior, class_index=class_index)
    generator = build_generator(found.config)
    _load(generator, found.tensors, path)
    _check_draws(generator, found.config, path, torch)
    run_dir = existing if existing is not None else ws.new_run_dir(run_name)
    target = run_dir / CHECKPOINT_NAME
    checkpoint.save(
        target,
        generator=generator,
        model_config=found.config,
        run_id=hashlib.sha256(found.source["sha256"].encode()).hexdigest()[:12],
        source=found.source,
    )

    atomic_write_text(run_dir / PROVENANCE_FILE, json.dumps(found.source, indent=2) + "\n")
    ws.set_current(run_dir)
    return ImportResult(run_dir, target, found.config, found.source, replaced=existing is not None)


def _run_named(ws: Workspace, run_name: str) -> Path | None:
    from latentctl.files.workspace import run_dirs, run_name_of

    return next((folder for folder in run_dirs(ws) if run_name_of(folder) == run_name), None)


def _load(generator: Any, tensors: dict[str, Any], path: Path) -> None:
    import torch

    own = generator.state_dict()
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{path}: its tensors do not fit the network it describes (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise CheckpointError(
                f"{path}: {key} has shape {tuple(value.shape)} but the network needs {tuple(own[key].shape)}"
            )
    generator.load_state_dict({k: torch.as_tensor(v, dtype=own[k].dtype) for k, v in tensors.items()})


def _check_draws(generator: Any, config: ModelConfig, path: Path, torch: Any) -> None:
    from latentctl.models.interface import seed_latents

    generator.eval()
    with torch.inference_mode():
        out = generator(torch.from_numpy(seed_latents(generator, [0])))
    want = (1, config.channels, config.image_size, config.image_size)
    if tuple(out.shape) != want:
        raise CheckpointError(f"{path}: the network drew a {tuple(out.shape)} tensor, not {want}; it cannot be used")
    if not torch.isfinite(out).all():
        raise CheckpointError(f"{path}: the generator's weights draw NaN or infinite pixels; it cannot be used")
