"""Real photos for `latentctl encode`: read from files and folders for a model, and, once encoded,
written out beside their reconstructions with the latents that make them. Library code: files in,
files and data out; the command prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from latentctl.errors import DataError


def load_photos(paths: list[Path], size: int, channels: int = 3) -> tuple[np.ndarray, list[Path]]:
    """Images from files and folders (folders searched recursively), decoded for a model of
    ``channels`` channels as its training data was (grey, RGB or RGBA); unusable files are errors."""
    from latentctl.pictures.images import IMAGE_EXTENSIONS, find_images, load_image

    files: list[Path] = []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            files += find_images(p)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(f"{p}: not an image file this tool reads ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            files.append(p)
        else:
            raise DataError(f"no file or folder at {p}")
    if not files:
        raise DataError("no images found in " + ", ".join(map(str, paths)))
    return np.stack([load_image(f, size, channels) for f in files]), files


def save_encoded(session: Any, encoded: Any, images: np.ndarray, files: list[Path], out_dir: Path, *, force: bool):
    """Write what ``encoded`` (encode.Encoded) made of ``images`` (read from ``files``) to
    ``out_dir``: NAME-compare.png (the picture beside its reconstruction), NAME-recon.png and
    latents.npz. Returns the latents' store entry (session.ModelSession's), for saving by name too."""
    from latentctl.pictures.grid import make_grid, save_png
    from latentctl.space.session import save_latents

    for f, img, rec in zip(files, images, encoded.reconstructions):
        save_png(
            make_grid(np.stack([img, rec]), cols=2, col_labels=["your picture", "reconstruction"]),
            out_dir / f"{f.stem}-compare.png",
        )
        save_png(rec, out_dir / f"{f.stem}-recon.png")
    entry = session.entry(
        encoded.z,
        meta={
            "command": "encode",
            "method": encoded.method,
            "files": [str(f) for f in files],
            "rms_error": [round(float(e), 3) for e in encoded.errors],
        },
    )
    save_latents(out_dir / "latents.npz", entry, force=force)
    return entry
