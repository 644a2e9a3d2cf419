"""What the thin commands (issue 26) call: library functions that return what `sample`,
`directions`, `encode` and `train` save and print, usable from Python without the CLI; and the
truncation ψ written on a sample grid (issue 29)."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import blob_images, run, write_images
from PIL import Image

from latentctl.errors import DataError, UsageError
from latentctl.pictures.grid import TEXT_COLOR, make_grid


def _grid_and_tiles(folder: Path, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    grid = np.asarray(Image.open(folder / "grid.png").convert("RGB"))
    tiles = np.stack([np.asarray(Image.open(folder / f"seed{s:04d}.png")) for s in seeds])
    return grid, tiles


def test_a_truncated_sample_grid_says_psi_in_a_caption_and_an_untruncated_one_has_none(tiny_run, tmp_path):
    from latentctl.space.sampling import grid_caption

    seeds = [0, 1, 2, 3]
    labels = [str(s) for s in seeds]
    shown = json.loads(
        run("sample", tiny_run, "--seeds", "0-3", "--psi", "0.7", "--out", tmp_path / "a", "--json").stdout
    )
    assert shown["truncation"] == 0.7 and shown["grid"] == str(tmp_path / "a" / "grid.png")
    run("sample", tiny_run, "--seeds", "0-3", "--truncation", "1", "--out", tmp_path / "b")

    assert grid_caption(0.7) == "psi = 0.7" and grid_caption(1.0) is None
    truncated, tiles_a = _grid_and_tiles(tmp_path / "a", seeds)
    plain, tiles_b = _grid_and_tiles(tmp_path / "b", seeds)
    # Each grid is exactly its tiles and seed labels, with the caption band on the truncated one only.
    np.testing.assert_array_equal(truncated, np.asarray(make_grid(tiles_a, labels=labels, caption="psi = 0.7")))
    np.testing.assert_array_equal(plain, np.asarray(make_grid(tiles_b, labels=labels)))
    assert truncated.shape[1] == plain.shape[1] and truncated.shape[0] > plain.shape[0]
    band = truncated.shape[0] - plain.shape[0]
    text = np.all(np.abs(truncated.astype(int) - np.array(TEXT_COLOR)) <= 40, axis=-1)
    assert text[:band].any()  # the caption is drawn in the band above the tiles
    assert not np.array_equal(tiles_a, tiles_b)  # and ψ did pull the samples in


def test_draw_samples_returns_what_sample_prints_and_writes_nothing_else(tiny_run, tmp_path):
    from latentctl.space.sampling import draw_samples
    from latentctl.space.session import open_model

    session = open_model(tiny_run, "cpu")
    drawn = draw_samples(session, [5, 2], tmp_path, truncation=0.5, save="two")
    assert drawn.images == [tmp_path / "seed0005.png", tmp_path / "seed0002.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "latents.npz", "seed0002.png", "seed0005.png"]
    shown = drawn.as_json()
    assert shown["seeds"] == [5, 2] and shown["store_entry"] == "two" and Path(shown["store_path"]).is_file()
    assert shown["truncation"] == 0.5 and shown["model_id"] == session.info.model_id
    assert session.store.load("two").meta["truncation"] == 0.5
    (tmp_path / "bare").mkdir()
    bare = draw_samples(session, [1], tmp_path / "bare", pngs=False, grid=False)
    assert bare.grid is None and bare.images == [] and bare.as_json()["store_path"] is None


def test_measure_builds_every_direction_entry_and_the_sheet_without_writing(tiny_run):
    from latentctl.space import directions as D
    from latentctl.space.session import open_model

    session = open_model(tiny_run, "cpu")
    found = D.find(session.generator, "sefa", 3)
    names = D.entry_names("sefa", 3)
    report = D.measure(session, found, names, [0, 1])
    assert names == ["sefa-1", "sefa-2", "sefa-3"] and session.store.names() == []  # nothing saved yet
    assert [e.meta["rank"] for e in report.entries] == [1, 2, 3]
    for entry, change in zip(report.entries, report.change):
        assert entry.kind == "direction" and np.isclose(np.linalg.norm(entry.z), 1.0, atol=1e-5)
        assert entry.meta["image_change_per_unit"] == float(change) and entry.meta["scale"] == "unit"
    assert report.everything.meta["names"] == names and report.everything.z.shape == (3, 8)
    # A row per (direction, seed), a column per strength; strength 0 is the seed's own latent.
    assert report.sheet.shape == (3 * 2 * len(D.SWEEP_STRENGTHS), 8)
    middle = report.sheet.reshape(3, 2, len(D.SWEEP_STRENGTHS), 8)[:, :, D.SWEEP_STRENGTHS.index(0.0)]
    np.testing.assert_allclose(middle, np.broadcast_to(session.seed_latents([0, 1]), (3, 2, 8)))
    assert report.row_labels[:2] == ["sefa-1, seed 0", "sefa-1, seed 1"] and report.col_labels[3] == "0"
    lines = report.summary("0-1")
    assert lines[0].startswith("3 sefa direction(s) of 8; rank, eigenvalue") and len(lines) == 1 + 3 + 2
    assert "sheet.png: a row per entry and seed (0-1), columns strengths -3 .. +3" in lines[-2]


def test_train_launch_refuses_what_several_processes_cannot_train():
    import torch

    from latentctl.train import train_launch as launch

    plan = SimpleNamespace(train=SimpleNamespace(r1_gamma=1.0))
    cpu = torch.device("cpu")
    launch.check_processes(plan, cpu, 1)  # one process: R1 is fine
    with pytest.raises(UsageError, match="--r1-gamma is not supported with --devices"):
        launch.check_processes(plan, cpu, 2)
    with pytest.raises(UsageError, match="one of 4 started by torchrun"):
        launch.check_processes(plan, cpu, 2, SimpleNamespace(size=4))


def test_a_torchrun_process_leaves_its_group_saying_whether_it_finished():
    from latentctl.train import train_launch as launch

    class Group:
        def __init__(self):
            self.left = []

        def join(self, dev):
            return f"{dev}:0"

        def leave(self, finished):
            self.left.append(finished)

    group = Group()
    with launch.joined(group, "cuda") as dev:
        assert dev == "cuda:0"
    with pytest.raises(KeyboardInterrupt), launch.joined(group, "cuda"):
        raise KeyboardInterrupt
    assert group.left == [True, False]
    with launch.joined(None, "cpu") as dev:
        assert dev == "cpu"


def test_save_encoded_writes_each_photo_beside_its_reconstruction(tiny_run, tmp_path):
    from latentctl.space.encode import Encoded
    from latentctl.space.photos import load_photos, save_encoded
    from latentctl.space.session import open_model

    session = open_model(tiny_run, "cpu")
    folder = write_images(tmp_path / "photos", blob_images(2))
    images, files = load_photos([folder], 32)
    encoded = Encoded(
        z=np.zeros((2, 8), np.float32), reconstructions=images[::-1], errors=np.array([1.25, 2.0]), method="projection"
    )
    (tmp_path / "out").mkdir()
    entry = save_encoded(session, encoded, images, files, tmp_path / "out", force=False)
    stems = [f.stem for f in files]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(["latents.npz", *(f"{s}-compare.png" for s in stems), *(f"{s}-recon.png" for s in stems)])
    assert entry.meta["files"] == [str(f) for f in files] and entry.meta["rms_error"] == [1.25, 2.0]
    with pytest.raises(DataError, match="no file or folder"):
        load_photos([tmp_path / "nothing"], 32)
