"""The latent-space map: 2-D scatter plots of latent codes coloured by a label (numpy and Pillow).

The figure the seed drew with matplotlib (autoencoder and VAE latents side by side, coloured by
gender) is drawn here directly with Pillow, so that plotting needs nothing beyond what training
already installs. Latents with more than two dimensions are projected with ``pca_2d`` first.

Colours are exact: points and legend swatches are filled without anti-aliasing, and everything else
(text, axes, the "no label" colour) is grey, so a colour in the palette only appears in the image
where a point or a swatch of that category is. Tests rely on that, and so can anyone checking a
figure by its pixels.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from latentctl.errors import DataError, UsageError
from latentctl.grid import save_png

# At most this many distinct values are coloured as categories; more numeric values get a ramp.
MAX_CATEGORIES = 12

# Twelve colours told apart on white: Tableau 10 without its grey, plus three darker ones. None is
# grey (r == g == b), because grey is kept for text, axes and points without a label.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),  # blue
    (255, 127, 14),  # orange
    (44, 160, 44),  # green
    (214, 39, 40),  # red
    (148, 103, 189),  # purple
    (140, 86, 75),  # brown
    (227, 119, 194),  # pink
    (188, 189, 34),  # olive
    (23, 190, 207),  # cyan
    (57, 59, 121),  # indigo
    (123, 65, 115),  # plum
    (0, 128, 128),  # teal
)
MISSING_COLOR = (190, 190, 190)  # points whose label is NaN or None
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (30, 30, 30)
AXIS_COLOR = (110, 110, 110)

# Viridis sampled at nine points: perceptually even and readable by the colour-blind.
_RAMP = np.array(
    [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ],
    dtype=np.float64,
)

MIN_SIZE = 200


@dataclass
class Panel:
    """One scatter plot of the figure.

    ``points`` is ``(n, 2)``; rows with NaN or infinity are not drawn or counted. ``labels`` has
    one value per point (numbers, booleans or strings; NaN or None for "no label"), or is None to
    draw every point in one colour without a legend. ``title`` goes above the plot (a ``\\n``
    starts a second line); ``label_name`` heads the legend.
    """

    points: np.ndarray
    labels: np.ndarray | None
    title: str
    label_name: str = ""


def pca_2d(z: np.ndarray) -> np.ndarray:
    """Project ``(n, d)`` latents onto their two main principal components, as ``(n, 2)`` floats.

    ``d == 2`` is returned unchanged (as a float copy), ``d == 1`` gets a second column of zeros.
    Otherwise the data are centred and projected on the principal axes from numpy's SVD; the first
    column has the larger variance. Each component's sign is chosen so that its largest-magnitude
    loading is positive, so the same latents always give the same picture rather than a randomly
    mirrored one. With fewer than two directions of variance (one point, or all on a line) the
    missing columns are zeros. Raises ``ValueError`` for a non-2-D array, ``d == 0`` or NaN/infinite values.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"pca_2d needs an (n, d) array with d >= 1, got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("the latents contain NaN or infinity; a model that diverged cannot be plotted")
    n, d = z.shape
    if d == 2:
        return z.copy()
    if d == 1:
        return np.column_stack([z[:, 0], np.zeros(n)])
    out = np.zeros((n, 2))
    if n == 0:
        return out
    centred = z - z.mean(axis=0)
    if n > d:
        # The right singular vectors of the data are those of its d x d scatter matrix: the same
        # axes, found some 50 times faster for 23,000 x 100 latents.
        _, _, vt = np.linalg.svd(centred.T @ centred)
    else:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
    # What is left of a direction without variance is rounding (of the mean, about eps * |z|, and
    # of the scatter matrix, about sqrt(eps) times the first component): plotted, it would be
    # stretched across the whole axis, so such a column stays zero.
    floor = 1e-9 * math.sqrt(n) * float(np.max(np.abs(z)))
    for k in range(min(2, vt.shape[0])):
        component = vt[k]
        if component[np.argmax(np.abs(component))] < 0:
            component = -component
        column = centred @ component
        norm = float(np.linalg.norm(column))
        if norm <= floor or (k == 1 and norm <= 1e-6 * float(np.linalg.norm(out[:, 0]))):
            break
        out[:, k] = column
    return out


