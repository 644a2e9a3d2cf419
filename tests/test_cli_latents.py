"""interp, attr-vector, apply and the store through the CLI, on a tiny trained model."""

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, run
from PIL import Image

from latentctl.seeds import latents_from_seeds
from latentctl.space.store import read_entry


@pytest.fixture
def model(tiny_run):
    """The session's tiny trained run (conftest), only read here; each test has its own store."""
    return tiny_run


def test_sample_save_then_list_and_show(model, workspace):
    run("sample", model, "--seeds", "16,37,83", "--save", "glasses")
    entry = read_entry(workspace / "latents" / "glasses.npz")
    assert entry.kind == "points" and entry.seeds.tolist() == [16, 37, 83]
    np.testing.assert_array_equal(entry.z, latents_from_seeds([16, 37, 83], 8))
    assert entry.model_id  # which model made them
    listing = run("latents", "list").stdout
    assert "glasses" in listing and "points" in listing and f"model {entry.model_id[:8]}" in listing
    assert "seeds: 16, 37, 83" in run("latents", "show", "glasses").stdout


def test_save_never_overwrites_an_entry_without_force(model, workspace):
    run("sample", model, "--seeds", "1", "--save", "pick")
    res = run("sample", model, "--seeds", "2", "--save", "pick", code=1)
    assert "already exists" in res.output and "--force" in res.output
    assert read_entry(workspace / "latents" / "pick.npz").seeds.tolist() == [1]


def test_attr_vector_mean_difference_is_the_seeds_formula(model, workspace):
    run("sample", model, "--seeds", "1,2,3", "--save", "pos")
    run("sample", model, "--seeds", "4,5,6", "--save", "neg")
    res = run("attr-vector", "--pos", "pos", "--neg", "neg", "--model", model)
    assert "accuracy" in res.output
    d = read_entry(workspace / "latents" / "pos-minus-neg.npz")
    assert d.kind == "direction" and d.meta["n_pos"] == 3 and d.meta["method"] == "mean"
    z = latents_from_seeds([1, 2, 3, 4, 5, 6], 8)
    np.testing.assert_allclose(d.z[0], z[:3].mean(0) - z[3:].mean(0), rtol=1e-5, atol=1e-6)


def test_boundary_and_orthogonal_directions(model, workspace):
    run("sample", model, "--seeds", "0-9", "--save", "a")
    run("sample", model, "--seeds", "10-19", "--save", "b")
    run("attr-vector", "--pos", "a", "--neg", "b", "--method", "boundary", "--save", "ab", "--model", model)
    entry = read_entry(workspace / "latents" / "ab.npz")
    ab = entry.z[0]
    # strength 1 = the groups' mean gap along the boundary's normal (docs/directions.md)
    a, b = read_entry(workspace / "latents" / "a.npz").z, read_entry(workspace / "latents" / "b.npz").z
    u = ab / np.linalg.norm(ab)
    assert entry.meta["scale"] == "mean-gap"
    assert np.linalg.norm(ab) == pytest.approx(float((a.mean(0) - b.mean(0)) @ u), rel=1e-4)
    run("attr-vector", "--pos", "a", "--neg", "b", "--method", "boundary", "--unit", "--save", "ab1", "--model", model)
    assert abs(np.linalg.norm(read_entry(workspace / "latents" / "ab1.npz").z[0]) - 1) < 1e-5
    run("attr-vector", "--pos", "a@0-4", "--neg", "a@5-9", "--orthogonal-to", "ab", "--save", "c", "--model", model)
    c = read_entry(workspace / "latents" / "c.npz").z[0]
    assert abs(float(np.dot(c, ab))) < 1e-4


def test_attr_vector_errors(model, workspace):
    run("sample", model, "--seeds", "1,2", "--save", "p")
    assert (
        "no latent entry 'nope'" in run("attr-vector", "--pos", "p", "--neg", "nope", "--model", model, code=1).output
    )
    bad = workspace / "bad.npz"
    np.savez(bad, z=np.zeros((2, 5), np.float32))
    res = run("attr-vector", "--pos", "p", "--neg", str(bad), "--model", model, code=1)
    assert "5-dimensional latents but the model uses 8" in res.output


