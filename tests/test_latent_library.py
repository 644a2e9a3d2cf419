"""The library behind `interp`, `attr-vector`, `apply` and `latents list`: what the commands print
and save, computed without them; and the store listing that reads no numpy."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentctl.config import SPACES
from latentctl.errors import StoreError
from latentctl.seeds import MAX_SEED
from latentctl.space import store as S
from latentctl.space import store_index
from latentctl.space.store import LatentEntry, read_entry, write_entry
from latentctl.space.store_index import EntryInfo, list_entries

D = 8


# ---- the listing without numpy --------------------------------------------------------------------


def _listed_by_read_entry(root: Path) -> list[EntryInfo]:
    """The listing as it was before issue 29: every entry read whole by read_entry."""
    infos = []
    for name in store_index.entry_names(root):
        path = root / (name + ".npz")
        try:
            entry = read_entry(path)
        except StoreError as e:
            infos.append(EntryInfo(name, None, None, None, None, None, path, str(e)))
            continue
        created = entry.meta.get("created")
        if not isinstance(created, str):
            mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
            created = mtime.replace(microsecond=0).isoformat().replace("+00:00", "Z")
        infos.append(
            EntryInfo(
                name,
                entry.kind,
                entry.count,
                entry.latent_dim,
                entry.model_id,
                created,
                path,
                run_id=entry.run_id,
                space=entry.space,
            )
        )
    return infos


def _npz(path: Path, compressed: bool = False, **arrays) -> None:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


def _z(n: int = 3, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, D)).astype(dtype)


def _ours(**changes) -> dict:
    """The arrays write_entry writes, with ``changes``."""
    arrays = {
        "z": _z(),
        "kind": np.array("points"),
        "model_id": np.array("m1"),
        "run_id": np.array("r1"),
        "meta": np.array('{"created": "2024-01-02T03:04:05Z"}'),
        "format": np.array(S.FORMAT),
        "seeds": np.arange(3, dtype=np.int64),
    }
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def _huge_header() -> bytes:
    from numpy.lib import format as npformat

    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    return buf.getvalue()


# Each file: (name, how to write it). Plain ones take the fast path; the rest go to read_entry.
FILES = {
    "plain": lambda p: write_entry(p, LatentEntry(z=_z(), seeds=np.arange(3), model_id="m", meta={"a": 1})),
    "plain-w": lambda p: write_entry(p, LatentEntry(z=_z(2), kind="direction", space="w+")),
    "compressed": lambda p: _npz(p, compressed=True, **_ours()),
    "only-z": lambda p: _npz(p, z=_z()),
    "float64": lambda p: _npz(p, z=_z(dtype=np.float64)),
    "float64-overflow": lambda p: _npz(p, z=np.full((1, D), 1e300)),
    "big-endian": lambda p: _npz(p, z=_z().astype(">f4")),
    "fortran": lambda p: _npz(p, z=np.asfortranarray(_z(4).reshape(D, 4))),
    "nan": lambda p: _npz(p, **_ours(z=np.where(np.eye(3, D) > 0, np.nan, _z()).astype(np.float32))),
    "inf": lambda p: _npz(p, **_ours(z=np.full((3, D), -np.inf, np.float32))),
    "huge-finite": lambda p: _npz(p, **_ours(z=np.full((3, D), 3.4e38, np.float32))),
    "one-row-empty": lambda p: _npz(p, z=np.zeros((0, D), np.float32)),
    "one-d": lambda p: _npz(p, z=np.ones(D, np.float32)),
    "seeds-negative": lambda p: _npz(p, **_ours(seeds=np.array([0, -1, 2]))),
    "seeds-max": lambda p: _npz(p, **_ours(seeds=np.array([0, MAX_SEED, 2]))),
    "seeds-over": lambda p: _npz(p, **_ours(seeds=np.array([0, MAX_SEED + 1, 2]))),
    "seeds-short": lambda p: _npz(p, **_ours(seeds=np.arange(2))),
    "seeds-int32": lambda p: _npz(p, **_ours(seeds=np.arange(3, dtype=np.int32))),
    "meta-bad": lambda p: _npz(p, **_ours(meta=np.array("{oops"))),
    "meta-list": lambda p: _npz(p, **_ours(meta=np.array("[1]"))),
    "meta-deep": lambda p: _npz(p, **_ours(meta=np.array("[" * 100_000))),
    "meta-none": lambda p: _npz(p, **_ours(meta=None)),
    "kind-bogus": lambda p: _npz(p, **_ours(kind=np.array("bogus"))),
    "kind-bytes": lambda p: _npz(p, **_ours(kind=np.array(b"direction"))),
    "format-newer": lambda p: _npz(p, **_ours(format=np.array("latentctl-latents/9"))),
    "format-other": lambda p: _npz(p, **_ours(format=np.array("something"))),
    "space-bad": lambda p: _npz(p, **_ours(space=np.array("q"))),
    "space-empty": lambda p: _npz(p, **_ours(space=np.array(""))),
    "model-id-2d": lambda p: _npz(p, **_ours(model_id=np.array([["a"]]))),
    "trailing-nul": lambda p: _npz(p, **_ours(model_id=np.array("abc\x00"))),
    "non-ascii": lambda p: _npz(p, **_ours(model_id=np.array("ñ😀"), meta=np.array('{"x": "😀"}'))),
    "nvidia-w": lambda p: _npz(p, w=np.ones((2, 3, D), np.float32)),
    "no-z": lambda p: _npz(p, a=np.ones(2)),
    "pickled": lambda p: _npz(p, z=np.array([object()], dtype=object)),
    "huge": lambda p: zipfile.ZipFile(p, "w").writestr("z.npy", _huge_header()),
    "not-zip": lambda p: p.write_bytes(b"not a zip"),
    "empty": lambda p: p.write_bytes(b""),
}


def _both_members(p: Path) -> None:
    """A member named 'z' wins over 'z.npy', as numpy's NpzFile has it."""
    buf = io.BytesIO()
    np.save(buf, _z(5))
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("z.npy", buf.getvalue())
        zf.writestr("z", b"not an array")


