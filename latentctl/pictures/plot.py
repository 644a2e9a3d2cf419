"""Figures for people: the latent-space map (2-D scatter plots of latent codes coloured by a
label) and the training loss curve, drawn with matplotlib (Agg, no display needed).

matplotlib is imported inside the functions that draw, so that ``latentctl --help`` and commands
that draw nothing stay fast. Latents with more than two dimensions are projected with ``pca_2d``.

Colours stay exact where it matters for checking a figure by its pixels: with ``alpha=1`` points
are filled without anti-aliasing in their ``PALETTE`` colour, and everything else (text, axes, the
"no label" colour) is grey, so a palette colour only appears where a point or a legend swatch of
that category is. The default draws points half-transparent, so dense clouds show their overlap.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from latentctl.errors import DataError, UsageError
from latentctl.pictures.grid import save_png

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
DEFAULT_ALPHA = 0.6

# Category names for the labels a UTKFace file name carries (age_gender_race_date.jpg), from the
# data set's own description; other label columns are shown by their values.
UTKFACE_NAMES: dict[str, dict[int, str]] = {
    "gender": {0: "male", 1: "female"},
    "race": {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"},
}


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
    x_label: str = ""  # axis titles, e.g. "PC 1"; empty: none
    y_label: str = ""
    value_names: dict | None = None  # legend text for label values (UTKFACE_NAMES["gender"]); others as they are


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


def scatter_png(
    panels: list[Panel], path: Path | None = None, *, size: int = 480, alpha: float = DEFAULT_ALPHA
) -> Image.Image:
    """Draw ``panels`` side by side, each ``size`` x ``size`` pixels, and save to ``path`` if given.

    Each panel has its title on top, axes with readable ticks and the panel's axis titles, points
    as small filled circles coloured by label with opacity ``alpha``, and a legend on the right
    listing each category (by its ``value_names`` where given) with its colour and count, or a
    colour bar for continuous labels. Panels with the same ``label_name`` share category colours
    and the colour ramp's range, so one category is one colour across the figure. Points are drawn
    in a fixed shuffled order, so no category is always painted over the others.
    ``img.info["legend"]`` holds ``legend_entries(panels)`` as JSON.

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
    fig, canvas = _figure(size * len(panels), size)
    title_lines = max(len(p.title.split("\n")) for p in panels)
    for i, (panel, style) in enumerate(zip(panels, styles)):
        _draw_panel(fig, i, len(panels), size, panel, style, title_lines, float(alpha))
    img = _to_image(canvas)
    img.info["legend"] = json.dumps([style.entries for style in styles])
    if path is not None:
        _save(img, path)
    return img


# --- labels to colours ---------------------------------------------------------------------------


class _Style:
    """How one panel's points are coloured, and its legend entries."""

    def __init__(self, panel: Panel, shared: tuple[str, list, tuple[float, float]] | None):
        self.points = np.asarray(panel.points, dtype=np.float64)
        if self.points.ndim != 2 or self.points.shape[1] != 2:
            raise ValueError(f"panel {panel.title!r}: points must have shape (n, 2), got {self.points.shape}")
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
                    names = panel.value_names or {}
                    text = names.get(key, _display(key))
                    self.entries.append({"label": str(text), "value": key, "color": list(PALETTE[k]), "count": count})
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
        raise ValueError(f"panel {title!r}: {n} points but labels of shape {arr.shape}; give one label per point")
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


