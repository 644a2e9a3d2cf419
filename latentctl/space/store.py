"""The latent store: named ``.npz`` files of latent vectors and directions.

Each entry is one ``.npz`` archive, readable by plain numpy with ``allow_pickle=False``:

========== ================================================================================
key        contents
========== ================================================================================
z          float32 (n, latent_dim), finite -- the only required key
kind       "points" (samples) or "direction" (an attribute direction, usually n == 1)
seeds      int64 (n,), the seed of each row when it came from seeds (absent otherwise)
model_id   hash of the generator weights that gave the rows their meaning ("" if unknown)
run_id     the training run of that generator ("" if unknown)
meta       JSON object: command, sources, counts, method, created (UTC ISO), latentctl_version
space      the latent space of the rows: "z", "w" or "w+" (StyleGAN's; w+ rows are the num_ws
           per-layer ws flattened); absent in files from before it was recorded, or other tools
format     "latentctl-latents/1"
========== ================================================================================

Strings are 0-d numpy unicode arrays, so no key ever needs pickle. Reading never unpickles: a
latent file may come from anyone, and unpickling runs arbitrary code.

``store_index`` holds what `latents list` needs (names, EntryInfo, the listing) and reads plainly
written entries without numpy, handing every other file to ``read_entry``.

``resolve_latents`` is the one place where command-line text (``seeds:0-8``, ``glasses@0,2``,
``out/x.npz``) becomes latents, so every command accepts the same forms with the same errors.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import json
import lzma
import math
import re
import struct
import sys
import tokenize
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from latentctl._version import __version__
from latentctl.config import SPACES
from latentctl.errors import StoreError, UsageError
from latentctl.files.fsutil import atomic_writer
from latentctl.seeds import MAX_SEED, MAX_SEED_COUNT, format_seeds, latents_from_seeds, parse_seeds
from latentctl.space.store_index import FORMAT, KINDS, SUFFIX, EntryInfo, entry_names, list_entries

_FORMAT_FAMILY = "latentctl-latents/"
LIST_HINT = "`latentctl latents list` shows the saved entries"

# Leading '.' would hide the file (and collide with the writer's temporary files); leading '-'
# would be read as an option on the command line. '@' and ':' stay out because
# resolve_latents gives them meaning.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_MAX_NAME = 200  # file systems allow 255 bytes per name; leave room for ".npz" and temp names
# seeds:0-4294967295 would otherwise try to build billions of latents; rows after '@' likewise.
MAX_RESOLVED_SEEDS = MAX_SEED_COUNT


def _utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ---- entries ------------------------------------------------------------------------------------


# eq=False: the generated __eq__ would compare numpy arrays, whose truth value is ambiguous.
@dataclass(frozen=True, eq=False)
class LatentEntry:
    """Latents with what is known of their origin. ``z`` is a read-only float32 copy."""

    z: np.ndarray
    kind: str = "points"
    seeds: np.ndarray | None = None
    model_id: str = ""
    run_id: str = ""
    meta: dict = field(default_factory=dict)
    space: str = ""  # z, w or w+ (config.SPACES); "" when unknown

    def __post_init__(self) -> None:
        # Validating here means every entry in memory, from a file or built by a command, obeys
        # the file format; read_entry only adds the file name to these messages.
        z = np.asarray(self.z)
        if z.dtype.kind != "f":
            raise StoreError(f"'z' must hold floating-point numbers, got {z.dtype}")
        if z.ndim != 2:
            raise StoreError(f"'z' must be 2-D (rows, latent_dim), got shape {z.shape}")
        if z.shape[0] == 0:
            raise StoreError("'z' has no rows")
        if z.shape[1] == 0:
            raise StoreError("'z' has zero-dimensional latents")
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, caught below
            z = np.array(z, dtype=np.float32, copy=True)
        finite = np.isfinite(z).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            rows = ", ".join(str(i) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
            raise StoreError(f"'z' has NaN or infinite values (row {rows})")
        # A frozen entry whose array can be edited in place would not be frozen; the copy above
        # keeps the caller's own array writable.
        z.setflags(write=False)
        object.__setattr__(self, "z", z)

        if self.kind not in KINDS:
            raise StoreError(f"unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.seeds is not None:
            seeds = np.asarray(self.seeds)
            if seeds.dtype.kind not in "iu" or seeds.shape != (z.shape[0],):
                raise StoreError(
                    f"'seeds' must be {z.shape[0]} integers (one per row of 'z'), "
                    f"got {seeds.dtype} of shape {seeds.shape}"
                )
            if seeds.size and (int(seeds.min()) < 0 or int(seeds.max()) > MAX_SEED):
                raise StoreError(f"'seeds' must lie within 0-{MAX_SEED}")
            seeds = seeds.astype(np.int64)  # astype copies, so the caller's array stays theirs
            seeds.setflags(write=False)
            object.__setattr__(self, "seeds", seeds)
        for key in ("model_id", "run_id"):
            if not isinstance(getattr(self, key), str):
                raise StoreError(f"'{key}' must be a string, got {type(getattr(self, key)).__name__}")
        if not isinstance(self.meta, dict):
            raise StoreError(f"'meta' must be a JSON object, got {type(self.meta).__name__}")
        if self.space and self.space not in SPACES:
            raise StoreError(f"'space' {self.space[:20]!r} is not one of {', '.join(SPACES)}")

    @property
    def latent_dim(self) -> int:
        return int(self.z.shape[1])

    @property
    def count(self) -> int:
        return int(self.z.shape[0])

    def select(self, rows: list[int]) -> LatentEntry:
        """The entry restricted to ``rows`` (in that order, repeats allowed)."""
        rows = [int(r) for r in rows]
        if not rows:
            raise StoreError("no rows selected")
        bad = [r for r in rows if not 0 <= r < self.count]
        if bad:
            raise StoreError(
                f"row {bad[0]} is out of range: "
                + (
                    "the entry has 1 row, numbered 0"
                    if self.count == 1
                    else f"the entry has {self.count} rows, numbered 0-{self.count - 1}"
                )
            )
        idx = np.asarray(rows, dtype=np.intp)
        return dataclasses.replace(
            self,
            z=self.z[idx],
            seeds=None if self.seeds is None else self.seeds[idx],
            meta=dict(self.meta),
        )


# ---- reading ------------------------------------------------------------------------------------

# The most one array of a latent file may declare, checked against its .npy header before anything
# is allocated: a 200-byte file can claim 10^12 floats. 2 GiB is a million 512-dimensional latents.
MAX_ARRAY_BYTES = 2**31
_MAX_NDIM = 32  # numpy's own limit is 64; no key of ours has more than 2 dimensions
_NPY_MAGIC = b"\x93NUMPY"
# What numpy's .npy header parser and a hostile zip member can raise while being read; each means
# "this file is not a usable latent file", never a bug of ours.
_DECODE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    SyntaxError,
    RecursionError,
    MemoryError,  # ast.literal_eval of a '-----...1' header under numpy's 10,000-byte limit
    tokenize.TokenError,
    struct.error,
)
_ZIP_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,
    struct.error,
    ValueError,
    OverflowError,
)


class _Archive:
    """The members of an open .npz, read one array at a time with every size checked first.

    Keys follow numpy's NpzFile: a member ``z.npy`` is key ``z``, and a member named exactly ``z``
    wins over ``z.npy``. Nothing is ever unpickled: object arrays are refused from their header.
    """

    def __init__(self, zf: zipfile.ZipFile, where: str):
        self.zf, self.where = zf, where
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            self.members[info.filename] = info  # a repeated name: the last wins, as in zipfile
        self.names = list(dict.fromkeys(n[:-4] if n.endswith(".npy") else n for n in self.members))

    def __contains__(self, key: str) -> bool:
        return key in self.names

    def array(self, key: str) -> np.ndarray:
        where = self.where
        info = self.members.get(key) or self.members.get(key + ".npy")
        if info is None:
            raise StoreError(f"{where} has no '{key}' array")
        with self.zf.open(info) as f:
            head = f.read(8)
            if len(head) < 8 or head[:6] != _NPY_MAGIC:
                # NpzFile hands back raw bytes for such a member (any zip opens as an npz).
                raise StoreError(f"{where}: '{key}' is not a numpy array")
            version = (head[6], head[7])
            if version not in ((1, 0), (2, 0)):
                raise StoreError(
                    f"{where}: '{key}' is a .npy array of version {version[0]}.{version[1]}, "
                    "which latentctl does not read (numpy writes 1.0 or 2.0 for plain arrays)"
                )
            try:
                read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                # numpy warns when a header needs Python 2 era parsing; the library never prints.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    shape, fortran, dtype = read_header(f)
            except _DECODE_ERRORS as e:
                raise StoreError(f"{where}: '{key}' has a malformed .npy header ({_short(e)})") from None
            if dtype.hasobject:
                raise _Pickled(where)
            if dtype.kind not in "biufcSU" or dtype.names is not None or dtype.subdtype is not None:
                raise StoreError(f"{where}: '{key}' holds {dtype} values, which latentctl does not read")
            if dtype.itemsize == 0:
                raise StoreError(f"{where}: '{key}' declares elements of size zero ({dtype})")
            if len(shape) > _MAX_NDIM or any(d < 0 for d in shape):
                raise StoreError(f"{where}: '{key}' declares an impossible shape {shape}")
            count = math.prod(shape)
            nbytes = count * dtype.itemsize
            if nbytes > MAX_ARRAY_BYTES:
                raise StoreError(
                    f"{where}: '{key}' declares shape {shape} of {dtype} ({nbytes:,} bytes), more "
                    f"than the {MAX_ARRAY_BYTES:,} bytes latentctl reads from one array"
                )
            # The zip directory says how much the member really holds once decompressed; a header
            # that claims more (or less) describes some other array.
            held = info.file_size - f.tell()
            if held != nbytes:
                raise StoreError(
                    f"{where}: '{key}' declares shape {shape} of {dtype} ({nbytes:,} bytes) but "
                    f"holds {max(held, 0):,} bytes; the file is truncated or corrupt"
                )
            data = f.read(nbytes)
        if len(data) != nbytes:
            raise StoreError(f"{where}: '{key}' is truncated ({len(data):,} of {nbytes:,} bytes)")
        arr = np.frombuffer(data, dtype=dtype, count=count)
        if fortran:
            return arr.reshape(shape[::-1]).transpose()
        return arr.reshape(shape)

    def string(self, key: str) -> str | None:
        if key not in self:
            return None
        arr = self.array(key)
        where = self.where
        if arr.ndim == 0 and arr.dtype.kind == "U":
            # Decoded here, not by numpy: a member holding invalid code points (0xFFFFFFFF) makes
            # numpy's str() raise SystemError rather than a decoding error.
            little = arr.dtype.byteorder in ("<", "|") or (arr.dtype.byteorder == "=" and sys.byteorder == "little")
            try:
                return arr.tobytes().decode("utf-32-le" if little else "utf-32-be").rstrip("\0")
            except UnicodeDecodeError:
                raise StoreError(f"{where}: '{key}' is not valid text") from None
        if arr.ndim == 0 and arr.dtype.kind == "S":  # numpy bytes strings from other writers
            try:
                return arr[()].decode("utf-8")
            except UnicodeDecodeError:
                raise StoreError(f"{where}: '{key}' is not valid UTF-8 text") from None
        raise StoreError(f"{where}: '{key}' must be a text string, got {arr.dtype} of shape {arr.shape}")


class _Pickled(StoreError):
    def __init__(self, where: str):
        super().__init__(
            f"{where} holds pickled Python objects, which latentctl refuses to load (loading them could run code)"
        )


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _read_arrays(path: Path, where: str) -> dict[str, Any]:
    """Every key read_entry uses, as plain values, with the archive closed again."""
    with zipfile.ZipFile(path) as zf:
        npz = _Archive(zf, where)
        space = None
        if "z" in npz:
            z = npz.array("z")
        elif "w" in npz:
            # NVIDIA's projector saves its result as 'w': (n, num_ws, w_dim), one w per layer,
            # which is a W+ latent (flattened into our rows); (n, w_dim) is a W one.
            z = npz.array("w")
            if z.ndim not in (2, 3):
                raise StoreError(
                    f"{where}: its 'w' array has shape {z.shape}; expected (rows, w_dim) or "
                    "(rows, layers, w_dim) as StyleGAN's projector writes"
                )
            space = "w" if z.ndim == 2 else "w+"
            z = z.reshape(z.shape[0], math.prod(z.shape[1:]))  # explicit: -1 cannot be solved for 0 rows
        else:
            found = ", ".join(repr(n) for n in npz.names[:20]) or "none"
            if len(npz.names) > 20:
                found += f" and {len(npz.names) - 20} more"
            raise StoreError(f"{where} has no 'z' array of latents (keys found: {found})")
        out: dict[str, Any] = {"z": z}
        out["seeds"] = npz.array("seeds") if "seeds" in npz else None
        for key in ("kind", "model_id", "run_id", "meta", "format", "space"):
            out[key] = npz.string(key)
        if out["space"] is None and "z" not in npz:
            out["space"] = space
    return out


def _expand(path: Path) -> Path:
    try:
        return path.expanduser()
    # RuntimeError: "~someone/..." for a user this system does not know; ValueError: a NUL byte in
    # "~..." (the home lookup refuses it). Kept literal: no file has that name, which is then said.
    except (RuntimeError, ValueError):
        return path


def _show(path: Path | str) -> str:
    """A path for a one-line message: as typed, or quoted and escaped if it holds a line break
    or another control character (text from a command line or a folder listing can)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _is_file(path: Path, *, folder: bool = False) -> bool:
    # Text from a command line can be a name too long for the file system (OSError on 3.11) or
    # hold a NUL byte; neither names a file (or folder) that exists.
    try:
        path = _expand(path)
        return path.is_dir() if folder else path.is_file()
    except (OSError, ValueError):
        return False