FILES["z-and-z.npy"] = _both_members


def test_the_listing_matches_reading_every_entry_whole(tmp_path):
    for name, write in FILES.items():
        write(tmp_path / f"{name}.npz")
    assert list_entries(tmp_path, read_entry) == _listed_by_read_entry(tmp_path)


@pytest.mark.parametrize("name", ["plain", "plain-w", "compressed", "only-z", "huge-finite", "seeds-max"])
def test_plain_entries_are_listed_without_read_entry(tmp_path, monkeypatch, name):
    FILES[name](tmp_path / f"{name}.npz")
    expected = _listed_by_read_entry(tmp_path)
    monkeypatch.setattr(S, "read_entry", lambda path: pytest.fail(f"{path} was read whole"))
    assert list_entries(tmp_path, read_entry) == expected


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bits=st.lists(st.integers(0, 2**32 - 1), min_size=D, max_size=4 * D).filter(lambda b: len(b) % D == 0))
def test_any_float32_bits_are_judged_as_read_entry_judges_them(tmp_path, bits):
    """NaN, the infinities and the largest finite numbers are told apart from the raw bytes."""
    path = tmp_path / "bits.npz"
    _npz(path, z=np.array(bits, dtype="<u4").view("<f4").reshape(-1, D))
    assert list_entries(tmp_path, read_entry) == _listed_by_read_entry(tmp_path)


def test_the_listing_mirrors_the_constants_it_cannot_import():
    assert store_index._MAX_SEED == MAX_SEED
    assert store_index._SPACES == SPACES


def test_a_header_is_parsed_as_a_literal_never_run(tmp_path):
    """A header holding a call is refused by ast.literal_eval; read_entry then says what is wrong."""
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': __import__('os').getpid()}"
    blob = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    with zipfile.ZipFile(tmp_path / "evil.npz", "w") as zf:
        zf.writestr("z.npy", blob)
    (info,) = list_entries(tmp_path, read_entry)
    assert info.error and "evil.npz" in info.error and info.count is None


# ---- attr-vector's library ---------------------------------------------------------------------


