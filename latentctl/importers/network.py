"""What an importer returns, and the checks both readers share (no torch, no TensorFlow).

A reader turns a foreign file into an ``ImportedNetwork``: a spec that ``SequentialGenerator``
builds, and float32 numpy tensors in torch layout named as that network names them. ``finish``
is the one place that checks the two agree, so neither reader can hand over a half-matching pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentctl.errors import CheckpointError, UsageError
from latentctl.models.sequential import expected_tensors, spec_from_layers, validate_spec


@dataclass
class ImportedNetwork:
    spec: dict[str, Any]  # JSON-able; validated by sequential.validate_spec
    tensors: dict[str, np.ndarray]  # float32, torch layout, names matching expected_tensors(spec)
    source_format: str  # "keras2-h5" | "keras3-h5" | "keras-zip" | "torch-state-dict" | "safetensors"
    layer_names: list[str] = field(default_factory=list)  # original layer names / tensor keys, in order
    part: str | None = None  # the sub-model taken, when the file held several


def one_line(text: str) -> str:
    """Messages are one line: the CLI prints them after the file name."""
    return " ".join(str(text).split())


def refuse(path: Path, why: str) -> CheckpointError:
    return CheckpointError(one_line(f"{Path(path).name}: {why}"))


def choose_part(path: Path, parts: list[str], part: str | None, what: str = "sub-models") -> str:
    """The one sub-model to import: ``part`` if it names one; the only one; else UsageError listing them."""
    if part is not None:
        if part in parts:
            return part
        raise UsageError(
            one_line(f"{Path(path).name}: no {part!r} in this file; choose a part from: {', '.join(parts)}")
        )
    if len(parts) == 1:
        return parts[0]
    raise UsageError(
        one_line(f"{Path(path).name} holds several {what} ({', '.join(parts)}); pick one with --part NAME")
    )


def float32(path: Path, name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise refuse(path, f"tensor {name} holds {array.dtype}, not numbers")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise refuse(path, f"tensor {name} holds NaN or infinity")
    return np.ascontiguousarray(array)


def finish(
    path: Path,
    latent_dim: int,
    layers: list[dict[str, Any]],
    tensors: dict[str, np.ndarray],
    source_format: str,
    layer_names: list[str],
    part: str | None = None,
) -> ImportedNetwork:
    """Derive the spec's sizes, check the tensors fit it exactly, and bundle the result."""
    try:
        spec = spec_from_layers(latent_dim, layers)
        validate_spec(spec)
    except CheckpointError as err:
        raise refuse(path, str(err)) from None
    expected = expected_tensors(spec)
    for name, shape in expected.items():
        if name not in tensors:
            raise refuse(path, f"the file has no weights for {name}")
        if tuple(tensors[name].shape) != shape:
            raise refuse(path, f"{name} has shape {tuple(tensors[name].shape)}, the layer needs {shape}")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise refuse(path, f"weights that no layer uses: {', '.join(extra)}")
    arrays = {name: float32(path, name, tensors[name]) for name in expected}
    return ImportedNetwork(spec, arrays, source_format, list(layer_names), part)
