"""`latentctl import` through the CLI, as a user meets it: an imported generator draws what the tool
that wrote it draws (Keras, NVIDIA's StyleGAN2, a PyTorch DCGAN), every exploring command works on
it, and a file latentctl will not take is refused in one line with nothing written.

The pixel checks compare with the writers' own outputs (tests/data/*/ *.expected.npz, made by
tests/writers/) after the uint8 conversion a user sees. NVIDIA writes PNGs with
``(x * 127.5 + 128).clamp(0, 255).to(uint8)``, latentctl with ``round((x.clamp(-1, 1) + 1) * 127.5)``:
both step at the same integer boundaries of ``x * 127.5 + 128``, so the same floats give the same
bytes, and two floats a rounding error apart (<= 1e-4 here, see test_import_stylegan2.py) can only
differ by one grey level, and only where the float lies within 1e-4 * 127.5 of a boundary.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blob_images, run, write_images
from PIL import Image
from torch import nn

DATA = Path(__file__).parent / "data"
KERAS = DATA / "keras"
STYLEGAN = DATA / "stylegan"
SG2 = STYLEGAN / "sg2ada_skip_32.pkl"  # 32 px, z 32, w 32, 8 ws, skip architecture, fp16 layers run in fp32
SG2_EXPECTED = STYLEGAN / "sg2ada_skip_32.expected.npz"
# float32 parity of the StyleGAN2 network with NVIDIA's (test_import_stylegan2.py's tolerance)
FLOAT_TOLERANCE = 1e-4


# ---- helpers ------------------------------------------------------------------------------------


def uint8_nvidia(nchw: np.ndarray) -> np.ndarray:
    """NVIDIA's gen_images.py conversion, (N, C, H, W) float -> (N, H, W, C) uint8."""
    x = torch.from_numpy(np.asarray(nchw, dtype=np.float32)).permute(0, 2, 3, 1)
    return (x * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()


def uint8_latentctl(x: np.ndarray) -> np.ndarray:
    """latentctl's conversion (generate.py), on any layout."""
    return np.round((np.clip(np.asarray(x, dtype=np.float64), -1, 1) + 1) * 127.5).astype(np.uint8)


def near_a_step(x: np.ndarray, tolerance: float = FLOAT_TOLERANCE) -> np.ndarray:
    """Where a float within ``tolerance`` of ``x`` may land on another grey level (NCHW -> NHWC)."""
    v = np.transpose(np.asarray(x, dtype=np.float64), (0, 2, 3, 1)) * 127.5 + 128
    inside = (v > -tolerance * 127.5) & (v < 255 + tolerance * 127.5)
    return inside & (np.abs(v - np.round(v)) <= tolerance * 127.5)


def pngs(folder: Path, names: list[str]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(folder / name)) for name in names])


def same_picture(a, b) -> None:
    """Two renderings of one latent by different commands. Convolutions may sum in an order that
    depends on the batch they ran in (measured: seed 0 alone vs in a batch of 4 on the StyleGAN2
    import, one pixel one grey level apart), so: at most one grey level, in under 1% of pixels."""
    a, b = np.asarray(a).astype(int), np.asarray(b).astype(int)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01, f"{(a != b).sum()} pixels differ"


def json_out(res) -> dict:
    return json.loads(res.stdout)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with its content's hash (folders: "dir")."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(ws: Path, args: list, code: int, *needles: str):
    """Run ``args``, expect exit ``code``, one line on stderr (naming ``needles``), no traceback,
    nothing on stdout and nothing changed in the workspace."""
    before = snapshot(ws)
    res = run(*args, code=code)
    assert isinstance(res.exception, SystemExit), f"{type(res.exception).__name__}: {res.exception}"
    err = res.stderr.strip()
    assert err, "nothing said on stderr"
    assert "\n" not in err, f"more than one line on stderr:\n{err}"
    assert "Traceback" not in res.output
    assert res.stdout.strip() == ""
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert snapshot(ws) == before, "a refused command changed the workspace"
    return err


def import_ok(*args) -> Path:
    """Import and return the run folder the CLI printed the checkpoint of."""
    res = run("import", *args)
    ckpt = Path(res.stdout.strip().splitlines()[-1])
    assert ckpt.name == "checkpoint.safetensors" and ckpt.is_file()
    assert (ckpt.parent / "import.json").is_file()
    return ckpt.parent


