"""Image grids and PNG output with numpy and Pillow only."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from latentctl.fsutil import atomic_write_bytes


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def make_grid(
    images: np.ndarray,
    *,
    cols: int | None = None,
    labels: list[str] | None = None,
    pad: int = 2,
    background: tuple[int, int, int] = (24, 24, 24),
) -> Image.Image:
    """Tile (N, H, W, 3) uint8 images row by row; each tile may carry a small label."""
    n, h, w, c = images.shape
    rows, cols = grid_shape(n, cols)
    canvas = np.empty((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    canvas[...] = background
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        canvas[y : y + h, x : x + w] = images[i]
    img = Image.fromarray(canvas)
    if labels:
        _draw_labels(img, labels, rows, cols, h, w, pad)
    return img


def _draw_labels(img: Image.Image, labels: list[str], rows: int, cols: int, h: int, w: int, pad: int) -> None:
    draw = ImageDraw.Draw(img)
    font_size = max(8, min(16, w // 6))
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        font = ImageFont.load_default()
    for i, text in enumerate(labels):
        r, k = divmod(i, cols)
        x, y = pad + k * (w + pad) + 1, pad + r * (h + pad) + 1
        box = draw.textbbox((x, y), text, font=font)
        draw.rectangle((box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1), fill=(0, 0, 0))
        draw.text((x, y), text, fill=(255, 255, 255), font=font)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_png(img: Image.Image | np.ndarray, path: Path, *, overwrite: bool = True) -> Path:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    atomic_write_bytes(Path(path), png_bytes(img), overwrite=overwrite)
    return Path(path)
