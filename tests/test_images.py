"""Tests for latentctl.pictures.images: every fixture is generated here with Pillow and numpy."""

from __future__ import annotations

import gc
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin, features

from latentctl.errors import DataError
from latentctl.pictures.images import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    ImageSkipped,
    center_crop_resize,
    find_images,
    load_rgb,
    summarize_skipped,
    to_rgb,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def save(img: Image.Image, path: Path, fmt: str | None = None, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **params)
    return path


def pixels(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


def bands(width: int, height: int, outer, centre) -> Image.Image:
    """The centred square of a wide or tall picture in colour ``centre``, the margins either side
    in the two ``outer`` colours (left/right, or top/bottom)."""
    img = Image.new("RGB", (width, height), centre)
    margin = abs(width - height) // 2
    if width > height:
        img.paste(outer[0], (0, 0, margin, height))
        img.paste(outer[1], (width - margin, 0, width, height))
    else:
        img.paste(outer[0], (0, 0, width, margin))
        img.paste(outer[1], (0, height - margin, width, height))
    return img


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def near(actual, expected, tol: int) -> bool:
    return bool(np.all(np.abs(np.asarray(actual, int) - np.asarray(expected, int)) <= tol))


# --- find_images -------------------------------------------------------------------------------


def rels(root: Path, files: list[Path]) -> list[str]:
    return [p.relative_to(root).as_posix() for p in files]


def test_find_images_recurses_matches_any_case_and_ignores_other_files(tmp_path):
    for name in [
        "b.JPG", "a.png", "e.BMP", "f.jpeg", "g.WebP",
        "sub/c.Jpeg", "sub/deeper/d.webp",
        "notes.txt", "anim.gif", "noext", "sub/image.tiff", "jpg", "x.jpg.txt",
    ]:  # fmt: skip
        touch(tmp_path / name, b"x")
    (tmp_path / "folder.jpg").mkdir()  # a folder is never an image, whatever its name

    found = find_images(tmp_path)

    assert rels(tmp_path, found) == [
        "a.png", "b.JPG", "e.BMP", "f.jpeg", "g.WebP", "sub/c.Jpeg", "sub/deeper/d.webp",
    ]  # fmt: skip
    assert all(p.parent == tmp_path or tmp_path in p.parents for p in found)


def test_extensions_constant():
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    assert isinstance(IMAGE_EXTENSIONS, frozenset)


def test_find_images_skips_hidden_files_and_folders_below_root_but_not_a_hidden_root(tmp_path):
    root = tmp_path / ".dataset"
    for name in [
        "ok.jpg", ".hidden.jpg", "._ok.jpg", ".cache/x.png", "sub/.thumbs/y.jpg",
        "sub/kept.png", "sub/.z.png",
    ]:  # fmt: skip
        touch(root / name, b"x")

    assert rels(root, find_images(root)) == ["ok.jpg", "sub/kept.png"]


def test_find_images_sorts_by_relative_posix_path_string(tmp_path):
    # String order differs from Path order here ("a.jpg" < "a/z.jpg" < "a0.jpg", capitals first),
    # and from whatever order the file system lists entries in.
    for name in ["a0.jpg", "a/z.jpg", "a.jpg", "B.jpg", "a/b/c.jpg", "a/b.jpg"]:
        touch(tmp_path / name, b"x")

    assert rels(tmp_path, find_images(tmp_path)) == [
        "B.jpg", "a.jpg", "a/b.jpg", "a/b/c.jpg", "a/z.jpg", "a0.jpg",
    ]  # fmt: skip


def _symlink_or_skip(link: Path, target: Path) -> None:
    try:
        link.symlink_to(target, target_is_directory=True)
    except (OSError, NotImplementedError):
        pytest.skip("cannot create symbolic links here")


def test_find_images_follows_folder_links_without_looping(tmp_path):
    root = tmp_path / "root"
    touch(root / "sub" / "img.png", b"x")
    touch(tmp_path / "elsewhere" / "far.jpg", b"x")
    _symlink_or_skip(root / "sub" / "loop", root)  # would recurse forever if followed blindly
    _symlink_or_skip(root / "linked", tmp_path / "elsewhere")

    assert rels(root, find_images(root)) == ["linked/far.jpg", "sub/img.png"]


def test_find_images_lists_a_folder_reached_twice_once(tmp_path):
    root = tmp_path / "root"
    touch(root / "a" / "img.png", b"x")
    _symlink_or_skip(root / "b", root / "a")

    assert rels(root, find_images(root)) == ["a/img.png"]


def test_find_images_rejects_a_missing_folder_or_a_file(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        find_images(tmp_path / "missing")
    file = touch(tmp_path / "pic.jpg", b"x")
    with pytest.raises(DataError, match="is not a folder"):
        find_images(file)


# --- to_rgb ------------------------------------------------------------------------------------


def test_rgb_is_unchanged():
    img = noise(5, 4)
    assert np.array_equal(np.asarray(to_rgb(img)), np.asarray(img))


def test_l_and_1_bit():
    grey = Image.new("L", (2, 1), 77)
    assert pixels(to_rgb(grey)).tolist() == [[[77, 77, 77]] * 2]

    bits = Image.new("1", (2, 1), 0)
    bits.putpixel((1, 0), 1)
    assert pixels(to_rgb(bits)).tolist() == [[list(BLACK), list(WHITE)]]


def test_rgba_transparent_pixels_become_the_background_whatever_their_rgb():
    img = Image.new("RGBA", (3, 1))
    img.putpixel((0, 0), (0, 255, 0, 0))  # fully transparent green
    img.putpixel((1, 0), (255, 0, 0, 128))  # half-transparent red
    img.putpixel((2, 0), (10, 20, 30, 255))  # opaque

    over_white = pixels(to_rgb(img))[0]
    assert over_white[0].tolist() == list(WHITE)
    assert near(over_white[1], (255, 128, 128), 1)
    assert over_white[2].tolist() == [10, 20, 30]

    over_other = pixels(to_rgb(img, background=(40, 50, 60)))[0]
    assert over_other[0].tolist() == [40, 50, 60]
    assert near(over_other[1], ((255 + 40) / 2, 50 / 2, 60 / 2), 1)


def test_premultiplied_rgba_is_composited_like_straight_alpha():
    straight = Image.new("RGBA", (1, 1), (255, 0, 0, 128))
    premultiplied = straight.convert("RGBa")
    assert near(pixels(to_rgb(premultiplied))[0, 0], (255, 128, 128), 2)
    assert near(pixels(to_rgb(premultiplied, background=BLACK))[0, 0], (128, 0, 0), 2)


@pytest.mark.parametrize("mode", ["LA", "La"])
def test_grey_with_alpha(mode):
    img = Image.new("LA", (2, 1))
    img.putpixel((0, 0), (0, 0))  # transparent black
    img.putpixel((1, 0), (100, 255))  # opaque grey
    img = img.convert(mode)

    assert pixels(to_rgb(img, background=(0, 0, 200)))[0].tolist() == [[0, 0, 200], [100] * 3]


def _palette_image(mode: str = "P") -> Image.Image:
    img = Image.new(mode, (2, 1))
    img.putpalette([*GREEN, *RED])
    return img


def test_palette_with_a_transparent_index():
    img = _palette_image()
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0

    assert pixels(to_rgb(img, background=BLUE))[0].tolist() == [list(BLUE), list(RED)]


def test_palette_with_per_entry_alpha():
    img = _palette_image()
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = bytes([0, 255])

    assert pixels(to_rgb(img, background=BLUE))[0].tolist() == [list(BLUE), list(RED)]


def test_palette_without_transparency():
    img = _palette_image()
    img.putpixel((0, 0), 1)
    assert pixels(to_rgb(img))[0].tolist() == [list(RED), list(GREEN)]


def test_palette_with_alpha_channel():
    img = _palette_image("PA")
    img.putpixel((0, 0), (0, 0))  # green, transparent
    img.putpixel((1, 0), (1, 255))  # red, opaque

    assert pixels(to_rgb(img, background=BLUE))[0].tolist() == [list(BLUE), list(RED)]


@pytest.mark.parametrize("mode", ["L", "RGB", "1"])
def test_colour_key_transparency(mode):
    img = Image.new("RGB", (2, 1), BLACK)
    img.putpixel((1, 0), WHITE)
    img = img.convert(mode)
    img.info["transparency"] = img.getpixel((0, 0))

    assert pixels(to_rgb(img, background=(7, 8, 9)))[0].tolist() == [[7, 8, 9], list(WHITE)]


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "HSV"])
def test_other_colour_spaces_round_trip(mode):
    original = noise(16, 16, seed=1)
    back = to_rgb(original.convert(mode))
    # Pillow's HSV and YCbCr conversions lose a few levels to 8-bit rounding; CMYK loses none.
    tolerance = {"CMYK": 1, "YCbCr": 3, "HSV": 5}[mode]
    assert back.mode == "RGB"
    assert near(pixels(back), pixels(original), tolerance)


