"""Issue 30: a new direction says which of the store's directions it also moves (the cosine between
them), and how to hold one still (`--orthogonal-to`), in the library, the CLI and the explorer."""

from __future__ import annotations

import json
import math
import shlex

import numpy as np
import pytest
from conftest import run

from latentctl.space import attr_vector as A
from latentctl.space import latents as L
from latentctl.space.store import LatentEntry, read_entry, write_entry

D = 32  # 4/sqrt(32) = 0.71: a random pair of directions passes it once in ~16,000


def _unit(rng: np.random.Generator, d: int = D) -> np.ndarray:
    v = rng.standard_normal(d)
    return v / np.linalg.norm(v)


def _direction(root, name: str, v: np.ndarray, **kw) -> None:
    write_entry(root / f"{name}.npz", LatentEntry(z=np.asarray(v, np.float32)[None], kind="direction", **kw))


def _groups_along(root, u: np.ndarray, *, shift: float = 2.0, seed: int = 1, **kw) -> None:
    """Points 'pos' and 'neg' that differ by ``shift`` along ``u``, plus noise."""
    rng = np.random.default_rng(seed)
    noise = 0.5 * rng.standard_normal((40, len(u)))
    pos, neg = noise[:20] + shift * u, noise[20:]
    write_entry(root / "pos.npz", LatentEntry(z=pos.astype(np.float32), **kw))
    write_entry(root / "neg.npz", LatentEntry(z=neg.astype(np.float32), **kw))


def _make(name: str | None = None, orthogonal_to=()) -> A.AttributeVector:
    target = A.direction_model(None, None, None, None)  # no model: the store's latents alone
    groups = A.groups_from_latents(target, ["pos"], ["neg"])
    return A.attribute_vector(target, groups, orthogonal_to=orthogonal_to, permutations=0, name=name)


@pytest.fixture
def store(workspace):
    root = workspace / "latents"
    root.mkdir()
    return root


# ---- the threshold ------------------------------------------------------------------------------


def test_the_threshold_is_four_chance_deviations_and_at_least_0_3():
    assert L.overlap_threshold(32) == pytest.approx(4 / math.sqrt(32))
    assert L.overlap_threshold(100) == pytest.approx(0.4)
    assert L.overlap_threshold(512) == L.OVERLAP_FLOOR == 0.3  # 4/sqrt(512) = 0.18 would flag tiny overlaps
    # Random directions pass it at most 6 times in 100,000 pairs (the normal's tails; the exact
    # ones are thinner): 50,000 random pairs in 32 dimensions pass it at most 3 times.
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 50_000, D))
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert np.count_nonzero(np.abs(cos) > L.overlap_threshold(D)) <= 3
    assert np.count_nonzero(np.abs(cos) > 0.5) > 50  # while smaller cosines are common: no flag for them


def test_in_few_dimensions_nothing_is_flagged_and_the_summary_says_why():
    found = L.overlaps(np.eye(8)[0], [("same", np.eye(8)[0])])
    assert found.closest[0].cosine == pytest.approx(1.0) and not found.clear
    assert "chance alone gives cosines this large" in found.summary()


# ---- the library --------------------------------------------------------------------------------


def test_a_direction_names_the_store_direction_it_moves_with_its_sign(store):
    rng = np.random.default_rng(0)
    u = _unit(rng)
    _direction(store, "smile", 3 * u)  # its length does not matter, only where it points
    _direction(store, "frown", -u)
    for i in range(6):
        _direction(store, f"other{i}", _unit(rng))
    _groups_along(store, u)
    made = _make("new")

    found = made.overlaps
    assert found.compared == 8 and len(found.closest) == L.OVERLAP_TOP
    assert [o.name for o in found.clear] == ["frown", "smile"]  # equal |cos|: by name
    smile = next(o for o in found.closest if o.name == "smile")
    frown = next(o for o in found.closest if o.name == "frown")
    assert smile.cosine > 0.8 and frown.cosine == pytest.approx(-smile.cosine)
    assert all(abs(o.cosine) < found.threshold for o in found.closest[2:])
    sizes = [abs(o.cosine) for o in found.closest]
    assert sizes == sorted(sizes, reverse=True)
    # The entry records them, and so does the --json report.
    assert made.entry.meta["overlaps"][0] == {"name": "frown", "cosine": frown.cosine, "clear": True}
    assert made.entry.meta["overlap_threshold"] == pytest.approx(4 / math.sqrt(D))
    assert made.report(store / "new.npz")["overlaps"] == made.entry.meta["overlaps"]
    assert smile.hint() == f"overlaps 'smile' (cos {smile.cosine:+.2f}): to hold it still, add --orthogonal-to smile"
    assert found.summary().startswith("cosine with the store's 8 directions (more than chance above |cos| 0.71")


def test_an_unrelated_direction_is_not_flagged(store):
    rng = np.random.default_rng(3)
    _direction(store, "smile", _unit(rng))
    _groups_along(store, _unit(rng), shift=0.0)  # pure noise: the direction points anywhere
    found = _make("new").overlaps
    assert found.compared == 1 and found.closest[0].name == "smile" and found.clear == []


def test_directions_of_another_size_space_or_model_are_not_compared(store):
    rng = np.random.default_rng(0)
    u = _unit(rng)
    _direction(store, "same-space", u, space="z")
    _direction(store, "unknown-space", u)  # files of other tools, or from before spaces were recorded
    _direction(store, "in-w", u, space="w")
    _direction(store, "bigger", np.concatenate([u, u]), space="z")
    _direction(store, "other-model", u, space="z", model_id="m2", run_id="r2")
    _direction(store, "same-run", u, space="z", model_id="m0", run_id="r1")  # another checkpoint of the run
    write_entry(store / "points.npz", LatentEntry(z=np.tile(u, (3, 1)).astype(np.float32), space="z"))
    _groups_along(store, u, space="z", model_id="m1", run_id="r1")
    found = _make("new").overlaps
    assert sorted(o.name for o in found.closest) == ["same-run", "same-space", "unknown-space"]


