"""Shared fixtures: an isolated workspace per test, tiny datasets the tests make themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY_MODEL = ["--image-size", "32", "--width", "16", "--latent-dim", "8", "--batch-size", "16"]


@pytest.fixture(autouse=True)
def workspace(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own LATENTCTL_HOME, so no test reads or writes ~/.latentctl."""
    ws = tmp_path_factory.mktemp("workspace")
    monkeypatch.setenv("LATENTCTL_HOME", str(ws))
    monkeypatch.delenv("LATENTCTL_STORE", raising=False)
    return ws


def blob_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Simple images a tiny GAN can learn fast: a warm background with a blue disc near the centre."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        img = np.empty((size, size, 3))
        img[...] = np.array([200, 70, 40]) + rng.integers(-20, 20, 3)
        cx, cy = size / 2 + rng.normal(0, size / 16, 2)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < (size / 4) ** 2] = [30, 40, 150]
        out[i] = np.clip(img + rng.normal(0, 5, img.shape), 0, 255)
    return out


def write_images(folder: Path, images: np.ndarray, ext: str = "png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"img_{i:04d}.{ext}")
    return folder


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return write_images(tmp_path / "images", blob_images(64))