def test_lab_mid_grey():
    # L* = 50 with a* = b* = 0 is sRGB (119, 119, 119); Pillow stores a* and b* offset by 128.
    assert near(pixels(to_rgb(Image.new("LAB", (1, 1), (128, 128, 128))))[0, 0], (119,) * 3, 2)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I;16N"])
def test_16_bit_grey_is_scaled_not_clipped(mode):
    # Pillow's own convert("RGB") clips these to 255, which turns most 16-bit pictures white.
    img = Image.new(mode, (4, 1))
    for x, value in enumerate([0, 32768, 49152, 65535]):
        img.putpixel((x, 0), value)

    assert pixels(to_rgb(img))[0, :, 0].tolist() == [0, 128, 191, 255]


def test_16_bit_colour_key():
    img = Image.new("I;16", (2, 1), 1000)
    img.putpixel((1, 0), 65535)
    img.info["transparency"] = 1000

    assert pixels(to_rgb(img, background=(1, 2, 3)))[0].tolist() == [[1, 2, 3], list(WHITE)]


def test_32_bit_int_holding_16_bit_values_is_read_as_16_bit():
    # This is how older Pillow (10.0, for one) opens 16-bit greyscale PNGs.
    # Values that do not span 0..65535, so that stretching them would give a different answer.
    img = Image.fromarray(np.array([[255, 1000, 32768]], np.int32))
    assert img.mode == "I"
    assert pixels(to_rgb(img))[0, :, 0].tolist() == [1, 4, 128]