def read_entry(path: Path) -> LatentEntry:
    """Read a latent ``.npz`` (ours, or a third party's with just ``z``) without ever unpickling.

    Every failure is a ``StoreError`` naming the file; no declared size is trusted before it is
    checked against the archive and ``MAX_ARRAY_BYTES``.
    """
    path = _expand(Path(path))
    where = _show(path)
    try:
        if not _is_file(path):
            if _is_file(path, folder=True):
                raise StoreError(f"{where} is a folder, not a latent file")
            raise StoreError(f"no latent file {where}")
        is_zip = zipfile.is_zipfile(path)
        if not is_zip:
            # np.load would try to unpickle this (refused) and blame "pickled data"; say what
            # the file really is instead.
            with open(path, "rb") as f:
                head = f.read(6)
            if head == _NPY_MAGIC:
                raise StoreError(
                    f"{where} is a single .npy array, not a .npz latent file; "
                    "convert it with numpy.savez(path, z=array)"
                )
            raise StoreError(f"{where} is not a .npz latent file (not a zip archive)")
        arrays = _read_arrays(path, where)
    except StoreError:
        raise
    except _ZIP_ERRORS as e:
        raise StoreError(f"{where} cannot be read as a .npz archive: {_short(e)}") from None

    fmt = arrays["format"]
    if fmt is not None and fmt != FORMAT:
        if fmt.startswith(_FORMAT_FAMILY):
            raise StoreError(
                f"{where} is in format {fmt!r}, which latentctl {__version__} cannot read "
                f"(it reads {FORMAT!r}); a newer latentctl may"
            )
        raise StoreError(f"{where} is a {fmt!r} file, not latentctl latents")

    meta: dict = {}
    if arrays["meta"] is not None:
        try:
            meta = json.loads(arrays["meta"])
        except json.JSONDecodeError as e:
            raise StoreError(f"{where}: 'meta' is not valid JSON ({e.msg} at char {e.pos})") from None
        except RecursionError:  # '[[[[...' thousands deep
            raise StoreError(f"{where}: 'meta' is JSON nested too deeply to read") from None
        if not isinstance(meta, dict):
            raise StoreError(f"{where}: 'meta' must be a JSON object, got {type(meta).__name__}")
    try:
        return LatentEntry(
            z=arrays["z"],
            kind=arrays["kind"] if arrays["kind"] is not None else "points",
            seeds=arrays["seeds"],
            model_id=arrays["model_id"] or "",
            run_id=arrays["run_id"] or "",
            meta=meta,
            space=arrays["space"] or "",
        )
    except StoreError as e:
        raise StoreError(f"{where}: {e}") from None


