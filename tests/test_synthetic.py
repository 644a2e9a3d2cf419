"""The synthetic face data set and its attribute detectors."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image, ImageFilter

from latentctl.errors import DataError, UsageError
from latentctl.pictures import synthetic
from latentctl.pictures.synthetic import (
    ATTRIBUTES,
    attribute_scores,
    detect_attributes,
    draw_face,
    make_dataset,
    sample_attributes,
    synthetic_faces,
)

# The detectors' thresholds were tuned on other seeds; these faces are new to them.
FRESH_SEED = 2024


def _degrade(images: np.ndarray, seed: int) -> np.ndarray:
    """Blur of about 1 px, gaussian noise of sigma 10 and a colour cast: roughly a GAN sample."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(images)
    for i, img in enumerate(images):
        blurred = Image.fromarray(img).filter(ImageFilter.GaussianBlur(1.0))
        x = np.asarray(blurred, dtype=np.float32)
        x = x + rng.normal(0.0, 10.0, x.shape) + rng.uniform(-12.0, 12.0, 3)
        out[i] = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return out


def _accuracy(images: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, float]:
    found = detect_attributes(images)
    return {name: float(np.mean(found[name] == labels[name])) for name in ATTRIBUTES}


def _snapshot(folder) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


# --- drawing ---------------------------------------------------------------------------------------


def test_attributes_are_the_documented_ones():
    assert ATTRIBUTES == ("glasses", "smile", "dark_hair", "dark_skin")


@pytest.mark.parametrize("size", [32, 64, 128])
def test_draw_face_shape_and_dtype(size):
    rng = np.random.default_rng(0)
    img = draw_face(rng, size, sample_attributes(rng))
    assert img.shape == (size, size, 3)
    assert img.dtype == np.uint8
    # A real picture, not a flat fill.
    assert img.std() > 20


def test_draw_face_is_deterministic_for_a_seed():
    attrs = {"glasses": True, "smile": False, "dark_hair": True, "dark_skin": False}
    a = draw_face(np.random.default_rng(7), 64, attrs)
    b = draw_face(np.random.default_rng(7), 64, attrs)
    c = draw_face(np.random.default_rng(8), 64, attrs)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_toggling_one_attribute_changes_only_that_feature():
    base = dict.fromkeys(ATTRIBUTES, False)
    for name in ATTRIBUTES:
        off = draw_face(np.random.default_rng(3), 64, base)
        on = draw_face(np.random.default_rng(3), 64, {**base, name: True})
        found = detect_attributes(np.stack([off, on]))
        assert [bool(v) for v in found[name]] == [False, True], name
        for other in ATTRIBUTES:
            if other != name:
                assert found[other][0] == found[other][1], (name, other)


def test_missing_attributes_are_absent_and_unknown_ones_rejected():
    img = draw_face(np.random.default_rng(1), 64, {})
    assert not any(v[0] for v in detect_attributes(img[None]).values())
    with pytest.raises(ValueError, match="glases"):
        draw_face(np.random.default_rng(1), 64, {"glases": True})


@pytest.mark.parametrize("size", [16, 31, 257])
def test_draw_face_rejects_sizes_out_of_range(size):
    with pytest.raises(ValueError):
        draw_face(np.random.default_rng(0), size, {})


def test_sample_attributes_gives_every_attribute_as_bool():
    attrs = sample_attributes(np.random.default_rng(0))
    assert set(attrs) == set(ATTRIBUTES)
    assert all(isinstance(v, bool) for v in attrs.values())


# --- data set on disk ------------------------------------------------------------------------------