def category_colors(labels) -> dict:
    """The colour of each distinct label value, as used by ``scatter_png``.

    Values are sorted (numbers numerically, text alphabetically) and take ``PALETTE`` colours in
    that order; NaN and None have no entry (they are drawn in ``MISSING_COLOR``). Whole-number
    floats are keyed as ints, so ``1.0`` and ``1`` are one category (and either looks the entry up).
    Panels of one figure that share a ``label_name`` share colours: pass their labels concatenated.

    Raises ``ValueError`` when the values are numeric but continuous (more than 12 distinct; they
    get a colour ramp instead), and ``UsageError`` for more than 12 distinct text values.
    """
    kind, keys, _ = _classify(labels)
    if kind != "categorical":
        raise ValueError(
            f"the labels have more than {MAX_CATEGORIES} distinct numeric values, "
            "so they are drawn with a colour ramp, not category colours"
        )
    return {key: PALETTE[i] for i, key in enumerate(keys)}


def legend_entries(panels: list[Panel]) -> list[list[dict]]:
    """What the legend of each panel lists, in order, as JSON-ready dicts.

    Categorical labels: ``{"label": text, "value": value, "color": [r, g, b], "count": n}`` for each
    category that has at least one drawn point in that panel. Continuous labels: one entry
    ``{"label": "min to max", "ramp": true, "min": lo, "max": hi, "color": null, "count": n}``.
    Either way a final ``{"label": "no label", "color": MISSING_COLOR, "count": n}`` entry follows
    when some drawn points have no label, and a panel without labels has no entries.
    ``scatter_png`` stores the same list in ``img.info["legend"]`` as JSON.
    """
    return [style.entries for style in _styles(panels)]


def scatter_png(panels: list[Panel], path: Path | None = None, *, size: int = 480) -> Image.Image:
    """Draw ``panels`` side by side, each ``size`` x ``size`` pixels, and save to ``path`` if given.

    Each panel has its title on top, an axes box with ticks at the minimum, middle and maximum of
    the data, points as small filled circles coloured by label, and a legend on the right listing
    each category with its colour and count, or a colour bar for continuous labels. Panels with the
    same ``label_name`` share category colours and the colour ramp's range, so one category is one
    colour across the figure. Points are drawn in a fixed shuffled order, so no category is
    always painted over the others. ``img.info["legend"]`` holds ``legend_entries(panels)`` as JSON.

    The PNG is written atomically. Raises ``UsageError`` for no panels or ``size`` below 200,
    ``ValueError`` for points that are not ``(n, 2)`` or labels of another length, and
    ``DataError`` if the file cannot be written.
    """
    if not panels:
        raise UsageError("nothing to plot: no panels were given")
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise UsageError(f"the plot size must be a whole number of pixels, got {size!r}") from None
    if size < MIN_SIZE:
        raise UsageError(f"the plot size must be at least {MIN_SIZE} pixels, got {size}")

    styles = _styles(panels)
    img = Image.new("RGB", (size * len(panels), size), BACKGROUND)
    draw = ImageDraw.Draw(img)
    fonts = _Fonts(size)
    title_lines = max(len(p.title.split("\n")) for p in panels)
    for i, (panel, style) in enumerate(zip(panels, styles)):
        _draw_panel(draw, fonts, i * size, size, panel, style, title_lines)
    img.info["legend"] = json.dumps([style.entries for style in styles])
    if path is not None:
        try:
            save_png(img, Path(path))
        except OSError as err:
            raise DataError(f"cannot write the plot to {path}: {err.strerror or err}") from err
    return img


# --- labels to colours ---------------------------------------------------------------------------


