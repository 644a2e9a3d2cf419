"""Shared test helpers: an isolated workspace per test, the one tiny model preset, the dataset
factory, the CLI runner, and one tiny trained run that the read-only tests of a session share."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from latentctl.cli.app import app
from latentctl.config import ModelConfig

# ---- the tiny model -------------------------------------------------------------------------------

# The one tiny model the tests train: 32 px, width 16, latent 8, batches of 16. TINY is it as the
# library's config, TINY_MODEL as `latentctl train` flags. A test that needs something else (an
# image size, a latent size its point depends on) says so with tiny(...) and a comment.
TINY = ModelConfig(image_size=32, width=16, latent_dim=8)
TINY_BATCH = 16


def tiny(**changes) -> ModelConfig:
    """The tiny model with ``changes`` (any ModelConfig field)."""
    return dataclasses.replace(TINY, **changes)


def model_flags(cfg: ModelConfig = TINY, batch_size: int = TINY_BATCH) -> list[str]:
    """``cfg``'s size, width and latent size (and a batch size) as `latentctl train` flags."""
    return [
        "--image-size",
        str(cfg.image_size),
        "--width",
        str(cfg.width),
        "--latent-dim",
        str(cfg.latent_dim),
        "--batch-size",
        str(batch_size),
    ]


TINY_MODEL = model_flags()


# ---- the CLI --------------------------------------------------------------------------------------

_runner = CliRunner()


def run(*args, code=0):
    """Invoke the CLI in-process with ``args`` (turned into strings) and check its exit code."""
    res = _runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == code, f"exit {res.exit_code}, expected {code}\n{res.output}"
    return res


# ---- data -----------------------------------------------------------------------------------------


def blob_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Simple images a tiny GAN can learn fast: a warm background with a blue disc near the centre.
    The first k of n images are the same whatever n is."""
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
    """``images`` as files img_0000.png, img_0001.png, ... in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"img_{i:04d}.{ext}")
    return folder


def image_dataset(images: np.ndarray, fingerprint: str):
    """An in-memory ImageDataset of ``images`` (what prepare_dataset returns, without a folder)."""
    from latentctl.pictures.data import ImageDataset

    return ImageDataset(Path("/synthetic"), images, [f"{i}.png" for i in range(len(images))], fingerprint)


def blob_dataset(n: int = 64, size: int = 32, seed: int = 0):
    """blob_images(n, size, seed) as an ImageDataset; its fingerprint names the three."""
    return image_dataset(blob_images(n, size, seed), f"blobs{n}-{size}px-seed{seed}")


# ---- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def workspace(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own LATENTCTL_HOME, so no test reads or writes ~/.latentctl."""
    ws = tmp_path_factory.mktemp("workspace")
    monkeypatch.setenv("LATENTCTL_HOME", str(ws))
    monkeypatch.delenv("LATENTCTL_STORE", raising=False)
    return ws


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """64 blob images in a folder named images, the test's own."""
    return write_images(tmp_path / "images", blob_images(64))


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory) -> Path:
    """The folder the shared tiny run was trained on: 64 blob images, like image_folder. Read-only."""
    return write_images(tmp_path_factory.mktemp("tiny-images") / "images", blob_images(64))


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_images) -> Path:
    """The run folder of one tiny GAN (TINY_MODEL, tiny_images, 2 epochs), trained once per session
    in a workspace of its own, for tests that only read it: sample, inspect, render, export.

    Tests must not write into it: one that needs to (resume, an encoder stored beside the
    checkpoint) trains its own run or copies the checkpoint. At the end of the session the folder
    must be exactly as training left it."""
    home = tmp_path_factory.mktemp("tiny-run-ws")
    with pytest.MonkeyPatch.context() as mp:  # the per-test workspace does not exist yet
        mp.setenv("LATENTCTL_HOME", str(home))
        mp.delenv("LATENTCTL_STORE", raising=False)
        run("train", tiny_images, *TINY_MODEL, "--epochs", "2")
    folder = home / "runs" / "0001-images-32px"
    before = _snapshot(folder)
    yield folder
    assert _snapshot(folder) == before, f"a test changed the shared run {folder}"
