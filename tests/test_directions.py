"""Directions without hand-picking: SeFa, GANSpace PCA, steerability walks and GANalyze, on one
tiny model trained once for the module."""

import numpy as np
import pytest
import torch
from conftest import blob_images, model_flags, run, tiny, write_images

from latentctl.files import checkpoint
from latentctl.seeds import latents_from_seeds
from latentctl.space import directions as D
from latentctl.space.store import read_entry

# latent 100 as the seed's model: with only a few latent dimensions AᵀA is nearly isotropic and
# SeFa has little to find.
MODEL = model_flags(tiny(latent_dim=100))


def _blob_centre_x(images: np.ndarray) -> np.ndarray:
    """Column of the blue disc's centre, per image (the blobs' one varying feature)."""
    blue = images[..., 2].astype(int) > images[..., 0].astype(int)
    cols = np.arange(images.shape[2])[None, None, :]
    return (blue * cols).sum(axis=(1, 2)) / np.maximum(blue.sum(axis=(1, 2)), 1)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny model at latent 100, on 256 blobs labelled by the side their disc lies on (the
    assessor's column), trained for 4 epochs in a workspace of its own."""
    root = tmp_path_factory.mktemp("dirs")
    images = blob_images(256)
    folder = write_images(root / "images", images)
    right = _blob_centre_x(images) > images.shape[2] / 2 - 0.5
    rows = [f"img_{i:04d}.png,{int(r)}" for i, r in enumerate(right)]
    (folder / "labels.csv").write_text("file,right\n" + "\n".join(rows) + "\n")
    run("train", folder, *MODEL, "--epochs", "4", "--workspace", root / "ws")
    run_dir = root / "ws" / "runs" / "0001-images-32px"
    return run_dir, folder, checkpoint.load(run_dir).generator


def test_sefa_vectors_are_the_top_orthonormal_eigenvectors_of_ata(model):
    _, _, G = model
    a = G.fc.weight.detach().double().numpy()
    found = D.sefa(a, 5)
    v = found.vectors.astype(np.float64)
    np.testing.assert_allclose(v @ v.T, np.eye(5), atol=1e-5)
    values, vectors = np.linalg.eigh(a.T @ a)
    np.testing.assert_allclose(found.values, values[::-1][:5], rtol=1e-6)
    for i in range(5):  # same vector up to sign, and an eigenvector with its own eigenvalue
        assert abs(v[i] @ vectors[:, -1 - i]) > 1 - 1e-5
        np.testing.assert_allclose(a.T @ a @ v[i], found.values[i] * v[i], rtol=1e-4, atol=1e-4)


def test_top_sefa_directions_change_images_more_than_random_ones(model):
    _, _, G = model
    z = latents_from_seeds(list(range(16)), 100)
    top = D.image_change(G, z, D.sefa(G.fc.weight.detach().numpy(), 3).vectors)
    rand = D.image_change(G, z, D.random_directions(100, 12, seed=1))
    assert top.mean() > rand.mean() and top.min() > np.median(rand), (top, rand)


def test_pca_explained_variance_is_sorted_and_at_most_one(model):
    _, _, G = model
    found = D.pca(G, 6, samples=2000, seed=0)
    ev = found.values
    assert np.all(np.diff(ev) <= 1e-12) and ev.min() > 0 and ev.sum() <= 1.0
    np.testing.assert_allclose(np.linalg.norm(found.vectors, axis=1), 1.0, atol=1e-5)
    again = D.pca(G, 6, samples=2000, seed=0)
    np.testing.assert_array_equal(found.vectors, again.vectors)  # seeded


def test_directions_command_saves_unit_entries_that_apply_uses(model, workspace, tmp_path):
    run_dir, _, _ = model
    res = run("directions", run_dir, "--method", "sefa", "-k", "3", "--out", tmp_path / "s")
    assert (tmp_path / "s" / "sheet.png").exists()
    assert "sefa-1" in res.output
    e = read_entry(workspace / "latents" / "sefa-2.npz")
    assert e.kind == "direction" and e.count == 1 and e.model_id
    assert e.meta["method"] == "sefa" and e.meta["rank"] == 2 and e.meta["scale"] == "unit" and e.meta["eigenvalue"] > 0
    assert abs(np.linalg.norm(e.z[0]) - 1) < 1e-5
    run(
        "directions",
        run_dir,
        "--method",
        "pca",
        "-k",
        "2",
        "--samples",
        "1000",
        "--save",
        "gs",
        "--out",
        tmp_path / "p",
    )
    assert read_entry(workspace / "latents" / "gs-1.npz").meta["explained_variance"] > 0
    out = run("apply", "seeds:3", "--add", "sefa-1=2", "--add", "gs-2", "--model", run_dir, "--out", tmp_path / "a")
    assert (tmp_path / "a" / "grid.png").exists(), out.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["--method", "sefa", "-k", "101"], "-k 101 is out of range"),
        (["--method", "sefa", "-k", "0"], "-k 0 is out of range"),
        (["--method", "ica"], "unknown --method 'ica'"),
        (["--method", "pca", "--samples", "2000000000"], "--samples 2,000,000,000: at most 1,000,000"),
    ],
)
def test_directions_bad_inputs_are_one_line_errors(model, args, words):
    res = run("directions", model[0], *args, code=2)
    assert words in res.output and len(res.output.strip().splitlines()) == 1