# ---- a PyTorch DCGAN, as the PyTorch tutorial writes it --------------------------------------------

NZ, NGF, NC = 16, 4, 3  # the tutorial's nz=100, ngf=64 made tiny; its layers as they are (64 px)


class Generator(nn.Module):
    """The PyTorch DCGAN tutorial's generator (pytorch.org/tutorials/beginner/dcgan_faces_tutorial)."""

    def __init__(self, ngpu=1, nz=NZ, ngf=NGF, nc=NC):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            # input is Z, going into a convolution
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            # state size. (ngf*8) x 4 x 4
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # state size. (ngf*4) x 8 x 8
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size. (ngf*2) x 16 x 16
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # state size. (ngf) x 32 x 32
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
            # state size. (nc) x 64 x 64
        )

    def forward(self, input):
        return self.main(input)


def weights_init(m):
    """The tutorial's initialisation, plus BN statistics away from 0/1 (as after training)."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02 * 10)  # x10: visible pictures from an untrained net
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)
        m.running_mean.normal_(0, 0.1)
        m.running_var.uniform_(0.5, 1.5)


@pytest.fixture
def dcgan(tmp_path) -> tuple[nn.Module, Path]:
    """The tutorial generator with seeded weights, saved as the tutorial saves it (a state dict)."""
    torch.manual_seed(0)
    net = Generator()
    net.apply(weights_init)
    net.eval()
    path = tmp_path / "netG.pth"
    torch.save(net.state_dict(), path)
    return net, path


def reference_uint8(net: nn.Module, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = net(torch.from_numpy(np.asarray(z, dtype=np.float32)).view(len(z), -1, 1, 1))
    return uint8_latentctl(out.permute(0, 2, 3, 1).numpy())


# ---- 1. Keras: the writer's pixels ----------------------------------------------------------------


def test_keras_import_draws_the_writers_pixels_and_says_where_it_came_from(workspace, tmp_path):
    run_dir = import_ok(KERAS / "seed_g.h5")
    assert run_dir.parent == workspace / "runs" and run_dir.name == "0001-seed_g"

    expected = np.load(KERAS / "seed_g.expected.npz")
    np.savez(tmp_path / "z.npz", z=expected["z"])  # a plain npz with z: what a user's script writes
    want = uint8_latentctl(expected["out"])  # (2, 128, 128, 3), NHWC like the writer's

    run("render", tmp_path / "z.npz", "--precision", "fp32", "--out", tmp_path / "r")
    got = pngs(tmp_path / "r", ["row000.png", "row001.png"])
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want).max() <= 1

    import latentctl

    api = latentctl.open_model(precision="fp32").images(expected["z"])
    assert api.dtype == np.uint8 and np.abs(api.astype(int) - want).max() <= 1

    # where it came from: the file's name, format and full sha256
    sha = hashlib.sha256((KERAS / "seed_g.h5").read_bytes()).hexdigest()
    text = run("info").stdout
    assert "seed_g.h5" in text and "keras2-h5" in text and sha[:16] in text
    source = json_out(run("info", "--json"))["source"]
    assert source["file"] == "seed_g.h5" and source["format"] == "keras2-h5" and source["sha256"] == sha
    assert json.loads((run_dir / "import.json").read_text())["sha256"] == sha

    runs = json_out(run("runs", "--json"))
    assert [(r["name"], r["current"]) for r in runs] == [("0001-seed_g", True)]
    assert "0001-seed_g" in run("runs").stdout


# ---- 2. StyleGAN2: NVIDIA's pixels and ws -------------------------------------------------------


def test_stylegan2_seeds_draw_nvidias_pictures_and_store_its_w(workspace, tmp_path):
    import_ok(SG2)
    expected = np.load(SG2_EXPECTED)
    assert list(expected["seeds"]) == [0, 1, 2]
    names = [f"seed{s:04d}.png" for s in range(3)]

    res = run("sample", "--seeds", "0-2", "--precision", "fp32", "--save", "w1", "--out", tmp_path / "p1", "--json")
    assert json_out(res)["store_entry"] == "w1"
    res = run("sample", "--seeds", "0-2", "--precision", "fp32", "--truncation", "0.7", "--save", "w07", "--json")
    folder07 = Path(json_out(res)["folder"])

    for folder, key in [(tmp_path / "p1", "img_const_psi1"), (folder07, "img_const_psi07")]:
        got, want = pngs(folder, names).astype(int), uint8_nvidia(expected[key]).astype(int)
        assert got.shape == want.shape == (3, 32, 32, 3)
        differ = got != want
        # Exact wherever a float rounding error cannot cross a grey-level step (measured: exact
        # everywhere on this fixture); one grey level at most where it can.
        assert not (differ & ~near_a_step(expected[key])).any(), f"{key}: {differ.sum()} pixels differ"
        assert np.abs(got - want).max() <= 1

    # The store holds W: one w per seed (NVIDIA broadcasts it to all 8 layers).
    w_dim = expected["ws_psi1"].shape[2]
    np.testing.assert_array_equal(expected["ws_psi1"], np.repeat(expected["ws_psi1"][:, :1], 8, axis=1))
    for entry, key in [("w1", "ws_psi1"), ("w07", "ws_psi07")]:
        with np.load(workspace / "latents" / f"{entry}.npz", allow_pickle=False) as stored:
            assert stored["z"].shape == (3, w_dim)
            assert list(stored["seeds"]) == [0, 1, 2]
            np.testing.assert_allclose(stored["z"], expected[key][:, 0], rtol=0, atol=1e-5)


def test_a_conditional_stylegan_draws_the_class_chosen_at_import(workspace, tmp_path):
    # The writer drew seed k with class k (one-hot c): --class k must give NVIDIA's picture k.
    path = STYLEGAN / "sg2ada_cond_skip_32.pkl"
    expected = np.load(STYLEGAN / "sg2ada_cond_skip_32.expected.npz")
    np.testing.assert_array_equal(expected["c"], np.eye(3, dtype=np.float32))
    for k in (1, 2):
        import_ok(path, "--class", k, "--force")
        run("sample", "--seeds", k, "--precision", "fp32", "--out", tmp_path / f"c{k}")
        got = np.asarray(Image.open(tmp_path / f"c{k}" / f"seed{k:04d}.png")).astype(int)
        want = uint8_nvidia(expected["img_const_psi1"][k : k + 1])[0].astype(int)
        assert not ((got != want) & ~near_a_step(expected["img_const_psi1"][k : k + 1])[0]).any()
    assert len(list((workspace / "runs").iterdir())) == 1
    refused(workspace, ["import", path, "--class", "3", "--force"], 2, "0-2")


def test_an_import_records_the_file_name_not_the_folder_it_was_in(workspace, tmp_path):
    # importers._record: "the file's name (not its folder, which says whose disk it was on)"
    private = tmp_path / "home-of-alice" / "models"
    private.mkdir(parents=True)
    for name in ("seed_g.h5", "sg2ada_skip_32.pkl"):
        src = (KERAS if name.endswith(".h5") else STYLEGAN) / name
        shutil.copy(src, private / name)
        run_dir = import_ok(private / name)
        recorded = json.loads((run_dir / "import.json").read_text())
        header = json_out(run("info", "--json"))["source"]
        assert recorded["file"] == header["file"] == name
        assert "home-of-alice" not in (run_dir / "import.json").read_text()
        assert "home-of-alice" not in run("info").stdout


# ---- 3. the journey ---------------------------------------------------------------------------------


def _journey(workspace: Path, tmp_path: Path, latent_dim: int, size: int, ws: np.ndarray | None = None) -> None:
    """Every exploring command on the current (imported) run; each exits 0 and writes what it says.
    ``ws``: NVIDIA's w of seeds 0-2, which the stored latents of those seeds must be."""
    out = tmp_path / "out"

    def entry(name: str) -> np.ndarray:
        with np.load(workspace / "latents" / f"{name}.npz", allow_pickle=False) as f:
            return f["z"].copy()

    pos = json_out(run("sample", "--seeds", "0-3", "--save", "pos", "--out", out / "pos", "--json"))
    run("sample", "--seeds", "4-7", "--save", "neg", "--out", out / "neg", "--no-grid")
    assert len(pos["images"]) == 4 and all(Path(p).is_file() for p in pos["images"] + [pos["grid"]])
    assert Image.open(pos["images"][0]).size == (size, size)
    assert entry("pos").shape == entry("neg").shape == (4, latent_dim)
    seed0 = np.asarray(Image.open(out / "pos" / "seed0000.png"))
    if ws is not None:  # a StyleGAN's latents are W: mapping(z), not z
        np.testing.assert_allclose(entry("pos")[:3], ws, rtol=0, atol=1e-5)

    report = json_out(
        run("attr-vector", "--pos", "pos", "--neg", "neg", "--save", "attr", "--permutations", "0", "--json")
    )
    attr = entry("attr")
    assert report["n_pos"] == report["n_neg"] == 4 and Path(report["path"]) == workspace / "latents" / "attr.npz"
    assert attr.shape == (1, latent_dim)
    np.testing.assert_allclose(attr[0], entry("pos").mean(0) - entry("neg").mean(0), rtol=1e-4, atol=1e-5)

    run("apply", "seeds:0", "--add", "attr", "--scales", "0,1", "--save", "edited", "--out", out / "apply")
    applied = sorted(p.name for p in (out / "apply").glob("*.png") if p.name != "grid.png")
    assert (out / "apply" / "grid.png").is_file() and applied == ["seed0000_scale+0.png", "seed0000_scale+1.png"]
    edited = entry("edited")
    assert edited.shape[1] == latent_dim
    np.testing.assert_allclose(edited[-1], entry("pos")[0] + attr[0], rtol=1e-5, atol=1e-5)
    same_picture(Image.open(out / "apply" / "seed0000_scale+0.png"), seed0)  # strength 0: the seed unedited

    run("interp", "pos@0", "neg@0", "--frames", "3", "--save", "walk", "--gif", "--out", out / "interp")
    assert (out / "interp" / "interp.gif").is_file() and (out / "interp" / "strip.png").is_file()
    frames = sorted(p.name for p in (out / "interp").glob("frame*.png"))
    assert len(frames) == 3
    same_picture(Image.open(out / "interp" / frames[0]), seed0)  # pos@0 is seed 0
    walk = entry("walk")
    assert walk.shape == (3, latent_dim)
    np.testing.assert_allclose(walk[0], entry("pos")[0], atol=1e-6)
    np.testing.assert_allclose(walk[-1], entry("neg")[0], atol=1e-6)

    run("directions", "--method", "sefa", "-k", "2", "--seeds", "0", "--out", out / "sefa")
    run("directions", "--method", "pca", "-k", "2", "--samples", "200", "--seeds", "0", "--out", out / "pca")
    for name in ("sefa", "pca"):
        assert any((out / name).glob("*.png")), f"directions --method {name} wrote no picture"
        for k in (1, 2):
            d = entry(f"{name}-{k}")
            assert d.shape == (1, latent_dim) and np.isfinite(d).all()
        assert not (workspace / "latents" / f"{name}-3.npz").exists()

    # encode a picture by projection: the model's own sample of seed 2
    photo = out / "pos" / "seed0002.png"
    run("encode", photo, "--steps", "3", "--restarts", "1", "--save", "me", "--out", out / "enc")
    assert entry("me").shape == (1, latent_dim) and np.isfinite(entry("me")).all()
    assert any((out / "enc").glob("*.png"))

    # score against a few real pictures (two halves of the minimum of 4)
    real = write_images(tmp_path / "real", blob_images(8, size=size))
    score = json_out(run("score", "--images", real, "-n", "4", "--json"))
    assert np.isfinite(score["score"]["fd"]) and score["n_generated"] == 4

    # export: a generator-only checkpoint that draws the same pictures
    run("export", "--out", tmp_path / "g.safetensors")
    assert (tmp_path / "g.safetensors").is_file()
    run("sample", tmp_path / "g.safetensors", "--seeds", "0-3", "--out", out / "exported")
    names = [f"seed{s:04d}.png" for s in range(4)]
    np.testing.assert_array_equal(pngs(out / "exported", names), pngs(out / "pos", names))  # the same batch: exact

    _explorer(workspace, latent_dim, size, seed0)