def test_32_bit_int_beyond_16_bits_is_stretched():
    img = Image.fromarray(np.array([[100_000, 150_000, 200_000]], np.int32))
    assert pixels(to_rgb(img))[0, :, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),  # 0..1
        ([0.0, 100.0, 255.0], [0, 100, 255]),  # 0..255
        ([-1.0, 0.0, 1.0], [0, 128, 255]),  # neither: stretched
        ([np.nan, 0.0, 1.0], [0, 0, 255]),  # NaN takes the minimum
    ],
)
def test_float(values, expected):
    img = Image.fromarray(np.array([values], np.float32))
    assert img.mode == "F"
    assert pixels(to_rgb(img))[0, :, 0].tolist() == expected


@pytest.mark.parametrize("background", [(256, 0, 0), (1, 2), (1.5, 2, 3), "white", None])
def test_a_bad_background_is_rejected(background):
    with pytest.raises(ValueError, match="background"):
        to_rgb(Image.new("RGBA", (1, 1)), background=background)


# --- center_crop_resize --------------------------------------------------------------------------


def test_crop_keeps_the_centre_of_a_wide_image():
    out = center_crop_resize(bands(200, 100, (RED, BLUE), GREEN), 50)
    assert out.size == (50, 50)
    assert np.all(pixels(out) == GREEN)


def test_crop_keeps_the_centre_of_a_tall_image():
    out = center_crop_resize(bands(90, 270, (RED, BLUE), GREEN), 30)
    assert out.size == (30, 30)
    assert np.all(pixels(out) == GREEN)


def test_crop_without_resize_and_odd_margins():
    img = Image.fromarray(np.arange(5 * 2 * 3, dtype=np.uint8).reshape(2, 5, 3))
    out = center_crop_resize(img, 2)
    assert np.array_equal(np.asarray(out), np.asarray(img)[:, 1:3])  # margins of 1 and 2