def test_steer_bad_inputs_are_one_line_errors(model):
    for args, words in (
        (["--edit", "spin"], "unknown --edit 'spin'"),
        ([], "give --edit EDIT"),
        (["--edit", "color", "--channel", "pink"], "unknown --channel 'pink'"),
        (["--edit", "zoom", "--alpha-max", "nan"], "--alpha-max"),
        (["--edit", "zoom", "--lr", "inf"], "--lr"),
        (["--edit", "zoom", "--steps", "1000000000"], "at most 100,000"),
        (["--edit", "zoom", "--seeds", "0-999"], "--seeds 1,000: at most 64"),
    ):
        res = run("steer", model[0], *args, code=2)
        assert words in res.output and len(res.output.strip().splitlines()) == 1


def test_edits_move_content_the_way_their_units_say():
    from latentctl.space.steer import apply_edit

    x = -torch.ones(1, 3, 32, 32)
    x[..., 10:14, 10:14] = 1.0
    shifted, mask = apply_edit(x, "shift-x", torch.tensor([0.125]))  # 4 pixels right
    assert torch.allclose(shifted[..., 10:14, 14:18], x[..., 10:14, 10:14], atol=1e-5)
    assert mask[0, 0, :, :4].sum() == 0 and mask[0, 0, :, 4:].min() == 1
    down, _ = apply_edit(x, "shift-y", torch.tensor([0.125]))
    assert torch.allclose(down[..., 14:18, 10:14], x[..., 10:14, 10:14], atol=1e-5)
    brighter, mask = apply_edit(x, "brightness", torch.tensor([0.5]))
    assert torch.allclose(brighter, (x + 0.5).clamp(-1, 1)) and mask.min() == 1
    same, _ = apply_edit(x, "rotate", torch.tensor([0.0]))
    assert torch.allclose(same, x, atol=1e-5)


@pytest.mark.slow
def test_learned_shift_walk_beats_the_zero_walk(model, workspace, tmp_path):
    run_dir, _, _ = model
    res = run("steer", run_dir, "--edit", "shift-x", "--steps", "80", "--out", tmp_path)
    e = read_entry(workspace / "latents" / "steer-shift-x.npz")
    assert e.kind == "direction" and e.meta["alpha_range"] == [-0.25, 0.25] and "width" in e.meta["units"]
    moved = [x for x in e.meta["errors"] if x["alpha"] != 0]
    assert sum(x["walk"] for x in moved) < sum(x["zero"] for x in moved), moved
    assert "zero walk" in res.output and (tmp_path / "sweep.png").exists()
    run("apply", "seeds:0", "--add", "steer-shift-x=0.1", "--model", run_dir, "--out", tmp_path / "a")


@pytest.mark.slow
def test_assessor_direction_raises_the_held_out_score_monotonically(model, workspace, tmp_path):
    from latentctl.space.assessor import load_classifier

    run_dir, folder, _ = model
    res = run(
        "classifier", "train", folder, "--column", "right", "--pos-if", "==1", "--image-size", "32", "--epochs", "6"
    )
    clf_path = workspace / "classifiers" / "right.safetensors"
    assert res.stdout.strip().splitlines()[-1] == str(clf_path)
    clf = load_classifier(clf_path)
    assert clf.meta["column"] == "right" and clf.meta["val_accuracy"] > 0.6
    raw = clf_path.read_bytes()
    assert b"latentctl-assessor" in raw[:4096] and not raw.startswith(b"PK")
    run("steer", run_dir, "--assessor", "right", "--steps", "100", "--out", tmp_path)
    e = read_entry(workspace / "latents" / "ganalyze-right.npz")
    assert e.kind == "direction" and e.meta["method"] == "ganalyze"
    curve = [c for c in e.meta["curve"] if 0 <= c["strength"] <= 2]
    scores = [c["score"] for c in curve]
    assert len(scores) >= 4 and all(b > a for a, b in zip(scores, scores[1:])), curve
    run("apply", "seeds:0", "--add", "ganalyze-right=1", "--model", run_dir, "--out", tmp_path / "a")


def test_classifier_from_picked_entries_and_bad_files(model, workspace, tmp_path):
    run_dir, _, _ = model
    run("sample", run_dir, "--seeds", "0-11", "--save", "a", "--out", tmp_path / "a")
    run("sample", run_dir, "--seeds", "12-23", "--save", "b", "--out", tmp_path / "b")
    out = tmp_path / "c.safetensors"
    run(
        "classifier",
        "train",
        "--pos",
        "a",
        "--neg",
        "b",
        "--model",
        run_dir,
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--out",
        out,
    )
    assert out.exists()
    pickle = tmp_path / "x.safetensors"
    pickle.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    res = run("steer", run_dir, "--assessor", pickle, code=1)
    assert "pickle" in res.output and len(res.output.strip().splitlines()) == 1
    res = run("steer", run_dir, "--assessor", "nothing-here", code=2)
    assert "no classifier 'nothing-here'" in res.output