def test_make_dataset_writes_images_and_labels(tmp_path):
    folder = tmp_path / "faces"
    assert make_dataset(folder, n=12, size=32, seed=5) == folder
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs == [f"face_{i:05d}.png" for i in range(12)]
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "glasses", "smile", "dark_hair", "dark_skin"]
    assert len(rows) == 13
    assert [r[0] for r in rows[1:]] == pngs
    assert all(v in ("0", "1") for r in rows[1:] for v in r[1:])
    marker = json.loads((folder / "synthetic.json").read_text(encoding="utf-8"))
    assert (marker["n"], marker["size"], marker["seed"]) == (12, 32, 5)
    # The files hold exactly the faces and labels synthetic_faces gives in memory.
    images, labels = synthetic_faces(12, 32, seed=5)
    for i, name in enumerate(pngs):
        with Image.open(folder / name) as im:
            assert im.mode == "RGB" and im.size == (32, 32)
            assert np.array_equal(np.asarray(im), images[i])
        for j, attr in enumerate(ATTRIBUTES):
            assert rows[1 + i][1 + j] == str(int(labels[attr][i]))
    # Nothing is left beside it from the build.
    assert [p.name for p in tmp_path.iterdir()] == ["faces"]


def test_make_dataset_is_byte_for_byte_deterministic(tmp_path):
    a = make_dataset(tmp_path / "a", n=6, size=32, seed=1)
    b = make_dataset(tmp_path / "b", n=6, size=32, seed=1)
    assert {k: v[1] for k, v in _snapshot(a).items()} == {k: v[1] for k, v in _snapshot(b).items()}


def test_make_dataset_again_with_same_arguments_rewrites_nothing(tmp_path):
    folder = make_dataset(tmp_path / "faces", n=8, size=32, seed=0)
    before = _snapshot(folder)
    assert make_dataset(folder, n=8, size=32, seed=0) == folder
    assert _snapshot(folder) == before


def test_make_dataset_into_an_empty_existing_folder(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    make_dataset(folder, n=3, size=32)
    assert (folder / "synthetic.json").exists()


def test_make_dataset_refuses_a_foreign_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    mine = folder / "holiday.jpg"
    mine.write_bytes(b"not really a jpeg")
    before = _snapshot(folder)
    with pytest.raises(DataError, match="not a latentctl synthetic data set"):
        make_dataset(folder, n=4, size=32)
    assert _snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_make_dataset_refuses_a_file_in_the_way(tmp_path):
    path = tmp_path / "faces"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match="not a folder"):
        make_dataset(path, n=4, size=32)
    assert path.read_text(encoding="utf-8") == "hello"


@pytest.mark.parametrize("changed", [{"n": 9}, {"size": 48}, {"seed": 1}])
def test_make_dataset_refuses_a_different_synthetic_data_set(tmp_path, changed):
    folder = make_dataset(tmp_path / "faces", n=8, size=32, seed=0)
    before = _snapshot(folder)
    args = {"n": 8, "size": 32, "seed": 0, **changed}
    with pytest.raises(DataError, match="different synthetic data set"):
        make_dataset(folder, **args)
    assert _snapshot(folder) == before


def test_make_dataset_refuses_a_data_set_that_was_changed(tmp_path):
    folder = make_dataset(tmp_path / "faces", n=5, size=32)
    (folder / "face_00003.png").unlink()
    with pytest.raises(DataError, match="changed"):
        make_dataset(folder, n=5, size=32)
    (folder / "face_00003.png").write_bytes(b"")
    (folder / "mine.png").write_bytes(b"")
    with pytest.raises(DataError, match="changed"):
        make_dataset(folder, n=5, size=32)


def test_interrupted_make_dataset_leaves_nothing_behind(tmp_path, monkeypatch):
    real = synthetic._face
    calls = []

    def failing(index, size, seed):
        calls.append(index)
        if index == 3:
            raise KeyboardInterrupt
        return real(index, size, seed)

    monkeypatch.setattr(synthetic, "_face", failing)
    with pytest.raises(KeyboardInterrupt):
        make_dataset(tmp_path / "faces", n=6, size=32)
    assert calls == [0, 1, 2, 3]
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(synthetic, "_face", real)
    make_dataset(tmp_path / "faces", n=6, size=32)
    assert len(list((tmp_path / "faces").glob("*.png"))) == 6


