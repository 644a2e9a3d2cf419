"""Finding a user's pictures and decoding each one to a square 8-bit RGB array.

``find_images`` lists a folder the same way on every OS; ``load_rgb`` turns one file into a
``(size, size, 3)`` uint8 array or raises ``ImageSkipped`` saying why that file cannot be used, so
that one bad picture in a folder of thousands costs a line in a summary rather than a whole run.

``load_rgb`` is called from several threads at once (see ``latentctl.pictures.data``), so nothing here
changes process-wide state: not ``ImageFile.LOAD_TRUNCATED_IMAGES``, not ``Image.MAX_IMAGE_PIXELS``,
not the warning filters. One consequence: Pillow warns (``DecompressionBombWarning``) when it opens
an image above its own limit of about 89.5 million pixels, before ``load_rgb`` can apply
``max_pixels``. Silencing that is the application's choice, not this module's.
"""

from __future__ import annotations

import operator
import os
import struct
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from latentctl.errors import DataError

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

# Checked against the header before any pixel is decoded: a 100-megapixel RGB image already needs
# 300 MB, and a few threads decoding such files at once should not exhaust memory.
MAX_IMAGE_PIXELS: int = 100_000_000

# Only the formats the extensions promise. Left to itself Image.open identifies a file by content,
# so an EPS renamed to .jpg would be handed to Ghostscript.
_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")

# What Pillow raises for files it cannot parse or decode. The blocks that catch these contain only
# Pillow calls on the file, so a catch here means "this file is bad", never a bug of ours.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)
# Raised rather than warned when Pillow's own pixel limit is exceeded (the Warning only when the
# warning filters turn it into an error); either way the image is too large for us.
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


class ImageSkipped(DataError):
    """One file cannot be used.

    ``reason`` is a short category for counting: ``"empty"`` (zero bytes), ``"unreadable"`` (not an
    image, an unsupported format, or corrupt data), ``"truncated"`` (the data end before the image
    does) or ``"oversized"`` (more pixels than allowed). ``detail`` says what was wrong without the
    path; ``str(err)`` is ``"<path>: <detail>"``.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.reason = reason
        self.detail = detail

    def __reduce__(self):
        # The default would call __init__ with the one formatted message and fail, so a skip could
        # not cross a process boundary.
        return (type(self), (self.path, self.reason, self.detail))


def find_images(root: Path) -> list[Path]:
    """Every image file under ``root``, sorted by relative POSIX path.

    An image file is one whose extension, in any letter case, is in ``IMAGE_EXTENSIONS``; its
    content is not looked at here. Names starting with ``.`` below ``root`` are skipped, and with a
    hidden folder everything inside it (``root`` itself may be hidden). Symbolic links are
    followed, but each real folder is listed once, so a link back to a parent cannot loop and a
    link to a sibling does not count its pictures twice. Returned paths are ``root`` joined with
    the relative path, links left unresolved.

    Raises ``DataError`` if ``root`` is not a folder or a folder below it cannot be listed.
    """
    root = Path(root)
    if not root.is_dir():
        why = "it is a file" if root.exists() else "it does not exist"
        raise DataError(f"{root} is not a folder ({why})")

    found: dict[str, Path] = {}
    listed: set[tuple[int, int]] = set()
    pending = [(root, "")]
    while pending:
        folder, rel = pending.pop()
        try:
            st = folder.stat()
            key = (st.st_dev, st.st_ino)
            if key in listed:
                continue
            listed.add(key)
            with os.scandir(folder) as it:
                # Sorted so that, when two links reach one folder, the same path wins every time.
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            raise DataError(f"cannot list the folder {folder}: {err.strerror or err}") from err
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            entry_rel = f"{rel}{entry.name}"
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                continue  # vanished, or a link we may not follow: nothing to read there anyway
            if is_dir:
                subfolders.append((folder / entry.name, entry_rel + "/"))
            elif is_file and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                found[entry_rel] = folder / entry.name
        pending.extend(reversed(subfolders))
    return [found[rel] for rel in sorted(found)]


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """``img`` as 8-bit RGB, whatever its mode (an RGB image is returned as it is).

    - Transparency (an alpha channel, premultiplied or not, or a transparent palette entry or
      colour key in ``img.info["transparency"]``) is composited over ``background``, so fully
      transparent pixels come out as exactly that colour whatever RGB they hold.
    - 16-bit greyscale (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) is scaled from 0..65535 to
      0..255, not clipped.
    - ``I`` (32-bit integer; older Pillow opens 16-bit PNGs this way) is read as 0..65535 when all
      values fit in that range; otherwise its minimum..maximum is stretched to 0..255.
    - ``F`` (float) is read as 0..1 when all values are in that range, else as 0..255 when they
      are in that one, else stretched from minimum..maximum. NaN becomes the minimum.
    - Every other mode (1, L, P, CMYK, YCbCr, HSV, LAB, RGBX) uses Pillow's conversion.

    EXIF orientation is not looked at here (an in-memory image may have none); ``load_rgb``
    applies it before calling this. Raises ``DataError`` for a mode Pillow cannot convert and
    ``ValueError`` for a bad ``background``.
    """
    colour = _check_background(background)
    mode = img.mode
    if mode in ("RGBA", "RGBa", "LA", "La", "PA", "P") or (mode in ("1", "L", "RGB") and "transparency" in img.info):
        return _composite(img, colour)
    if mode == "RGB":
        return img
    if mode.startswith("I;16"):
        return _grey_to_rgb(img, np.asarray(img), (0, 65535), colour)
    if mode == "I":
        values = np.asarray(img)
        lo, hi = _extremes(values)
        fits_16_bit = lo >= 0 and hi <= 65535
        return _grey_to_rgb(img, values, (0, 65535) if fits_16_bit else (lo, hi), colour)
    if mode == "F":
        values = np.asarray(img)
        lo, hi = _extremes(values)
        if lo >= 0 and hi <= 1:
            value_range = (0.0, 1.0)
        elif lo >= 0 and hi <= 255:
            value_range = (0.0, 255.0)
        else:
            value_range = (lo, hi)
        return _grey_to_rgb(img, np.nan_to_num(values, nan=lo), value_range, colour)
    try:
        return img.convert("RGB")
    except ValueError as err:
        raise DataError(f"cannot convert an image in mode {mode!r} to RGB") from err


def center_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """The centred square of ``img`` (side = its shorter side), resized to ``size`` x ``size``.

    Shrinking uses Lanczos, enlarging bicubic. Meant for ``to_rgb`` output; other modes work as
    far as Pillow can resize them (1 and P fall back to nearest neighbour).
    """
    size = _check_size(size)
    width, height = img.size
    side = min(width, height)
    if side == 0:
        raise ValueError(f"cannot crop an image of {width}x{height} pixels")
    left, top = (width - side) // 2, (height - side) // 2
    # Cropped first rather than resized with box=: with a box, Lanczos would draw the edge pixels
    # partly from outside the square.
    square = img.crop((left, top, left + side, top + side))
    if side == size:
        return square
    if side > size:
        # reducing_gap shrinks by an integer factor with a box filter first: several times faster
        # on photos, and at 3.0 indistinguishable from Lanczos all the way.
        return square.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return square.resize((size, size), Image.Resampling.BICUBIC)


def load_rgb(
    path: Path,
    size: int,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Decode ``path`` to a new ``(size, size, 3)`` uint8 array, upright and centre-cropped.

    EXIF orientation is applied, then ``to_rgb`` (transparency over ``background``), then
    ``center_crop_resize``. The whole image is decoded, because a truncated file passes Pillow's
    ``verify()``; truncated images are never accepted. Only JPEG (including MPO), PNG, WebP and
    BMP content is decoded, whatever the extension.

    Raises ``ImageSkipped`` with reason ``"empty"``, ``"unreadable"``, ``"truncated"`` or
    ``"oversized"`` (width x height above ``max_pixels``, checked from the header; also when
    Pillow's own, process-wide limit refuses the file). The file is closed before returning.
    """
    return load_image(path, size, 3, max_pixels=max_pixels, background=background)