class _Style:
    """How one panel's points are coloured, and its legend entries."""

    def __init__(self, panel: Panel, shared: tuple[str, list, tuple[float, float]] | None):
        self.points = np.asarray(panel.points, dtype=np.float64)
        if self.points.ndim != 2 or self.points.shape[1] != 2:
            raise ValueError(
                f"panel {panel.title!r}: points must have shape (n, 2), got {self.points.shape}"
            )
        n = len(self.points)
        self.drawn = np.all(np.isfinite(self.points), axis=1)
        self.colors = np.tile(np.array(PALETTE[0], dtype=np.uint8), (n, 1))
        self.missing = np.zeros(n, dtype=bool)
        self.entries: list[dict] = []
        self.kind = "none"
        if shared is None:
            return
        self.kind, keys, (lo, hi) = shared
        values, missing = _values(panel.labels, n, panel.title)
        self.missing = missing
        self.colors[missing] = MISSING_COLOR
        shown = self.drawn & ~missing
        if self.kind == "categorical":
            codes = _codes(values, missing, keys)
            for k, key in enumerate(keys):
                self.colors[codes == k] = PALETTE[k]
                count = int(np.count_nonzero(shown & (codes == k)))
                if count:
                    self.entries.append(
                        {"label": _display(key), "value": key, "color": list(PALETTE[k]), "count": count}
                    )
        else:
            self.lo, self.hi = lo, hi
            numeric = np.full(n, lo)
            numeric[~missing] = values[~missing].astype(np.float64)
            self.colors[~missing] = _ramp(_unit(numeric, lo, hi))[~missing]
            self.entries.append(
                {
                    "label": f"{_fmt(lo)} to {_fmt(hi)}",
                    "ramp": True,
                    "min": lo,
                    "max": hi,
                    "color": None,
                    "count": int(np.count_nonzero(shown)),
                }
            )
        no_label = int(np.count_nonzero(self.drawn & missing))
        if no_label:
            self.entries.append({"label": "no label", "color": list(MISSING_COLOR), "count": no_label})


def _styles(panels: list[Panel]) -> list[_Style]:
    # Panels that share a label name are compared with each other, so their colours must agree:
    # classify the union of their labels once.
    groups: dict[str, list[np.ndarray]] = {}
    for p in panels:
        if p.labels is not None:
            groups.setdefault(p.label_name, []).append(np.asarray(p.labels).reshape(-1))
    shared = {}
    for name, parts in groups.items():
        # Object arrays unless all are numeric: numpy would otherwise turn numbers mixed with text
        # into strings such as "0.0".
        if not all(part.dtype.kind in "iuf" for part in parts):
            parts = [part.astype(object) for part in parts]
        shared[name] = _classify(np.concatenate(parts))
    return [_Style(p, None if p.labels is None else shared[p.label_name]) for p in panels]


def _values(labels, n: int, title: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels as an object array of normalised keys (or floats), and the missing mask."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"panel {title!r}: {n} points but labels of shape {arr.shape}; give one label per point"
        )
    if arr.dtype.kind in "iuf":
        floats = arr.astype(np.float64)
        missing = ~np.isfinite(floats)
        return floats, missing
    items = arr.astype(object)
    missing = np.array([_is_missing(v) for v in items], dtype=bool)
    return items, missing


def _classify(labels) -> tuple[str, list, tuple[float, float]]:
    """("categorical", sorted keys, _) or ("continuous", [], (min, max)) for a set of labels."""
    arr = np.asarray(labels)
    if arr.dtype.kind in "iuf":
        floats = arr.astype(np.float64).reshape(-1)
        present = floats[np.isfinite(floats)]
    else:
        present = [v for v in arr.astype(object).reshape(-1) if not _is_missing(v)]
    if isinstance(present, np.ndarray) or all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in present
    ):
        distinct = np.unique(np.array(present, dtype=np.float64))
        if len(distinct) > MAX_CATEGORIES:
            return "continuous", [], (float(distinct[0]), float(distinct[-1]))
        return "categorical", [_key(v) for v in distinct], (0.0, 0.0)
    if all(isinstance(v, (bool, np.bool_)) for v in present):
        return "categorical", sorted({bool(v) for v in present}), (0.0, 0.0)
    distinct_text = sorted({str(v) for v in present})
    if len(distinct_text) > MAX_CATEGORIES:
        raise UsageError(
            f"cannot colour by {len(distinct_text)} different text labels; "
            f"at most {MAX_CATEGORIES} colours can be told apart, so group them first"
        )
    return "categorical", distinct_text, (0.0, 0.0)


