import os

import numpy as np
import pytest
from conftest import blob_images, write_images
from PIL import Image

from latentctl.errors import DataError
from latentctl.pictures.data import prepare_dataset, select_subset


@pytest.fixture
def folder(tmp_path):
    f = write_images(tmp_path / "photos", blob_images(12, size=48))
    (f / "broken.jpg").write_bytes(b"")  # zero bytes
    (f / "notes.txt").write_text("not an image")
    return f


def test_decodes_once_then_reads_the_cache(folder, tmp_path, monkeypatch):
    first = prepare_dataset(folder, 32, tmp_path / "cache")
    assert first.images.shape == (12, 32, 32, 3) and first.images.dtype == np.uint8
    assert [s.reason for s in first.skipped] == ["empty"] and first.skipped[0].file == "broken.jpg"

    def no_decoding(*a, **k):
        raise AssertionError("decoded again although the folder did not change")

    monkeypatch.setattr("latentctl.pictures.data.load_image", no_decoding)
    second = prepare_dataset(folder, 32, tmp_path / "cache")
    assert second.from_cache and second.fingerprint == first.fingerprint
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    assert second.skipped_summary == "skipped 1 file: 1 empty"


def test_changed_folder_or_size_is_read_again(folder, tmp_path):
    a = prepare_dataset(folder, 32, tmp_path / "cache")
    Image.fromarray(blob_images(1, 48, seed=5)[0]).save(folder / "new.png")
    b = prepare_dataset(folder, 32, tmp_path / "cache")
    assert len(b) == 13 and b.fingerprint != a.fingerprint and not b.from_cache
    st = os.stat(folder / "new.png")
    os.utime(folder / "new.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched file
    assert prepare_dataset(folder, 32, tmp_path / "cache").fingerprint != b.fingerprint
    assert prepare_dataset(folder, 64, tmp_path / "cache").images.shape[1] == 64


def test_strict_fails_on_a_bad_image(folder, tmp_path):
    with pytest.raises(DataError, match="--strict: skipped 1 file: 1 empty; first: broken.jpg"):
        prepare_dataset(folder, 32, tmp_path / "cache", strict=True)


def test_folder_without_usable_images_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no images"):
        prepare_dataset(tmp_path / "empty", 32, tmp_path / "cache")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the 1 image files could be used"):
        prepare_dataset(bad, 32, tmp_path / "cache")


def test_max_images_is_a_reproducible_subset(folder, tmp_path):
    files = sorted(folder.iterdir())
    assert select_subset(files, 5, seed=3) == select_subset(files, 5, seed=3)
    assert select_subset(files, 5, seed=3) != select_subset(files, 5, seed=4)
    ds = prepare_dataset(folder, 32, tmp_path / "cache", max_images=6, seed=1)
    assert len(ds) + len(ds.skipped) == 6