# ---- writing ------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    # Counts and sums computed with numpy arrive as numpy scalars; they are plain numbers in JSON.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def write_entry(path: Path, entry: LatentEntry, *, force: bool = False) -> Path:
    """Write ``entry`` to exactly ``path`` (no suffix added), atomically; returns the path.

    The file appears complete or not at all: it is written to a temporary file in the same
    folder, synced, then renamed over ``path``, so a crash or a full disk never leaves a torn
    entry nor destroys the one being replaced. ``meta`` gains ``created`` and
    ``latentctl_version`` unless it has them.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise StoreError(f"{path} is a folder; give a file name for the latents")
    if path.exists() and not force:
        raise StoreError(f"{path} already exists; pass --force to replace it")
    meta = dict(entry.meta)
    meta.setdefault("created", _utc_now_iso())
    meta.setdefault("latentctl_version", __version__)
    try:
        meta_json = json.dumps(meta, sort_keys=True, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as e:
        raise StoreError(f"cannot write {path}: its meta is not plain JSON ({e})") from None
    arrays: dict[str, np.ndarray] = {
        "z": np.ascontiguousarray(entry.z, dtype=np.float32),
        "kind": np.array(entry.kind),
        "model_id": np.array(entry.model_id),
        "run_id": np.array(entry.run_id),
        "meta": np.array(meta_json),
        "format": np.array(FORMAT),
    }
    if entry.seeds is not None:
        arrays["seeds"] = np.asarray(entry.seeds, dtype=np.int64)
    if entry.space:
        arrays["space"] = np.array(entry.space)
    try:
        # Writing to an open file object, not a name, stops numpy appending ".npz" to the name.
        with atomic_writer(path, overwrite=force) as f:
            np.savez(f, **arrays)
    except FileExistsError:
        # Another process created it between our check and the rename.
        raise StoreError(f"{path} already exists; pass --force to replace it") from None
    except OSError as e:
        raise StoreError(f"cannot write {path}: {e.strerror or e}") from None
    return path


# ---- the store ----------------------------------------------------------------------------------


class LatentStore:
    """A folder of named entries, ``<root>/<name>.npz``; the folder appears on the first save."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"LatentStore({str(self.root)!r})"

    @staticmethod
    def normalize_name(name: str) -> str:
        """``name`` without ``.npz``, checked to be a safe file name."""
        if not isinstance(name, str):
            raise UsageError(f"an entry name must be text, got {type(name).__name__}")
        base = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
        if not base:
            raise UsageError("an entry name cannot be empty")
        if len(base) > _MAX_NAME:
            raise UsageError(f"entry name {name!r} is too long (at most {_MAX_NAME} characters)")
        if base.startswith("."):
            raise UsageError(f"entry name {name!r} cannot start with '.'")
        if base.startswith("-"):
            raise UsageError(f"entry name {name!r} cannot start with '-' (it would look like an option)")
        if not _NAME_RE.fullmatch(base):
            raise UsageError(
                f"entry name {name!r} may use only letters, digits, '-', '_' and '.' (no spaces or path separators)"
            )
        return base

    def path_for(self, name: str) -> Path:
        return self.root / (self.normalize_name(name) + SUFFIX)

    def exists(self, name: str) -> bool:
        return self.path_for(name).is_file()

    def names(self) -> list[str]:
        """The names of the entries present, sorted; nothing is read."""
        return entry_names(self.root)

    def save(self, name: str, entry: LatentEntry, *, force: bool = False) -> Path:
        return write_entry(self.path_for(name), entry, force=force)

    def load(self, name: str) -> LatentEntry:
        path = self.path_for(name)
        if not path.is_file():
            raise StoreError(self._unknown_message(self.normalize_name(name)))
        return read_entry(path)

    def _unknown_message(self, name: str) -> str:
        names = self.names()
        msg = f"no latent entry {name!r} in {self.root}"
        if not names:
            return msg + " (the store is empty)"
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        if close:
            msg += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        return f"{msg} ({LIST_HINT})"

    def list(self) -> list[EntryInfo]:
        """Every entry, sorted by name; a malformed file is reported in its row, not raised."""
        return list_entries(self.root, read_entry)