def _explorer(workspace: Path, latent_dim: int, size: int, seed0: np.ndarray) -> None:
    """explore's API, in-process (as tests/test_explore.py drives it): it knows the model and its
    tiles are the pictures sample draws."""
    pytest.importorskip("starlette")
    import base64
    import io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from latentctl.explore.api import Explorer
    from latentctl.explore.server import create_app
    from latentctl.space.session import open_model

    token = "t0ken"
    session = open_model(None, "cpu", workspace, "auto")
    app = create_app(Explorer(session, workspace_arg=workspace), token)
    with TestClient(app, headers={"X-Latentctl-Token": token}) as client:
        info = client.get("/api/info").json()
        assert info["image_size"] == size and info["latent_dim"] == latent_dim
        r = client.post("/api/tiles", json={"start": 0, "count": 2})
        assert r.status_code == 200, r.text
        tiles = r.json()["tiles"]
        assert [t["seed"] for t in tiles] == [0, 1]
        key = next(k for k, v in tiles[0].items() if isinstance(v, str) and v.startswith("data:image"))
        tile = np.asarray(Image.open(io.BytesIO(base64.b64decode(tiles[0][key].split(",", 1)[1]))))
        same_picture(tile, seed0)


def test_journey_on_an_imported_pytorch_dcgan(workspace, tmp_path, dcgan):
    _, path = dcgan
    import_ok(path, "--name", "dcgan")
    _journey(workspace, tmp_path, latent_dim=NZ, size=64)