def load_image(
    path: Path,
    size: int,
    channels: int = 3,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """``load_rgb`` for a model of ``channels`` channels: ``(size, size, channels)`` uint8.

    1: grey, the luma of the RGB picture (ITU-R 601, Pillow's ``convert("L")``). 3: RGB, as
    ``load_rgb``. 4: RGBA: the colours composited over ``background`` as for RGB, plus the
    picture's own alpha channel (opaque where it has none), so transparency is kept."""
    size = _check_size(size)
    colour = _check_background(background)
    if channels not in (1, 3, 4):
        raise ValueError(f"channels must be 1, 3 or 4, got {channels}")
    try:
        file = open(path, "rb")
    except OSError as err:
        raise ImageSkipped(path, "unreadable", f"cannot open it ({err.strerror or err})") from err
    with file:
        if os.fstat(file.fileno()).st_size == 0:
            raise ImageSkipped(path, "empty", "the file is empty (0 bytes)")
        img = _decode(file, path, size, max_pixels)
        img = _upright(img)
    try:
        rgb = to_rgb(img, colour)
        if channels == 4:
            alpha = _alpha(img)
    except DataError as err:
        raise ImageSkipped(path, "unreadable", str(err)) from err
    if channels == 1:
        return np.array(center_crop_resize(rgb.convert("L"), size), dtype=np.uint8)[..., None]
    out = np.array(center_crop_resize(rgb, size), dtype=np.uint8)
    if channels == 4:
        a = np.array(center_crop_resize(alpha, size), dtype=np.uint8)[..., None]
        out = np.concatenate([out, a], axis=2)
    return out


def _alpha(img: Image.Image) -> Image.Image:
    """The picture's alpha as an L image (255 where it has no transparency)."""
    has_alpha = img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info
    if not has_alpha:
        return Image.new("L", img.size, 255)
    return (img.convert("LA") if img.mode == "La" else img).convert("RGBA").getchannel("A")


def is_grey(path: Path, *, tolerance: int = 2) -> bool:
    """Whether a picture carries no colour: a grey mode, or RGB whose channels agree within
    ``tolerance`` levels everywhere (JPEG turns grey into nearly-grey RGB). Unreadable files
    count as grey, so that they do not decide; they are skipped later with a reason."""
    try:
        with Image.open(path, formats=_FORMATS) as img:
            if img.mode in ("1", "L", "LA", "La", "I", "F") or img.mode.startswith("I;16"):
                return True
            img.draft("RGB", (64, 64))
            small = np.asarray(to_rgb(img).resize((32, 32), Image.Resampling.NEAREST), dtype=np.int16)
    except (*_BOMB_ERRORS, *_DECODE_ERRORS, DataError):
        return True
    return int(np.abs(small - small.mean(axis=2, keepdims=True)).max()) <= tolerance


def summarize_skipped(skipped: list[ImageSkipped]) -> str:
    """E.g. ``"skipped 3 files: 2 truncated, 1 empty"``, most common reason first; ``""`` if none."""
    if not skipped:
        return ""
    counts = Counter(err.reason for err in skipped)
    by_count = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    noun = "file" if len(skipped) == 1 else "files"
    return f"skipped {len(skipped)} {noun}: " + ", ".join(f"{n} {reason}" for reason, n in by_count)


def _decode(file: BinaryIO, path: Path, size: int, max_pixels: int) -> Image.Image:
    """Open, check and fully decode; the result no longer needs ``file``."""
    try:
        img = Image.open(file, formats=_FORMATS)
    except (*_BOMB_ERRORS, *_DECODE_ERRORS) as err:
        raise _skip_for(path, err) from err
    width, height = img.size
    if width * height > max_pixels:
        raise ImageSkipped(
            path,
            "oversized",
            f"{width}x{height} is {width * height:,} pixels, more than the limit of {max_pixels:,}",
        )
    if width == 0 or height == 0:
        raise ImageSkipped(path, "unreadable", f"the image has no pixels ({width}x{height})")
    try:
        # JPEG only: libjpeg scales by 1/2, 1/4 or 1/8 while decoding, which is far faster than
        # decoding in full and still leaves at least twice the target size for Lanczos.
        img.draft("RGB", (2 * size, 2 * size))
        img.load()
    except (*_BOMB_ERRORS, *_DECODE_ERRORS) as err:
        raise _skip_for(path, err) from err
    return img


def _upright(img: Image.Image) -> Image.Image:
    try:
        # In place: the copy exif_transpose otherwise makes of every unrotated image is wasted.
        ImageOps.exif_transpose(img, in_place=True)
    except _DECODE_ERRORS:
        pass  # malformed EXIF: the pixels are fine, only their orientation is unknown
    return img


def _skip_for(path: Path, err: BaseException) -> ImageSkipped:
    if isinstance(err, _BOMB_ERRORS):
        return ImageSkipped(path, "oversized", f"Pillow refuses to open it ({err})")
    if isinstance(err, UnidentifiedImageError):
        return ImageSkipped(path, "unreadable", "not a JPEG, PNG, WebP or BMP image")
    text = str(err) or type(err).__name__
    # Pillow has no dedicated exception for running out of data, only these messages.
    if isinstance(err, EOFError) or "truncated" in text.lower():
        return ImageSkipped(path, "truncated", f"the file ends before the image does ({text})")
    return ImageSkipped(path, "unreadable", f"corrupt image data ({text})")


def _composite(img: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    if img.mode == "La":
        img = img.convert("LA")  # Pillow has no direct La -> RGBA conversion
    # convert("RGBA") un-premultiplies RGBa and turns info["transparency"] into alpha.
    rgba = img.convert("RGBA")
    base = Image.new("RGBA", rgba.size, (*colour, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")


def _grey_to_rgb(
    img: Image.Image,
    values: np.ndarray,
    value_range: tuple[float, float],
    colour: tuple[int, int, int],
) -> Image.Image:
    lo, hi = value_range
    if hi > lo:
        scaled = (values.astype(np.float32) - np.float32(lo)) * np.float32(255 / (hi - lo))
        grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    else:
        grey = np.zeros(values.shape, np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    key = img.info.get("transparency")
    if isinstance(key, int) and not isinstance(key, bool):
        # A 16-bit PNG's colour key: Pillow's own RGBA conversion would clip it to 8 bits first.
        rgb[values == key] = colour
    return Image.fromarray(rgb)


def _extremes(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return 0, 0
    return finite.min().item(), finite.max().item()


def _check_background(background: tuple[int, int, int]) -> tuple[int, int, int]:
    try:
        colour = tuple(operator.index(c) for c in background)
    except TypeError:
        colour = ()
    if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
        raise ValueError(f"background must be three integers from 0 to 255, got {background!r}")
    return colour  # type: ignore[return-value]


def _check_size(size: int) -> int:
    size = operator.index(size)
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    return size