def _save(root: Path, name: str, z: np.ndarray, **kw) -> None:
    write_entry(root / f"{name}.npz", LatentEntry(z=z, **kw))


def _two_groups(root: Path, **kw) -> None:
    rng = np.random.default_rng(0)
    shift = np.eye(1, D, 0)[0] * 3
    _save(root, "glasses", (rng.standard_normal((6, D)) + shift).astype(np.float32), **kw)
    _save(root, "plain", rng.standard_normal((6, D)).astype(np.float32), **kw)


def test_attribute_vector_returns_the_entry_and_the_report_it_prints(workspace):
    from latentctl.space import attr_vector as A

    _two_groups(workspace / "latents", model_id="m1", run_id="r1")
    target = A.direction_model(None, None, None, None)  # no model: sized by the latents themselves
    assert (target.info, target.latent_dim, target.from_seeds) == (None, None, None)
    groups = A.groups_from_latents(target, ["glasses"], ["plain"])
    made = A.attribute_vector(target, groups, permutations=10)

    assert made.name == "glasses-minus-plain" and (made.n_pos, made.n_neg) == (6, 6)
    entry = made.entry
    assert (entry.kind, entry.count, entry.latent_dim, entry.model_id, entry.run_id) == ("direction", 1, D, "m1", "r1")
    assert (
        entry.meta["pos"] == ["glasses"] and entry.meta["neg"] == ["plain"] and entry.meta["command"] == "attr-vector"
    )
    np.testing.assert_allclose(entry.meta["norm"], np.linalg.norm(entry.z[0]), rtol=1e-6)
    assert made.summary().startswith("mean direction from 6 pos and 6 neg latents: length ")
    report = made.report(Path("x.npz"))
    assert report["path"] == "x.npz" and report["pos"] == 6 and report["name"] == "glasses-minus-plain"
    assert report["out_of_sample"]["permutations"] == 10 and "neg" in report and report["neg"] == 6
    assert report["on_picks"] == made.built.report.summary()


def test_attribute_vector_warns_through_its_callback_when_models_differ(workspace):
    from latentctl.space import attr_vector as A

    root = workspace / "latents"
    _two_groups(root)
    _save(root, "other", np.ones((2, D), np.float32), model_id="m2")
    _save(root, "mine", np.zeros((2, D), np.float32), model_id="m1")
    target = A.direction_model(None, None, None, None)
    heard: list[str] = []
    groups = A.groups_from_latents(target, ["glasses", "mine"], ["plain", "other"])
    made = A.attribute_vector(target, groups, permutations=0, name="mixed", warn=heard.append)
    assert heard == ["--pos and --neg come from different models (m1, m2); the direction mixes them"]
    assert made.name == "mixed" and made.entry.model_id == ""


def test_attribute_vector_refuses_latents_of_two_spaces_without_a_model(workspace):
    from latentctl.errors import UsageError
    from latentctl.space import attr_vector as A

    root = workspace / "latents"
    _two_groups(root, space="w")
    _save(root, "zs", np.ones((1, D), np.float32), kind="direction", space="z")
    target = A.direction_model(None, None, None, None)
    groups = A.groups_from_latents(target, ["glasses"], ["plain"])
    with pytest.raises(UsageError, match=r"different spaces \(w, z\)"):
        A.attribute_vector(target, groups, orthogonal_to=["zs"], permutations=0)
    assert A.attribute_vector(target, groups, permutations=0).entry.space == "w"


def test_space_without_a_model_is_refused_before_anything_is_read(workspace):
    from latentctl.errors import UsageError
    from latentctl.space import attr_vector as A

    with pytest.raises(UsageError, match="--space w needs a model"):
        A.direction_model(None, None, "w", None)


def test_groups_from_labels_split_by_a_condition():
    from latentctl.space import attr_vector as A

    z = np.arange(5 * D, dtype=np.float32).reshape(5, D)
    values = np.array([70.0, 20.0, np.nan, 65.0, 30.0])
    groups = A.groups_from_labels(z, values, images=Path("faces"), column="age", pos_if=">60", neg_if=None)
    np.testing.assert_array_equal(groups.pos, z[[0, 3]])
    np.testing.assert_array_equal(groups.neg, z[[1, 4]])  # every other *labelled* image
    assert groups.pos_sources == ["faces:age>60"] and groups.neg_sources == ["faces:not age>60"]
    assert groups.pos_entries == [] and groups.neg_entries == []