def test_journey_on_an_imported_stylegan2_explores_w(workspace, tmp_path):
    # stylegan3's StyleGAN2 config, written with z_dim 48 and w_dim 40: a command that handed z
    # where W belongs (or the reverse) fails on the shapes, not only on the values.
    name = "sg3repo_stylegan2_skip_32"
    import_ok(STYLEGAN / f"{name}.pkl")
    ws = np.load(STYLEGAN / f"{name}.expected.npz")["ws_psi1"][:, 0]
    assert ws.shape == (3, 40)
    _journey(workspace, tmp_path, latent_dim=40, size=32, ws=ws)


# ---- 4. refusals: one line, the right code, nothing written --------------------------------------


class _Payload:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_the_same_name_needs_force_and_force_replaces_an_import(workspace, tmp_path):
    first = import_ok(KERAS / "seed_g.h5")
    refused(workspace, ["import", KERAS / "seed_g.h5"], 2, "--force")
    refused(workspace, ["import", KERAS / "tf_dcgan.h5", "--name", "seed_g"], 2, "--force")
    res = run("import", KERAS / "tf_dcgan.h5", "--name", "seed_g", "--force")
    assert "replaced" in res.stderr
    assert sorted(p.name for p in (workspace / "runs").iterdir()) == [first.name]
    info = json_out(run("info", "--json"))
    assert info["source"]["file"] == "tf_dcgan.h5" and info["model_config"]["image_size"] == 28
    assert json.loads((first / "import.json").read_text())["file"] == "tf_dcgan.h5"
    # a replacement that fails leaves the earlier import as it was
    data = (KERAS / "seed_g.h5").read_bytes()
    (tmp_path / "broken.h5").write_bytes(data[:4096])
    refused(workspace, ["import", tmp_path / "broken.h5", "--name", "seed_g", "--force"], 1, "broken.h5")