def test_apply_the_seeds_arithmetic_in_one_command(model, workspace, tmp_path):
    run("sample", model, "--seeds", "1,2,3", "--save", "glasses")
    run("sample", model, "--seeds", "4,5,6", "--save", "noglasses")
    run("sample", model, "--seeds", "7,8,9", "--save", "smiling")
    run("attr-vector", "--pos", "glasses", "--neg", "noglasses", "--save", "gdir", "--model", model)
    run("apply", "smiling", "--mean", "--add", "gdir", "--model", model, "--out", tmp_path / "o", "--save", "result")
    out = read_entry(workspace / "latents" / "result.npz").z
    z = latents_from_seeds(list(range(1, 10)), 8)
    expected = z[6:].mean(0) + (z[:3].mean(0) - z[3:6].mean(0))
    np.testing.assert_allclose(out[1], expected, rtol=1e-5, atol=1e-5)  # scale +1
    np.testing.assert_allclose(out[0], z[6:].mean(0), rtol=1e-5, atol=1e-5)  # scale 0: unedited
    assert (tmp_path / "o" / "grid.png").exists() and (tmp_path / "o" / "row000_scale+1.png").exists()
    # the seed's figure: the inputs, their mean, mean(glasses) and mean(noglasses), and the result
    figure = Image.open(tmp_path / "o" / "arithmetic.png")
    assert figure.width >= 3 + 1 + 2 + 1 and figure.width > 6 * figure.height / 2


def test_apply_sweep_grid_has_one_row_per_input_and_one_column_per_strength(model, workspace, tmp_path):
    run("sample", model, "--seeds", "1,2", "--save", "p")
    run("sample", model, "--seeds", "3,4", "--save", "n")
    run("attr-vector", "--pos", "p", "--neg", "n", "--save", "d", "--model", model)
    run(
        "apply",
        "seeds:0-2",
        "--add",
        "d=0.5",
        "--add",
        "d=-0.25",
        "--scales",
        "-2,-1,0,1,2",
        "--model",
        model,
        "--out",
        tmp_path,
    )
    entry = read_entry(tmp_path / "latents.npz")
    assert entry.count == 15
    z0 = latents_from_seeds([0], 8)[0]
    d = read_entry(workspace / "latents" / "d.npz").z[0]
    np.testing.assert_allclose(entry.z[4], z0 + 2 * 0.25 * d, rtol=1e-5, atol=1e-5)
    assert len(list(tmp_path.glob("seed000[0-2]_scale*.png"))) == 15  # files named by seed
    assert entry.seeds.tolist() == [0] * 5 + [1] * 5 + [2] * 5  # the edited latents keep their seeds


def test_apply_can_skip_the_images_or_the_grid(model, workspace, tmp_path):
    run("sample", model, "--seeds", "1,2", "--save", "p2")
    run("sample", model, "--seeds", "3,4", "--save", "n2")
    run("attr-vector", "--pos", "p2", "--neg", "n2", "--save", "d2", "--model", model)
    res = run("apply", "seeds:0-4", "--add", "d2", "--no-pngs", "--no-grid", "--model", model, "--out", tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["latents.npz"]
    assert res.stdout.strip().endswith("latents.npz")
    run("apply", "seeds:0-4", "--add", "d2", "--no-pngs", "--model", model, "--out", tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["grid.png", "latents.npz"]


def test_render_draws_stored_latents_labelled_by_seed(model, workspace, tmp_path):
    run("sample", model, "--seeds", "5,9,12", "--save", "picked")
    grid = run("render", "picked", "seeds:3", "--model", model, "--out", tmp_path).stdout.strip().splitlines()[-1]
    assert grid.endswith("grid.png")
    assert sorted(p.name for p in tmp_path.glob("seed*.png")) == [
        "seed0003.png",
        "seed0005.png",
        "seed0009.png",
        "seed0012.png",
    ]
    sampled = tmp_path / "s"
    run("sample", model, "--seeds", "9", "--out", sampled)
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "seed0009.png")), np.asarray(Image.open(sampled / "seed0009.png"))
    )
    assert Image.open(grid).width >= 2 * 120  # 2x2 tiles, each enlarged from 32 px to a readable size
    run("render", "picked", "--no-pngs", "--no-grid", "--model", model, code=2)