def test_a_model_read_from_its_header_maps_seeds_without_loading(tiny_run, workspace, monkeypatch):
    """A DCGAN's seeds are its prior's draws: the header alone sizes them, no weights are loaded."""
    from latentctl.seeds import latents_from_seeds
    from latentctl.space import attr_vector as A
    from latentctl.space import session

    monkeypatch.setattr(session, "open_model", lambda *a, **k: pytest.fail("the model was loaded"))
    target = A.direction_model(tiny_run, None, None, None)
    assert target.latent_dim == 8 and target.info is not None and target.space == "z"
    groups = A.groups_from_latents(target, ["seeds:0-3"], ["seeds:10-13"])
    np.testing.assert_array_equal(groups.pos, latents_from_seeds([0, 1, 2, 3], 8))
    made = A.attribute_vector(target, groups, permutations=0)
    assert made.name == "seeds0-3-minus-seeds10-13" and made.entry.model_id == target.info.model_id


# ---- interp's and apply's library ----------------------------------------------------------------


@pytest.fixture
def session(tiny_run, workspace):
    from latentctl.space.session import open_model

    return open_model(tiny_run, "cpu", workspace)


def test_walk_returns_the_path_its_frame_names_and_its_entry(session):
    from latentctl.space import editing

    walk = editing.walk(session, ["seeds:16", "seeds:37", "seeds:5"], 4, "slerp")
    assert walk.path.shape == (7, 8) and walk.segments == 2
    assert walk.names == [f"frame{i:03d}" for i in range(7)]
    assert walk.labels == ["seeds:16", "", "", "", "", "", "seeds:5"]
    np.testing.assert_array_equal(walk.entry.z, walk.path)
    assert walk.entry.meta["points"] == ["seeds:16", "seeds:37", "seeds:5"] and walk.entry.meta["method"] == "slerp"
    assert walk.entry.model_id == session.info.model_id


def test_edit_latents_sweeps_the_weighted_directions(session, workspace):
    from latentctl.errors import UsageError
    from latentctl.space import editing

    root = workspace / "latents"
    _save(root, "up", np.eye(1, 8, 0, dtype=np.float32), kind="direction", meta={"scale": "unit"})
    _save(root, "right", np.eye(1, 8, 1, dtype=np.float32) * 2, kind="direction")
    heard: list[str] = []
    edit = editing.edit_latents(session, ["seeds:1,2"], [("up", 1.0), ("right", -0.5)], [0.0, 2.0], report=heard.append)
    assert edit.sweep.shape == (2, 2, 8) and edit.flat.shape == (4, 8)
    np.testing.assert_allclose(edit.combined, [1, -1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(edit.sweep[:, 1] - edit.sweep[:, 0], 2 * edit.combined[None].repeat(2, 0), atol=1e-6)
    assert edit.row_names == ["seed 1", "seed 2"] and edit.flat_seeds == [1, 1, 2, 2]
    assert edit.file_names() == [
        "seed0001_scale+0",
        "seed0001_scale+2",
        "seed0002_scale+0",
        "seed0002_scale+2",
    ]
    assert (
        heard[0].startswith("up: length 1.000; strength 1 = one prior standard deviation") and "weight -0.5" in heard[1]
    )

    mean = editing.edit_latents(session, ["seeds:1,2"], [("up", 1.0)], [1.0], mean=True)
    assert mean.row_names == ["mean of 2"] and mean.seeds is None and mean.flat.shape == (1, 8)
    tiles, titles = editing.arithmetic_tiles(session, mean)
    assert titles == ["input 1", "input 2", "mean", "mean + 1 x direction"] and tiles.dtype == np.float32
    with pytest.raises(UsageError, match="--add seeds:3: holds 1 point"):
        editing.edit_latents(session, ["seeds:1"], [("seeds:3", 1.0)], [1.0])