def test_enlarging():
    out = center_crop_resize(Image.new("RGB", (30, 20), (9, 99, 199)), 64)
    assert out.size == (64, 64)
    assert np.all(pixels(out) == (9, 99, 199))


def test_size_must_be_positive():
    with pytest.raises(ValueError):
        center_crop_resize(Image.new("RGB", (4, 4)), 0)


# --- load_rgb ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "params"),
    [
        ("JPEG", "a.JPG", {"quality": 95}),
        ("PNG", "a.Png", {}),
        ("WEBP", "a.webp", {"lossless": True}),
        ("BMP", "a.bmp", {}),
    ],
)
def test_load_rgb_reads_every_supported_format(tmp_path, fmt, name, params):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow was built without WebP")
    path = save(Image.new("RGB", (40, 24), (200, 30, 90)), tmp_path / name, fmt, **params)

    arr = load_rgb(path, 16)

    assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8
    assert arr.flags.writeable and arr.flags.c_contiguous
    assert near(arr, (200, 30, 90), 0 if fmt != "JPEG" else 4)


def test_load_rgb_crops_the_centre_of_a_wide_png(tmp_path):
    path = save(bands(200, 100, (RED, BLUE), GREEN), tmp_path / "wide.png")
    assert np.all(load_rgb(path, 50) == GREEN)


def test_load_rgb_crops_the_centre_of_a_large_jpeg(tmp_path):
    # Large enough that draft mode decodes at 1/8 scale before the resize; the band edges sit on
    # 16-pixel JPEG block boundaries so that chroma subsampling does not blur them into the square.
    path = save(bands(1280, 640, (RED, BLUE), GREEN), tmp_path / "wide.jpg", quality=95)
    arr = load_rgb(path, 32)
    assert near(arr, GREEN, 12)


def _sideways(tmp_path: Path, fmt: str, orientation: int | None) -> Path:
    """20x10, red left half and blue right half, optionally tagged with an EXIF orientation."""
    img = Image.new("RGB", (20, 10), RED)
    img.paste(BLUE, (10, 0, 20, 10))
    params = {}
    if orientation is not None:
        exif = img.getexif()
        exif[0x0112] = orientation
        params["exif"] = exif.tobytes()
    if fmt == "JPEG":
        params["quality"] = 95
    return save(img, tmp_path / f"side{orientation}.{fmt.lower()}", fmt, **params)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_load_rgb_applies_exif_orientation(tmp_path, fmt):
    tol = 40 if fmt == "JPEG" else 0
    # Control: untagged, the centred 10x10 square is red on the left and blue on the right.
    plain = load_rgb(_sideways(tmp_path, fmt, None), 10)
    assert near(plain[1, 1], RED, tol) and near(plain[1, 8], BLUE, tol)

    # Orientation 6 means "turn 90 degrees clockwise to view": the 20-wide picture becomes
    # 10 wide and 20 tall, the left half goes to the top, and the centred square is split
    # top (red) / bottom (blue).
    turned = load_rgb(_sideways(tmp_path, fmt, 6), 10)
    assert near(turned[1, 1], RED, tol) and near(turned[1, 8], RED, tol)
    assert near(turned[8, 1], BLUE, tol) and near(turned[8, 8], BLUE, tol)

    # Orientation 8 is the other way round, so the halves swap.
    other_way = load_rgb(_sideways(tmp_path, fmt, 8), 10)
    assert near(other_way[1, 1], BLUE, tol) and near(other_way[8, 8], RED, tol)


def test_load_rgb_composites_a_transparent_palette_png(tmp_path):
    img = Image.new("P", (4, 4), 1)
    img.putpalette([*GREEN, *RED])
    img.paste(0, (0, 0, 2, 4))
    path = save(img, tmp_path / "p.png", transparency=0)

    arr = load_rgb(path, 4, background=BLUE)

    assert np.all(arr[:, :2] == BLUE) and np.all(arr[:, 2:] == RED)