def test_a_trained_run_is_never_replaced_and_an_import_is_not_resumed(workspace, tiny_run):
    trained = workspace / "runs" / tiny_run.name
    shutil.copytree(tiny_run, trained)
    run("runs", "use", trained.name)
    name = trained.name.split("-", 1)[1]
    refused(workspace, ["import", KERAS / "seed_g.h5", "--name", name], 2)
    refused(workspace, ["import", KERAS / "seed_g.h5", "--name", name, "--force"], 2, "trained")

    imported = import_ok(KERAS / "seed_g.h5")
    refused(workspace, ["train", "--resume", imported, "--epochs", "1"], 2, "seed_g.h5")
    refused(workspace, ["train", "--resume", imported.name, "--epochs", "1"], 2)


def test_the_name_of_a_trained_run_is_not_met_with_advice_to_force(workspace, tiny_run):
    shutil.copytree(tiny_run, workspace / "runs" / tiny_run.name)
    err = refused(workspace, ["import", KERAS / "seed_g.h5", "--name", tiny_run.name.split("-", 1)[1]], 2)
    assert "--force" not in err and "--name" in err


def test_a_keras_lambda_layer_is_refused_without_running_it(workspace):
    marker = Path(tempfile.gettempdir()) / "latentctl-keras-lambda-ran"  # tests/writers/keras_fixtures.py
    marker.unlink(missing_ok=True)
    refused(workspace, ["import", KERAS / "lambda.h5"], 1, "Lambda")
    assert not marker.exists()


