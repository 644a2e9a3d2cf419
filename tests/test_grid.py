"""Grids meant for people: tiles enlarged crisply to a readable size, text in margins (never over
an image), a caption, and the MP4 writer's missing-package error."""

from __future__ import annotations

import numpy as np
import pytest

from latentctl.errors import UsageError
from latentctl.pictures.grid import DEFAULT_TILE_SIZE, make_grid, scale_factor, upscale, write_mp4


def tiles(n=4, size=16, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, c), dtype=np.uint8)


@pytest.mark.parametrize("size,expected", [(8, 16), (16, 8), (32, 4), (48, 2), (64, 2), (128, 1), (256, 1)])
def test_whole_factor_towards_the_default_tile(size, expected):
    assert scale_factor(size, DEFAULT_TILE_SIZE) == expected
    assert scale_factor(size, None) == scale_factor(size, 0) == 1


def test_tiles_are_enlarged_nearest_neighbour_by_default():
    imgs = tiles(4, 16)
    grid = np.asarray(make_grid(imgs, cols=2, pad=2))
    k = DEFAULT_TILE_SIZE // 16
    assert grid.shape == (2 * (16 * k + 2) + 2, 2 * (16 * k + 2) + 2, 3)
    first = grid[2 : 2 + 16 * k, 2 : 2 + 16 * k]
    np.testing.assert_array_equal(first, imgs[0].repeat(k, 0).repeat(k, 1))  # crisp: every pixel a block
    assert np.asarray(make_grid(imgs, cols=2, tile_size=0)).shape == (38, 38, 3)  # the model's size


def test_labels_go_in_a_margin_and_leave_the_images_untouched():
    imgs = tiles(4, 32)
    plain = np.asarray(make_grid(imgs, cols=2))
    labelled = np.asarray(make_grid(imgs, cols=2, labels=["0", "1", "42", "seed 1234567"]))
    assert labelled.shape[0] > plain.shape[0] and labelled.shape[1] == plain.shape[1]
    big = upscale(imgs)
    t = big.shape[1]
    # every tile appears pixel for pixel: no text was drawn over it
    cell_h = (labelled.shape[0] - 2) // 2  # tile, label margin and padding
    for i in range(4):
        r, c = divmod(i, 2)
        y = 2 + r * cell_h
        x = 2 + c * (t + 2)
        np.testing.assert_array_equal(labelled[y : y + t, x : x + t], big[i])
    # and the text is there, in the margin under the first tile
    margin = labelled[2 + t : 2 + t + 10, 2 : 2 + t]
    assert (margin > 200).any()


def test_label_font_grows_with_the_tile():
    imgs = tiles(1, 8)

    def text_height(tile):
        g = np.asarray(make_grid(imgs, labels=["Ag"], tile_size=tile, background=(0, 0, 0)))
        rows = np.nonzero((g[tile + 2 :] > 128).any(axis=(1, 2)))[0]
        return rows.max() - rows.min()

    assert text_height(256) > text_height(64)


def test_caption_row_and_column_labels_and_grey_models():
    imgs = tiles(6, 8, c=1)
    assert make_grid(imgs, cols=3).mode == "L"  # no text: the grid keeps a grey model's mode
    img = make_grid(imgs, cols=3, caption="epoch 12", row_labels=["smile", "mean"], col_labels=["-2", "0", "+2"])
    assert img.mode == "RGB"
    arr = np.asarray(img)
    t = 8 * scale_factor(8, DEFAULT_TILE_SIZE)
    assert arr.shape[1] > 3 * (t + 2) + 2  # room on the left for the row names
    assert arr.shape[0] > 2 * (t + 2) + 2  # and on top for the caption and column names
    assert (arr[:20] > 200).any()  # the caption is written


def test_mp4_without_imageio_ffmpeg_names_the_install(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_ffmpeg(name, *a, **k):
        if name == "imageio_ffmpeg":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ffmpeg)
    with pytest.raises(UsageError, match="pip install 'latentctl\\[video\\]'"):
        write_mp4([tiles(1)[0]], tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()


def test_tensorboard_missing_names_the_install(monkeypatch, tmp_path):
    import builtins

    from latentctl.train import tb

    real = builtins.__import__

    def no_tb(name, *a, **k):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    with pytest.raises(
        UsageError, match=r"--tensorboard needs the tensorboard package: pip install 'latentctl\[tensorboard\]'"
    ):
        tb.TensorBoardListener(tmp_path)
    assert not (tmp_path / "tensorboard").exists()


def test_mp4_is_written_with_the_video_extra(tmp_path):
    # imageio-ffmpeg (the `video` extra) is in the test extra too, so MP4 output is always tested
    frames = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 250, 25)]
    path = write_mp4(frames, tmp_path / "interp.mp4", fps=5)
    data = path.read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 500
    assert [p.name for p in tmp_path.iterdir()] == ["interp.mp4"]  # no temporary file left