def _figure(width: int, height: int):
    """A matplotlib figure of exactly ``width`` x ``height`` pixels on the Agg canvas. The object
    API (no pyplot) keeps no global state, so figures drawn from threads do not mix."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="white")
    return fig, FigureCanvasAgg(fig)


def _to_image(canvas) -> Image.Image:
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def _save(img: Image.Image, path) -> None:
    try:
        save_png(img, Path(path))
    except OSError as err:
        raise DataError(f"cannot write the plot to {path}: {err.strerror or err}") from err


def _grey(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(c / 255 for c in rgb)


def _axis_range(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    if hi > lo:
        pad = (hi - lo) * 0.05  # points on the edge stay whole, clear of the frame
        return lo - pad, hi + pad
    # All points equal on this axis: centre them in a small range around the value.
    half = abs(lo) * 0.1 or 0.5
    return lo - half, hi + half


def _draw_panel(
    fig, i: int, count: int, size: int, panel: Panel, style: _Style, title_lines: int, alpha: float
) -> None:
    from matplotlib.patches import Patch

    font = max(7.0, size / 52)
    text = _grey(TEXT_COLOR)
    axis = _grey(AXIS_COLOR)
    legend_w = 0.30 if style.entries else 0.0
    left, right = 0.17, 0.96 - legend_w
    bottom = 0.13 if panel.x_label else 0.09
    top = 0.97 - 0.047 * title_lines  # a title line is font * 1.6 pt: about 4.5% of the panel
    ax = fig.add_axes(((i + left) / count, bottom, (right - left) / count, top - bottom))
    ax.set_title(panel.title, fontsize=font * 1.15, color=text)
    for spine in ax.spines.values():
        spine.set_color(axis)
    ax.tick_params(colors=text, labelsize=font, color=axis)
    if panel.x_label:
        ax.set_xlabel(panel.x_label, fontsize=font, color=text)
    if panel.y_label:
        ax.set_ylabel(panel.y_label, fontsize=font, color=text)
    pts = style.points[style.drawn]
    ax.set_xlim(*_axis_range(pts[:, 0]))
    ax.set_ylim(*_axis_range(pts[:, 1]))

    n = len(style.points)
    radius = (3 if n <= 300 else 2 if n <= 3000 else 1.2) * size / 480
    # Unlabelled points go underneath; the rest in a fixed random order, so that with overlapping
    # clouds the category drawn last does not hide the others.
    order = np.random.default_rng(0).permutation(n)
    order = np.concatenate([order[style.missing[order]], order[~style.missing[order]]])
    order = order[style.drawn[order]]
    if len(order):
        ax.scatter(
            style.points[order, 0],
            style.points[order, 1],
            s=(2 * radius) ** 2,
            marker="o",
            c=style.colors[order] / 255.0,
            alpha=alpha,
            linewidths=0,
            edgecolors="none",
            antialiased=alpha < 1.0,
        )  # opaque points keep their exact palette colour

    if not style.entries:
        return
    handles = []
    if style.kind == "continuous":
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import LinearSegmentedColormap, Normalize

        cmap = LinearSegmentedColormap.from_list("ramp", _RAMP / 255.0)
        cax = fig.add_axes(((i + right + 0.06) / count, bottom, 0.04 / count, (top - bottom) * 0.6))
        bar = fig.colorbar(ScalarMappable(Normalize(style.lo, style.hi), cmap), cax=cax)
        bar.ax.tick_params(labelsize=font, colors=text)
        bar.outline.set_edgecolor(axis)
        bar.set_label(panel.label_name, fontsize=font, color=text)
    else:
        handles = [
            Patch(
                facecolor=tuple(c / 255 for c in e["color"]),
                edgecolor="none",
                antialiased=False,
                label=f"{e['label']} ({e['count']})",
            )
            for e in style.entries
        ]
    if style.kind == "continuous" and style.entries[-1].get("label") == "no label":
        e = style.entries[-1]
        handles = [Patch(facecolor=_grey(MISSING_COLOR), edgecolor="none", label=f"no label ({e['count']})")]
    if handles:
        leg = ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
            fontsize=font,
            title=panel.label_name or None,
            title_fontsize=font,
            frameon=False,
            handlelength=1.0,
            handleheight=1.0,
        )
        for t in leg.get_texts():
            t.set_color(text)
        leg.get_title().set_color(text)


# --- the map command's figure ---------------------------------------------------------------------


def map_panel(z: np.ndarray, labels, title: str, label_name: str, *, value_names: dict | None = None) -> Panel:
    """A map panel for ``(n, d)`` latents: 2-D latents as they are (axes z[0], z[1]), others
    projected with ``pca_2d`` (axes PC 1, PC 2). ``value_names`` names label values in the legend;
    ``UTKFACE_NAMES.get(label_name)`` fits labels read from UTKFace file names."""
    z = np.asarray(z)
    flat = z.ndim == 2 and z.shape[1] == 2
    names = ("z[0]", "z[1]") if flat else ("PC 1", "PC 2")
    return Panel(pca_2d(z), labels, title, label_name, x_label=names[0], y_label=names[1], value_names=value_names)


def map_figure(panels: list[Panel], path: Path, *, size: int = 560) -> tuple[Path, Path]:
    """The map: ``scatter_png`` to ``path`` and the plotted coordinates beside it as CSV
    (``path`` with .csv: panel, x, y, label, label_name per point), for re-plotting elsewhere.
    Returns (png, csv)."""
    import csv
    import io

    path = Path(path)
    scatter_png(panels, path, size=size)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["panel", "x", "y", "label", "label_name"])
    for panel in panels:
        labels = [None] * len(panel.points) if panel.labels is None else list(np.asarray(panel.labels).reshape(-1))
        names = panel.value_names or {}
        for (x, y), v in zip(np.asarray(panel.points, dtype=np.float64).tolist(), labels):
            shown = "" if _is_missing(v) else names.get(_key(v) if not isinstance(v, str) else v, v)
            writer.writerow([panel.title.replace("\n", " "), repr(x), repr(y), shown, panel.label_name])
    csv_path = path.with_suffix(".csv")
    try:
        from latentctl.files.fsutil import atomic_write_text

        atomic_write_text(csv_path, buf.getvalue())
    except OSError as err:
        raise DataError(f"cannot write the map's coordinates to {csv_path}: {err.strerror or err}") from err
    return path, csv_path


# --- the loss curve -------------------------------------------------------------------------------

# Fields of a metrics.jsonl record that are not losses: counters, rates and settings. Besides
# these, every ``score_*`` field, and any field whose values are all whole numbers in JSON (a
# count such as the CPU thread count; losses are written as floats) stay off the loss axis.
_NOT_LOSSES = {
    "epoch",
    "step",
    "steps_per_epoch",
    "global_step",
    "total_steps",
    "images_per_sec",
    "augment_p",
    "time",
    "elapsed_s",
    "threads",
    "lr",
    "world_size",
    "batch_size",
}
SCORE_KEY = "score_fd"


def _loss_fields(records: list[dict]) -> set[str]:
    """The fields of ``records`` that are losses: numbers, not in ``_NOT_LOSSES``, not a score,
    and a float at least once (a field that is always an int is a count, not a loss)."""
    seen_float: set[str] = set()
    for rec in records:
        for k, v in rec.items():
            if isinstance(v, float) and k not in _NOT_LOSSES and not k.startswith("score_"):
                seen_float.add(k)
    return seen_float


def read_metrics(metrics_path: Path) -> list[dict]:
    """The records of a run's metrics.jsonl; a torn or foreign line is skipped, not fatal."""
    records = []
    try:
        text = Path(metrics_path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def loss_curve(metrics_path: Path, out_png: Path, *, size: tuple[int, int] = (800, 420)) -> Path | None:
    """Draw the losses of ``metrics.jsonl`` against the global step into ``out_png`` (each loss
    faint per step plus its moving average), with epoch boundaries and, when records carry
    ``score_fd``, the score on a second axis. Returns the path, or None when there is nothing to
    draw yet. Written atomically, so a viewer never sees half a picture; cheap enough to redraw
    at every epoch end (a run of 100,000 steps is thinned to 4,000 points per curve)."""
    records = read_metrics(metrics_path)
    loss_fields = _loss_fields(records)
    steps, losses, scores, epoch_ends = [], {}, [], []
    last_epoch = None
    for rec in records:
        step = rec.get("global_step")
        if not isinstance(step, (int, float)):
            continue
        if isinstance(rec.get(SCORE_KEY), (int, float)) and math.isfinite(rec[SCORE_KEY]):
            scores.append((step, float(rec[SCORE_KEY])))
        values = {
            k: v for k, v in rec.items() if k in loss_fields and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if not values:
            continue
        if last_epoch is not None and rec.get("epoch") != last_epoch:
            epoch_ends.append(steps[-1] if steps else step)
        last_epoch = rec.get("epoch")
        steps.append(step)
        for k, v in values.items():
            losses.setdefault(k, []).append((len(steps) - 1, float(v)))
    if not steps:
        return None
    fig, canvas = _figure(*size)
    ax = fig.add_axes((0.08, 0.13, 0.78 if scores else 0.88, 0.78))
    text = _grey(TEXT_COLOR)
    x_all = np.asarray(steps, dtype=np.float64)
    for k, (name, pairs) in enumerate(sorted(losses.items())):
        idx = np.array([p[0] for p in pairs])
        y = np.array([p[1] for p in pairs])
        ok = np.isfinite(y)
        x, y = x_all[idx][ok], y[ok]
        if not len(y):
            continue
        colour = _grey(PALETTE[k % len(PALETTE)])
        stride = max(1, len(y) // 4000)
        ax.plot(x[::stride], y[::stride], color=colour, alpha=0.25, linewidth=0.8)
        window = max(1, min(200, len(y) // 20))
        smooth = np.convolve(y, np.ones(window) / window, mode="valid")
        ax.plot(x[window - 1 :][::stride], smooth[::stride], color=colour, linewidth=1.8, label=name)
    for end in epoch_ends[-50:]:  # more boundaries than that would only grey the plot
        ax.axvline(end, color=_grey(MISSING_COLOR), linewidth=0.6, linestyle=":")
    ax.set_xlabel("step", color=text)
    ax.set_ylabel("loss", color=text)
    epochs = len(epoch_ends) + 1
    ax.set_title(
        f"{Path(metrics_path).parent.name}: losses over {steps[-1]:,} steps ({epochs} epoch{'s' if epochs > 1 else ''})",
        color=text,
        fontsize=11,
    )
    ax.grid(True, color=(0.92, 0.92, 0.92))
    handles, names = ax.get_legend_handles_labels()
    if scores:
        ax2 = ax.twinx()
        xs, ys = zip(*scores)
        ax2.plot(xs, ys, color="black", marker="o", linewidth=1.2, markersize=4, label=f"{SCORE_KEY} (lower is better)")
        ax2.set_ylabel(SCORE_KEY, color=text)
        h2, n2 = ax2.get_legend_handles_labels()
        handles, names = handles + h2, names + n2
    ax.legend(handles, names, loc="upper right", fontsize=9, framealpha=0.85)
    img = _to_image(canvas)
    _save(img, out_png)
    return Path(out_png)
