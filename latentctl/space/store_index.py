"""The latent store's names and listing, read without numpy (issue 29: numpy alone doubled the start-up
of `latentctl latents list`).

An entry that numpy wrote plainly -- ``z`` little-endian float32 (rows, dim) in C order, ``seeds``
little-endian int64, the text members 0-d little-endian unicode -- is summarised here from its
zip directory, the ``.npy`` headers (a Python literal, parsed by ``ast.literal_eval`` under a size
limit; nothing is ever evaluated or unpickled) and the bytes themselves, with every check that
``store.read_entry`` would make. Anything else is read by ``read_entry``, so a file that is not a
usable entry shows the very error it gives, and this module never has to judge one.
"""

from __future__ import annotations

import ast
import datetime as _dt
import json
import re
import sys
import zipfile
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "latentctl-latents/1"
KINDS = ("points", "direction")
SUFFIX = ".npz"

_NPY_MAGIC = b"\x93NUMPY"
_HEADER_KEYS = {"descr", "fortran_order", "shape"}
# The types numpy writes for our keys on a little-endian machine: z, seeds, and text of N characters.
_PLAIN_DESCR = re.compile(r"<f4|<i8|<U(?P<chars>[1-9][0-9]{0,6})")
# numpy writes a header of about 120 bytes; it refuses ones over 10,000 (max_header_size).
_MAX_HEADER = 10_000
# Larger arrays are left to read_entry, which holds the real limit (store.MAX_ARRAY_BYTES); these
# are the sizes a listing reads in a blink.
_PLAIN_MAX_BYTES = 2**28
_MAX_TEXT_BYTES = 2**20
# seeds.MAX_SEED and config.SPACES, which this module does not import (numpy; 9 ms of config
# dataclasses): tests/test_latent_library.py keeps them equal.
_MAX_SEED = 2**32 - 1
_SPACES = ("z", "w", "w+")
# The high byte of a little-endian float32: its sign bit and 7 of its 8 exponent bits. NaN and the
# infinities have them all set, as do the finite numbers from 2**127 up (told apart by byte 2).
_EXPONENT_HIGH = bytes(1 if b & 0x7F == 0x7F else 0 for b in range(256))
_MAX_LARGE = 1_000  # finite numbers that large are checked one by one, up to this many
# What a damaged or hostile archive raises while being read: each sends the file to read_entry.
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    SyntaxError,
    RecursionError,
    MemoryError,
    NotImplementedError,
    RuntimeError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
)


@dataclass(frozen=True)
class EntryInfo:
    """One line of ``latents list``. A file that cannot be read has ``error`` set, fields None."""

    name: str
    kind: str | None
    count: int | None
    latent_dim: int | None
    model_id: str | None
    created: str | None
    path: Path
    error: str | None = None
    run_id: str = ""  # the training run of the model that made the entry ("" when unknown)
    space: str = ""  # z, w or w+ when the entry records it


def entry_names(root: Path) -> list[str]:
    """The names of the entries in the store folder ``root``, sorted; nothing is read."""
    if not root.is_dir():
        return []
    return sorted(p.name[: -len(SUFFIX)] for p in root.glob("*" + SUFFIX) if p.is_file() and not p.name.startswith("."))


def list_entries(root: Path, read_entry: Callable[[Path], Any]) -> list[EntryInfo]:
    """Every entry of the store folder ``root``, sorted by name; a malformed file is reported in
    its row, not raised. ``read_entry`` (``store.read_entry``, passed in because the store imports
    this module) reads whole what the quick path leaves: it alone imports numpy."""
    root = Path(root).expanduser()
    infos = []
    for name in entry_names(root):
        path = root / (name + SUFFIX)
        fields = _plain_fields(path)
        if fields is None:
            from latentctl.errors import StoreError

            try:
                entry = read_entry(path)
            except StoreError as e:
                infos.append(EntryInfo(name, None, None, None, None, None, path, str(e)))
                continue
            fields = {
                "kind": entry.kind,
                "count": entry.count,
                "latent_dim": entry.latent_dim,
                "model_id": entry.model_id,
                "run_id": entry.run_id,
                "space": entry.space,
                "meta": entry.meta,
            }
        meta = fields.pop("meta")
        infos.append(EntryInfo(name=name, created=_created(meta, path), path=path, **fields))
    return infos


def _created(meta: dict, path: Path) -> str | None:
    created = meta.get("created")
    if isinstance(created, str):
        return created
    # Third-party files carry no meta; the file's time is the next best answer.
    try:
        mtime = _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc)
        return mtime.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    except (OSError, ValueError, OverflowError):  # removed meanwhile, or a wild mtime
        return None


