"""Image grids, PNG and MP4 output with numpy and Pillow (imageio-ffmpeg for MP4, optional).

A model's own images are small (32 px is common), so every picture meant for a person is enlarged
by a whole factor with nearest-neighbour sampling (crisp pixels, nothing invented) to about
``DEFAULT_TILE_SIZE`` pixels per tile, and text goes into margins around the tiles rather than
over them, in a font sized from the tile. Per-sample PNGs are left at the model's size: they are
data that other commands read back."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from latentctl.errors import UsageError
from latentctl.files.fsutil import atomic_write_bytes

# Tiles are enlarged to about this many pixels (by a whole factor, never shrunk): readable on a
# screen whether the model makes 16 px or 256 px images.
DEFAULT_TILE_SIZE = 128
MAX_TILE_SIZE = 1024
TEXT_COLOR = (235, 235, 235)
MP4_INSTALL = "pip install 'latentctl[video]'  (or: pip install imageio-ffmpeg)"


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def scale_factor(size: int, tile_size: int | None) -> int:
    """The whole factor that brings ``size`` px closest to ``tile_size`` from below (at least 1).
    ``None`` or 0 means no enlarging."""
    if not tile_size or size <= 0:
        return 1
    return max(1, int(tile_size) // int(size))


def check_tile_size(tile_size: int | None, option: str = "--tile-size") -> None:
    if tile_size is not None and not 0 <= tile_size <= MAX_TILE_SIZE:
        raise UsageError(f"{option} {tile_size}: give 0 (the model's size) to {MAX_TILE_SIZE} pixels")


def upscale(images: np.ndarray, tile_size: int | None = DEFAULT_TILE_SIZE) -> np.ndarray:
    """(N, H, W, C) or (H, W, C) uint8 enlarged by ``scale_factor(H, tile_size)``, nearest-neighbour."""
    h = images.shape[-3]
    k = scale_factor(h, tile_size)
    if k == 1:
        return images
    return images.repeat(k, axis=-3).repeat(k, axis=-2)


def font_for(tile: int):
    """Pillow's scalable default font at a size that reads well beside a ``tile``-pixel image."""
    px = max(11, min(28, round(tile / 9)))
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def make_grid(
    images: np.ndarray,
    *,
    cols: int | None = None,
    labels: list[str] | None = None,
    pad: int = 2,
    background: tuple[int, int, int] = (24, 24, 24),
    tile_size: int | None = DEFAULT_TILE_SIZE,
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    caption: str | None = None,
) -> Image.Image:
    """Tile (N, H, W, C) uint8 images row by row (C = 1 grey, 3 RGB, 4 RGBA).

    Tiles are enlarged to about ``tile_size`` pixels (``upscale``; ``None``/0: the model's size).
    ``labels`` (one per tile) are written in a margin under each tile, ``col_labels`` above the
    columns, ``row_labels`` left of the rows and ``caption`` across the top: text never covers an
    image. Without any text the grid keeps the images' own mode (a grey model's grid is grey)."""
    images = upscale(np.asarray(images), tile_size)
    n, h, w, c = images.shape
    rows, cols = grid_shape(n, cols)
    has_text = bool(labels or row_labels or col_labels or caption)
    font = font_for(w) if has_text else None
    line = _line_height(font) if has_text else 0
    under = line if labels else 0  # the label margin under every tile
    left = (max(_text_width(t, font) for t in row_labels) + 2 * pad + 4) if row_labels else 0
    top = (line + pad if caption else 0) + (line if col_labels else 0)
    cell_h = h + under + pad
    height, width = top + rows * cell_h + pad, left + cols * (w + pad) + pad
    canvas = np.empty((height, width, c), dtype=np.uint8)
    canvas[...] = _background_for(background, c)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = top + pad + r * cell_h, left + pad + k * (w + pad)
        canvas[y : y + h, x : x + w] = images[i]
    img = to_pil(canvas)
    if not has_text:
        return img
    if img.mode != "RGB":  # text is drawn on RGB for Pillow's sake (and is colour-free anyway)
        img = img.convert("RGB")
    draw = ImageDraw.Draw(img)

    def centred(text: str, x0: int, x1: int, y: int) -> None:
        text = _fit(text, font, x1 - x0)
        tw = _text_width(text, font)
        draw.text((x0 + max(0, (x1 - x0 - tw) // 2), y), text, fill=TEXT_COLOR, font=font)

    if caption:
        centred(caption, 0, width, pad)
    if col_labels:
        y = top - line
        for k, text in enumerate(col_labels[:cols]):
            x = left + pad + k * (w + pad)
            centred(text, x, x + w, y)
    if row_labels:
        for r, text in enumerate(row_labels[:rows]):
            y = top + pad + r * cell_h + (h - line) // 2
            draw.text((pad, y), _fit(text, font, left - 2 * pad), fill=TEXT_COLOR, font=font)
    for i, text in enumerate((labels or [])[:n]):
        r, k = divmod(i, cols)
        x, y = left + pad + k * (w + pad), top + pad + r * cell_h + h + 1
        centred(text, x, x + w, y)
    return img


def _line_height(font) -> int:
    box = font.getbbox("Ag(|")
    return box[3] + 4


def _text_width(text: str, font) -> int:
    box = font.getbbox(text)
    return box[2] - min(0, box[0])


def _fit(text: str, font, width: int) -> str:
    """``text`` cut to ``width`` pixels with "..." (ASCII: the bitmap fallback font is Latin-1)."""
    if _text_width(text, font) <= width:
        return text
    while text and _text_width(text + "...", font) > width:
        text = text[:-1]
    return text + "..." if text else ""


def _background_for(colour: tuple[int, int, int], channels: int) -> tuple[int, ...]:
    if channels == 1:
        return (round(0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]),)
    return tuple(colour) + ((255,) if channels == 4 else ())


def to_pil(array: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 as a Pillow image in the matching mode: L, RGB or RGBA."""
    if array.ndim == 3 and array.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(array[..., 0]))
    return Image.fromarray(np.ascontiguousarray(array))


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_png(img: Image.Image | np.ndarray, path: Path, *, overwrite: bool = True) -> Path:
    if isinstance(img, np.ndarray):
        img = to_pil(img)
    atomic_write_bytes(Path(path), png_bytes(img), overwrite=overwrite)
    return Path(path)


def require_mp4() -> None:
    """Raise the one-line UsageError of ``write_mp4`` now, before any rendering, when
    imageio-ffmpeg is missing (an option parser calls this)."""
    import importlib.util

    if importlib.util.find_spec("imageio_ffmpeg") is None:
        raise UsageError(f"writing MP4 needs the imageio-ffmpeg package: {MP4_INSTALL}")


def write_mp4(frames, path: Path, fps: float = 5.0, *, tile_size: int | None = DEFAULT_TILE_SIZE) -> Path:
    """Write ``frames`` ((H, W, C) uint8 arrays or Pillow images, all one size) as an H.264 MP4.

    Needs the optional imageio-ffmpeg package (it bundles an ffmpeg binary); without it a
    ``UsageError`` names the install. Frames are enlarged like grid tiles and padded to a multiple
    of 16 pixels, which H.264's yuv420p needs, rather than resampled (which would blur them)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UsageError(f"writing MP4 needs the imageio-ffmpeg package: {MP4_INSTALL}") from None
    arrays = [np.asarray(f.convert("RGB") if isinstance(f, Image.Image) else f) for f in frames]
    if not arrays:
        raise UsageError("no frames to write to the MP4")
    arrays = [np.repeat(a[..., :1], 3, axis=-1) if a.shape[-1] == 1 else a[..., :3] for a in arrays]
    stack = upscale(np.stack(arrays), tile_size)
    n, h, w, _ = stack.shape
    ph, pw = -h % 16, -w % 16
    stack = np.pad(stack, ((0, 0), (0, ph), (0, pw), (0, 0)))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    writer = imageio_ffmpeg.write_frames(
        str(tmp),
        (w + pw, h + ph),
        fps=float(fps),
        macro_block_size=16,
        quality=8,
        pix_fmt_out="yuv420p",
        ffmpeg_log_level="error",
    )
    try:
        writer.send(None)
        for frame in stack:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()
    tmp.replace(path)  # whole file or nothing, like every other output
    return path
