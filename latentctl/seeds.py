"""Seeds as addresses: each sample's latent comes from its own seed.

``z = numpy.random.RandomState(seed).randn(latent_dim)`` (as StyleGAN's ``gen_images.py``) gives the
same vector on every device, for every batch size and whatever other seeds are asked for with it.
A model imported with a uniform prior (``latentctl import --latent uniform``) draws
``RandomState(seed).uniform(-1, 1, latent_dim)`` instead: what such a model was trained on.
"""

from __future__ import annotations

import re

import numpy as np

from latentctl.errors import UsageError

MAX_SEED = 2**32 - 1  # RandomState accepts seeds in [0, 2**32)


# One command renders (or resolves) at most this many seeds: --seeds 0-4294967295 would otherwise
# try to build four billion latents before the first image.
MAX_SEED_COUNT = 100_000

_INT_RE = re.compile(r"[0-9]+")


def _too_many(what: str, count: int, limit: int) -> UsageError:
    return UsageError(f"{what} names {count:,} seeds; at most {limit:,} seeds per command; split the range")


def parse_seeds(spec: str, count: int | None = None, *, limit: int = MAX_SEED_COUNT) -> list[int]:
    """Expand ``"0-8,42"`` into ``[0, 1, ..., 8, 42]``.

    An open range ``"500-"`` continues for as many seeds as ``count`` asks. With ``count`` the list
    is cut to its first ``count`` seeds, and asking for more seeds than the spec names is an error.
    More than ``limit`` seeds (or a ``count`` above it) is a ``UsageError``; the ranges are sized
    before any is expanded.
    """
    if not isinstance(spec, str):
        raise UsageError(f"--seeds must be text such as '0-8,42', got {type(spec).__name__}")
    if count is not None:
        _check_count(count, limit)
    parts = [p.strip() for p in spec.split(",")]
    if not spec.strip() or any(not p for p in parts):
        raise UsageError(f"--seeds {spec!r}: expected numbers and ranges such as '0-8,42'")
    ranges: list[tuple[int, int]] = []  # inclusive (lo, hi); hi < lo is an empty open range
    total = 0
    for i, part in enumerate(parts):
        lo_s, dash, hi_s = (s.strip() for s in part.partition("-"))
        # ASCII digits only: int() also takes '1_000', ' 7' and other scripts' digits.
        if not _INT_RE.fullmatch(lo_s) or (hi_s and not _INT_RE.fullmatch(hi_s)):
            raise UsageError(f"--seeds {spec!r}: {part!r} is not a seed or a range such as '0-8'")
        lo = int(lo_s)
        if dash and not hi_s:
            if i != len(parts) - 1 or count is None:
                raise UsageError(f"--seeds {spec!r}: an open range like '{part}' must come last and needs -n")
            hi = lo + max(count - total, 0) - 1
        else:
            hi = int(hi_s) if dash else lo
        if lo > MAX_SEED or hi > MAX_SEED or lo > hi and dash and hi_s:
            raise UsageError(f"--seeds {spec!r}: {part!r} must be ascending within 0-{MAX_SEED}")
        ranges.append((lo, hi))
        total += max(hi - lo + 1, 0)
    if count is not None:
        if total < count:
            raise UsageError(f"-n {count} asks for more seeds than --seeds {spec!r} names ({total})")
    elif total > limit:
        raise _too_many(f"--seeds {spec!r}", total, limit)
    # With -n only the first `count` seeds are built, so '0-4294967295 -n 10' costs ten seeds.
    wanted = total if count is None else count
    seeds: list[int] = []
    for lo, hi in ranges:
        take = min(hi - lo + 1, wanted - len(seeds))
        if take > 0:
            seeds.extend(range(lo, lo + take))
    return seeds


def _check_count(n: int, limit: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise UsageError(f"-n must be a whole number, got {n!r}")
    if n < 1:
        raise UsageError(f"-n must be at least 1, got {n}")
    if n > limit:
        raise UsageError(f"-n {n:,}: at most {limit:,} samples per command; split the work")


def resolve_seeds(n: int | None, spec: str | None, *, limit: int = MAX_SEED_COUNT) -> list[int]:
    """The seeds a command should render: ``-n N`` alone means seeds 0..N-1."""
    if spec is None:
        if n is None:
            raise UsageError("say how many samples with -n N, or which with --seeds 0-8,42")
        _check_count(n, limit)
        return list(range(n))
    return parse_seeds(spec, n, limit=limit)


def latent_from_seed(seed: int, latent_dim: int, prior: str = "normal") -> np.ndarray:
    """The latent vector addressed by ``seed``: float32, shape (latent_dim,)."""
    rs = np.random.RandomState(seed)
    z = rs.uniform(-1.0, 1.0, latent_dim) if prior == "uniform" else rs.randn(latent_dim)
    return z.astype(np.float32)


def latents_from_seeds(seeds: list[int], latent_dim: int, prior: str = "normal") -> np.ndarray:
    """Stacked latents for ``seeds``: float32, shape (len(seeds), latent_dim)."""
    out = np.empty((len(seeds), latent_dim), dtype=np.float32)
    for i, s in enumerate(seeds):
        out[i] = latent_from_seed(s, latent_dim, prior)
    return out


def draw(rng: np.random.Generator, shape: tuple[int, ...], prior: str = "normal") -> np.ndarray:
    """Random latents from the model's prior (float64), for work that needs many and no addresses:
    PCA samples, evaluation batches."""
    return rng.uniform(-1.0, 1.0, shape) if prior == "uniform" else rng.standard_normal(shape)


def draw_torch(n: int, dim: int, prior: str, generator):
    """``n`` latents from the prior as a torch tensor (on the CPU, from ``generator``'s stream)."""
    import torch

    if prior == "uniform":
        return torch.rand(n, dim, generator=generator) * 2 - 1
    return torch.randn(n, dim, generator=generator)


def format_seeds(seeds: list[int]) -> str:
    """The shortest ``parse_seeds`` spec for ``seeds`` (in order), e.g. ``"0-8,42"``."""
    parts: list[str] = []
    i = 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)