@pytest.mark.parametrize("zipped", [False, True], ids=["legacy-pickle", "zip"])
def test_a_pickle_payload_in_a_pt_file_is_refused_without_running_it(workspace, tmp_path, zipped):
    marker = tmp_path / "marker"
    path = tmp_path / "netG.pt"
    payload = {"main.0.weight": _Payload(os.system, f"touch {marker}")}
    if zipped:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    refused(workspace, ["import", path], 1, "netG.pt")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["seed_g.h5", "sg2ada_skip_32.pkl"])
def test_a_truncated_file_is_refused(workspace, tmp_path, name):
    data = ((KERAS if name.endswith(".h5") else STYLEGAN) / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    refused(workspace, ["import", tmp_path / name], 1, name)


def test_an_hdf5_file_that_is_not_keras_is_refused(workspace, tmp_path):
    import h5py

    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["images"] = np.zeros((2, 4, 4), dtype="float32")
    refused(workspace, ["import", tmp_path / "data.h5"], 1, "data.h5")


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--part", "nothing"], ["G_ema"]),
        (["--class", "1"], ["--class"]),
        (["--latent", "uniform"], ["--latent"]),
    ],
    ids=["part", "class", "uniform"],
)
def test_usage_errors_on_a_stylegan_import(workspace, args, needles):
    refused(workspace, ["import", SG2, *args], 2, *needles)


@pytest.mark.parametrize(
    "file, args",
    [
        ("combined_gan.h5", ["--part", "nothing"]),
        ("seed_g.h5", ["--class", "1"]),
        ("seed_g.h5", ["--latent", "gaussian"]),
    ],
    ids=["part", "class", "latent"],
)
def test_usage_errors_on_a_keras_import(workspace, file, args):
    refused(workspace, ["import", KERAS / file, *args], 2)


def test_a_latentctl_checkpoint_is_not_imported(workspace, tmp_path):
    imported = import_ok(KERAS / "seed_g.h5")
    refused(workspace, ["import", imported / "checkpoint.safetensors", "--name", "again"], 2, "latentctl checkpoint")
    run("export", "--out", tmp_path / "g.safetensors")
    refused(workspace, ["import", tmp_path / "g.safetensors"], 2, "latentctl checkpoint")


def pad_safetensors_header(src: Path, dst: Path, length_mod: int, modulus: int = 256) -> None:
    """``src`` with its JSON header padded with spaces (which the safetensors format allows) until
    the header's length is ``length_mod`` modulo ``modulus``: the same file, other first bytes."""
    import struct

    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + n] + b" " * ((length_mod - n) % modulus)
    dst.write_bytes(struct.pack("<Q", len(header)) + header + data[8 + n :])


def test_a_latentctl_checkpoint_is_recognised_whatever_its_header_length(workspace, tmp_path):
    # 1 safetensors file in 256 has a header length whose low byte is 0x80, the pickle opcode
    # (checkpoint._not_safetensors says so itself); latentctl's own reader opens such a file.
    import_ok(KERAS / "seed_g.h5")
    run("export", "--out", tmp_path / "g.safetensors")
    pad_safetensors_header(tmp_path / "g.safetensors", tmp_path / "g80.safetensors", 0x80)
    assert (tmp_path / "g80.safetensors").read_bytes()[:1] == b"\x80"
    run("sample", tmp_path / "g80.safetensors", "--seeds", "0", "--out", tmp_path / "s")  # a valid checkpoint
    refused(workspace, ["import", tmp_path / "g80.safetensors"], 2, "latentctl checkpoint")


