"""The latent store: file format, safety against malformed files, names and resolution."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from latentctl.errors import StoreError, UsageError
from latentctl.seeds import latents_from_seeds
from latentctl.space.store import (
    FORMAT,
    EntryInfo,
    LatentEntry,
    LatentStore,
    compatibility_warning,
    read_entry,
    resolve_latents,
    write_entry,
)

D = 8

# Set if unpickling ever happens: a latent file must never be able to run code.
UNPICKLED: list[str] = []


def _mark_unpickled() -> str:
    UNPICKLED.append("ran")
    return "ran"


class _Payload:
    def __reduce__(self):
        return (_mark_unpickled, ())


def _entry(n: int = 3, *, seed: int = 0, **kw) -> LatentEntry:
    z = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return LatentEntry(z=z, **kw)


@pytest.fixture
def store(tmp_path: Path) -> LatentStore:
    return LatentStore(tmp_path / "latents")


# ---- entries ------------------------------------------------------------------------------------


def test_entry_properties_and_immutability():
    src = np.ones((2, 5), dtype=np.float64)
    e = LatentEntry(z=src)
    assert (e.count, e.latent_dim) == (2, 5)
    assert e.z.dtype == np.float32
    with pytest.raises(ValueError):
        e.z[0, 0] = 3.0
    src[0, 0] = 7.0  # the caller's array stays theirs and writable
    assert e.z[0, 0] == 1.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"z": np.zeros(4)}, "2-D"),
        ({"z": np.zeros((0, 4))}, "no rows"),
        ({"z": np.array([[1.0, np.nan]])}, "NaN"),
        ({"z": np.array([[1e300, 0.0]])}, "infinite"),
        ({"z": np.zeros((2, 4), dtype=np.int64)}, "floating"),
        ({"z": np.zeros((2, 4)), "kind": "blob"}, "unknown kind"),
        ({"z": np.zeros((2, 4)), "seeds": np.array([1])}, "'seeds'"),
        ({"z": np.zeros((1, 4)), "seeds": np.array([-1])}, "within"),
        ({"z": np.zeros((1, 4)), "meta": "x"}, "JSON object"),
    ],
)
def test_entry_validation(kwargs, match):
    with pytest.raises(StoreError, match=match):
        LatentEntry(**kwargs)


def test_select_rows_and_out_of_range():
    e = _entry(4, seeds=np.array([10, 11, 12, 13]), model_id="m", meta={"a": 1})
    s = e.select([2, 0, 2])
    np.testing.assert_array_equal(s.z, e.z[[2, 0, 2]])
    np.testing.assert_array_equal(s.seeds, [12, 10, 12])
    assert s.model_id == "m" and s.meta == {"a": 1}
    with pytest.raises(StoreError, match="row 4 is out of range.*4 rows, numbered 0-3"):
        e.select([0, 4])
    with pytest.raises(StoreError, match="out of range"):
        e.select([-1])


# ---- reading and writing ------------------------------------------------------------------------


def test_round_trip_all_fields(tmp_path):
    e = _entry(
        3,
        kind="direction",
        seeds=np.array([5, 6, 7], dtype=np.int32),
        model_id="abc123",
        run_id="0001-faces",
        meta={"command": "direction", "count": np.int64(3), "sources": ["a", "b"]},
    )
    path = write_entry(tmp_path / "sub" / "dir" / "glasses.npz", e)
    assert path == tmp_path / "sub" / "dir" / "glasses.npz" and path.is_file()
    back = read_entry(path)
    assert back.z.dtype == np.float32
    np.testing.assert_array_equal(back.z, e.z)
    assert back.seeds.dtype == np.int64
    np.testing.assert_array_equal(back.seeds, [5, 6, 7])
    assert (back.kind, back.model_id, back.run_id) == ("direction", "abc123", "0001-faces")
    assert back.meta["command"] == "direction" and back.meta["count"] == 3
    assert back.meta["sources"] == ["a", "b"]
    assert back.meta["created"].endswith("Z") and "latentctl_version" in back.meta

    # Readable by plain numpy without pickle, with the documented keys.
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"z", "kind", "seeds", "model_id", "run_id", "meta", "format"}
        assert str(npz["format"]) == FORMAT
        assert npz["z"].dtype == np.float32 and npz["seeds"].dtype == np.int64
        assert json.loads(str(npz["meta"]))["command"] == "direction"


def test_write_keeps_the_exact_name(tmp_path):
    path = write_entry(tmp_path / "latents.bin", _entry())
    assert path.name == "latents.bin" and path.is_file()
    assert not (tmp_path / "latents.bin.npz").exists()
    assert read_entry(path).count == 3


def test_no_seeds_key_when_unknown(tmp_path):
    path = write_entry(tmp_path / "x.npz", _entry())
    with np.load(path) as npz:
        assert "seeds" not in npz.files
    assert read_entry(path).seeds is None


def test_third_party_npz_with_only_z(tmp_path):
    path = tmp_path / "theirs.npz"
    np.savez(path, z=np.ones((2, D)))  # float64, no metadata
    e = read_entry(path)
    assert e.z.dtype == np.float32 and e.kind == "points"
    assert (e.model_id, e.run_id, e.seeds, e.meta) == ("", "", None, {})


def test_third_party_w_key(tmp_path):
    np.savez(tmp_path / "w2.npz", w=np.ones((1, D), np.float32))
    assert read_entry(tmp_path / "w2.npz").count == 1
    assert read_entry(tmp_path / "w2.npz").space == "w"
    # NVIDIA's projector: one w per layer, (rows, num_ws, w_dim), which is W+ flattened
    np.savez(tmp_path / "w3.npz", w=np.arange(14 * D, dtype=np.float32).reshape(1, 14, D))
    entry = read_entry(tmp_path / "w3.npz")
    assert entry.space == "w+" and entry.z.shape == (1, 14 * D) and entry.z[0, D] == D
    np.savez(tmp_path / "w4.npz", w=np.ones((1, 2, 14, D), np.float32))
    with pytest.raises(StoreError, match=r"w4.npz.*\(1, 2, 14, 8\)"):
        read_entry(tmp_path / "w4.npz")


def test_missing_file(tmp_path):
    with pytest.raises(StoreError, match="no latent file .*nope.npz"):
        read_entry(tmp_path / "nope.npz")


@pytest.mark.parametrize("key", ["z", "meta", "kind"])
def test_pickled_object_array_is_refused_not_unpickled(tmp_path, key):
    arrays = {"z": np.zeros((1, D), np.float32), "kind": np.array("points")}
    arrays[key] = np.array([_Payload()], dtype=object)
    path = tmp_path / "evil.npz"
    np.savez(path, allow_pickle=True, **arrays)
    UNPICKLED.clear()
    with pytest.raises(StoreError, match="evil.npz.*pickled"):
        read_entry(path)
    assert UNPICKLED == []


def test_text_file_named_npz(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("these are not latents\n")
    with pytest.raises(StoreError, match="notes.npz is not a .npz latent file"):
        read_entry(path)


def test_npy_file_named_npz(tmp_path):
    path = tmp_path / "arr.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((2, D)))
    with pytest.raises(StoreError, match="single .npy array"):
        read_entry(path)


def test_zip_that_is_not_npz(tmp_path):
    path = tmp_path / "archive.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("z", "hello")
        zf.writestr("z.npy", "not an npy header")
    with pytest.raises(StoreError, match="archive.npz"):
        read_entry(path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("z", "hello")
    with pytest.raises(StoreError, match="archive.npz: 'z' is not a numpy array"):
        read_entry(path)


def test_truncated_zip(tmp_path):
    good = write_entry(tmp_path / "good.npz", _entry())
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(StoreError, match="bad.npz"):
        read_entry(bad)


@pytest.mark.parametrize(
    "arrays,match",
    [
        ({"z": np.zeros(D, np.float32)}, r"bad.npz: 'z' must be 2-D.*\(8,\)"),
        ({"z": np.array([[0.0, np.nan]], np.float32)}, "bad.npz: 'z' has NaN"),
        ({"z": np.zeros((2, D), np.int32)}, "floating"),
        ({"x": np.zeros((2, D))}, "no 'z' array.*'x'"),
        ({"z": np.zeros((1, D)), "kind": np.array("blob")}, "unknown kind 'blob'"),
        ({"z": np.zeros((1, D)), "kind": np.array([1, 2])}, "'kind' must be a text string"),
        ({"z": np.zeros((1, D)), "meta": np.array("{not json")}, "'meta' is not valid JSON"),
        ({"z": np.zeros((1, D)), "meta": np.array("[1, 2]")}, "'meta' must be a JSON object"),
        ({"z": np.zeros((1, D)), "seeds": np.array([1.5])}, "'seeds'"),
        ({"z": np.zeros((1, D)), "format": np.array("latentctl-latents/9")}, "cannot read"),
        ({"z": np.zeros((1, D)), "format": np.array("other/1")}, "not latentctl latents"),
    ],
)
def test_malformed_files_name_file_and_problem(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(StoreError, match=match):
        read_entry(path)


def test_overwrite_refused_unless_force(tmp_path):
    path = tmp_path / "x.npz"
    write_entry(path, _entry(seed=1))
    with pytest.raises(StoreError, match="x.npz already exists; pass --force to replace it"):
        write_entry(path, _entry(seed=2))
    np.testing.assert_array_equal(read_entry(path).z, _entry(seed=1).z)
    write_entry(path, _entry(seed=2), force=True)
    np.testing.assert_array_equal(read_entry(path).z, _entry(seed=2).z)


def test_atomic_write_leaves_no_temp_and_keeps_old_entry(tmp_path, monkeypatch):
    path = tmp_path / "x.npz"
    write_entry(path, _entry(seed=1))
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StoreError, match="cannot write .*x.npz: No space left on device"):
        write_entry(path, _entry(seed=2), force=True)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]


def test_atomic_write_of_new_entry_leaves_nothing_on_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(5, "EIO")))
    with pytest.raises(StoreError):
        write_entry(tmp_path / "new.npz", _entry())
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_unserialisable_meta(tmp_path):
    with pytest.raises(StoreError, match="meta is not plain JSON"):
        write_entry(tmp_path / "x.npz", _entry(meta={"f": object()}))
    assert not (tmp_path / "x.npz").exists()


# ---- the store ----------------------------------------------------------------------------------


def test_store_save_load_exists(store):
    assert not store.root.exists()  # created lazily
    assert not store.exists("glasses")
    assert store.list() == []
    path = store.save("glasses", _entry(kind="points", model_id="m1"))
    assert path == store.root / "glasses.npz"
    assert store.exists("glasses") and store.exists("glasses.npz")
    assert store.load("glasses.npz").model_id == "m1"
    with pytest.raises(StoreError, match="already exists; pass --force"):
        store.save("glasses", _entry())
    store.save("glasses", _entry(seed=5), force=True)


@pytest.mark.parametrize(
    "name",
    ["", ".npz", ".hidden", "-x", "a/b", "a\\b", "../up", "with space", "a@1", "seeds:1", "ü", "x" * 201],
)
def test_name_validation(store, name):
    with pytest.raises(UsageError):
        store.path_for(name)


@pytest.mark.parametrize("name", ["glasses", "no-glasses_2", "v1.2", "A", "x.npz"])
def test_valid_names(store, name):
    assert store.path_for(name).parent == store.root
    assert store.path_for(name).name.endswith(".npz")


def test_listing_reports_malformed_files(store):
    store.save("b_smile", _entry(2, kind="direction", model_id="m1"))
    store.save("a_glasses", _entry(3))
    (store.root / "c_broken.npz").write_text("oops")
    (store.root / ".a.npz.123.tmp").write_bytes(b"partial")  # a writer's leftover temp file
    (store.root / "readme.txt").write_text("not an entry")
    infos = store.list()
    assert [i.name for i in infos] == ["a_glasses", "b_smile", "c_broken"]
    a, b, c = infos
    assert isinstance(a, EntryInfo)
    assert (a.kind, a.count, a.latent_dim, a.error) == ("points", 3, D, None)
    assert (b.kind, b.count, b.model_id) == ("direction", 2, "m1")
    assert a.created and a.created.endswith("Z")
    assert c.error and "c_broken.npz" in c.error and c.kind is None
    assert c.path == store.root / "c_broken.npz"


def test_unknown_name_suggests_close_names(store):
    store.save("glasses", _entry())
    store.save("smiling", _entry())
    with pytest.raises(StoreError, match="no latent entry 'glases'.*did you mean 'glasses'.*latents list"):
        store.load("glases")
    with pytest.raises(StoreError) as err:
        store.load("zzz")
    assert "did you mean" not in str(err.value) and "latentctl latents list" in str(err.value)


def test_unknown_name_in_empty_store(store):
    with pytest.raises(StoreError, match="store is empty"):
        store.load("glasses")


# ---- resolve_latents ----------------------------------------------------------------------------


def test_resolve_seeds(store):
    e = resolve_latents("seeds:16,37,83", store, D)
    np.testing.assert_array_equal(e.z, latents_from_seeds([16, 37, 83], D))
    np.testing.assert_array_equal(e.seeds, [16, 37, 83])
    assert e.seeds.dtype == np.int64 and e.kind == "points" and e.model_id == ""
    assert resolve_latents("seeds:0-8", store, D).count == 9
    one = resolve_latents("seed:42", store, D)
    np.testing.assert_array_equal(one.z, latents_from_seeds([42], D))


def test_resolve_seeds_errors(store):
    with pytest.raises(UsageError, match="'seeds:1,x'.*seeds:0-8"):
        resolve_latents("seeds:1,x", store, D)
    with pytest.raises(UsageError, match="at most"):
        resolve_latents("seeds:0-4294967295", store, D)
    with pytest.raises(UsageError, match="need a model"):
        resolve_latents("seeds:1", store, None)


def test_resolve_store_name_and_rows(store):
    e = _entry(5, seeds=np.arange(5))
    store.save("glasses", e)
    np.testing.assert_array_equal(resolve_latents("glasses", store, D).z, e.z)
    np.testing.assert_array_equal(resolve_latents("glasses.npz", store, D).z, e.z)
    sel = resolve_latents("glasses@0,2", store, D)
    np.testing.assert_array_equal(sel.z, e.z[[0, 2]])
    np.testing.assert_array_equal(sel.seeds, [0, 2])
    assert resolve_latents("glasses@1-3", store, D).count == 3


def test_resolve_rows_out_of_range(store):
    store.save("glasses", _entry(3))
    with pytest.raises(StoreError, match=r"'glasses@5'.*row 5 is out of range.*3 rows, numbered 0-2"):
        resolve_latents("glasses@5", store, D)
    with pytest.raises(StoreError, match="out of range"):
        resolve_latents("glasses@0-4000000000", store, D)
    with pytest.raises(UsageError, match="rows after '@'"):
        resolve_latents("glasses@x", store, D)
    with pytest.raises(UsageError, match="rows after '@'"):
        resolve_latents("glasses@", store, D)


def test_resolve_seeds_with_rows(store):
    e = resolve_latents("seeds:10-19@0,9", store, D)
    np.testing.assert_array_equal(e.seeds, [10, 19])


def test_resolve_paths(tmp_path, store, monkeypatch):
    e = _entry(4)
    write_entry(tmp_path / "out" / "x.npz", e)
    got = resolve_latents(str(tmp_path / "out" / "x.npz"), store, D)
    np.testing.assert_array_equal(got.z, e.z)
    got = resolve_latents(f"{tmp_path}/out/x.npz@1", store, D)
    np.testing.assert_array_equal(got.z, e.z[[1]])
    # Relative paths, and a bare "file.npz" that exists in the working folder.
    monkeypatch.chdir(tmp_path)
    np.testing.assert_array_equal(resolve_latents("out/x.npz@3", store, D).z, e.z[[3]])
    write_entry(tmp_path / "here.npz", e)
    np.testing.assert_array_equal(resolve_latents("here.npz@0", store, D).z, e.z[[0]])
    with pytest.raises(StoreError, match="no latent file out/missing.npz"):
        resolve_latents("out/missing.npz", store, D)
    with pytest.raises(StoreError, match="no latent entry 'gone'.*no file gone.npz"):
        resolve_latents("gone.npz", store, D)


def test_resolve_path_containing_at_sign(tmp_path, store):
    path = write_entry(tmp_path / "me@host" / "x@2.npz", _entry(4))
    assert resolve_latents(str(path), store, D).count == 4


def test_resolve_dim_mismatch_message(store):
    store.save("glasses", LatentEntry(z=np.zeros((2, 512), np.float32)))
    with pytest.raises(StoreError, match="'glasses' has 512-dimensional latents but the model uses 100"):
        resolve_latents("glasses", store, 100)
    assert resolve_latents("glasses", store, None).latent_dim == 512


def test_resolve_unknown_name_suggests(store):
    store.save("glasses", _entry())
    with pytest.raises(StoreError, match="did you mean 'glasses'"):
        resolve_latents("glasess@0", store, D)
    with pytest.raises(UsageError):
        resolve_latents("", store, D)


# ---- compatibility ------------------------------------------------------------------------------


def test_compatibility_warning():
    same = _entry(model_id="abc123", run_id="r1")
    assert compatibility_warning(same, model_id="abc123", run_id="r1", source="glasses") is None
    unknown = _entry()
    assert compatibility_warning(unknown, model_id="def456", run_id="r1", source="seeds:1") is None

    msg = compatibility_warning(same, model_id="def456", run_id="r1", source="glasses")
    assert msg == (
        "'glasses' was made with another checkpoint of this run (model abc123 vs def456): its meaning may have drifted"
    )
    direction = _entry(1, kind="direction", model_id="abc123", run_id="r1")
    msg = compatibility_warning(direction, model_id="def456", run_id="r2", source="glasses")
    assert msg == (
        "'glasses' was made by a different model (abc123); this model is def456: "
        "directions rarely transfer between models"
    )
    msg = compatibility_warning(same, model_id="def456", run_id="", source="smile")
    assert msg is not None and "different model" in msg


def test_zip_contents_are_only_npy(tmp_path):
    # Nothing in our files needs pickle: every member is a plain .npy with a non-object dtype.
    path = write_entry(tmp_path / "x.npz", _entry(seeds=np.arange(3), meta={"k": "v"}))
    with zipfile.ZipFile(path) as zf:
        assert all(n.endswith(".npy") for n in zf.namelist())
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            assert npz[key].dtype != object


# ---- sizes are checked before anything is allocated (issue 10) ---------------------------------


def _zip_with(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return path


def _npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    import io

    from numpy.lib import format as npformat

    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_a_header_claiming_terabytes_is_refused_before_allocating(tmp_path):
    path = _zip_with(tmp_path / "huge.npz", {"z.npy": _npy_header((10**6, 10**6))})
    assert path.stat().st_size < 400
    with pytest.raises(
        StoreError,
        match=r"huge.npz: 'z' declares shape \(1000000, 1000000\) of float32 "
        r"\(4,000,000,000,000 bytes\), more than the 2,147,483,648",
    ):
        read_entry(path)


def test_a_header_must_match_the_bytes_its_member_holds(tmp_path):
    one_row = _npy_header((2, D)) + bytes(4 * D)  # claims two rows, holds one
    with pytest.raises(
        StoreError, match=r"short.npz: 'z' declares shape \(2, 8\).*holds 32 bytes; the file is truncated"
    ):
        read_entry(_zip_with(tmp_path / "short.npz", {"z.npy": one_row}))
    with pytest.raises(StoreError, match="long.npz: 'z' declares"):
        read_entry(_zip_with(tmp_path / "long.npz", {"z.npy": one_row + bytes(4 * D + 1)}))
    with pytest.raises(StoreError, match=r"seeds.npz: 'seeds' declares shape \(10000000000000,\)"):
        read_entry(
            _zip_with(
                tmp_path / "seeds.npz",
                {"z.npy": _npy_header((1, D)) + bytes(4 * D), "seeds.npy": _npy_header((10**13,), "<i8")},
            )
        )


@pytest.mark.parametrize("descr,match", [("|V0", "holds"), ("<U0", "size zero"), ("|O", "pickled")])
def test_odd_element_types_are_refused_from_the_header(tmp_path, descr, match):
    path = _zip_with(tmp_path / "odd.npz", {"z.npy": _npy_header((10**12,), descr)})
    with pytest.raises(StoreError, match=f"odd.npz.*{match}"):
        read_entry(path)


def test_compressed_fortran_and_big_endian_arrays_still_read(tmp_path):
    z = np.arange(3 * D, dtype=">f8").reshape(3, D)
    np.savez_compressed(tmp_path / "c.npz", z=np.asfortranarray(z), kind=np.array("points"))
    np.testing.assert_array_equal(read_entry(tmp_path / "c.npz").z, z.astype(np.float32))


def test_a_corrupt_compressed_member_is_a_store_error(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", z=np.random.default_rng(0).standard_normal((50, D)))
    data = bytearray((tmp_path / "c.npz").read_bytes())
    data[120:140] = bytes(20)  # inside the deflate stream of z.npy
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    with pytest.raises(StoreError, match="bad.npz"):
        read_entry(tmp_path / "bad.npz")


def test_listing_goes_on_past_a_lying_entry(store):
    store.save("after", _entry())
    _zip_with(store.root / "huge.npz", {"z.npy": _npy_header((10**12,))})
    infos = {i.name: i for i in store.list()}
    assert infos["huge"].count is None and "declares shape (1000000000000,)" in infos["huge"].error
    assert infos["after"].count == 3 and infos["after"].error is None


def test_paths_that_cannot_exist_are_missing_files(tmp_path, store):
    for text in ("~nosuchuser-latentctl/x.npz", "dir/" + "a" * 5000 + ".npz", "a\x00b/x.npz"):
        with pytest.raises(StoreError, match="no latent file"):
            resolve_latents(text, store, D)
    with pytest.raises(StoreError, match=r"no latent file 'x\\ny/z.npz'"):  # still one line
        read_entry(Path("x\ny/z.npz"))


def test_resolving_many_rows_is_bounded(store):
    store.save("glasses", _entry(3))
    with pytest.raises(UsageError, match="selects 150,000 rows; at most 100,000 rows per command"):
        resolve_latents("glasses@" + ",".join(["0-2"] * 50_000), store, D)
    with pytest.raises(UsageError, match="at most 100,000 seeds per command; split the range"):
        resolve_latents("seeds:0-4294967295", store, D)


def _npz_with(path, members: dict) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for key, raw in members.items():
            zf.writestr(key + ".npy", raw)


def _npy(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_a_text_member_of_invalid_code_points_is_a_store_error(tmp_path):
    # numpy's own str() of it raises SystemError; the store decodes it itself
    kind = _npy(np.array("a"))[:-4] + b"\xff\xff\xff\xff"
    _npz_with(tmp_path / "x.npz", {"z": _npy(np.zeros((1, 4), np.float32)), "kind": kind})
    with pytest.raises(StoreError, match="'kind' is not valid text"):
        read_entry(tmp_path / "x.npz")
    from latentctl.space.store import LatentStore

    (tmp_path / "store").mkdir()
    (tmp_path / "x.npz").rename(tmp_path / "store" / "x.npz")
    (info,) = LatentStore(tmp_path / "store").list()
    assert info.error and "not valid text" in info.error


def test_a_header_that_exhausts_the_parser_is_a_store_error(tmp_path):
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (" + b"-" * 9000 + b"1,), }"
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    _npz_with(tmp_path / "x.npz", {"z": raw})
    with pytest.raises(StoreError):
        read_entry(tmp_path / "x.npz")


def test_an_empty_projector_w_says_it_has_no_rows(tmp_path):
    np.savez(tmp_path / "w.npz", w=np.zeros((0, 8, 4), np.float32))
    with pytest.raises(StoreError, match="no rows"):
        read_entry(tmp_path / "w.npz")
