"""Directions found without hand-picking: SeFa and GANSpace (BRIEF.md, "Steering a latent space").

* SeFa (Shen & Zhou 2021): the generator's first layer maps z through ``A`` (the Dense
  latent -> 8192 weight). A unit move ``v`` changes that layer's input by ``A v``, so the
  directions that change it most are the top eigenvectors of ``AᵀA``. Closed form, no sampling.
* GANSpace (Härkönen et al. 2020): PCA of the first layer's activations over many sampled z; each
  principal component is carried back to z by least squares (``z ≈ Σ x_k v_k``) and normalised.

Both return unit vectors, so strength 1 along one is one prior standard deviation (z ~ N(0, I)),
the same unit ``apply`` uses for ``attr-vector --unit`` directions. ``measure`` turns what ``find``
found into what `latentctl directions` saves, draws and prints (a ``DirectionsReport``). Library
code: no printing; the slow parts report ``on_progress(done, total)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentctl.errors import UsageError

METHODS = ("sefa", "pca")
# What ``values`` holds per method, as written into each entry's meta.
VALUE_NAMES = {"sefa": "eigenvalue", "pca": "explained_variance"}
SWEEP_STRENGTHS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)


@dataclass(frozen=True)
class Directions:
    method: str
    vectors: np.ndarray  # (k, d) float32, unit rows, rank order
    values: np.ndarray  # (k,) eigenvalues of AᵀA (sefa) or explained-variance ratios (pca)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def value_name(self) -> str:
        return VALUE_NAMES[self.method]


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UsageError(f"unknown --method {method!r}; choose sefa or pca")
    return method


def check_k(k: int, latent_dim: int, *, space: str = "") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= latent_dim:
        room = (
            f"W+ latents hold {latent_dim} independent directions (every layer's w comes from one w)"
            if space == "w+"
            else f"this model's latents have {latent_dim} dimensions"
        )
        raise UsageError(f"-k {k!r} is out of range: {room}, so give 1-{latent_dim}")
    return int(k)


def max_directions(config: Any) -> int:
    """How many directions there are to find: the latent size, or in W+ the w size. SeFa
    factorises the w_dim-wide style affines, and the W+ latents of seeds (one w at every layer)
    span only w_dim dimensions, so PCA finds no more there either."""
    return int(config.network["w_dim"]) if config.latent_space == "w+" else config.latent_dim


def parse_layers(text: str) -> tuple[int, int]:
    """``--layers`` text, "FIRST-LAST" or one index, as (first, last) w indices."""
    parts = text.strip().split("-")
    try:
        first, last = (int(parts[0]), int(parts[-1])) if 1 <= len(parts) <= 2 else (None, None)
    except ValueError:
        first = last = None
    if first is None or last is None or first < 0 or last < first:
        raise UsageError(f"--layers {text!r} is not a range of layer indices like 0-3 (or one index, like 5)")
    return first, last


def _orient(vectors: np.ndarray) -> np.ndarray:
    # Eigen- and singular vectors have arbitrary signs; fixing the largest component positive makes
    # "sefa-1=+2" mean the same thing on every run and every platform.
    idx = np.argmax(np.abs(vectors), axis=1)
    signs = np.sign(vectors[np.arange(len(vectors)), idx])
    signs[signs == 0] = 1.0
    return vectors * signs[:, None]


def sefa(weight: np.ndarray, k: int) -> Directions:
    """Top-``k`` eigenvectors of ``AᵀA`` for ``weight`` A (out_features, latent_dim)."""
    a = np.asarray(weight, dtype=np.float64)
    if a.ndim != 2:
        raise UsageError(f"SeFa needs a 2-D weight (out, latent_dim), got shape {a.shape}")
    k = check_k(k, a.shape[1])
    values, vectors = np.linalg.eigh(a.T @ a)  # ascending; columns are eigenvectors
    order = np.argsort(values)[::-1][:k]
    rows = _orient(vectors[:, order].T)
    return Directions(
        "sefa",
        rows.astype(np.float32),
        values[order].astype(np.float64),
        meta={"eigenvalue_total": float(values.sum())},
    )


def _top_components(y: np.ndarray, k: int, rng: np.random.Generator, iters: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` right singular vectors and values of ``y`` (n, m), by randomised subspace
    iteration: never forms the m x m covariance (67 M entries for the seed's 8192 features)."""
    q_dim = min(k + 10, min(y.shape))  # oversampling makes the top k accurate
    q, _ = np.linalg.qr(y @ rng.standard_normal((y.shape[1], q_dim)).astype(y.dtype))
    for _ in range(iters):
        q, _ = np.linalg.qr(y @ (y.T @ q))
    _, s, vt = np.linalg.svd((q.T @ y).astype(np.float64), full_matrices=False)
    return vt[:k], s[:k]


