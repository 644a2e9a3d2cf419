"""Numbers typed on a command line: strengths, weights and counts, checked before any work.

Every command parses and bounds what the user typed before it loads a model or writes a file, so a
typo (``--add glasses=nan``, ``-n 2000000000``) is a one-line ``UsageError`` (exit 2) instead of NaN
images or a ``MemoryError`` half-way through. Pure Python: the CLI imports this at startup.
"""

from __future__ import annotations

import math
import re

from latentctl.errors import UsageError

# Strengths, weights, truncation and learning rates beyond this are typos, not experiments: latents
# are N(0, I), so even 1e3 prior standard deviations leaves every image saturated, while larger
# values overflow float32 and turn the latents into NaN after the images are half rendered.
MAX_MAGNITUDE = 1e6
_RANGE = f"between {-MAX_MAGNITUDE:,.0f} and {MAX_MAGNITUDE:,.0f}"
# Columns of an `apply` grid: one per strength.
MAX_SCALES = 100
# Tiles a grid holds in memory at once (50 x 50): at 256 px that is a 12,900-pixel square, about
# 0.5 GB, plus the tiles themselves.
MAX_GRID_TILES = 2_500
# Images generated at once; beyond this one batch of 256-px activations no longer fits most GPUs.
MAX_BATCH_SIZE = 4_096
# Random starting latents per photo in GAN projection; each restart multiplies the batch.
MAX_RESTARTS = 64
# Optimisation steps per photo: no memory at stake, but 10^7 steps is a typo that runs for days.
MAX_ENCODE_STEPS = 100_000
# Projection steps after the GAN encoder's guess: a full projection's 300; past that, projecting
# from random starts (encode without --use-encoder) is the tool.
MAX_REFINE = 300
# Milliseconds per animation frame: GIF stores centiseconds in 16 bits (at most 655 s).
MAX_FRAME_MS = 60_000

# Stricter than float(), which also takes 'nan', 'inf', '1_000' and other scripts' digits.
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _bounded(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= MAX_MAGNITUDE


def _value(text: str) -> float | None:
    """The number ``text`` spells, if it is one within +-MAX_MAGNITUDE ('1e999' is not)."""
    cell = text.strip()
    if not _NUMBER_RE.fullmatch(cell):
        return None
    value = float(cell)
    return value if _bounded(value) else None


def parse_floats(text: str, option: str, *, limit: int = MAX_SCALES) -> list[float]:
    """``"-2,-1,0,1,2"`` as floats (empty items skipped), at most ``limit`` of them."""
    items = [x.strip() for x in text.split(",")] if isinstance(text, str) else []
    items = [x for x in items if x]
    if not items:
        raise UsageError(f"{option} {text!r}: give at least one number, e.g. -2,-1,0,1,2")
    if len(items) > limit:
        raise UsageError(f"{option}: {len(items):,} numbers given; at most {limit:,} per command")
    values = []
    for item in items:
        value = _value(item)
        if value is None:
            raise UsageError(
                f"{option} {text!r}: {item!r} is not a finite number {_RANGE}; give "
                "numbers separated by commas, e.g. -2,-1,0,1,2"
            )
        values.append(value)
    return values


def parse_weighted(spec: str, option: str = "--add") -> tuple[str, float]:
    """``"glasses=1.5"`` as ``("glasses", 1.5)``; a bare ``"glasses"`` weighs 1.

    The last ``=`` splits, so a path holding ``=`` still takes a weight after it.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"{option}: give a direction, e.g. {option} glasses or {option} glasses=1.5")
    name, eq, weight = spec.rpartition("=")
    if not eq:
        return spec, 1.0
    if not name.strip():
        raise UsageError(f"{option} {spec!r}: nothing before '=' names a direction, e.g. glasses=1.5")
    value = _value(weight)
    if value is None:
        raise UsageError(f"{option} {spec!r}: the weight after '=' must be a finite number {_RANGE}, e.g. glasses=1.5")
    return name, value


def check_float(value: float, option: str, *, minimum: float | None = None) -> float:
    """A float the CLI parser already read (it accepts 'nan' and 'inf'): finite and in range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{option} must be a number, got {value!r}")
    value = float(value)
    if not _bounded(value) or (minimum is not None and value < minimum):
        low = f"{minimum:g}" if minimum is not None else f"{-MAX_MAGNITUDE:,.0f}"
        raise UsageError(f"{option} {value!r}: expected a finite number between {low} and {MAX_MAGNITUDE:,.0f}")
    return value


def check_count(value: int | None, option: str, limit: int, hint: str, *, minimum: int = 1) -> int | None:
    """An integer option within ``minimum..limit``; ``hint`` says what to do instead (None passes)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{option} must be a whole number, got {value!r}")
    if value < minimum:
        raise UsageError(f"{option} must be at least {minimum:,}, got {value:,}")
    if value > limit:
        raise UsageError(f"{option} {value:,}: at most {limit:,}; {hint}")
    return value


__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_ENCODE_STEPS",
    "MAX_FRAME_MS",
    "MAX_GRID_TILES",
    "MAX_MAGNITUDE",
    "MAX_RESTARTS",
    "MAX_SCALES",
    "check_count",
    "check_float",
    "parse_floats",
    "parse_weighted",
]