@pytest.mark.parametrize("name", ["netG.pt", "G.SAFETENSORS"])
def test_a_safetensors_state_dict_is_read_by_its_content_not_its_name(workspace, tmp_path, dcgan, name):
    # importers.sniff: "by its content first (a renamed file is still recognised)"
    from safetensors.torch import save_file

    net, _ = dcgan
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / name))
    import_ok(tmp_path / name)
    run("sample", "--seeds", "0", "--precision", "fp32", "--save", "s", "--out", tmp_path / "s")
    with np.load(workspace / "latents" / "s.npz") as stored:
        want = reference_uint8(net, stored["z"])[0]
    same_picture(Image.open(tmp_path / "s" / "seed0000.png"), want)


def test_a_renamed_latentctl_checkpoint_is_recognised(workspace, tmp_path):
    import_ok(KERAS / "seed_g.h5")
    run("export", "--out", tmp_path / "g.safetensors")
    shutil.copy(tmp_path / "g.safetensors", tmp_path / "g.pt")
    refused(workspace, ["import", tmp_path / "g.pt"], 2, "latentctl checkpoint")


@pytest.mark.parametrize("fixture, class_index", [("sg3_t_32", None), ("sg3_r_32", 1)])
def test_stylegan3_seeds_draw_nvidias_pictures(workspace, tmp_path, fixture, class_index):
    # T (translation-equivariant) and R (rotation, conditional: class 1 is the label of seed 1)
    import_ok(STYLEGAN / f"{fixture}.pkl", *(["--class", str(class_index)] if class_index is not None else []))
    expected = np.load(STYLEGAN / f"{fixture}.expected.npz")
    seeds = [0, 1, 2] if class_index is None else [s for s in range(3) if expected["c"][s].argmax() == class_index]
    run("sample", "--seeds", ",".join(map(str, seeds)), "--precision", "fp32", "--out", tmp_path / "p")
    got = pngs(tmp_path / "p", [f"seed{s:04d}.png" for s in seeds]).astype(int)
    want = uint8_nvidia(expected["img_const_psi1"][seeds]).astype(int)
    # Within one grey level: the float parity is 6e-7 (tests/test_import_stylegan3.py), but the
    # channels-last layout sampling uses sums in another order, which can cross a grey-level step.
    assert np.abs(got - want).max() <= 1


def test_missing_files_are_refused(workspace, tmp_path):
    refused(workspace, ["import", tmp_path / "nowhere.h5"], 2, "nowhere.h5")
    refused(workspace, ["import", tmp_path], 2, "folder")


# ---- 5. a uniform prior ---------------------------------------------------------------------------


def test_a_uniform_prior_draws_seeds_from_uniform(workspace, tmp_path, dcgan):
    net, path = dcgan
    import_ok(path, "--latent", "uniform")
    assert "uniform" in run("info").stdout
    run("sample", "--seeds", "3", "--precision", "fp32", "--save", "u", "--out", tmp_path / "s")
    z = np.random.RandomState(3).uniform(-1, 1, NZ)
    with np.load(workspace / "latents" / "u.npz") as stored:
        np.testing.assert_allclose(stored["z"][0], z, rtol=0, atol=1e-7)
    got = np.asarray(Image.open(tmp_path / "s" / "seed0003.png")).astype(int)
    want = reference_uint8(net, z[None])[0].astype(int)
    assert np.abs(got - want).max() <= 1


def test_a_uniform_prior_on_a_keras_import(workspace, tmp_path):
    import_ok(KERAS / "tf_dcgan.h5", "--latent", "uniform")
    dim = json_out(run("info", "--json"))["model_config"]["latent_dim"]
    run("sample", "--seeds", "3", "--precision", "fp32", "--save", "u", "--out", tmp_path / "s")
    z = np.random.RandomState(3).uniform(-1, 1, (1, dim))
    with np.load(workspace / "latents" / "u.npz") as stored:
        np.testing.assert_allclose(stored["z"], z, rtol=0, atol=1e-7)
    # the picture is the network on that z (render of the explicit z: the path test 1 checks against Keras)
    np.savez(tmp_path / "z.npz", z=z.astype(np.float32))
    run("render", tmp_path / "z.npz", "--precision", "fp32", "--out", tmp_path / "r")
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "s" / "seed0003.png")), np.asarray(Image.open(tmp_path / "r" / "row000.png"))
    )
