"""A built-in data set of cartoon faces with known attributes, and detectors for those attributes.

latentctl runs without internet or downloaded data, yet its demo and tests need pictures whose
attributes are known, so that a latent direction can be computed and checked. The faces here are
simple enough for a small GAN to learn in minutes on a CPU, and each attribute changes a large,
coarse part of the picture so that a few pixel statistics can tell it apart even on the blurry,
imperfect samples such a GAN produces.

Geometry is expressed in relative coordinates (0..1 across the picture), which makes both the
drawing and the detectors independent of the pixel size.
"""

from __future__ import annotations

import colorsys
import csv
import functools
import io
import json
import math
import operator
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from latentctl.errors import DataError, UsageError

ATTRIBUTES: tuple[str, ...] = ("glasses", "smile", "dark_hair", "dark_skin")

MIN_SIZE = 32
MAX_SIZE = 256

LABELS_FILE = "labels.csv"
MARKER_FILE = "synthetic.json"
_MARKER_FORMAT = "latentctl-synthetic-faces"
# Bump whenever draw_face's output changes: a folder made by another drawing must not be taken for
# the data set a user asks for now.
_MARKER_VERSION = 1

# Drawing at 4x and shrinking with LANCZOS gives anti-aliased edges, which PIL.ImageDraw lacks.
_SUPERSAMPLE = 4

# Face placement jitter. The detectors' regions below are laid out for these ranges; widening them
# needs those regions checked again (tests/test_synthetic.py measures accuracy).
_CENTER = (0.5, 0.53)
_SHIFT = 0.02
_SCALE = (0.95, 1.05)
_HEAD_RX, _HEAD_RY = 0.30, 0.35


def image_name(index: int) -> str:
    return f"face_{index:05d}.png"


def sample_attributes(rng: np.random.Generator) -> dict[str, bool]:
    """Each attribute present independently with probability 1/2."""
    return {name: bool(rng.random() < 0.5) for name in ATTRIBUTES}


# --------------------------------------------------------------------------------------------------
# Drawing


# Colours are plain float triples: numpy's per-call overhead on 3-element arrays would dominate the
# time to draw a face.
Colour = tuple[float, float, float]


