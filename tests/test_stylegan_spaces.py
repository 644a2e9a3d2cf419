"""A StyleGAN explored in z, W or W+ (``--space``), with its noise mode (``--noise``) and SeFa on a
range of layers (``directions --layers``): the same pictures in every space, NVIDIA's own ws and
images (the fixtures of tests/writers/stylegan_fixtures.py), and latents of one space never read
silently as another's.

Tolerances: ws and images are compared with NVIDIA's at 1e-4, as in test_import_stylegan2.py (both
sides compute in float32 with the same operations up to summation order). Spaces compared with
each other run the very same operations on the same numbers, so their pictures must be identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blob_images, run

from latentctl.errors import UsageError
from latentctl.models.interface import truncate
from latentctl.space.session import open_model
from latentctl.space.store import LatentEntry, read_entry, write_entry

DATA = Path(__file__).parent / "data" / "stylegan"
SG2 = DATA / "sg2ada_skip_32.pkl"  # 32 px, z 32, w 32, 8 ws
SG3 = DATA / "sg3_t_32.pkl"
TOLERANCE = 1e-4


@pytest.fixture
def sg2(workspace):
    run("import", SG2)
    return workspace


def _session(workspace, space=None, noise=None):
    return open_model(None, "cpu", workspace, "fp32", space=space, noise=noise)


def _raw(session, latents):
    with torch.no_grad():
        return session.generator(torch.from_numpy(np.asarray(latents, np.float32))).numpy()


# ---- one picture, three spaces ------------------------------------------------------------------


def test_a_seed_draws_the_same_picture_in_z_w_and_w_plus(sg2):
    expected = np.load(DATA / "sg2ada_skip_32.expected.npz")
    seeds = [int(s) for s in expected["seeds"]]
    pictures = {}
    for space, dim in [("z", 32), ("w", 32), ("w+", 8 * 32)]:
        session = _session(sg2, space)
        latents = session.seed_latents(seeds)
        assert latents.shape == (3, dim) and session.info.model.latent_dim == dim
        pictures[space] = _raw(session, latents)
    np.testing.assert_array_equal(pictures["z"], pictures["w"])
    np.testing.assert_array_equal(pictures["w"], pictures["w+"])
    np.testing.assert_allclose(pictures["w"], expected["img_const_psi1"], rtol=0, atol=TOLERANCE)


def test_w_plus_latents_are_nvidias_ws_and_truncation_pulls_every_layer_to_w_avg(sg2):
    expected = np.load(DATA / "sg2ada_skip_32.expected.npz")
    session = _session(sg2, "w+")
    seeds = [int(s) for s in expected["seeds"]]
    plus = session.seed_latents(seeds)
    np.testing.assert_allclose(plus.reshape(3, 8, 32), expected["ws_psi1"], rtol=0, atol=TOLERANCE)
    psi = float(expected["psi_truncated"])
    truncated = truncate(session.generator, plus, psi)
    np.testing.assert_allclose(truncated.reshape(3, 8, 32), expected["ws_psi07"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(_raw(session, truncated), expected["img_const_psi07"], rtol=0, atol=TOLERANCE)


def test_z_space_latents_are_the_seeds_own_draw(sg2):
    expected = np.load(DATA / "sg2ada_skip_32.expected.npz")
    session = _session(sg2, "z")
    # NVIDIA's z in float64, rounded to float32 as both sides feed the network
    want = expected["z"].astype(np.float32)
    np.testing.assert_array_equal(session.seed_latents([int(s) for s in expected["seeds"]]), want)


def test_noise_modes_follow_nvidia(sg2):
    expected = np.load(DATA / "sg2ada_skip_32.expected.npz")
    seeds = [int(s) for s in expected["seeds"]]
    none = _session(sg2, noise="none")
    np.testing.assert_allclose(_raw(none, none.seed_latents(seeds)), expected["img_none_psi1"], rtol=0, atol=TOLERANCE)
    rand = _session(sg2, noise="random")
    w = rand.seed_latents(seeds)
    torch.manual_seed(0)
    first = _raw(rand, w)
    second = _raw(rand, w)
    assert np.abs(first - second).max() > 1e-3  # fresh noise every draw
    assert np.abs(first - expected["img_const_psi1"]).max() > 1e-3


# ---- the store keeps the space ------------------------------------------------------------------


def test_entries_record_their_space_and_another_space_is_refused_in_one_line(sg2, tmp_path):
    run("sample", "--seeds", "0-2", "--space", "w+", "--save", "plus", "--out", tmp_path / "a")
    entry = read_entry(sg2 / "latents" / "plus.npz")
    assert entry.space == "w+" and entry.latent_dim == 8 * 32
    res = run("apply", "plus", "--add", "plus@0", "--out", tmp_path / "b", code=2)
    message = res.output.strip()
    assert "\n" not in message and "W+" in message and "--space w+" in message
    assert not (tmp_path / "b").exists()
    # the same with the space named: works, and the pictures are the seeds' (interp's ends)
    run("interp", "plus@0", "plus@1", "--space", "w+", "--steps", "3", "--out", tmp_path / "c")
    run("sample", "--seeds", "0-1", "--out", tmp_path / "d")
    from PIL import Image

    for seed, frame in [(0, "frame000"), (1, "frame002")]:
        want = np.asarray(Image.open(tmp_path / "d" / f"seed{seed:04d}.png"))
        got = np.asarray(Image.open(next((tmp_path / "c").glob(f"*{frame}*.png"))))
        np.testing.assert_array_equal(got, want)


def test_z_and_w_of_the_same_size_are_not_mixed(sg2, tmp_path):
    # z_dim == w_dim == 32 here (as 512 and 512 on NVIDIA's FFHQ): only the recorded space tells them apart
    run("sample", "--seeds", "0-3", "--space", "z", "--save", "zs", "--out", tmp_path / "a")
    res = run("attr-vector", "--pos", "zs@0,1", "--neg", "zs@2,3", code=2)
    assert "--space z" in res.output
    run("attr-vector", "--pos", "zs@0,1", "--neg", "zs@2,3", "--space", "z", "--save", "zdir")
    assert read_entry(sg2 / "latents" / "zdir.npz").space == "z"


def test_nvidia_projector_output_reads_as_w_plus(sg2, tmp_path):
    expected = np.load(DATA / "sg2ada_skip_32.expected.npz")
    # NVIDIA's projector writes projected_w.npz with one array 'w' of shape (1, num_ws, w_dim)
    np.savez(tmp_path / "projected_w.npz", w=expected["ws_psi1"][:1])
    entry = read_entry(tmp_path / "projected_w.npz")
    assert entry.space == "w+" and entry.z.shape == (1, 8 * 32)
    run("render", tmp_path / "projected_w.npz", "--space", "w+", "--out", tmp_path / "r")
    run("render", tmp_path / "projected_w.npz", "--out", tmp_path / "r2", code=2)


def test_an_entry_naming_an_unknown_space_is_a_store_error(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, z=np.zeros((1, 4), np.float32), space=np.array("w++"))
    with pytest.raises(Exception, match="'space'"):
        read_entry(path)
    write_entry(tmp_path / "ok.npz", LatentEntry(np.ones((1, 4), np.float32), space="w"))
    assert read_entry(tmp_path / "ok.npz").space == "w"


# ---- projection and SeFa per layer --------------------------------------------------------------


def test_projection_into_w_plus_fits_closer_than_into_w(sg2):
    # W+ gives every layer its own w: more freedom, so a closer fit of a picture the model did
    # not draw (Image2StyleGAN's finding). Measured on this fixture: RMS 60.6 (W) vs 30.7 (W+).
    from latentctl.space.encode import project

    target = blob_images(1, 32, seed=3)
    errors = {}
    for space in ("w", "w+"):
        session = _session(sg2, space)
        latents = project(session.generator, target, "cpu", steps=60, restarts=1)
        errors[space] = float(np.sqrt(((session.images(latents).astype(float) - target) ** 2).mean()))
    assert errors["w+"] < 0.8 * errors["w"], errors


def test_sefa_on_a_layer_range_moves_only_those_layers_in_w_plus(sg2, tmp_path):
    run("directions", "--space", "w+", "--layers", "0-3", "-k", "2", "--save", "coarse", "--out", tmp_path / "s")
    entry = read_entry(sg2 / "latents" / "coarse-1.npz")
    assert entry.space == "w+" and entry.meta["layers"] == "0-3"
    v = entry.z.reshape(8, 32)
    assert np.abs(v[4:]).max() == 0  # the fine layers untouched
    np.testing.assert_array_equal(v[0], v[3])  # one W direction at each chosen layer
    assert abs(np.linalg.norm(v[0]) - 1) < 1e-5
    # In W the same range gives that W direction itself (up to sign)
    run("directions", "--layers", "0-3", "-k", "2", "--save", "coarse-w", "--out", tmp_path / "t")
    w_dir = read_entry(sg2 / "latents" / "coarse-w-1.npz").z[0]
    assert abs(abs(float(w_dir @ v[0])) - 1) < 1e-5


@pytest.mark.parametrize(
    "args, needle",
    [
        (["directions", "--layers", "0-8", "-k", "2"], "0-7"),
        (["directions", "--layers", "7", "-k", "2"], "RGB"),
        (["directions", "--layers", "3-1", "-k", "2"], "--layers"),
        (["directions", "--method", "pca", "--layers", "0-3", "-k", "2"], "pca"),
        (["directions", "--space", "z", "--layers", "0-3", "-k", "2"], "z"),
        (["sample", "-n", "2", "--space", "w++"], "w++"),
        (["sample", "-n", "2", "--noise", "loud"], "loud"),
    ],
)
def test_wrong_space_noise_or_layers_is_one_line(sg2, tmp_path, args, needle):
    res = run(*args, "--out", tmp_path / "o", code=2)
    assert needle in res.output and res.output.count("Error") == 1
    assert not (tmp_path / "o").exists()


def test_space_and_noise_on_models_without_them_are_refused(workspace, tmp_path):
    run("import", SG3)
    res = run("sample", "-n", "1", "--noise", "random", "--out", tmp_path / "a", code=2)
    assert "StyleGAN3 has no noise" in res.output
    run("sample", "-n", "1", "--space", "w+", "--out", tmp_path / "b")  # W+ is StyleGAN3's too
    run("import", DATA.parent / "keras" / "seed_g.h5")
    for args, needle in [(["--space", "w"], "one latent space, z"), (["--noise", "none"], "noise inputs")]:
        res = run("sample", "-n", "1", *args, "--out", tmp_path / "c", code=2)
        assert needle in res.output
    run("sample", "-n", "1", "--space", "z", "--out", tmp_path / "d")
    with pytest.raises(UsageError):
        open_model(None, "cpu", workspace, space="w+")


def test_the_python_api_opens_a_space_as_the_cli_does(sg2, tmp_path):
    import latentctl

    session = latentctl.open_model(workspace=sg2, device="cpu", precision="fp32", space="w+", noise="none")
    assert session.info.model.latent_dim == 8 * 32 and session.generator.noise_mode == "none"
    run("sample", "--seeds", "4", "--space", "w+", "--noise", "none", "--out", tmp_path / "cli")
    from PIL import Image

    want = np.asarray(Image.open(tmp_path / "cli" / "seed0004.png"))
    np.testing.assert_array_equal(session.sample([4])[0], want)


def test_the_store_listing_and_show_name_the_space(sg2, tmp_path):
    import json

    run("sample", "--seeds", "0-2", "--space", "w+", "--save", "plus", "--out", tmp_path / "a")
    run("sample", "--seeds", "0-2", "--save", "plain", "--out", tmp_path / "b")
    listed = {e["name"]: e for e in json.loads(run("latents", "list", "--json").stdout)}
    assert (listed["plus"]["space"], listed["plain"]["space"]) == ("w+", "w")
    table = run("latents", "list").stdout
    assert "3×256 w+" in table and "3×32 w" in table
    assert "in W+" in run("latents", "show", "plus").stdout
    assert json.loads(run("latents", "show", "plus", "--json").stdout)["space"] == "w+"


def test_entries_from_before_spaces_were_recorded_are_in_the_models_own_space(sg2, tmp_path):
    # every StyleGAN entry the previous release wrote is W, and records no space
    run("sample", "--seeds", "0-1", "--save", "old", "--out", tmp_path / "a")
    path = sg2 / "latents" / "old.npz"
    entry = read_entry(path)
    write_entry(path, LatentEntry(entry.z, seeds=entry.seeds, model_id=entry.model_id, meta=entry.meta), force=True)
    assert read_entry(path).space == ""
    res = run("render", "old", "--space", "z", "--out", tmp_path / "z", code=2)
    assert "in W," in res.output and "--space w" in res.output
    run("render", "old", "--out", tmp_path / "w")
    # a file from another tool says nothing of its space or model: taken as the command's
    np.savez(tmp_path / "theirs.npz", z=entry.z)
    run("render", tmp_path / "theirs.npz", "--space", "z", "--out", tmp_path / "t")


def test_the_explorer_refuses_an_entry_of_another_space(sg2, tmp_path):
    from latentctl.explore.api import Explorer, RequestError

    run("sample", "--seeds", "0-1", "--save", "inw", "--out", tmp_path / "a")
    run("sample", "--seeds", "0-1", "--space", "z", "--save", "inz", "--out", tmp_path / "b")
    explorer = Explorer(_session(sg2, "z"))
    rows = {row["name"]: row for row in explorer.entries()["entries"]}
    assert (rows["inw"]["usable"], rows["inz"]["usable"]) == (False, True) and rows["inw"]["space"] == "w"
    with pytest.raises(RequestError, match="--space w"):
        explorer.load("inw")
    assert explorer.load("inz")[1].space == "z"


def test_a_gan_encoder_is_kept_per_space(sg2, tmp_path):
    from latentctl.space.gan_encoder import encoder_path

    ckpt = next((sg2 / "runs").glob("*/checkpoint.safetensors"))
    assert encoder_path(ckpt).name == "gan-encoder.safetensors"
    assert encoder_path(ckpt, "w+").name == "gan-encoder-wplus.safetensors"
    run("sample", "--seeds", "3", "--out", tmp_path / "s")
    photo = tmp_path / "s" / "seed0003.png"
    for space, name, dim in [("w+", "eplus", 8 * 32), ("z", "ez", 32)]:
        run("encode", photo, "--space", space, "--train-encoder", "--encoder-steps", "5", "--save", name)
        stored = read_entry(sg2 / "latents" / f"{name}.npz")
        assert stored.space == space and stored.latent_dim == dim
    assert (ckpt.parent / "gan-encoder-wplus.safetensors").exists() and (
        ckpt.parent / "gan-encoder-z.safetensors"
    ).exists()


def test_checkpoints_never_store_the_space_explored(sg2):
    from latentctl.files.checkpoint import read_raw_header

    ckpt = next((sg2 / "runs").glob("*/checkpoint.safetensors"))
    assert '"space"' not in read_raw_header(ckpt)["__metadata__"]["model_config"]


def test_k_in_w_plus_is_bounded_by_the_w_size(sg2, tmp_path):
    res = run("directions", "--space", "w+", "-k", "40", "--out", tmp_path / "o", code=2)
    assert "W+ latents hold 32 independent directions" in res.output and "1-32" in res.output