# ---- resolving command-line text ----------------------------------------------------------------

_ROWS_HELP = "rows after '@' are numbers and ranges such as 'glasses@0,2' or 'glasses@0-3'"


def _spec_extent(text: str) -> tuple[int, int] | None:
    """(how many numbers, largest number) a seeds/rows spec names, without expanding it.

    None when the text is not well formed; parse_seeds then produces the precise error.
    """
    total, largest = 0, -1
    for part in text.split(","):
        lo_s, dash, hi_s = part.strip().partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if dash else lo
        except ValueError:
            return None
        total += max(hi - lo + 1, 0)
        largest = max(largest, hi)
    return total, largest


def _from_seeds(spec: str, text: str, latent_dim: int | None, from_seeds=None) -> LatentEntry:
    if latent_dim is None:
        raise UsageError(f"{spec!r}: latents from seeds need a model to know their size")
    extent = _spec_extent(text)
    if extent is not None and extent[0] > MAX_RESOLVED_SEEDS:
        raise UsageError(
            f"{spec!r} names {extent[0]:,} seeds; at most {MAX_RESOLVED_SEEDS:,} seeds per command; split the range"
        )
    try:
        seeds = parse_seeds(text)
    except UsageError:
        raise UsageError(
            f"{spec!r}: seeds are numbers and ascending ranges such as 'seeds:16,37,83' or "
            f"'seeds:0-8' (within 0-{MAX_SEED})"
        ) from None
    return LatentEntry(
        z=latents_from_seeds(seeds, latent_dim) if from_seeds is None else from_seeds(seeds),
        kind="points",
        seeds=np.asarray(seeds, dtype=np.int64),
        meta={"source": f"seeds:{format_seeds(seeds)}"},
    )