def _hsv(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (r * 255.0, g * 255.0, b * 255.0)


def _lerp(palette: list[Colour], t: float) -> Colour:
    """A colour on the polyline through ``palette`` at position ``t`` in [0, 1]."""
    x = t * (len(palette) - 1)
    i = min(int(x), len(palette) - 2)
    f = x - i
    a, b = palette[i], palette[i + 1]
    return (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f)


def _rgb(c: Colour, scale: float = 1.0, shift: Colour = (0.0, 0.0, 0.0)) -> tuple[int, int, int]:
    r, g, b = (min(255, max(0, round(v * scale + d))) for v, d in zip(c, shift))
    return (r, g, b)


# Skin and hair palettes are far apart in luminance on purpose: that gap is what the detectors use.
_LIGHT_SKIN = [(255, 226, 200), (240, 200, 165), (222, 176, 138)]
_DARK_SKIN = [(138, 86, 56), (116, 72, 48), (96, 60, 40)]
_LIGHT_HAIR = [(240, 232, 205), (232, 200, 118), (208, 146, 84)]
_DARK_HAIR = [(16, 13, 12), (52, 36, 26), (82, 52, 34)]
_MOUTH = [(50, 8, 16), (78, 16, 26)]


class _Params:
    """Every random choice for one face, drawn in a fixed order.

    All numbers are drawn whatever the attributes are, so one seed with one attribute toggled gives
    the same face with only that feature changed.
    """

    def __init__(self, rng: np.random.Generator):
        # One call to the generator, then plain floats: per-call numpy overhead would otherwise be
        # a good part of the time to draw a face. 40 numbers are used; the spare ones leave room to
        # add a parameter, and a fixed count keeps the generator's state after a face predictable.
        stream = iter(rng.random(64).tolist())

        def u(lo: float, hi: float) -> float:
            return lo + (hi - lo) * next(stream)

        def u3(lo: float, hi: float) -> Colour:
            return (u(lo, hi), u(lo, hi), u(lo, hi))

        self.cx = _CENTER[0] + u(-_SHIFT, _SHIFT)
        self.cy = _CENTER[1] + u(-_SHIFT, _SHIFT)
        self.s = u(*_SCALE)
        self.aspect = u(0.94, 1.04)
        self.bg = _hsv(u(0, 1), u(0.10, 0.45), u(0.84, 0.98))
        self.skin_t, self.skin_noise = u(0, 1), u3(-6, 6)
        self.hair_t, self.hair_noise = u(0, 1), u3(-6, 6)
        self.hair_cut = u(-0.21, -0.175)  # where the fringe ends, face-relative
        self.hair_slant = u(-0.03, 0.03)
        # Long hair reaches the shoulders; short hair ends behind the head.
        self.hair_len = u(0.30, 0.42) if u(0, 1) < 0.5 else u(-0.05, 0.08)
        self.shirt = _hsv(u(0, 1), u(0.3, 0.8), u(0.35, 0.9))
        self.eye_dx = u(0.105, 0.125)
        self.eye_y = u(-0.05, -0.03)
        self.eye_rx, self.eye_ry = u(0.038, 0.048), u(0.026, 0.033)
        self.iris_r = u(0.017, 0.022)
        self.iris = _lerp([(40, 28, 20), (30, 50, 80), (40, 64, 40)], u(0, 1))
        self.glass_r = u(0.078, 0.09)
        self.glass_w = u(0.022, 0.030)
        self.frame = u3(0, 26)
        self.nose_y = u(0.06, 0.09)
        self.mouth_y = u(0.17, 0.18)
        self.smile_w, self.smile_h = u(0.26, 0.32), u(0.075, 0.09)
        self.flat_w, self.flat_t = u(0.08, 0.11), u(0.02, 0.025)
        self.mouth = _lerp(_MOUTH, u(0, 1))


def _check_size(size: int) -> int:
    size = operator.index(size)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    return size


def _check_attributes(attributes: Mapping[str, bool]) -> dict[str, bool]:
    unknown = set(attributes) - set(ATTRIBUTES)
    if unknown:
        # A misspelt name would otherwise silently draw a face without the feature.
        raise ValueError(f"unknown attribute(s) {sorted(unknown)}; known: {list(ATTRIBUTES)}")
    return {name: bool(attributes.get(name, False)) for name in ATTRIBUTES}


def draw_face(rng: np.random.Generator, size: int, attributes: Mapping[str, bool]) -> np.ndarray:
    """A cartoon face as a (size, size, 3) uint8 array; ``size`` from 32 to 256.

    Attributes missing from ``attributes`` are absent. Everything else (placement, scale, colours,
    hair style, eye shape) is jittered from ``rng``, within ranges that keep each attribute clearly
    visible and inside the regions ``detect_attributes`` looks at.
    """
    size = _check_size(size)
    a = _check_attributes(attributes)
    p = _Params(rng)
    big = size * _SUPERSAMPLE
    s = p.s

    def pt(u: float, v: float) -> tuple[float, float]:
        """Face-relative offsets (scaled with the face) to supersampled pixels."""
        return ((p.cx + u * s) * big, (p.cy + v * s) * big)

    def box(u0: float, v0: float, u1: float, v1: float) -> tuple[float, float, float, float]:
        return (*pt(u0, v0), *pt(u1, v1))

    skin = _rgb(_lerp(_DARK_SKIN if a["dark_skin"] else _LIGHT_SKIN, p.skin_t), shift=p.skin_noise)
    shade = _rgb(skin, scale=0.86)
    hair = _rgb(_lerp(_DARK_HAIR if a["dark_hair"] else _LIGHT_HAIR, p.hair_t), shift=p.hair_noise)
    rx, ry = _HEAD_RX * p.aspect, _HEAD_RY

    img = Image.new("RGB", (big, big), _rgb(p.bg))
    d = ImageDraw.Draw(img)

    # Back hair: the part that shows around the head, down to the shoulders when long.
    d.ellipse(box(-rx - 0.035, -ry - 0.04, rx + 0.035, p.hair_len), fill=hair)
    # Shoulders and neck sit below the chin, away from every detector region.
    d.ellipse(box(-0.46, 0.36, 0.46, 0.85), fill=_rgb(p.shirt))
    d.rectangle(box(-0.10, 0.15, 0.10, 0.42), fill=shade)
    for side in (-1, 1):
        d.ellipse(box(side * rx - 0.04, -0.08, side * rx + 0.04, 0.05), fill=shade)
    d.ellipse(box(-rx, -ry, rx, ry), fill=skin)

    # Fringe: the top of a slightly enlarged head ellipse, cut by a (slanted) line.
    hx, hy = rx + 0.012, ry + 0.04
    cut_l, cut_r = p.hair_cut - p.hair_slant, p.hair_cut + p.hair_slant
    t0 = math.pi + math.asin(min(1.0, -cut_l / hy))
    t1 = 2 * math.pi - math.asin(min(1.0, -cut_r / hy))
    ts = [t0 + (t1 - t0) * i / 47 for i in range(48)]
    d.polygon([pt(hx * math.cos(t), hy * math.sin(t)) for t in ts], fill=hair)

    for side in (-1, 1):
        ex, ey = side * p.eye_dx, p.eye_y
        white = box(ex - p.eye_rx, ey - p.eye_ry, ex + p.eye_rx, ey + p.eye_ry)
        d.ellipse(white, fill=(250, 250, 248))
        r = p.iris_r
        d.ellipse(box(ex - r, ey - r * 0.9, ex + r, ey + r * 1.1), fill=_rgb(p.iris))

    if a["glasses"]:
        frame = _rgb(p.frame)
        w = max(1, round(p.glass_w * s * big))
        r = p.glass_r
        for side in (-1, 1):
            ex, ey = side * p.eye_dx, p.eye_y
            d.ellipse(box(ex - r, ey - r, ex + r, ey + r), outline=frame, width=w)
            # Temples run from the rim to the head's edge, like real frames.
            edge = side * rx * math.sqrt(max(0.0, 1 - (ey / ry) ** 2))
            d.line([pt(ex + side * r * 0.95, ey), pt(edge, ey - 0.005)], fill=frame, width=w)
        bridge = [pt(-p.eye_dx + r * 0.95, p.eye_y), pt(p.eye_dx - r * 0.95, p.eye_y)]
        d.line(bridge, fill=frame, width=w)

    nose = box(-0.03, p.nose_y - 0.025, 0.03, p.nose_y + 0.025)
    d.arc(nose, 20, 160, fill=shade, width=max(1, round(0.012 * s * big)))

    mouth = _rgb(p.mouth)
    my = p.mouth_y
    if a["smile"]:
        # Open "D" smile: the lower half of an ellipse, teeth along its straight top edge.
        w, h = p.smile_w / 2, p.smile_h
        d.pieslice(box(-w, my - h, w, my + h), 0, 180, fill=mouth)
        d.rectangle(box(-w * 0.72, my, w * 0.72, my + h * 0.16), fill=(246, 244, 236))
    else:
        w, t = p.flat_w / 2, p.flat_t
        # Centred where an open smile's dark area is, so only width and area tell them apart.
        yc = my + 0.03
        d.rounded_rectangle(box(-w, yc - t / 2, w, yc + t / 2), radius=t * s * big / 2, fill=mouth)

    # reducing_gap lets Pillow box-average by 2 before the LANCZOS step: same look, twice as fast.
    small = img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return np.asarray(small, dtype=np.uint8).copy()


# --------------------------------------------------------------------------------------------------
# Detection

# Detectors work on luminance averaged down to this grid whatever the input size: one set of regions
# serves every size, and averaging 2x2 or more pixels cuts pixel noise before the nonlinear steps.
_GRID = 32

# Regions in relative image coordinates (x0, y0, x1, y1). Each covers where its feature falls for
# every placement the drawing's jitter allows, and little of anything else.
_GLASSES_BOX = (0.27, 0.41, 0.73, 0.60)
_MOUTH_OVAL = (0.33, 0.655, 0.67, 0.845)
# A closed mouth lives in this central strip; an open smile also darkens the flanks beside it.
_MOUTH_CORE = 0.06
_HAIR_BOX = (0.38, 0.20, 0.62, 0.28)
# Skin: an ellipse (centre x, centre y, radius x, radius y) inside the smallest, most shifted
# head, cut below the lowest fringe.
_SKIN_ELLIPSE = (0.5, 0.56, 0.20, 0.26)
_SKIN_TOP = 0.41
# Rings, pupils and mouth cover well under half of the skin region and the eye whites a few
# percent, so this percentile of luminance lands on skin.
_SKIN_PERCENTILE = 65

# Darkness of a pixel is how far it is from the skin towards this luminance (that of frames and
# an open mouth), so that those features read about 1 on light and dark skin alike.
_INK = 20.0
# Keeps a pale, low-contrast GAN sample from dividing by almost nothing.
_MIN_CONTRAST = 30.0
# Darkness below this is dropped: it is pixel noise or soft shading (nose, neck), and counting it
# would add a noise-dependent bias to every region mean.
_DEAD_ZONE = 0.05

# (threshold, scale) per attribute on the raw scores of _raw_scores. Each threshold sits in the
# gap between faces without and with the attribute, measured on clean faces and on faces blurred by
# 1 px with noise of sigma 10 and a colour cast, at 32 to 128 px; the scale is half the distance
# between the two classes' medians on clean 64 px faces.
_CALIBRATION: dict[str, tuple[float, float]] = {
    "glasses": (0.07, 0.135),
    "smile": (0.055, 0.105),
    "dark_hair": (-105.0, 80.0),
    "dark_skin": (-135.0, 63.0),
}

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHUNK = 256


@functools.lru_cache(maxsize=1)
def _regions() -> dict[str, np.ndarray]:
    """Region weights on the working grid (each summing to 1), and the skin mask."""
    # Area coverage from a 4x finer grid, since region edges fall inside grid cells.
    k, g = 4, _GRID
    c = (np.arange(g * k) + 0.5) / (g * k)
    yy, xx = np.meshgrid(c, c, indexing="ij")

    def coverage(inside: np.ndarray) -> np.ndarray:
        return inside.reshape(g, k, g, k).mean(axis=(1, 3))

    def weights(inside: np.ndarray) -> np.ndarray:
        w = coverage(inside)
        return (w / w.sum()).astype(np.float32)

    def in_rect(b: tuple[float, float, float, float]) -> np.ndarray:
        x0, y0, x1, y1 = b
        return (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)

    def in_ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1

    mx0, my0, mx1, my1 = _MOUTH_OVAL
    mouth = in_ellipse((mx0 + mx1) / 2, (my0 + my1) / 2, (mx1 - mx0) / 2, (my1 - my0) / 2)
    skin = in_ellipse(*_SKIN_ELLIPSE) & (yy >= _SKIN_TOP)
    return {
        "glasses": weights(in_rect(_GLASSES_BOX)),
        "smile": weights(mouth & (np.abs(xx - 0.5) > _MOUTH_CORE)),
        "hair": weights(in_rect(_HAIR_BOX)),
        "skin": coverage(skin) > 0.5,
    }


def _luminance(images: np.ndarray) -> np.ndarray:
    """Luminance area-averaged onto the working grid, (N, _GRID, _GRID) float32."""
    lum = images.astype(np.float32) @ _LUMA
    n, h, w = lum.shape
    g = _GRID
    if h % g == 0 and w % g == 0:
        return lum.reshape(n, g, h // g, g, w // g).mean(axis=(2, 4))
    return np.stack(
        # float32 arrays become mode "F" images, which Pillow resamples without rounding.
        [np.asarray(Image.fromarray(x).resize((g, g), Image.Resampling.BOX)) for x in lum]
    )


def _raw_scores(images: np.ndarray) -> dict[str, np.ndarray]:
    reg = _regions()
    out = {name: np.empty(len(images), dtype=np.float64) for name in ATTRIBUTES}
    for start in range(0, len(images), _CHUNK):
        lum = _luminance(images[start : start + _CHUNK])
        sl = slice(start, start + len(lum))
        skin = np.percentile(lum[:, reg["skin"]], _SKIN_PERCENTILE, axis=1)
        ref = skin[:, None, None]
        dark = (ref - lum) / np.maximum(ref - _INK, _MIN_CONTRAST)
        dark = np.clip(dark - _DEAD_ZONE, 0.0, 1.0)
        # Region means survive blur (a linear filter) far better than edge or shape tests would.
        out["glasses"][sl] = np.einsum("nhw,hw->n", dark, reg["glasses"])
        out["smile"][sl] = np.einsum("nhw,hw->n", dark, reg["smile"])
        out["dark_hair"][sl] = -np.einsum("nhw,hw->n", lum, reg["hair"])
        out["dark_skin"][sl] = -skin
    return out


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
    if images.dtype != np.uint8:
        # Floats in [-1, 1] or [0, 1] would silently read as black; make the caller convert.
        raise ValueError(f"images must be uint8 in 0..255, got {images.dtype}")
    h, w = images.shape[1:3]
    if min(h, w) < MIN_SIZE // 2:
        raise ValueError(f"images of {h}x{w} pixels are too small to detect attributes in")
    return images


def attribute_scores(images: np.ndarray) -> dict[str, np.ndarray]:
    """Continuous detector scores, {attribute: (N,) float64}, for (N, H, W, 3) uint8 images.

    A score above 0 means the attribute is detected. Scores are scaled so that a typical clean
    synthetic face without the attribute scores about -1 and one with it about +1, which makes the
    margin comparable between attributes.
    """
    raw = _raw_scores(_check_images(images))
    out = {}
    for name in ATTRIBUTES:
        threshold, scale = _CALIBRATION[name]
        out[name] = (raw[name] - threshold) / scale
    return out


def detect_attributes(images: np.ndarray) -> dict[str, np.ndarray]:
    """Which attributes each face shows, {attribute: (N,) bool}, for (N, H, W, 3) uint8 images.

    Pixel statistics at fixed relative positions, made for the faces ``draw_face`` makes (and GAN
    samples imitating them): darkness around the eyes (glasses) and in the mouth region (an open
    smile also darkens the flanks a closed mouth leaves bare), brightness of the top of the head
    (hair) and of the face (skin). Works at any size from 32 px up.
    """
    return {name: s > 0 for name, s in attribute_scores(images).items()}


# --------------------------------------------------------------------------------------------------
# Data set on disk


def _marker(n: int, size: int, seed: int) -> dict:
    return {
        "format": _MARKER_FORMAT,
        "version": _MARKER_VERSION,
        "n": n,
        "size": size,
        "seed": seed,
        "attributes": list(ATTRIBUTES),
    }


def _read_marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != _MARKER_FORMAT:
        return None
    return data


def _existing_dataset(folder: Path, n: int, size: int, seed: int) -> bool:
    """True if ``folder`` already holds exactly this data set; False if it is absent or empty.

    Raises DataError for anything else, so that a user's own files are never overwritten and two
    different synthetic data sets are never mixed in one folder.
    """
    if not folder.exists():
        return False
    if not folder.is_dir():
        raise DataError(f"{folder} exists and is not a folder; choose another place for the synthetic data set")
    entries = set(os.listdir(folder))
    if not entries:
        return False
    marker = _read_marker(folder)
    if marker is None:
        raise DataError(
            f"{folder} is not empty and is not a latentctl synthetic data set; "
            "refusing to write into it (choose an empty or new folder)"
        )
    wanted = _marker(n, size, seed)
    if marker != wanted:
        got = ", ".join(f"{k}={marker.get(k)!r}" for k in ("n", "size", "seed", "version"))
        want = ", ".join(f"{k}={wanted[k]!r}" for k in ("n", "size", "seed", "version"))
        raise DataError(
            f"{folder} holds a different synthetic data set ({got}), "
            f"not the one asked for ({want}); delete it or choose another folder"
        )
    expected = {image_name(i) for i in range(n)} | {LABELS_FILE, MARKER_FILE}
    missing = expected - entries
    # Hidden files (.DS_Store and the like) are left by file managers, not by users adding data.
    extra = {e for e in entries - expected if not e.startswith(".")}
    if missing or extra:
        what = f"{len(missing)} file(s) missing" if missing else f"{len(extra)} unexpected file(s)"
        raise DataError(f"{folder} was a synthetic data set but has been changed ({what}); delete it to make it again")
    return True


def _face(index: int, size: int, seed: int) -> tuple[np.ndarray, dict[str, bool]]:
    # One stream per image, keyed by its index: image i is the same whatever n is.
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    attrs = sample_attributes(rng)
    return draw_face(rng, size, attrs), attrs


def synthetic_faces(n: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The first ``n`` faces of ``make_dataset(..., size=size, seed=seed)``, in memory.

    Returns (images (n, size, size, 3) uint8, {attribute: (n,) bool}); the pixels equal those of the
    PNG files make_dataset writes.
    """
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = {name: np.zeros(n, dtype=bool) for name in ATTRIBUTES}
    for i in range(n):
        images[i], attrs = _face(i, size, seed)
        for name in ATTRIBUTES:
            labels[name][i] = attrs[name]
    return images, labels


def _write_dataset(folder: Path, n: int, size: int, seed: int) -> None:
    rows = []
    for i in range(n):
        pixels, attrs = _face(i, size, seed)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        (folder / image_name(i)).write_bytes(buf.getvalue())
        rows.append([image_name(i), *(int(attrs[a]) for a in ATTRIBUTES)])
    with open(folder / LABELS_FILE, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file", *ATTRIBUTES])
        writer.writerows(rows)
    # Written last: its presence is what marks the folder as a complete data set.
    marker = json.dumps(_marker(n, size, seed), indent=2) + "\n"
    (folder / MARKER_FILE).write_text(marker, encoding="utf-8")


def make_dataset(folder: Path, n: int = 2000, size: int = 64, seed: int = 0) -> Path:
    """Write ``n`` synthetic faces (``face_00000.png`` ...) and ``labels.csv`` into ``folder``.

    ``labels.csv`` has the header ``file,<attribute>,...`` and 0/1 values. The output is the same,
    byte for byte, for the same (n, size, seed), and a folder that already holds that data set is
    returned untouched. A non-empty folder holding anything else raises DataError. The data set is
    built in a hidden sibling folder and renamed into place, so an interrupted run never leaves
    something that looks complete.
    """
    folder = Path(folder)
    # Absolute and normalised so that "." or "out/.." still have a parent to build the data set in.
    target = Path(os.path.abspath(folder))
    try:
        n, size, seed = operator.index(n), operator.index(size), operator.index(seed)
    except TypeError:
        raise UsageError("the synthetic data set's n, size and seed must be integers") from None
    if n < 1:
        raise UsageError(f"the synthetic data set needs at least 1 image, got n={n}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UsageError(f"synthetic images must be {MIN_SIZE} to {MAX_SIZE} pixels, got {size}")
    if seed < 0:
        raise UsageError(f"the synthetic data set's seed must be 0 or more, got {seed}")

    if _existing_dataset(target, n, size, seed):
        return folder
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        tmp = Path(tmp)
    except OSError as e:
        raise DataError(f"cannot create the synthetic data set in {target.parent}: {e}") from e
    try:
        try:
            _write_dataset(tmp, n, size, seed)
            _move_into_place(tmp, target)
        except OSError as e:
            # Another process may have finished the same data set first; that one is as good.
            if _existing_dataset(target, n, size, seed):
                return folder
            raise DataError(f"cannot write the synthetic data set to {folder}: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _move_into_place(tmp: Path, folder: Path) -> None:
    try:
        os.rename(tmp, folder)
    except OSError:
        # POSIX renames over an empty folder; Windows does not, so remove it and try once more.
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            os.rename(tmp, folder)
        else:
            raise
