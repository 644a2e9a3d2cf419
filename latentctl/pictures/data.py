"""From a folder of pictures to a uint8 array, decoded once.

``prepare_dataset`` lists the folder, picks the ``--max-images`` subset, and decodes each image to
(S, S, 3) uint8 with ``images.load_rgb``. The result is cached as a memory-mapped ``.npy`` keyed by
the file list, sizes, mtimes and target size, so later epochs and later runs on the same folder
decode nothing, and a changed folder is read again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentctl.errors import DataError, StorageError
from latentctl.files.fsutil import atomic_write_text, describe_os_error, display_name, name_bytes
from latentctl.pictures.images import ImageSkipped, find_images, is_grey, load_image, summarize_skipped

CACHE_VERSION = 1  # bump when decoding changes, so old caches are not reused
Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class Skipped:
    file: str
    reason: str
    detail: str


@dataclass
class ImageDataset:
    root: Path
    images: np.ndarray  # (N, S, S, C) uint8, usually a read-only memory map
    files: list[str]  # relative POSIX paths, one per row of images
    fingerprint: str
    skipped: list[Skipped] = field(default_factory=list)
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.files)

    @property
    def skipped_summary(self) -> str:
        return summarize_skipped_records(self.skipped)

    def __getstate__(self) -> dict:
        # Sent to training worker processes: pass the cache file's name, not a copy of the images.
        state = dict(self.__dict__)
        if isinstance(self.images, np.memmap) and self.images.filename:
            state["images"] = ("memmap", self.images.filename)
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state["images"], tuple):
            state["images"] = np.load(state["images"][1], mmap_mode="r", allow_pickle=False)
        self.__dict__.update(state)


def summarize_skipped_records(skipped: list[Skipped]) -> str:
    return summarize_skipped([ImageSkipped(s.file, s.reason, s.detail) for s in skipped])


SKIPPED_FILE = "skipped.txt"


def write_skipped_list(run_dir: Path, skipped: list[Skipped]) -> Path:
    """``run_dir/skipped.txt``: one line per unusable file, ``name<TAB>reason<TAB>detail``. Names are
    written with ``fsutil.display_name``, so a name holding a newline, a tab or bytes that are not
    UTF-8 stays on its one line and can be told apart from any other."""
    lines = [f"{display_name(s.file)}\t{s.reason}\t{display_name(s.detail)}\n" for s in skipped]
    path = Path(run_dir) / SKIPPED_FILE
    atomic_write_text(path, "".join(lines))
    return path


def select_subset(files: list[Path], max_images: int | None, seed: int) -> list[Path]:
    """A reproducible random subset (the seed used 15,000 of 23,708), kept in listing order."""
    if max_images is None or max_images >= len(files):
        return files
    idx = np.sort(np.random.default_rng(seed).choice(len(files), size=max_images, replace=False))
    return [files[i] for i in idx]


def detect_channels(root: Path, *, sample: int = 64) -> int:
    """1 when the folder's pictures carry no colour (up to ``sample`` of them, evenly spread,
    all grey), else 3. RGBA (4) is never guessed: transparency is kept only when asked for."""
    files = find_images(Path(root).expanduser())
    if not files:
        return 3
    picks = [files[i] for i in np.linspace(0, len(files) - 1, min(sample, len(files))).astype(int)]
    return 1 if all(is_grey(f) for f in picks) else 3


def fingerprint(root: Path, files: list[Path], size: int, channels: int = 3) -> str:
    # RGB keeps the key it always had, so runs started before channels existed still resume.
    tag = f"{size}" if channels == 3 else f"{size}/c{channels}"
    h = hashlib.sha256(f"latentctl-cache/{CACHE_VERSION}/{tag}\n".encode())
    for p in files:
        st = p.stat()
        # The name's own bytes: a name that is not UTF-8 (caf\xe9.png in Latin-1) hashes too.
        h.update(name_bytes(p.relative_to(root).as_posix()) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def prepare_dataset(
    root: Path,
    size: int,
    cache_dir: Path,
    *,
    max_images: int | None = None,
    seed: int = 0,
    strict: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
    channels: int = 3,
) -> ImageDataset:
    root = Path(root).expanduser().resolve()
    files = find_images(root)
    if not files:
        raise DataError(f"{root} has no images (looked for .jpg, .jpeg, .png, .webp and .bmp files, recursively)")
    files = select_subset(files, max_images, seed)
    key = fingerprint(root, files, size, channels)
    cached = _load_cache(cache_dir, key, root)
    if cached is not None:
        if strict and cached.skipped:
            raise _strict_error(cached.skipped)
        return cached

    out = np.empty((len(files), size, size, channels), dtype=np.uint8)
    ok = np.zeros(len(files), dtype=bool)
    skipped: list[Skipped] = []

    def decode(i: int) -> None:
        try:
            out[i] = load_image(files[i], size, channels)
            ok[i] = True
        except ImageSkipped as err:
            skipped.append(Skipped(files[i].relative_to(root).as_posix(), err.reason, err.detail))

    # Pillow releases the GIL while decoding and resizing, so threads use every core without the
    # memory copies of worker processes.
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, _ in enumerate(pool.map(decode, range(len(files))), 1):
            if progress:
                progress(done, len(files))
    skipped.sort(key=lambda s: s.file)
    if strict and skipped:
        raise _strict_error(skipped)
    kept = [files[i].relative_to(root).as_posix() for i in np.flatnonzero(ok)]
    if not kept:
        raise DataError(
            f"{root}: none of the {len(files)} image files could be used ({summarize_skipped_records(skipped)})"
        )
    images = out[ok] if not ok.all() else out
    dataset = ImageDataset(root, images, kept, key, skipped)
    _save_cache(cache_dir, dataset)
    # Hand back the memory map rather than the decoded copy, so RAM is released for training.
    mapped = _load_cache(cache_dir, key, root)
    if mapped is None:
        return dataset
    mapped.from_cache = False
    return mapped


def _strict_error(skipped: list[Skipped]) -> DataError:
    first = skipped[0]
    return DataError(f"--strict: {summarize_skipped_records(skipped)}; first: {first.file} ({first.detail})")


def _cache_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return cache_dir / f"{key}.npy", cache_dir / f"{key}.json"


def _save_cache(cache_dir: Path, ds: ImageDataset) -> None:
    array_path, manifest_path = _cache_paths(cache_dir, ds.fingerprint)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = array_path.with_name(f".{array_path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(ds.images))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, array_path)
        finally:
            tmp.unlink(missing_ok=True)
        # The manifest is written last: a cache entry without one is ignored and rebuilt.
        manifest = {
            "version": CACHE_VERSION,
            "root": str(ds.root),
            "files": ds.files,
            "skipped": [s.__dict__ for s in ds.skipped],
        }
        atomic_write_text(manifest_path, json.dumps(manifest))
    except OSError as err:
        raise StorageError(
            describe_os_error(
                err, f"write the image cache ({ds.images.nbytes / 2**20:,.0f} MiB)", err.filename or array_path
            )
            + "; or move the workspace with --workspace"
        ) from None


def _load_cache(cache_dir: Path, key: str, root: Path) -> ImageDataset | None:
    array_path, manifest_path = _cache_paths(cache_dir, key)
    try:
        manifest = json.loads(manifest_path.read_text())
        images = np.load(array_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if manifest.get("version") != CACHE_VERSION or len(manifest["files"]) != len(images):
        return None
    skipped = [Skipped(**s) for s in manifest.get("skipped", [])]
    return ImageDataset(root, images, manifest["files"], key, skipped, from_cache=True)
