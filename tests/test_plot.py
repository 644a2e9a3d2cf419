"""Tests for latentctl.pictures.plot: the PCA projection, the scatter-plot PNG (checked by its pixels), the
map figure with its CSV, and the loss curve."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from latentctl.errors import UsageError
from latentctl.pictures.plot import (
    MISSING_COLOR,
    PALETTE,
    Panel,
    category_colors,
    legend_entries,
    pca_2d,
    scatter_png,
)


def count(img: Image.Image, colour) -> int:
    """Pixels of exactly ``colour``."""
    arr = np.asarray(img)
    return int(np.count_nonzero(np.all(arr == np.array(colour, dtype=np.uint8), axis=-1)))


def halves(img: Image.Image) -> tuple[Image.Image, Image.Image]:
    w, h = img.size
    return img.crop((0, 0, w // 2, h)), img.crop((w // 2, 0, w, h))


def rotated_cloud(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points with standard deviations 5, 2, 0.5, 0.1 along the columns of a random rotation."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    z = (rng.normal(size=(n, 4)) * [5.0, 2.0, 0.5, 0.1]) @ q.T + [10.0, -3.0, 0.0, 7.0]
    return z, q


# --- pca_2d --------------------------------------------------------------------------------------


def test_pca_finds_the_main_axes_in_variance_order():
    z, q = rotated_cloud()
    p = pca_2d(z)
    assert p.shape == (400, 2) and p.dtype == np.float64
    np.testing.assert_allclose(p.mean(axis=0), 0.0, atol=1e-9)
    var = p.var(axis=0)
    assert var[0] > var[1] > 1.0
    np.testing.assert_allclose(var, [25.0, 4.0], rtol=0.2)
    # The columns are the projections on the two main axes (up to sign)...
    centred = z - z.mean(axis=0)
    for k in range(2):
        corr = np.corrcoef(p[:, k], centred @ q[:, k])[0, 1]
        assert abs(corr) > 0.99
    # ...and as large as the exact top-two eigenvalues of the covariance.
    top = np.sort(np.linalg.eigvalsh(np.cov(z.T, bias=True)))[::-1][:2]
    np.testing.assert_allclose(var, top, rtol=1e-9)


def test_pca_sign_makes_the_largest_loading_positive():
    rng = np.random.default_rng(1)
    t = rng.normal(size=200)
    t -= t.mean()
    s = rng.normal(size=200)
    s -= s.mean()
    s -= (s @ t) / (t @ t) * t  # uncorrelated in the sample too, so the axes are exactly these
    # Main axis (0.6, -0.8, 0): its largest loading is negative, so the component is flipped.
    z = np.outer(t, [0.6, -0.8, 0.0]) * 10 + np.outer(s, [0.0, 0.0, 1.0])
    p = pca_2d(z)
    centred = z - z.mean(axis=0)
    np.testing.assert_allclose(p[:, 0], centred @ np.array([-0.6, 0.8, 0.0]), atol=1e-9)
    np.testing.assert_allclose(np.abs(p[:, 1]), np.abs(centred[:, 2]), atol=1e-9)
    assert np.corrcoef(p[:, 1], centred[:, 2])[0, 1] > 0.999  # (0, 0, 1): already positive


def test_pca_is_deterministic_under_negation_and_row_order():
    z, _ = rotated_cloud(seed=3)
    p = pca_2d(z)
    # Negating the data negates the projection rather than picking new signs.
    np.testing.assert_allclose(pca_2d(-z), -p, atol=1e-9)
    order = np.random.default_rng(0).permutation(len(z))
    np.testing.assert_allclose(pca_2d(z[order]), p[order], atol=1e-9)
    np.testing.assert_array_equal(pca_2d(z), p)


def test_pca_more_dimensions_than_points():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(5, 50))
    p = pca_2d(z)
    assert p.shape == (5, 2)
    top = np.sort(np.linalg.eigvalsh(np.cov(z.T, bias=True)))[::-1][:2]
    np.testing.assert_allclose(p.var(axis=0), top, rtol=1e-9)


def test_pca_two_dimensions_pass_through_as_float_copy():
    z = np.array([[1, 2], [3, 5], [-1, 0]], dtype=np.int32)
    p = pca_2d(z)
    assert p.dtype == np.float64
    np.testing.assert_array_equal(p, z)
    f = np.array([[0.5, 1.5]])
    assert pca_2d(f) is not f


def test_pca_one_dimension_gets_a_zero_column():
    np.testing.assert_array_equal(pca_2d(np.array([[1.0], [4.0]])), [[1.0, 0.0], [4.0, 0.0]])


def test_pca_degenerate_data_gives_zeros_not_noise():
    np.testing.assert_array_equal(pca_2d(np.full((6, 8), 0.1)), np.zeros((6, 2)))
    np.testing.assert_array_equal(pca_2d(np.ones((1, 8))), np.zeros((1, 2)))
    assert pca_2d(np.zeros((0, 8))).shape == (0, 2)
    # All on one line in 3-D: one real component, the second column exactly zero.
    line = np.outer(np.linspace(-1, 1, 30), [1.0, 2.0, 3.0]) + 0.1
    p = pca_2d(line)
    assert p[:, 0].std() > 1.0
    np.testing.assert_array_equal(p[:, 1], 0.0)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((3, 0)), np.zeros((2, 2, 2)), np.array([[1.0, np.nan, 0.0]])])
def test_pca_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        pca_2d(bad)


# --- colours and legend --------------------------------------------------------------------------


def test_category_colors_sorted_values_take_palette_in_order():
    colours = category_colors(np.array([2.0, 0.0, 2.0, np.nan, 5.0]))
    assert colours == {0: PALETTE[0], 2: PALETTE[1], 5: PALETTE[2]}
    assert colours[2.0] == PALETTE[1]  # whole-number floats and ints are one key
    assert category_colors(np.array(["b", "a", None], dtype=object)) == {"a": PALETTE[0], "b": PALETTE[1]}
    assert category_colors(np.array([True, False])) == {False: PALETTE[0], True: PALETTE[1]}
    assert list(category_colors(np.arange(12))) == list(range(12))


def test_palette_is_twelve_distinct_non_grey_colours():
    assert len(set(PALETTE)) == 12
    assert all(len(set(c)) > 1 for c in PALETTE)  # grey is reserved for text, axes and "no label"
    assert len(set(MISSING_COLOR)) == 1


def test_category_colors_refuses_continuous_and_too_many_texts():
    with pytest.raises(ValueError, match="colour ramp"):
        category_colors(np.arange(13))
    with pytest.raises(UsageError, match="13 different text labels"):
        category_colors(np.array([f"c{i}" for i in range(13)]))


def test_legend_entries_one_per_category_with_counts():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 1, 2, 2, 2, np.nan])
    points = rng.normal(size=(7, 2))
    points[5] = np.nan  # not drawn, so not counted
    [entries] = legend_entries([Panel(points, labels, "t", "k")])
    assert [(e["label"], e["count"], tuple(e["color"])) for e in entries] == [
        ("0", 1, PALETTE[0]),
        ("1", 2, PALETTE[1]),
        ("2", 2, PALETTE[2]),
        ("no label", 1, MISSING_COLOR),
    ]
    assert [e["value"] for e in entries[:3]] == [0, 1, 2]


def test_legend_entries_continuous_and_unlabelled():
    ages = np.arange(20, 40, dtype=float)
    ramp, none = legend_entries([Panel(np.zeros((20, 2)), ages, "a", "age"), Panel(np.zeros((3, 2)), None, "b")])
    assert ramp == [{"label": "20 to 39", "ramp": True, "min": 20.0, "max": 39.0, "color": None, "count": 20}]
    assert none == []


# --- scatter_png ---------------------------------------------------------------------------------


def test_each_category_colour_drawn_and_absent_ones_not():
    rng = np.random.default_rng(0)
    labels = np.array([0, 2, 5] * 20)
    img = scatter_png([Panel(rng.normal(size=(60, 2)), labels, "AE", "k")], size=300)
    assert img.size == (300, 300) and img.mode == "RGB"
    colours = category_colors(labels)
    for colour in colours.values():
        assert count(img, colour) > 0
    for unused in PALETTE[len(colours) :]:
        assert count(img, unused) == 0
    assert len(json.loads(img.info["legend"])[0]) == len(colours) == 3


def test_panels_sharing_a_label_name_share_colours():
    rng = np.random.default_rng(1)
    ae = Panel(rng.normal(size=(50, 2)), np.zeros(50), "AE (faces-ae)", "gender")  # all 0
    vae = Panel(rng.normal(size=(50, 2)), np.arange(50) % 2, "VAE (faces-vae)", "gender")
    img = scatter_png([ae, vae], size=300)
    assert img.size == (600, 300)  # side by side: twice the width
    left, right = halves(img)
    colours = category_colors(np.concatenate([ae.labels, vae.labels]))
    assert count(left, colours[0]) > 0 and count(right, colours[0]) > 0
    assert count(left, colours[1]) == 0  # no gender-1 point (nor legend entry) on the left
    assert count(right, colours[1]) > 0
    legend = json.loads(img.info["legend"])
    assert legend == legend_entries([ae, vae])
    assert [len(entries) for entries in legend] == [1, 2]


def test_missing_labels_are_grey_and_chrome_uses_no_palette_colour():
    img = scatter_png([Panel(np.random.default_rng(0).normal(size=(30, 2)), np.full(30, np.nan), "t", "x")], size=240)
    assert count(img, MISSING_COLOR) > 0
    assert all(count(img, c) == 0 for c in PALETTE)
    assert json.loads(img.info["legend"]) == [[{"label": "no label", "color": list(MISSING_COLOR), "count": 30}]]


def test_continuous_labels_use_the_ramp():
    rng = np.random.default_rng(0)
    ages = rng.integers(1, 100, 500).astype(float)
    img = scatter_png([Panel(rng.normal(size=(500, 2)), ages, "ages", "age")], size=300)
    pixels = np.asarray(img).reshape(-1, 3)
    coloured = {tuple(p) for p in pixels if len(set(p.tolist())) > 1}
    assert len(coloured) > 20  # many shades, not a dozen categories
    entries = json.loads(img.info["legend"])[0]
    assert entries[0]["ramp"] and (entries[0]["min"], entries[0]["max"]) == (ages.min(), ages.max())


@pytest.mark.parametrize(
    "points",
    [
        np.zeros((10, 2)),
        np.full((1, 2), 3.5),
        np.zeros((0, 2)),
        np.array([[1.0, 5.0], [1.0, 6.0]]),
        np.array([[np.nan, 1.0], [2.0, 2.0]]),
    ],
)
def test_zero_range_and_tiny_data_draw(points):
    labels = np.zeros(len(points))
    img = scatter_png([Panel(points, labels, "flat", "k")], size=200)
    drawn = int(np.all(np.isfinite(points), axis=1).sum())
    # Legend swatch plus points, or nothing at all for no points.
    assert (count(img, PALETTE[0]) > 0) == (drawn > 0)


def test_identical_points_are_centred():
    img = scatter_png([Panel(np.zeros((5, 2)), None, "", "")], size=200, alpha=1.0)  # opaque: exact colour
    ys, xs = np.nonzero(np.all(np.asarray(img) == PALETTE[0], axis=-1))
    assert len(xs) > 0
    assert abs(xs.mean() - 100) < 20 and abs(ys.mean() - 105) < 20


def test_text_labels_and_long_titles():
    labels = np.array(["cat", "dog", None, "cat"], dtype=object)
    title = "a very long title that does not fit into the panel at all\nPCA of 100-d latents"
    img = scatter_png([Panel(np.arange(8.0).reshape(4, 2), labels, title, "animal with a long name")], size=200)
    entries = json.loads(img.info["legend"])[0]
    assert [(e["label"], e["count"]) for e in entries] == [("cat", 2), ("dog", 1), ("no label", 1)]


def test_saves_png_atomically(tmp_path):
    path = tmp_path / "out" / "map.png"
    img = scatter_png([Panel(np.eye(2), np.array([0, 1]), "t", "k")], path, size=200)
    with Image.open(path) as saved:
        np.testing.assert_array_equal(np.asarray(saved.convert("RGB")), np.asarray(img))
    assert [p.name for p in path.parent.iterdir()] == ["map.png"]


def test_old_pillow_font_fallback(monkeypatch):
    from PIL import ImageFont

    original = ImageFont.load_default

    def old_load_default(*args, **kwargs):
        if args or kwargs:
            raise TypeError("load_default() takes no arguments")
        return original()

    monkeypatch.setattr(ImageFont, "load_default", old_load_default)
    img = scatter_png([Panel(np.eye(2), np.array([0, 1]), "old", "k")], size=200)
    assert count(img, PALETTE[1]) > 0


def test_bad_arguments():
    ok = Panel(np.zeros((2, 2)), np.zeros(2), "t")
    with pytest.raises(UsageError, match="no panels"):
        scatter_png([])
    with pytest.raises(UsageError, match="at least 200"):
        scatter_png([ok], size=50)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        scatter_png([Panel(np.zeros((2, 3)), np.zeros(2), "t")])
    with pytest.raises(ValueError, match="one label per point"):
        scatter_png([Panel(np.zeros((2, 2)), np.zeros(3), "t")])


# --- what a person reads: transparency, names, axis titles, CSV, loss curve ---------------------


def test_points_are_translucent_by_default_and_opaque_on_request():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(400, 2))
    labels = np.zeros(400)
    opaque = scatter_png([Panel(points, labels, "t", "k")], size=300, alpha=1.0)
    soft = scatter_png([Panel(points, labels, "t", "k")], size=300)
    # Opaque: every point pixel is the palette colour. Translucent: only the legend swatch is, and
    # overlapping points show as darker blends of it.
    assert count(soft, PALETTE[0]) < count(opaque, PALETTE[0]) / 5
    arr = np.asarray(soft).reshape(-1, 3).astype(int)
    blues = arr[(arr[:, 2] > arr[:, 0] + 40)]
    assert len({tuple(p) for p in blues}) > 5


def test_utkface_names_in_the_legend_and_axis_titles(tmp_path):
    from latentctl.pictures.plot import UTKFACE_NAMES, map_figure, map_panel

    rng = np.random.default_rng(0)
    gender = np.array([0, 1] * 30)
    panel = map_panel(rng.normal(size=(60, 8)), gender, "AE: faces", "gender", value_names=UTKFACE_NAMES["gender"])
    assert (panel.x_label, panel.y_label) == ("PC 1", "PC 2")
    assert map_panel(rng.normal(size=(3, 2)), None, "t", "").x_label == "z[0]"
    png, csv_path = map_figure([panel], tmp_path / "map.png")
    legend = legend_entries([panel])
    assert [e["label"] for e in legend[0]] == ["male", "female"]
    assert [e["value"] for e in legend[0]] == [0, 1]  # the values themselves stay the numbers
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "panel,x,y,label,label_name" and len(rows) == 61
    first = rows[1].split(",")
    np.testing.assert_allclose([float(first[1]), float(first[2])], panel.points[0])
    assert first[3] == "male" and rows[2].split(",")[3] == "female"
    assert UTKFACE_NAMES["race"] == {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"}


def _metrics(path, epochs=3, steps=40, score=True):
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        g = 0
        for e in range(1, epochs + 1):
            for s in range(1, steps + 1):
                g += 1
                rec = {
                    "epoch": e,
                    "step": s,
                    "steps_per_epoch": steps,
                    "global_step": g,
                    "total_steps": epochs * steps,
                    "images_per_sec": 100.0,
                    "d_real": 0.7 + rng.normal() * 0.1,
                    "g": 1.5 / (1 + g / 50),
                }
                if score and s == steps:
                    rec["score_fd"] = 50.0 / e
                f.write(json.dumps(rec) + "\n")
        f.write('{"torn": ')  # a torn last line is skipped


def test_loss_curve_draws_losses_and_score(tmp_path):
    from latentctl.pictures.plot import loss_curve

    run = tmp_path / "0001-faces-32px"
    run.mkdir()
    _metrics(run / "metrics.jsonl")
    out = loss_curve(run / "metrics.jsonl", run / "loss.png")
    assert out == run / "loss.png"
    img = Image.open(out).convert("RGB")
    assert img.size == (800, 420)
    arr = np.asarray(img).reshape(-1, 3).astype(int)
    coloured = arr[np.ptp(arr, axis=1) > 60]
    assert len(coloured) > 500  # the curves are drawn, not an empty frame
    assert loss_curve(tmp_path / "missing.jsonl", tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()
