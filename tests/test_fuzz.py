"""Property-based fuzzing of every parser a user reaches (checkpoints have their own).

The property is always the same: any input either parses or raises one of latentctl's own errors,
whose message is a single line. Never a ValueError, KeyError, MemoryError, re.error, BadZipFile,
UnicodeDecodeError or any other exception that would reach the user as a traceback.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentctl.errors import LatentctlError
from latentctl.parse import MAX_MAGNITUDE, MAX_SCALES, parse_floats, parse_weighted
from latentctl.pictures import labels as L
from latentctl.seeds import MAX_SEED, MAX_SEED_COUNT, parse_seeds, resolve_seeds
from latentctl.space.store import LatentEntry, LatentStore, read_entry, resolve_latents, write_entry

D = 4

# ~200 examples each keeps the whole file well under 30 s; the workspace fixture (autouse, per
# test) does not need resetting between examples, and no example database is left in the repo.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def parses_or_refuses(fn, *args, **kwargs):
    """``fn(*args)``, or None when it refused with a one-line latentctl error."""
    try:
        return fn(*args, **kwargs)
    except LatentctlError as err:
        message = str(err)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        return None


# Text that looks like what the parsers expect most of the time, so that the fuzzing reaches
# past the first check, mixed with arbitrary text.
def near(alphabet: str, max_size: int = 30) -> st.SearchStrategy[str]:
    return st.one_of(st.text(alphabet=alphabet, max_size=max_size), st.text(max_size=max_size))


NUMBERISH = "0123456789-+.,eE naifNI_="
BIG_INTS = st.one_of(
    st.integers(0, 20), st.integers(0, 2**64), st.sampled_from([MAX_SEED, MAX_SEED + 1, MAX_SEED_COUNT])
)


def seed_spec() -> st.SearchStrategy[str]:
    part = st.one_of(
        BIG_INTS.map(str),
        st.tuples(BIG_INTS, BIG_INTS).map(lambda t: f"{t[0]}-{t[1]}"),
        BIG_INTS.map(lambda n: f"{n}-"),
    )
    return st.one_of(st.lists(part, min_size=1, max_size=4).map(",".join), near("0123456789-, "))


# ---- seeds --------------------------------------------------------------------------------------


@FUZZ
@given(spec=seed_spec(), count=st.one_of(st.none(), st.integers(-5, 2 * MAX_SEED_COUNT), st.integers()))
def test_seed_specs(spec, count):
    seeds = parses_or_refuses(parse_seeds, spec, count)
    if seeds is not None:
        assert 0 < len(seeds) <= MAX_SEED_COUNT
        assert all(0 <= s <= MAX_SEED for s in seeds)
        assert count is None or len(seeds) == count
    both = parses_or_refuses(resolve_seeds, count, spec if count is None or count % 2 else None)
    assert both is None or 0 < len(both) <= MAX_SEED_COUNT


# ---- --scales and --add NAME=W ------------------------------------------------------------------


@FUZZ
@given(text=near(NUMBERISH, 60))
def test_scales(text):
    values = parses_or_refuses(parse_floats, text, "--scales")
    if values is not None:
        assert 0 < len(values) <= MAX_SCALES
        assert all(np.isfinite(v) and abs(v) <= MAX_MAGNITUDE for v in values)


@FUZZ
@given(text=st.one_of(st.tuples(near("abc.-_/"), near(NUMBERISH)).map("=".join), st.text(max_size=30)))
def test_weighted_directions(text):
    got = parses_or_refuses(parse_weighted, text, "--add")
    if got is not None:
        name, weight = got
        assert name.strip() and np.isfinite(weight) and abs(weight) <= MAX_MAGNITUDE


# ---- store names, rows and resolve_latents ------------------------------------------------------


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in the fuzzed text land here, nowhere else
    store = LatentStore(tmp_path / "store")
    store.save("glasses", LatentEntry(z=np.arange(5 * D, dtype=np.float32).reshape(5, D), seeds=np.arange(5)))
    store.save("d.1", LatentEntry(z=np.ones((1, D), np.float32), kind="direction"))
    write_entry(tmp_path / "x@2.npz", LatentEntry(z=np.ones((3, D), np.float32)))
    return store


@FUZZ
@given(name=near("abcAZ09_.-@:/ \\", 40))
def test_store_names(store, name):
    base = parses_or_refuses(LatentStore.normalize_name, name)
    if base is not None:
        assert store.path_for(name).parent == store.root
        assert parses_or_refuses(store.load, name) is None or base in ("glasses", "d.1")


@FUZZ
@given(rows=near("0123456789-,", 30), base=st.sampled_from(["glasses", "seeds:3-9", "x@2.npz", "d.1"]))
def test_row_selections(store, rows, base):
    entry = parses_or_refuses(resolve_latents, f"{base}@{rows}", store, D)
    if entry is not None:
        assert 0 < entry.count <= MAX_SEED_COUNT and entry.latent_dim == D


SPEC_PIECES = st.sampled_from(
    [
        "seeds:",
        "seed:",
        "glasses",
        "d.1",
        "x@2.npz",
        "@",
        "0",
        "4294967296",
        "-",
        ",",
        ".npz",
        "/",
        "~",
        "~nosuchuser/",
        "..",
        "\x00",
        " ",
        "a" * 300,
        "store/glasses.npz",
    ]
)


@FUZZ
@given(
    spec=st.one_of(st.lists(SPEC_PIECES, max_size=6).map("".join), st.text(max_size=40)),
    dim=st.sampled_from([D, None, 7]),
)
def test_resolve_latents_text(store, spec, dim):
    entry = parses_or_refuses(resolve_latents, spec, store, dim)
    if entry is not None:
        assert entry.count >= 1 and (dim is None or entry.latent_dim == dim)


# ---- labels -------------------------------------------------------------------------------------

CSV_PIECES = st.sampled_from(
    [
        "file",
        "age",
        "gender",
        ",",
        ";",
        "\t",
        "\n",
        "\r\n",
        '"',
        "a.jpg",
        "b.png",
        "sub/a.jpg",
        "25",
        "1",
        "nan",
        "yes",
        "1e999",
        "-0",
        "",
        " ",
        "\ufeff",
        "\x00",
        "x" * 200,
    ]
)


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.png", "sub/a.jpg"):
        (root / name).write_bytes(b"")  # find_images goes by extension only
    return root


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=300), st.lists(CSV_PIECES, max_size=40).map("".join).map(str.encode)),
    with_root=st.booleans(),
)
def test_labels_csv(tmp_path, image_root, data, with_root):
    path = tmp_path / "labels.csv"
    path.write_bytes(data)
    labels = parses_or_refuses(L.read_labels_csv, path, image_root if with_root else None)
    if labels is not None:
        assert labels.names
        for row in labels.values.values():
            assert all(np.isfinite(v) for v in row.values())
        assert labels.summary()


PATTERN_PIECES = st.sampled_from(
    [
        "(?P<age>\\d+)",
        "(?P<gender>[01])",
        "_",
        ".",
        ".*",
        "^",
        "$",
        "(",
        ")",
        "[",
        "]",
        "\\",
        "?",
        "+",
        "*",
        "|",
        "{99999999999}",
        "{2,1}",
        "(?P<x>",
        "(?P=age)",
        "(?P<1>a)",
        "(?P<age>x)",
        "\\d",
        "\\p",
        "nan",
        "(?#c)",
    ]
)
NAMES = st.lists(st.one_of(near("0123456789_.jpgx/\\", 12), st.just("25_1_3_2017.jpg")), max_size=6)


@FUZZ
@given(
    files=NAMES,
    pattern=st.one_of(
        st.lists(PATTERN_PIECES, max_size=5).map("".join), st.text(max_size=20), st.just(L.UTKFACE_PATTERN)
    ),
)
def test_labels_from_file_names(files, pattern):
    labels = parses_or_refuses(L.labels_from_names, files, pattern)
    if labels is not None:
        assert labels.names and len(labels.values) <= len(files)
        parses_or_refuses(labels.column, files, labels.names[0])


@FUZZ
@given(
    condition=near("<>=!0123456789.-eE naif truesyno", 20),
    values=st.lists(st.one_of(st.floats(), st.integers(-5, 100).map(float)), max_size=8),
)
def test_label_conditions(condition, values):
    mask = parses_or_refuses(L.select, np.asarray(values, dtype=np.float64), condition)
    if mask is not None:
        assert mask.dtype == bool and mask.shape == (len(values),)
        assert not mask[np.isnan(np.asarray(values, dtype=np.float64))].any()


# ---- npz entries --------------------------------------------------------------------------------


def _valid_entry_bytes(tmp_path: Path, compressed: bool) -> bytes:
    path = tmp_path / "valid.npz"
    entry = LatentEntry(
        z=np.linspace(-1, 1, 3 * D, dtype=np.float32).reshape(3, D),
        seeds=np.arange(3),
        model_id="m",
        meta={"command": "fuzz"},
    )
    write_entry(path, entry, force=True)
    if not compressed:
        return path.read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return buf.getvalue()


def _check_entry(path: Path) -> None:
    entry = parses_or_refuses(read_entry, path)
    if entry is not None:
        assert entry.z.dtype == np.float32 and entry.z.ndim == 2 and np.isfinite(entry.z).all()


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_as_an_entry(tmp_path, data):
    path = tmp_path / "random.npz"
    path.write_bytes(data)
    _check_entry(path)


@FUZZ
@given(
    compressed=st.booleans(),
    cut=st.integers(0, 10_000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
)
def test_truncated_and_mutated_entries(tmp_path, compressed, cut, flips):
    data = bytearray(_valid_entry_bytes(tmp_path, compressed))
    for pos, value in flips:
        data[pos % len(data)] = value
    path = tmp_path / "mutated.npz"
    path.write_bytes(bytes(data[: max(cut, 1)] if cut < len(data) else data))
    _check_entry(path)


def _npy(header: str | bytes, data: bytes, version: tuple[int, int] = (1, 0)) -> bytes:
    raw = header.encode("latin1", "replace") if isinstance(header, str) else header
    length = struct.pack("<H" if version[0] == 1 else "<I", len(raw))
    return b"\x93NUMPY" + bytes(version) + length + raw + data


DESCRS = st.sampled_from(
    [
        "<f4",
        "<f8",
        ">f4",
        "<i8",
        "|u1",
        "|b1",
        "<c8",
        "<U5",
        "<U0",
        "|S3",
        "|V0",
        "|V8",
        "|O",
        "<M8[s]",
        "<f16",
        "<f999999",
        "float32",
        [("a", "<f4")],
        [("a", "<f4", (10**9,))],
        ("<f4", (2,)),
        5,
    ]
)
SHAPES = st.lists(
    st.one_of(st.integers(0, 8), st.integers(-3, 2**63), st.sampled_from([10**6, 10**12])), max_size=4
).map(tuple)


@FUZZ
@given(
    key=st.sampled_from(["z", "seeds", "kind", "meta", "w"]),
    descr=DESCRS,
    shape=SHAPES,
    fortran=st.booleans(),
    extra=st.integers(-8, 8),
    version=st.sampled_from([(1, 0), (2, 0), (3, 0), (9, 9)]),
    raw=st.one_of(st.none(), st.text(max_size=60)),
)
def test_crafted_npy_headers(tmp_path, key, descr, shape, fortran, extra, version, raw):
    header = raw if raw is not None else repr({"descr": descr, "fortran_order": fortran, "shape": shape})
    header = header + " " * (-(len(header) + 11) % 64) + "\n"
    try:
        size = int(np.prod(shape, dtype=object)) * np.dtype(descr).itemsize if raw is None else 0
    except Exception:  # a descr numpy itself refuses: any small payload will do
        size = 16
    # A payload that matches the header (give or take a few bytes) where that is small; a header
    # that claims terabytes gets a few bytes only, as a lying file would.
    payload = bytes(max(0, size + extra)) if 0 <= size <= 4096 else b"\x00" * 64
    members = {key + ".npy": _npy(header, payload, version)}
    if key != "z":
        members["z.npy"] = _npy(
            repr({"descr": "<f4", "fortran_order": False, "shape": (1, D)}).ljust(117) + "\n", bytes(4 * D)
        )
    path = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    _check_entry(path)


@FUZZ
@given(
    rows=st.integers(1, 3), dim=st.integers(1, 3), fortran=st.booleans(), dtype=st.sampled_from(["<f4", ">f8", "<f2"])
)
def test_well_formed_headers_still_read_exactly(tmp_path, rows, dim, fortran, dtype):
    z = np.arange(rows * dim, dtype=np.float64).reshape(rows, dim).astype(dtype)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asfortranarray(z) if fortran else z)
    path = tmp_path / "ok.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("z.npy", buf.getvalue())
    np.testing.assert_array_equal(read_entry(path).z, z.astype(np.float32))