@pytest.mark.parametrize("args", [{"n": 0}, {"size": 16}, {"size": 512}, {"seed": -1}, {"n": 2.5}])
def test_make_dataset_rejects_bad_arguments(tmp_path, args):
    with pytest.raises(UsageError):
        make_dataset(tmp_path / "faces", **{"n": 4, "size": 32, **args})
    assert not (tmp_path / "faces").exists()


def test_attribute_balance(tmp_path):
    folder = make_dataset(tmp_path / "faces", n=500, size=32, seed=0)
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 500
    for name in ATTRIBUTES:
        rate = np.mean([int(r[name]) for r in rows])
        assert 0.35 <= rate <= 0.65, (name, rate)


# --- detectors -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh64():
    return synthetic_faces(400, 64, seed=FRESH_SEED)


@pytest.mark.parametrize("size", [32, 64])
def test_detectors_on_clean_faces(size, fresh64):
    images, labels = fresh64 if size == 64 else synthetic_faces(400, size, seed=FRESH_SEED)
    acc = _accuracy(images, labels)
    assert all(a >= 0.95 for a in acc.values()), acc


def test_detectors_on_degraded_faces(fresh64):
    images, labels = fresh64
    acc = _accuracy(_degrade(images, seed=1), labels)
    assert all(a >= 0.85 for a in acc.values()), acc


@pytest.mark.parametrize("size", [48, 100, 256])
def test_detectors_at_other_sizes(size):
    # Sizes that are not multiples of the detectors' working grid go through another resampling.
    images, labels = synthetic_faces(60, size, seed=FRESH_SEED + 1)
    acc = _accuracy(images, labels)
    assert all(a >= 0.95 for a in acc.values()), acc


def test_scores_are_the_thresholded_values(fresh64):
    images, _ = fresh64
    scores = attribute_scores(images[:50])
    found = detect_attributes(images[:50])
    assert set(scores) == set(ATTRIBUTES)
    for name in ATTRIBUTES:
        assert scores[name].shape == (50,) and scores[name].dtype == np.float64
        assert np.array_equal(found[name], scores[name] > 0)
        assert found[name].dtype == bool


def test_scores_have_a_margin_on_clean_faces(fresh64):
    # Typical faces sit near -1 / +1; none should be close to the threshold.
    images, labels = fresh64
    scores = attribute_scores(images)
    for name in ATTRIBUTES:
        signed = np.where(labels[name], scores[name], -scores[name])
        assert np.median(signed) > 0.5, name
        assert np.percentile(signed, 2) > 0.05, name


def test_detectors_accept_an_empty_batch():
    found = detect_attributes(np.zeros((0, 64, 64, 3), dtype=np.uint8))
    assert all(v.shape == (0,) for v in found.values())


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 64, 64, 3), dtype=np.float32),
        np.zeros((64, 64, 3), dtype=np.uint8),
        np.zeros((2, 64, 64, 4), dtype=np.uint8),
    ],
)
def test_detectors_reject_wrong_input(bad):
    with pytest.raises(ValueError):
        detect_attributes(bad)


def test_library_does_not_print(tmp_path, capsys):
    make_dataset(tmp_path / "faces", n=2, size=32)
    detect_attributes(synthetic_faces(2, 32)[0])
    assert capsys.readouterr() == ("", "")


def test_make_dataset_leaves_no_hidden_temp_folders_on_refusal(tmp_path):
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "x.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError):
        make_dataset(tmp_path / "faces", n=2, size=32)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_make_dataset_accepts_a_race_won_by_an_identical_build(tmp_path, monkeypatch):
    other = make_dataset(tmp_path / "other", n=3, size=32)
    real = synthetic._move_into_place

    def lose_the_race(tmp, folder):
        # Another process renames the same data set into place first.
        os.rename(other, folder)
        real(tmp, folder)

    monkeypatch.setattr(synthetic, "_move_into_place", lose_the_race)
    folder = make_dataset(tmp_path / "faces", n=3, size=32)
    assert len(list(folder.glob("*.png"))) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces"]