def _looks_like_path(text: str) -> bool:
    # Entry names cannot contain separators, so any separator means a file; a bare "x.npz" is a
    # file only if it exists, otherwise it is the store entry "x".
    return "/" in text or "\\" in text or (text.endswith(SUFFIX) and _is_file(Path(text)))


def resolve_latents(
    spec: str,
    store: LatentStore,
    latent_dim: int | None,
    from_seeds=None,
    *,
    space: str | None = None,
    own_space: str = "",
) -> LatentEntry:
    """Turn command-line text into latents.

    ``seeds:16,37,83`` / ``seeds:0-8`` / ``seed:42``  latents from seeds (model independent)
    ``path/to/file.npz``                              a latent file anywhere
    ``name``                                          an entry of the store
    any of these + ``@ROWS``                          only those rows, e.g. ``glasses@0,2``

    ``latent_dim`` is the model's; latents of another size are refused. ``None`` skips that
    check (for commands that only inspect latents) but then seeds cannot be used. ``from_seeds``
    turns seeds into the model's latents (``ModelSession.seed_latents``: its prior, its mapping);
    without it seeds are standard normal. ``space`` is the latent space the command works in:
    an entry in another is refused (``check_space``; ``own_space`` is the model's own, what its
    entries from before spaces were recorded are in), before its size is compared.
    """
    spec = spec.strip()
    if not spec:
        raise UsageError("empty latent source: give seeds:0-8, a store entry name or a .npz file")
    base, rows_text = spec, None
    # A real file whose name contains '@' is taken whole; otherwise the last '@' starts rows.
    if "@" in spec and not _is_file(Path(spec)):
        base, _, rows_text = spec.rpartition("@")
        if not base:
            raise UsageError(f"{spec!r}: nothing before '@' to take rows from")

    for prefix in ("seeds:", "seed:"):
        if base.startswith(prefix):
            entry = _from_seeds(spec, base[len(prefix) :], latent_dim, from_seeds)
            label = base
            break
    else:
        if _looks_like_path(base):
            entry = read_entry(Path(base))
        else:
            try:
                entry = store.load(base)
            except StoreError as e:
                if base.endswith(SUFFIX):
                    raise StoreError(f"{e}; no file {_show(base)} exists here either") from None
                raise
        label = base

    if space is not None:
        check_space(entry, space, label, own_space)
    if latent_dim is not None and entry.latent_dim != latent_dim:
        raise StoreError(f"{label!r} has {entry.latent_dim}-dimensional latents but the model uses {latent_dim}")

    if rows_text is not None:
        extent = _spec_extent(rows_text)
        if extent is not None and extent[1] >= entry.count:
            # Checked before parse_seeds so that 'x@0-4000000000' fails fast instead of
            # expanding billions of row numbers.
            raise StoreError(
                f"{spec!r}: row {extent[1]} is out of range: {label!r} has "
                + ("1 row, numbered 0" if entry.count == 1 else f"{entry.count} rows, numbered 0-{entry.count - 1}")
            )
        if extent is not None and extent[0] > MAX_RESOLVED_SEEDS:
            # 'x@0-9,0-9,...' repeats rows; each one becomes a latent to render.
            raise UsageError(
                f"{spec!r} selects {extent[0]:,} rows; at most {MAX_RESOLVED_SEEDS:,} rows per "
                "command; split the selection"
            )
        try:
            rows = parse_seeds(rows_text, limit=MAX_RESOLVED_SEEDS)
        except UsageError:
            raise UsageError(f"{spec!r}: {_ROWS_HELP}") from None
        try:
            entry = entry.select(rows)
        except StoreError as e:
            raise StoreError(f"{spec!r}: {e}") from None
    return entry