def test_unreadable_entries_and_the_entry_replaced_are_left_out(store):
    rng = np.random.default_rng(0)
    u = _unit(rng)
    _direction(store, "smile", u)
    (store / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (store / "garbage.npz").write_bytes(b"\x00" * 100)
    good = (store / "smile.npz").read_bytes()
    (store / "torn.npz").write_bytes(good[: len(good) // 2])
    _groups_along(store, u)
    assert [o.name for o in _make("new").overlaps.closest] == ["smile"]
    # Made again under its own name (--force): not an overlap with itself.
    assert _make("smile").overlaps.compared == 0


def test_points_entries_are_skipped_without_reading_their_rows(store, monkeypatch):
    rng = np.random.default_rng(0)
    u = _unit(rng)
    _groups_along(store, u)
    _direction(store, "smile", u)
    read = []
    monkeypatch.setattr(A, "read_entry", lambda path: read.append(path.name) or read_entry(path))
    found = A.store_overlaps(A.LatentStore(store), u, space="")
    assert read == ["smile.npz"] and found.closest[0].cosine == pytest.approx(1.0, abs=1e-6)


def test_orthogonal_to_the_overlapping_direction_removes_the_overlap(store):
    rng = np.random.default_rng(0)
    u = _unit(rng)
    _direction(store, "smile", u)
    _direction(store, "glasses", _unit(rng))
    _groups_along(store, 0.8 * u + 0.6 * _unit(rng))  # partly along smile, partly elsewhere
    assert [o.name for o in _make("new").overlaps.clear] == ["smile"]
    held = _make("new", orthogonal_to=["smile"]).overlaps
    smile = next(o for o in held.closest if o.name == "smile")
    assert abs(smile.cosine) < 1e-5 and held.clear == []


# ---- the command --------------------------------------------------------------------------------


def test_attr_vector_prints_the_command_that_holds_the_overlap_still(store):
    rng = np.random.default_rng(0)
    u = _unit(rng)
    _direction(store, "smile", u)
    _groups_along(store, u)
    res = run("attr-vector", "--pos", "pos", "--neg", "neg", "--permutations", "0", "--save", "big-smile")
    assert "cosine with the store's direction (more than chance above |cos| 0.71 in 32 dimensions): smile +" in (
        res.stderr
    )
    again = "latentctl attr-vector --pos pos --neg neg --orthogonal-to smile --permutations 0 --save big-smile --force"
    assert "overlaps 'smile' (cos +0.9" in res.stderr and f"to hold it still, {again}" in res.stderr
    assert res.stdout.strip().endswith("big-smile.npz")  # stdout still carries only the path
    assert read_entry(store / "big-smile.npz").meta["overlaps"][0]["clear"] is True

    # The command shown runs, and the direction it saves no longer moves smile.
    res = run(*shlex.split(again)[1:])
    assert "overlaps 'smile'" not in res.output
    (smile,) = read_entry(store / "big-smile.npz").meta["overlaps"]
    assert smile["name"] == "smile" and abs(smile["cosine"]) < 1e-5 and smile["clear"] is False


def test_attr_vector_json_reports_the_overlaps(store):
    rng = np.random.default_rng(0)
    u = _unit(rng)
    _direction(store, "smile", -u)
    _groups_along(store, u)
    report = json.loads(run("attr-vector", "--pos", "pos", "--neg", "neg", "--permutations", "0", "--json").stdout)
    (smile,) = report["overlaps"]
    assert smile["name"] == "smile" and smile["cosine"] < -0.8 and smile["clear"] is True
    assert report["overlap_threshold"] == pytest.approx(4 / math.sqrt(D))


def test_a_first_direction_prints_no_overlap_line(store):
    _groups_along(store, _unit(np.random.default_rng(0)))
    res = run("attr-vector", "--pos", "pos", "--neg", "neg", "--permutations", "0")
    assert "cosine with the store" not in res.output and "overlaps" not in res.output
    assert read_entry(store / "pos-minus-neg.npz").meta["overlaps"] == []


# ---- the explorer -------------------------------------------------------------------------------


def test_the_explorer_reports_overlaps_with_the_command_that_holds_one_still(tiny_run, workspace, monkeypatch):
    pytest.importorskip("starlette")
    from latentctl.explore.api import Explorer
    from latentctl.space.session import open_model

    explorer = Explorer(open_model(tiny_run, "cpu", workspace, "fp32"))
    first = explorer.direction({"pos": list(range(10)), "neg": list(range(10, 20)), "name": "first"})
    assert first["overlaps"] == [] and first["overlap_summary"] is None
    # The tiny model has 8 dimensions, where nothing can be flagged; hold it to the 512-d rule.
    monkeypatch.setattr(L, "overlap_threshold", lambda dim: 0.3)
    again = explorer.direction({"pos": list(range(10)), "neg": list(range(10, 20)), "name": "again"})
    (first_o,) = again["overlaps"]
    assert first_o["name"] == "first" and first_o["cosine"] == pytest.approx(1.0, abs=1e-5) and first_o["clear"]
    assert first_o["hint"].startswith("overlaps 'first' (cos +1.00): to hold it still, latentctl attr-vector ")
    assert first_o["hint"].endswith("--save again --orthogonal-to first --force")
    saved = explorer.store.load("again").meta
    assert saved["overlaps"] == [{k: first_o[k] for k in ("name", "cosine", "clear")}]