def first_layer_activations(
    generator: Any,
    z: np.ndarray,
    *,
    device: Any = "cpu",
    batch_size: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The generator's first features (models/interface.py; the seed's leaky_relu(fc(z))) as
    float32 (n, features): the early layer GANSpace takes its PCA of. float32 because 10,000
    samples of the seed's 8192 features are 330 MB already."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(z), batch_size):
            zb = torch.from_numpy(np.ascontiguousarray(z[start : start + batch_size], dtype=np.float32)).to(device)
            out.append(generator.first_features(zb).float().reshape(len(zb), -1).cpu().numpy())
            if on_progress is not None:
                on_progress(start + len(zb), len(z))
    return np.concatenate(out)


def pca(
    generator: Any,
    k: int,
    *,
    samples: int = 10_000,
    seed: int = 0,
    device: Any = "cpu",
    on_progress: Callable[[int, int], None] | None = None,
) -> Directions:
    """GANSpace on the first layer: PCA over ``samples`` seeded z, regressed back to z;
    ``on_progress(done, samples)`` as their activations are computed."""
    dim = generator.config.latent_dim
    k = check_k(k, max_directions(generator.config), space=generator.config.latent_space)
    if samples < max(2 * k, dim + 1):
        # The least-squares map back to z needs more samples than unknowns to be determined.
        raise UsageError(
            f"--samples {samples} is too few: PCA of a {dim}-dimensional latent space needs at least {max(2 * k, dim + 1)}"
        )
    from latentctl.models.interface import random_latents

    rng = np.random.default_rng(seed)
    z = random_latents(generator, rng, samples).astype(np.float64)
    y = first_layer_activations(generator, z, device=device, on_progress=on_progress)
    y -= y.mean(axis=0, dtype=np.float64).astype(np.float32)
    components, s = _top_components(y, k, rng)
    total = float(np.einsum("ij,ij->", y, y, dtype=np.float64))
    explained = s**2 / total if total > 0 else np.zeros_like(s)
    x = (y @ components.T).astype(np.float64)  # (n, k) principal coordinates of each sample
    # GANSpace's regression: z ≈ x V, so V's row i is what moving along component i means in z.
    v, *_ = np.linalg.lstsq(x, z, rcond=None)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    rows = _orient(v / np.where(norms > 0, norms, 1.0))
    return Directions(
        "pca", rows.astype(np.float32), explained.astype(np.float64), meta={"samples": samples, "seed": seed}
    )


def check_layers(generator: Any, method: str, layers: tuple[int, int] | None) -> None:
    """A UsageError when ``layers`` (``--layers``) cannot be used with ``method`` on ``generator``."""
    if layers is None:
        return
    if method != "sefa":
        raise UsageError("--layers picks the layers SeFa factorises; GANSpace (pca) works on the whole latent")
    if not hasattr(generator, "sefa_lift"):
        raise UsageError("--layers picks a StyleGAN's layers; this model has one first layer for SeFa")
    generator.sefa_weight(layers=layers)  # the range itself, checked against this network's ws