class _NotPlain(Exception):
    """The file is not one this module summarises; read_entry decides what it is."""


def _plain_fields(path: Path) -> dict | None:
    """What ``latents list`` shows of a plainly written entry, or None for read_entry to judge."""
    try:
        with zipfile.ZipFile(path) as zf:
            # As numpy's NpzFile and store._Archive: the last of a repeated name wins, and a
            # member named exactly 'z' wins over 'z.npy'.
            members = {info.filename: info for info in zf.infolist()}

            def member(key: str) -> zipfile.ZipInfo | None:
                return members.get(key) or members.get(key + ".npy")

            z = member("z")
            if z is None:  # NVIDIA's 'w', or no latents at all
                return None
            rows, dim = _finite_float32_rows(zf, z)
            if member("seeds") is not None:
                _check_seeds(zf, member("seeds"), rows)
            text = {}
            for key in ("kind", "model_id", "run_id", "meta", "format", "space"):
                text[key] = None if member(key) is None else _text(zf, member(key))
        meta = {} if text["meta"] is None else json.loads(text["meta"])
    except (_NotPlain, *_READ_ERRORS):  # json's errors are ValueErrors (or a RecursionError)
        return None
    kind = "points" if text["kind"] is None else text["kind"]
    if text["format"] not in (None, FORMAT) or kind not in KINDS or text["space"] not in (None, "", *_SPACES):
        return None
    if not isinstance(meta, dict):
        return None
    return {
        "kind": kind,
        "count": rows,
        "latent_dim": dim,
        "model_id": text["model_id"] or "",
        "run_id": text["run_id"] or "",
        "space": text["space"] or "",
        "meta": meta,
    }


def _array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, ndim: int, limit: int) -> tuple[str, tuple, bytes]:
    """(descr, shape, bytes) of a C-order ``.npy`` member of ``ndim`` non-empty dimensions, of a
    type named plainly (``_PLAIN_DESCR``), holding at most ``limit`` bytes; else _NotPlain."""
    with zf.open(info) as f:
        head = f.read(8)
        if head[:6] != _NPY_MAGIC or head[6:] not in (b"\x01\x00", b"\x02\x00"):
            raise _NotPlain
        width = 2 if head[6] == 1 else 4
        size = int.from_bytes(f.read(width), "little")
        if size > _MAX_HEADER:
            raise _NotPlain
        header = ast.literal_eval(f.read(size).decode("latin1"))  # literals only: never runs code
        if not isinstance(header, dict) or header.keys() != _HEADER_KEYS or header["fortran_order"] is not False:
            raise _NotPlain
        descr, shape = header["descr"], header["shape"]
        plain = _PLAIN_DESCR.fullmatch(descr) if isinstance(descr, str) else None
        if plain is None or not isinstance(shape, tuple) or len(shape) != ndim:
            raise _NotPlain
        if not all(type(d) is int and d > 0 for d in shape):
            raise _NotPlain
        nbytes = 4 * int(plain["chars"]) if plain["chars"] else int(descr[2])
        for d in shape:
            nbytes *= d
        # A header that claims more (or less) than the member holds describes some other array.
        if nbytes > limit or info.file_size - f.tell() != nbytes:
            raise _NotPlain
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise _NotPlain
    return descr, shape, data


def _finite_float32_rows(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[int, int]:
    """(rows, dim) of a float32 'z' whose every value is finite."""
    descr, (rows, dim), data = _array(zf, info, 2, _PLAIN_MAX_BYTES)
    if descr != "<f4":
        raise _NotPlain
    high = data[3::4].translate(_EXPONENT_HIGH)
    if high.count(1) > _MAX_LARGE:
        raise _NotPlain
    at = high.find(1)
    while at != -1:
        if data[4 * at + 2] & 0x80:  # the exponent's last bit too: NaN or infinite
            raise _NotPlain
        at = high.find(1, at + 1)
    return rows, dim


def _check_seeds(zf: zipfile.ZipFile, info: zipfile.ZipInfo, rows: int) -> None:
    descr, (count,), data = _array(zf, info, 1, 8 * rows)
    if descr != "<i8" or count != rows:
        raise _NotPlain
    seeds = array("q", data)
    if sys.byteorder == "big":
        seeds.byteswap()
    if min(seeds) < 0 or max(seeds) > _MAX_SEED:
        raise _NotPlain


def _text(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """A 0-d unicode member, as numpy reads it (trailing NULs dropped)."""
    descr, _, data = _array(zf, info, 0, _MAX_TEXT_BYTES)
    if not descr.startswith("<U"):
        raise _NotPlain
    return data.decode("utf-32-le").rstrip("\x00")