def test_store_and_direction_reports_as_json(model, workspace):
    import json

    run("sample", model, "--seeds", "1,2,3", "--save", "jp")
    run("sample", model, "--seeds", "4,5,6", "--save", "jn")
    report = json.loads(
        run("attr-vector", "--pos", "jp", "--neg", "jn", "--save", "jd", "--model", model, "--json").stdout
    )
    assert report["name"] == "jd" and report["pos"] == 3 and "out_of_sample" in report and report["scale"]
    listed = {e["name"]: e for e in json.loads(run("latents", "list", "--json").stdout)}
    assert listed["jp"]["count"] == 3 and listed["jd"]["kind"] == "direction"
    assert listed["jp"]["run"] is None  # the tiny run lives in another workspace: no name to give
    shown = json.loads(run("latents", "show", "jp", "--json").stdout)
    assert shown["seeds"] == [1, 2, 3] and len(shown["z"]) == 3


def test_apply_refuses_points_as_a_direction(model, workspace):
    run("sample", model, "--seeds", "1,2", "--save", "p")
    assert "not a direction" in run("apply", "seeds:1", "--add", "p", "--model", model, code=2).output


def test_latents_from_another_model_warn_visibly(model, workspace, tmp_path):
    from latentctl.space.store import LatentEntry, write_entry

    write_entry(
        workspace / "latents" / "foreign.npz",
        LatentEntry(z=np.ones((1, 8), np.float32), kind="direction", model_id="0123456789abcdef"),
    )
    res = run("apply", "seeds:1", "--add", "foreign", "--model", model, "--out", tmp_path / "a", code=2)
    assert "different model (0123456789abcdef)" in res.output and "--allow-other-model" in res.output
    res = run("apply", "seeds:1", "--add", "foreign", "--model", model, "--out", tmp_path / "b", "--allow-other-model")
    assert "different model (0123456789abcdef)" in res.output


def test_interp_endpoints_are_the_given_latents(model, tmp_path):
    run("interp", "seeds:16", "seeds:37", "--model", model, "--out", tmp_path, "--gif")
    entry = read_entry(tmp_path / "latents.npz")
    assert entry.count == 6
    np.testing.assert_allclose(entry.z[[0, -1]], latents_from_seeds([16, 37], 8), atol=1e-6)
    strip = Image.open(tmp_path / "strip.png")
    assert strip.width > 5 * strip.height  # one row of six
    gif = Image.open(tmp_path / "interp.gif")
    assert gif.n_frames == 10  # forth and back
    assert gif.size[0] >= 128  # enlarged from 32 px to be watchable, like the grids
    first = np.asarray(Image.open(tmp_path / "frame000.png"))
    run("sample", model, "--seeds", "16", "--out", tmp_path / "s")
    np.testing.assert_array_equal(first, np.asarray(Image.open(tmp_path / "s" / "seed0016.png")))


def test_interp_path_through_several_points_with_slerp(model, tmp_path):
    run("interp", "seeds:1,2,3", "--frames", "4", "--method", "slerp", "--model", model, "--out", tmp_path)
    z = read_entry(tmp_path / "latents.npz").z
    assert len(z) == 7
    ends = latents_from_seeds([1, 2, 3], 8)
    np.testing.assert_allclose(z[[0, 3, 6]], ends, atol=1e-5)
    assert (
        "--method must be lerp or slerp"
        in run("interp", "seeds:1", "seeds:2", "--method", "cubic", "--model", model, code=2).output
    )
    assert "at least two" in run("interp", "seeds:1", "--model", model, code=2).output


def test_precision_chooses_what_images_are_rendered_in(model, tmp_path):
    """--precision fp32 renders exactly the library's float32 images; bf16 renders close to them;
    interp and apply take the same flag; a bad value is a one-line usage error."""
    from latentctl.files import checkpoint
    from latentctl.space.generate import generate

    loaded = checkpoint.load(model)
    z = latents_from_seeds([3, 4], 8)
    want = generate(loaded.generator, z, device=torch.device("cpu"), precision="fp32")
    for prec in ("fp32", "bf16"):
        run("sample", model, "--seeds", "3,4", "--precision", prec, "--out", tmp_path / prec)
        got = np.stack([np.asarray(Image.open(tmp_path / prec / f"seed000{s}.png")) for s in (3, 4)])
        if prec == "fp32":
            np.testing.assert_array_equal(got, want)
        else:  # bfloat16 keeps 8 bits of mantissa: pixels move by a few levels, the picture stays
            assert np.abs(got.astype(int) - want.astype(int)).mean() < 6
            assert not np.array_equal(got, want)  # rendered in bf16 indeed, not silently in fp32
    run("interp", "seeds:3", "seeds:4", "--precision", "fp32", "--model", model, "--out", tmp_path / "i")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "i" / "frame000.png")), want[0])
    for cmd in (
        ["sample", model, "-n", "1"],
        ["interp", "seeds:1", "seeds:2", "--model", model],
        ["apply", "seeds:1", "--add", "d", "--model", model],
    ):
        res = run(*cmd, "--precision", "fp16", code=2)
        assert "--precision must be auto, fp32 or bf16" in res.output and "Traceback" not in res.output