def find(
    generator: Any,
    method: str,
    k: int,
    *,
    samples: int = 10_000,
    seed: int = 0,
    device: Any = "cpu",
    on_progress: Callable[[int, int], None] | None = None,
    layers: tuple[int, int] | None = None,
) -> Directions:
    """``k`` directions by ``method``; ``on_progress`` as in ``pca`` (SeFa is closed form: no calls).
    ``layers`` (first, last) limits SeFa to a StyleGAN's styled layers reading those ws."""
    check_method(method)
    check_layers(generator, method, layers)
    if method == "pca":
        return pca(generator, k, samples=samples, seed=seed, device=device, on_progress=on_progress)
    picked = {} if layers is None else {"layers": layers}
    found = sefa(generator.sefa_weight(**picked).detach().float().cpu().numpy(), k)
    if not hasattr(generator, "sefa_lift"):
        return found
    import torch

    vectors = generator.sefa_lift(torch.from_numpy(found.vectors), **picked).numpy()
    meta = found.meta if layers is None else {**found.meta, "layers": f"{layers[0]}-{layers[1]}"}
    if generator.config.latent_space == "w+":  # a W direction at several layers is no longer unit length
        where = "every layer" if layers is None else f"layers {layers[0]}-{layers[1]}"
        meta = {**meta, "scale": f"1 moves the w of {where} one unit along the W direction"}
    return Directions("sefa", np.ascontiguousarray(vectors, np.float32), found.values, meta=meta)