def recorded_space(entry: LatentEntry, own_space: str = "") -> str:
    """The space ``entry``'s rows are in: the one it records; for an entry stamped with a model but
    written before spaces were recorded, ``own_space``, the model's own (every StyleGAN entry of
    that release is W); "" (unknown) for a file from another tool."""
    return entry.space or (own_space if entry.model_id else "")


def check_space(entry: LatentEntry, space: str, source: str, own_space: str = "") -> None:
    """A UsageError when ``entry``'s rows are in another latent space than ``space``: a w read as a
    z (both often 512 numbers) draws an unrelated picture, silently. A file from another tool,
    which says nothing of its space, is taken to be in ``space``."""
    found = recorded_space(entry, own_space)
    if found and found != space:
        what = "directions" if entry.kind == "direction" else "latents"
        raise UsageError(
            f"{source!r} holds {what} in {found.upper()}, but this command works in {space.upper()}; "
            f"pass --space {found} to work in {found.upper()}"
        )


def compatibility_warning(entry: LatentEntry, *, model_id: str, run_id: str, source: str) -> str | None:
    """A warning when ``entry`` was made by another model than the one about to use it.

    None when the models match or either is unknown: latents from seeds (and third-party files)
    carry no model, and a seed's vector is the same whatever model renders it.
    """
    if not entry.model_id or not model_id or entry.model_id == model_id:
        return None
    if entry.run_id and run_id and entry.run_id == run_id:
        return (
            f"{source!r} was made with another checkpoint of this run "
            f"(model {entry.model_id} vs {model_id}): its meaning may have drifted"
        )
    what = "directions" if entry.kind == "direction" else "latents"
    return (
        f"{source!r} was made by a different model ({entry.model_id}); this model is "
        f"{model_id}: {what} rarely transfer between models"
    )


__all__ = [
    "FORMAT",
    "KINDS",
    "EntryInfo",
    "LatentEntry",
    "LatentStore",
    "check_space",
    "recorded_space",
    "compatibility_warning",
    "read_entry",
    "resolve_latents",
    "write_entry",
]