def test_load_rgb_composites_rgba_webp(tmp_path):
    if not features.check("webp"):
        pytest.skip("Pillow was built without WebP")
    img = Image.new("RGBA", (8, 8), (0, 255, 0, 0))
    img.paste((255, 0, 0, 255), (4, 0, 8, 8))
    path = save(img, tmp_path / "a.webp", lossless=True, exact=True)

    arr = load_rgb(path, 8)

    assert np.all(arr[:, :4] == WHITE) and np.all(arr[:, 4:] == RED)


def test_load_rgb_scales_a_16_bit_png(tmp_path):
    values = np.full((16, 16), 16384, np.uint16)
    values[:, 8:] = 49152
    path = save(Image.fromarray(values), tmp_path / "deep.png")
    with Image.open(path) as check:  # really 16-bit: "I;16", or "I" in older Pillow
        assert check.mode in ("I;16", "I") and check.getpixel((15, 0)) == 49152

    arr = load_rgb(path, 16)

    assert np.all(arr[:, :8] == 64) and np.all(arr[:, 8:] == 191)


def test_load_rgb_reads_a_cmyk_jpeg(tmp_path):
    cmyk = Image.new("RGB", (32, 32), (200, 100, 50)).convert("CMYK")
    path = save(cmyk, tmp_path / "print.jpg", quality=95)
    assert near(load_rgb(path, 8), (200, 100, 50), 6)


def test_empty_file(tmp_path):
    with pytest.raises(ImageSkipped) as caught:
        load_rgb(touch(tmp_path / "empty.jpg"), 8)
    assert caught.value.reason == "empty"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("noise.jpg", np.random.default_rng(3).integers(0, 256, 2000, dtype=np.uint8).tobytes()),
        ("text.png", b"this is not a picture\n" * 20),
    ],
)
def test_not_an_image(tmp_path, name, data):
    with pytest.raises(ImageSkipped) as caught:
        load_rgb(touch(tmp_path / name, data), 8)
    assert caught.value.reason == "unreadable"


def test_other_formats_are_not_decoded_even_when_pillow_could(tmp_path):
    path = save(Image.new("RGB", (8, 8), RED), tmp_path / "actually_a_gif.jpg", "GIF")
    with pytest.raises(ImageSkipped) as caught:
        load_rgb(path, 8)
    assert caught.value.reason == "unreadable"


def test_a_png_is_read_whatever_its_extension(tmp_path):
    path = save(Image.new("RGB", (8, 8), RED), tmp_path / "misnamed.jpg", "PNG")
    assert np.all(load_rgb(path, 8) == RED)


def _cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def test_truncated_jpeg_passes_verify_but_is_skipped(tmp_path):
    path = _cut(save(noise(256, 256), tmp_path / "cut.jpg", quality=95), 0.6)
    with Image.open(path) as img:
        img.verify()  # no error: verify() only walks the JPEG markers, hence the full decode

    with pytest.raises(ImageSkipped) as caught:
        load_rgb(path, 32)  # small target: decoded in draft mode, still caught
    assert caught.value.reason == "truncated"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png(tmp_path):
    path = _cut(save(noise(64, 64), tmp_path / "cut.png"), 0.6)
    with pytest.raises(ImageSkipped) as caught:
        load_rgb(path, 16)
    assert caught.value.reason == "truncated"


def test_corrupt_png_data_is_unreadable_not_truncated(tmp_path):
    path = save(noise(32, 32), tmp_path / "bad.png")
    data = bytearray(path.read_bytes())
    start = data.find(b"IDAT") + 4
    data[start : start + 2] = b"\0\0"  # an impossible zlib header
    path.write_bytes(bytes(data))

    with pytest.raises(ImageSkipped) as caught:
        load_rgb(path, 16)
    assert caught.value.reason == "unreadable"


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(ImageSkipped) as caught:
        load_rgb(tmp_path / "gone.png", 8)
    assert caught.value.reason == "unreadable"