def random_directions(dim: int, k: int, seed: int = 0) -> np.ndarray:
    """``k`` random unit vectors (the baseline unsupervised directions are compared with)."""
    v = np.random.default_rng(seed).standard_normal((k, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def image_change(
    generator: Any,
    z: np.ndarray,
    vectors: np.ndarray,
    *,
    strength: float = 1.0,
    device: Any = "cpu",
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Per direction, the RMS pixel change (0-255 scale) of ``z`` moved by ``strength`` along it,
    divided by the strength: how much an image changes per prior standard deviation.
    ``on_progress(done, len(vectors))`` after each direction."""
    import torch

    from latentctl.space.generate import generate

    device = torch.device(device)
    base = generate(generator, z, device=device).astype(np.float64)
    out = np.empty(len(vectors))
    for i, v in enumerate(np.asarray(vectors, dtype=np.float32)):
        moved = generate(generator, (z + strength * v).astype(np.float32), device=device).astype(np.float64)
        out[i] = np.sqrt(((moved - base) ** 2).mean()) / abs(strength)
        if on_progress is not None:
            on_progress(i + 1, len(vectors))
    return out


def sweep_latents(vectors: np.ndarray, base: np.ndarray, strengths=SWEEP_STRENGTHS) -> np.ndarray:
    """Latents for a contact sheet, (k * n * len(strengths), d): one row per direction, in it each
    base latent swept through ``strengths``."""
    v = np.asarray(vectors, dtype=np.float32)[:, None, None, :]
    b = np.asarray(base, dtype=np.float32)[None, :, None, :]
    s = np.asarray(strengths, dtype=np.float32)[None, None, :, None]
    return (b + s * v).reshape(-1, v.shape[-1])


def finding_label(method: str, k: int, samples: int) -> str:
    """What finding ``k`` directions by ``method`` is called while it runs."""
    if method == "sefa":
        return f"SeFa: {k} eigenvectors of the first layer's weight"
    return f"PCA: first-layer features of {samples:,} sampled latents"


def entry_names(name: str, k: int) -> list[str]:
    """The store entries ``k`` directions saved as ``name`` go to: NAME-1 ... NAME-k, in rank order."""
    return [f"{name}-{i + 1}" for i in range(k)]


def sheet_row_labels(names: list[str], seeds: list[int]) -> list[str]:
    """The contact sheet's row names: the store entry each row sweeps and the seed it starts from."""
    return [f"{name}, seed {s}" for name in names for s in seeds]


def strength_label(s: float) -> str:
    return "0" if s == 0 else f"{s:+g}"


@dataclass(frozen=True)
class DirectionsReport:
    """What `latentctl directions` saves, draws and prints about directions it found: one store
    entry per direction, every direction in one entry for the output folder, the contact sheet's
    latents and names, and the table of values and image changes."""

    found: Directions
    names: list[str]  # the store entries, rank order
    seeds: list[int]  # the latents every direction is swept on
    latent_dim: int
    change: np.ndarray  # (k,) RMS image change (0-255) per unit strength
    entries: list[Any]  # store.LatentEntry per direction, saved under ``names``
    everything: Any  # store.LatentEntry of all k directions (the output folder's latents.npz)
    sheet: np.ndarray  # (k * len(seeds) * len(strengths), d) latents: a row per (direction, seed)
    strengths: tuple[float, ...] = SWEEP_STRENGTHS

    @property
    def row_labels(self) -> list[str]:
        # One row per (direction, seed), named after the store entry it shows; one column per strength.
        # Seeds side by side made a sheet 21 tiles (2,700 px) wide whose blocks only the first was named.
        return sheet_row_labels(self.names, self.seeds)

    @property
    def col_labels(self) -> list[str]:
        return [strength_label(s) for s in self.strengths]

    @property
    def caption(self) -> str:
        return f"{self.found.method}: a row per store entry and seed, a column per strength"

    def summary(self, seeds_text: str) -> list[str]:
        """The lines printed after the sheet: a row per direction (rank, value, image change), then
        where everything went; ``seeds_text`` is the --seeds the user gave."""
        found, k, names = self.found, len(self.names), self.names
        sefa = found.method == "sefa"
        what = "eigenvalue" if sefa else "explained variance"
        lines = [
            f"{k} {found.method} direction(s) of {self.latent_dim}; "
            f"rank, {what}, image change per unit strength (RMS, 0-255):"
        ]
        for i in range(k):
            value = f"{found.values[i]:.4g}" if sefa else f"{found.values[i]:.2%}"
            lines.append(f"  {names[i]:<16} {value:>10}   {self.change[i]:6.2f}")
        if not sefa:
            lines.append(
                f"the {k} components explain {found.values.sum():.1%} of the first layer's variance "
                f"over {found.meta['samples']} samples"
            )
        first, last = strength_label(self.strengths[0]), strength_label(self.strengths[-1])
        lines.append(
            f"saved as {names[0]} ... {names[-1]}; sheet.png: a row per entry and seed ({seeds_text}), "
            f"columns strengths {first} .. {last}"
        )
        lines.append(f"try one: latentctl apply seeds:3 --add {names[0]}=2 --scales -2,0,2")
        return lines


def measure(
    session: Any,
    found: Directions,
    names: list[str],
    seeds: list[int],
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> DirectionsReport:
    """How much each of ``found`` changes the images of ``seeds`` in ``session`` (a
    session.ModelSession), with the store entries (``names``) and contact sheet that show them.
    ``on_progress(done, k)`` after each direction; nothing is written."""
    base = session.seed_latents(seeds)
    change = image_change(session.generator, base, found.vectors, device=session.device, on_progress=on_progress)
    entries = []
    for i in range(len(names)):
        meta = {
            "command": "directions",
            "method": found.method,
            "rank": i + 1,
            found.value_name: float(found.values[i]),
            "image_change_per_unit": float(change[i]),
            "scale": "unit",
            **found.meta,
        }
        entries.append(session.entry(found.vectors[i : i + 1], kind="direction", meta=meta))
    every_meta = {
        "command": "directions",
        "method": found.method,
        "names": names,
        "values": found.values.tolist(),
        "value_name": found.value_name,
        "seeds": seeds,
        "strengths": list(SWEEP_STRENGTHS),
        **found.meta,
    }
    return DirectionsReport(
        found=found,
        names=names,
        seeds=seeds,
        latent_dim=session.info.model.latent_dim,
        change=change,
        entries=entries,
        everything=session.entry(found.vectors, kind="direction", meta=every_meta),
        sheet=sweep_latents(found.vectors, base, SWEEP_STRENGTHS),
    )