# ---- nothing lost, no traceback (issue 10) --------------------------------------------------------


def _huge_npz(path):
    """200 bytes on disk whose z.npy header claims 10^12 floats."""
    import io
    import zipfile

    from numpy.lib import format as npformat

    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("z.npy", buf.getvalue())
    return path


def test_latents_list_shows_a_lying_entry_as_unreadable_and_goes_on(workspace):
    from latentctl.space.store import LatentEntry, write_entry

    store = workspace / "latents"
    store.mkdir()
    _huge_npz(store / "huge.npz")
    (store / "[bold]odd[red].npz").write_bytes(b"not a zip")  # markup in a name is plain text
    write_entry(store / "ok.npz", LatentEntry(z=np.ones((2, 8), np.float32)))
    res = run("latents", "list")
    out = " ".join(res.stdout.split())  # the table wraps long reasons
    assert "huge unreadable" in out and "declares shape (1000000, 1000000)" in out
    assert "[bold]odd[red]" in out
    assert "ok points 2×8" in out and "Traceback" not in res.output
    res = run("latents", "show", "huge", code=1)
    assert "huge.npz: 'z' declares shape" in res.output and len(res.output.strip().splitlines()) == 1


# Each is refused before the model is even looked for: the run folder does not exist, so any
# later check would fail with "no checkpoint" (exit 1) instead.
@pytest.mark.parametrize(
    "args,message",
    [
        (["sample", "NOMODEL", "--seeds", "0-4294967295"], "at most 100,000 seeds per command; split the range"),
        (["sample", "NOMODEL", "-n", "2000000000"], "at most 100,000 samples per command"),
        (
            ["sample", "NOMODEL", "-n", "4", "--truncation", "1e300"],
            "--truncation 1e+300: expected a finite number between 0 and 1,000,000",
        ),
        (["sample", "NOMODEL", "-n", "4", "--psi", "inf"], "--truncation inf"),
        (["sample", "NOMODEL", "-n", "4", "--grid-max", "1000000000"], "--grid-max 1,000,000,000: at most 2,500"),
        (["sample", "NOMODEL", "-n", "4", "--cols", "1000000000"], "--cols 1,000,000,000: at most 2,500"),
        (["sample", "NOMODEL", "-n", "4", "--batch-size", "1000000000"], "--batch-size 1,000,000,000: at most 4,096"),
        (["sample", "NOMODEL", "-n", "4", "--save", "bad name"], "may use only letters"),
        (
            ["interp", "seeds:1", "seeds:2", "--frames", "1000000000", "-m", "NOMODEL"],
            "--frames 1,000,000,000: at most 1,000 frames per segment",
        ),
        (
            ["interp", "seeds:1", "seeds:2", "--frame-ms", "1000000000", "-m", "NOMODEL"],
            "--frame-ms 1,000,000,000: at most 60,000",
        ),
        (
            ["apply", "seeds:1", "--add", "dir=nan", "-m", "NOMODEL"],
            "--add 'dir=nan': the weight after '=' must be a finite number",
        ),
        (["apply", "seeds:1", "--add", "dir=1e999", "-m", "NOMODEL"], "--add 'dir=1e999'"),
        (["apply", "seeds:1", "--add", "=2", "-m", "NOMODEL"], "nothing before '='"),
        (
            ["apply", "seeds:1", "--add", "d", "--scales", "0,inf", "-m", "NOMODEL"],
            "--scales '0,inf': 'inf' is not a finite number",
        ),
        (
            ["apply", "seeds:1", "--add", "d", "--scales", ",".join(["1"] * 101), "-m", "NOMODEL"],
            "--scales: 101 numbers given; at most 100",
        ),
        (["encode", "x.png", "--lr", "inf", "-m", "NOMODEL"], "--lr inf"),
        (["encode", "x.png", "--restarts", "1000000000", "-m", "NOMODEL"], "--restarts 1,000,000,000: at most 64"),
        (["encode", "x.png", "--steps", "1000000000", "-m", "NOMODEL"], "--steps 1,000,000,000: at most 100,000"),
        (
            ["attr-vector", "--images", "imgs", "--column", "age", "--pos-if", ">x", "-m", "NOMODEL"],
            "--pos-if: cannot read the condition '>x'",
        ),
        (
            ["attr-vector", "--images", "imgs", "--column", "age", "--pos-if", "1e999-2e999", "-m", "NOMODEL"],
            "cannot read the condition",
        ),
        (
            [
                "attr-vector",
                "--images",
                "imgs",
                "--column",
                "age",
                "--pos-if",
                "1",
                "--name-pattern",
                "(?P<age>a{99999999999})",
                "-m",
                "NOMODEL",
            ],
            "not a valid regular expression",
        ),
    ],
)
def test_every_number_is_checked_before_any_work(args, message, tmp_path):
    out = [] if args[0] == "attr-vector" else ["--out", tmp_path / "out"]  # attr-vector writes to the store
    res = run(*[tmp_path / "NOMODEL" if a == "NOMODEL" else a for a in args], *out, code=2)
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_apply_nan_weight_renders_nothing(model, workspace, tmp_path):
    run("sample", model, "--seeds", "1,2", "--save", "p")
    run("sample", model, "--seeds", "3,4", "--save", "n")
    run("attr-vector", "--pos", "p", "--neg", "n", "--save", "dir", "--model", model)
    res = run("apply", "seeds:0-2", "--add", "dir=nan", "--model", model, "--out", tmp_path / "o", code=2)
    assert "--add 'dir=nan'" in res.output and not (tmp_path / "o").exists()
    # Finite numbers that overflow float32 together are refused before rendering, not after.
    from latentctl.space.store import LatentEntry, write_entry

    write_entry(workspace / "latents" / "big.npz", LatentEntry(z=np.full((1, 8), 1e30, np.float32), kind="direction"))
    res = run(
        "apply", "seeds:0-2", "--add", "big=1e6", "--scales", "1e6", "--model", model, "--out", tmp_path / "o", code=2
    )
    assert "overflow" in res.output and not (tmp_path / "o").exists()