def _codes(values: np.ndarray, missing: np.ndarray, keys: list) -> np.ndarray:
    """Index of each value's key, -1 for missing ones."""
    index = {k: i for i, k in enumerate(keys)}
    as_key = str if keys and isinstance(keys[0], str) else _key
    return np.array([-1 if m else index[as_key(v)] for v, m in zip(values, missing)], dtype=np.int64)


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and not math.isfinite(v))


def _key(v):
    """A label value as a plain Python value; whole-number floats become ints (1.0 -> 1)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    v = float(v)
    return int(v) if v.is_integer() else v


def _display(key) -> str:
    if isinstance(key, float):
        return f"{key:.4g}"
    return str(key)


def _fmt(v: float, digits: int = 3) -> str:
    text = f"{v:.{digits}g}"
    return "0" if text in ("-0", "0") else text


def _tick_texts(ticks: list[float]) -> list[str]:
    """Tick labels with as many significant digits as it takes to tell them apart, so that a
    small spread around a large value (1e5 +- 1e-4) does not read "1e+05" three times."""
    for digits in range(3, 13):
        texts = [_fmt(v, digits) for v in ticks]
        if len(set(texts)) == len(texts):
            return texts
    return texts


def _unit(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if not hi > lo:
        return np.full(values.shape, 0.5)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


def _ramp(t: np.ndarray) -> np.ndarray:
    """Viridis colours for values in [0, 1], as (n, 3) uint8."""
    x = np.linspace(0.0, 1.0, len(_RAMP))
    channels = [np.interp(t, x, _RAMP[:, c]) for c in range(3)]
    return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)


# --- drawing -------------------------------------------------------------------------------------


class _Fonts:
    def __init__(self, size: int):
        self.small = _font(max(9, round(size / 40)))
        self.title = _font(max(11, round(size / 32)))


def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    box = draw.textbbox((0, 0), text, font=font)
    return box[2] - box[0], box[3] - box[1]


def _line_height(draw: ImageDraw.ImageDraw, font) -> int:
    # Measured on tall and deep letters so that every line of one font gets the same height.
    return _text_size(draw, "Ag(|", font)[1] + 3


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` cut to ``width`` pixels with "..." (ASCII: the bitmap fallback font is Latin-1)."""
    if _text_size(draw, text, font)[0] <= width:
        return text
    while text and _text_size(draw, text + "...", font)[0] > width:
        text = text[:-1]
    return text + "..." if text else ""