def test_oversized_is_checked_against_max_pixels(tmp_path):
    path = save(Image.new("RGB", (30, 20), RED), tmp_path / "big.png")
    assert load_rgb(path, 8, max_pixels=600).shape == (8, 8, 3)
    with pytest.raises(ImageSkipped) as caught:
        load_rgb(path, 8, max_pixels=599)
    assert caught.value.reason == "oversized"
    assert "30x20" in str(caught.value)
    assert MAX_IMAGE_PIXELS >= 50_000_000


def test_pillows_decompression_bomb_error_is_oversized(tmp_path, monkeypatch):
    path = save(Image.new("RGB", (30, 20), RED), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # errors above 2 x 100 pixels
    with pytest.raises(ImageSkipped) as caught:
        load_rgb(path, 8)
    assert caught.value.reason == "oversized"


def test_pillows_decompression_bomb_warning_as_error_is_oversized(tmp_path, monkeypatch):
    path = save(Image.new("RGB", (30, 20), RED), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # warns between 400 and 800 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageSkipped) as caught:
            load_rgb(path, 8)
    assert caught.value.reason == "oversized"


def _fd_folder() -> str:
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            return folder
    pytest.skip("no way to count open files here")


def test_no_file_is_left_open(tmp_path):
    good = save(noise(64, 48), tmp_path / "good.jpg")
    paths = [
        good,
        save(Image.new("RGBA", (8, 8)), tmp_path / "alpha.png"),
        touch(tmp_path / "empty.png"),
        touch(tmp_path / "junk.jpg", b"junk" * 100),
        _cut(save(noise(128, 128), tmp_path / "cut.jpg"), 0.6),
        _cut(save(noise(64, 64), tmp_path / "cut.png"), 0.5),
        save(Image.new("RGB", (8, 8)), tmp_path / "gif.bmp", "GIF"),
    ]
    folder = _fd_folder()

    def open_here() -> int:
        # only descriptors on this test's files: others may come and go with the rest of the suite
        count = 0
        for fd in os.listdir(folder):
            try:
                count += os.readlink(os.path.join(folder, fd)).startswith(str(tmp_path))
            except OSError:
                pass
        return count

    before = open_here()
    # CPython closes a dropped file object at once, so a leak shows only as a ResourceWarning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(3):
            for path in paths:
                try:
                    load_rgb(path, 8)
                except ImageSkipped:
                    pass
            with pytest.raises(ImageSkipped):
                load_rgb(good, 8, max_pixels=10)
        gc.collect()
    assert open_here() == before
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_large_jpegs_are_decoded_at_reduced_scale(tmp_path, monkeypatch):
    requests = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        requests.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    path = save(noise(640, 480), tmp_path / "big.jpg")

    assert load_rgb(path, 32).shape == (32, 32, 3)
    assert requests == [(64, 64)]  # twice the target, so Lanczos still has detail to work with


def test_size_must_be_positive_for_load_rgb(tmp_path):
    path = save(Image.new("RGB", (8, 8)), tmp_path / "a.png")
    with pytest.raises(ValueError):
        load_rgb(path, 0)


# --- ImageSkipped and summarize_skipped ----------------------------------------------------------


def test_image_skipped_carries_reason_detail_and_path():
    err = ImageSkipped("photos/a.jpg", "truncated", "the file ends early")
    assert isinstance(err, DataError)
    assert (err.path, err.reason, err.detail) == ("photos/a.jpg", "truncated", "the file ends early")
    assert str(err) == "photos/a.jpg: the file ends early"

    copy = pickle.loads(pickle.dumps(err))
    assert (copy.reason, copy.detail, str(copy)) == (err.reason, err.detail, str(err))


def test_summarize_skipped():
    def skips(*reasons):
        return [ImageSkipped(f"{i}.jpg", r, "x") for i, r in enumerate(reasons)]

    assert summarize_skipped([]) == ""
    assert summarize_skipped(skips("empty")) == "skipped 1 file: 1 empty"
    assert summarize_skipped(skips("truncated", "empty", "truncated")) == "skipped 3 files: 2 truncated, 1 empty"
    # Ties are alphabetical so the line is the same on every run.
    assert (
        summarize_skipped(skips("unreadable", "oversized", "empty", "oversized", "unreadable"))
        == "skipped 5 files: 2 oversized, 2 unreadable, 1 empty"
    )