def test_limits_that_need_the_model_still_come_before_rendering(model, workspace, tmp_path, monkeypatch):
    res = run("interp", "seeds:1,2,3,4", "--frames", "1000", "--model", model, "--out", tmp_path / "i", code=2)
    assert "2,998 frames; at most 2,500" in res.output and not (tmp_path / "i").exists()
    from latentctl.space import latents

    monkeypatch.setattr(latents, "MAX_SWEEP", 10)
    res = run("apply", "seeds:0-5", "--add", "x", "--scales", "0,1", "--model", model, "--out", tmp_path / "a", code=2)
    assert "more than 5 rows" in res.output and not (tmp_path / "a").exists()


def test_apply_grid_shows_the_first_whole_rows_that_fit(model, workspace, tmp_path, monkeypatch):
    from latentctl import parse

    run("sample", model, "--seeds", "1,2", "--save", "p")
    run("sample", model, "--seeds", "3,4", "--save", "n")
    run("attr-vector", "--pos", "p", "--neg", "n", "--save", "d", "--model", model)
    monkeypatch.setattr(parse, "MAX_GRID_TILES", 7)
    res = run(
        "apply", "seeds:0-4", "--add", "d", "--scales", "0,1,2", "--model", model, "--out", tmp_path, "--no-captions"
    )
    assert "the grid shows the first 2 rows" in res.output
    assert len(list(tmp_path.glob("seed*_scale*.png"))) == 15  # every image is still written
    grid = Image.open(tmp_path / "grid.png")
    assert grid.height < grid.width  # 2 rows of 3


def test_save_name_taken_is_refused_before_rendering(model, workspace, tmp_path):
    run("sample", model, "--seeds", "1", "--save", "pick")
    res = run("sample", model, "--seeds", "2", "--save", "pick", "--out", tmp_path / "s", code=1)
    assert "already exists" in res.output and not (tmp_path / "s").exists()


def test_latents_list_names_the_run_that_made_each_entry(image_folder, workspace):
    run("train", image_folder, *TINY_MODEL, "--epochs", "1")
    run("sample", "--seeds", "1,2", "--save", "mine")
    assert "0001-images-32px" in run("latents", "list").stdout