def _axis_range(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    if hi > lo:
        return lo, hi
    # All points equal on this axis: centre them in a small range around the value rather than
    # dividing by zero.
    half = abs(lo) * 0.1 or 0.5
    return lo - half, hi + half


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    fonts: _Fonts,
    ox: int,
    size: int,
    panel: Panel,
    style: _Style,
    title_lines: int,
) -> None:
    pad = max(6, size // 60)
    line = _line_height(draw, fonts.small)
    title_line = _line_height(draw, fonts.title)

    # Title, centred over the whole panel.
    for k, text in enumerate(panel.title.split("\n")):
        text = _fit(draw, text, fonts.title, size - 2 * pad)
        w = _text_size(draw, text, fonts.title)[0]
        draw.text((ox + (size - w) // 2, pad + k * title_line), text, fill=TEXT_COLOR, font=fonts.title)

    pts = style.points[style.drawn]
    xlo, xhi = _axis_range(pts[:, 0])
    ylo, yhi = _axis_range(pts[:, 1])
    xticks = [xlo, (xlo + xhi) / 2, xhi]
    yticks = [ylo, (ylo + yhi) / 2, yhi]
    xtexts, ytexts = _tick_texts(xticks), _tick_texts(yticks)
    ytick_w = max(_text_size(draw, text, fonts.small)[0] for text in ytexts)

    legend_w = int(size * 0.27) if style.entries else 0
    left = ox + pad + ytick_w + 6
    right = ox + size - pad - legend_w - (pad if legend_w else 0)
    top = pad + title_lines * title_line + pad
    bottom = size - pad - line - 4
    draw.rectangle((left, top, right, bottom), outline=AXIS_COLOR)

    n = len(style.points)
    radius = 3 if n <= 300 else 2 if n <= 3000 else 1
    radius = max(1, round(radius * size / 480))
    margin = radius + 4  # keeps every circle inside the box, clear of its outline

    def to_x(v):
        return left + margin + (np.asarray(v) - xlo) / (xhi - xlo) * (right - left - 2 * margin)

    def to_y(v):
        return bottom - margin - (np.asarray(v) - ylo) / (yhi - ylo) * (bottom - top - 2 * margin)

    placed: list[tuple[int, int, str]] = []  # (left, right, text) of x tick labels
    for k in (0, 2, 1):  # ends first: long labels drop the middle one rather than overlap
        x = int(round(float(to_x(xticks[k]))))
        draw.line((x, bottom, x, bottom + 3), fill=AXIS_COLOR)
        w = _text_size(draw, xtexts[k], fonts.small)[0]
        tx = min(max(x - w // 2, ox + 1), ox + size - w - 1)
        if all(tx > r + 4 or tx + w + 4 < l for l, r, _ in placed):
            placed.append((tx, tx + w, xtexts[k]))
    for tx, _, text in placed:
        draw.text((tx, bottom + 4), text, fill=TEXT_COLOR, font=fonts.small)
    for v, text in zip(yticks, ytexts):
        y = int(round(float(to_y(v))))
        draw.line((left - 3, y, left, y), fill=AXIS_COLOR)
        w = _text_size(draw, text, fonts.small)[0]
        draw.text((left - 5 - w, y - line // 2), text, fill=TEXT_COLOR, font=fonts.small)

    # Unlabelled points go underneath; the rest in a fixed random order, so that with overlapping
    # clouds the category drawn last does not hide the others.
    order = np.random.default_rng(0).permutation(n)
    order = np.concatenate([order[style.missing[order]], order[~style.missing[order]]])
    order = order[style.drawn[order]]
    xs = np.rint(to_x(style.points[order, 0])).astype(int)
    ys = np.rint(to_y(style.points[order, 1])).astype(int)
    for x, y, c in zip(xs.tolist(), ys.tolist(), style.colors[order].tolist()):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=tuple(c))

    if style.entries:
        _draw_legend(draw, fonts, (right + pad, top, ox + size - pad, bottom), panel, style, line)


def _draw_legend(draw, fonts: _Fonts, box, panel: Panel, style: _Style, line: int) -> None:
    x0, y, x1, y_end = box
    width = x1 - x0
    if panel.label_name:
        name = _fit(draw, panel.label_name, fonts.small, width)
        draw.text((x0, y), name, fill=TEXT_COLOR, font=fonts.small)
        y += line + 2
    swatch = max(6, line - 6)
    entries = style.entries
    if style.kind == "continuous":
        bar_h = max(2 * line, min(8 * line, y_end - y - 2 * line))
        t = np.linspace(1.0, 0.0, bar_h)
        for k, colour in enumerate(_ramp(t).tolist()):
            draw.line((x0, y + k, x0 + swatch, y + k), fill=tuple(colour))
        draw.rectangle((x0, y, x0 + swatch, y + bar_h - 1), outline=AXIS_COLOR)
        for value, ty in ((style.hi, y), (style.lo, y + bar_h - line)):
            text = _fit(draw, _fmt(value), fonts.small, width - swatch - 4)
            draw.text((x0 + swatch + 4, ty), text, fill=TEXT_COLOR, font=fonts.small)
        y += bar_h + 4
        entries = entries[1:]
    room = max(0, (y_end - y) // line)
    shown = entries if len(entries) <= room else entries[: max(0, room - 1)]
    for entry in shown:
        # Swatch squares sit one pixel inside their line so that neighbours never touch.
        top = y + (line - swatch) // 2
        draw.rectangle((x0, top, x0 + swatch - 1, top + swatch - 1), fill=tuple(entry["color"]))
        text = _fit(draw, f"{entry['label']} ({entry['count']})", fonts.small, width - swatch - 4)
        draw.text((x0 + swatch + 4, y), text, fill=TEXT_COLOR, font=fonts.small)
        y += line
    if len(shown) < len(entries):
        more = f"+{len(entries) - len(shown)} more"
        draw.text((x0, y), _fit(draw, more, fonts.small, width), fill=TEXT_COLOR, font=fonts.small)
