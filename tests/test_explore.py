"""`latentctl explore`'s API through Starlette's in-process client: every view, every error path,
and the promise that each view's command reproduces its pixels through the real CLI."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run as cli  # invoke the CLI, check its exit code
from PIL import Image
from typer.testing import CliRunner

from latentctl.cli.app import app

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import warnings  # noqa: E402

with warnings.catch_warnings():  # starlette >= 1.x prefers httpx2 for its test client; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from latentctl.explore.api import Explorer  # noqa: E402
from latentctl.explore.server import Renderer, Superseded, create_app  # noqa: E402

runner = CliRunner()
TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_run) -> Path:
    """The module's workspace: the explorer's store, with the session's tiny run (conftest) as its
    current run. The tests write to this workspace, never into the run."""
    from latentctl.files.workspace import Workspace

    ws = tmp_path_factory.mktemp("explore-ws")
    Workspace(ws).set_current(tiny_run)
    return ws


@pytest.fixture(scope="module")
def client(ws):
    from latentctl.space.session import open_model

    session = open_model(None, "cpu", ws, "fp32")
    with TestClient(create_app(Explorer(session, workspace_arg=ws), TOKEN), headers={"X-Latentctl-Token": TOKEN}) as c:
        yield c


def pixels(data_url_or_path) -> np.ndarray:
    if isinstance(data_url_or_path, Path):
        return np.asarray(Image.open(data_url_or_path))
    raw = base64.b64decode(data_url_or_path.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)))


def run_shown(command: str, out: Path) -> Path:
    """Run a command the page shows (`a && b`) through the CLI, the last one into ``out``."""
    parts = command.split(" && ")
    for i, part in enumerate(parts):
        argv = shlex.split(part)
        assert argv[0] == "latentctl"
        if i == len(parts) - 1:
            argv += ["--out", str(out)]
        cli(*argv[1:])
    return out


def post(client, path, body, status=200):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    return r.json()


def make_direction(client, name, pos=range(0, 10), neg=range(10, 20), **extra):
    return post(client, "/api/direction", {"pos": list(pos), "neg": list(neg), "name": name, **extra})


# ---- the token ----------------------------------------------------------------------------------


def test_every_request_needs_the_token(client):
    bare = TestClient(client.app)
    for path in ("/", "/api/info", "/static/app.js", "/nowhere"):
        r = bare.get(path)
        assert r.status_code == 403 and "token" in r.json()["error"]
    assert bare.get("/api/info?token=wrong").status_code == 403
    assert bare.get("/api/info", headers={"X-Latentctl-Token": TOKEN[:-1]}).status_code == 403
    page = bare.get(f"/?token={TOKEN}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert bare.get(f"/static/app.js?token={TOKEN}").status_code == 200
    assert bare.get(f"/static/index.html?token={TOKEN}").status_code == 404


def test_info_names_the_model(client):
    info = client.get("/api/info").json()
    assert info["image_size"] == 32 and info["latent_dim"] == 8 and info["limits"]["min_picks"] == 10


# ---- browse -------------------------------------------------------------------------------------


def test_browse_tiles_are_the_cli_samples(client, tmp_path):
    res = post(client, "/api/tiles", {"start": 5, "count": 4})
    assert [t["seed"] for t in res["tiles"]] == [5, 6, 7, 8]
    out = run_shown(res["command"], tmp_path / "s")
    for t in res["tiles"]:
        np.testing.assert_array_equal(pixels(t["png"]), pixels(out / f"seed{t['seed']:04d}.png"))


def test_truncation_zero_makes_every_tile_alike(client):
    tiles = post(client, "/api/tiles", {"seeds": [1, 99], "psi": 0})["tiles"]
    np.testing.assert_array_equal(pixels(tiles[0]["png"]), pixels(tiles[1]["png"]))


@pytest.mark.parametrize(
    "body, status",
    [
        ({"start": -1}, 400),
        ({"start": 2**32}, 400),
        ({"start": "3"}, 400),
        ({"start": True}, 400),
        ({"seeds": [1, "x"]}, 400),
        ({"seeds": [1, 1]}, 400),
        ({"count": 0}, 400),
        ({"count": 65}, 400),
        ({"seeds": list(range(100))}, 413),
        ({"psi": -1}, 400),
        ("NaN", 400),
        ([1, 2], 400),
    ],
)
def test_bad_browse_requests_are_4xx_with_one_line(client, body, status):
    if body == "NaN":  # JSON has no NaN but Python's parser accepts it; the check must still hold
        r = client.post("/api/tiles", content=b'{"psi": NaN}', headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        return
    err = post(client, "/api/tiles", body, status)["error"]
    assert "\n" not in err and "Traceback" not in err


# ---- piles and directions -----------------------------------------------------------------------


def test_check_counts_the_picks_still_needed(client):
    res = post(client, "/api/check", {"pos": [1, 2, 3], "neg": [4, 5]})
    assert (res["need_pos"], res["need_neg"]) == (7, 8)
    assert 0.0 <= res["loo_accuracy"] <= 1.0 and "accuracy" in res["summary"]
    assert post(client, "/api/check", {"pos": [1], "neg": []})["loo_accuracy"] is None
    post(client, "/api/check", {"pos": [1], "neg": [1]}, 400)


@pytest.mark.parametrize("method", ["mean", "boundary"])
def test_direction_saves_piles_and_matches_attr_vector(client, ws, method):
    name = f"d-{method}"
    res = make_direction(client, name, method=method, unit=method == "mean")
    assert res["need_pos"] == 0 and res["need_neg"] == 0 and 0 <= res["loo_accuracy"] <= 1
    assert (res["pos_name"], res["neg_name"]) == (f"{name}-yes", f"{name}-no")
    # The piles are what `sample --save` writes: points with seeds and the model's id.
    pile = client.get(f"/api/entries/{name}-yes").json()
    assert pile["kind"] == "points" and pile["seeds"] == list(range(10)) and pile["model_id"]
    shown = cli("latents", "show", name, "--workspace", ws).output
    assert "direction, 1 x 8" in shown
    from latentctl.space.store import LatentStore

    store = LatentStore(ws / "latents")
    page_z = store.load(name).z.copy()
    # The shown commands rebuild it: the piles (same latents) and the direction (same vector).
    for command in res["commands"]:
        cli(*shlex.split(command)[1:], "--force")
    np.testing.assert_array_equal(store.load(name).z, page_z)


def test_direction_orthogonal_to_another(client):
    make_direction(client, "ortho-a")
    res = make_direction(client, "ortho-b", pos=range(30, 40), neg=range(40, 50), orthogonal_to=["ortho-a"])
    a = client.get("/api/entries/ortho-a").json()
    assert a["kind"] == "direction" and "--orthogonal-to ortho-a" in res["commands"][2]


def test_direction_refuses_to_overwrite_without_force(client):
    make_direction(client, "twice")
    r = client.post("/api/direction", json={"pos": [1], "neg": [2], "name": "twice"})
    assert r.status_code == 409 and "replace" in r.json()["error"]
    r = client.post("/api/direction", json={"pos": [1, 3], "neg": [2, 4], "name": "twice", "force": True})
    assert r.status_code == 200, r.text


def test_a_pile_saves_alone(client, ws):
    res = post(client, "/api/pile", {"name": "just-a-pile", "seeds": [3, 1, 2], "psi": 0.5})
    assert res["count"] == 3
    from latentctl.space.store import LatentStore

    entry = LatentStore(ws / "latents").load("just-a-pile")
    assert entry.seeds.tolist() == [3, 1, 2] and entry.meta["truncation"] == 0.5


# ---- steer: every view's command gives the page's pixels ----------------------------------------


@pytest.fixture(scope="module")
def dirs(client):
    make_direction(client, "smile")
    make_direction(client, "glasses", pos=range(50, 60), neg=range(60, 70), method="boundary")
    post(client, "/api/pile", {"name": "bases", "seeds": [7, 8, 9]})
    return ["smile", "glasses"]


@pytest.mark.parametrize(
    "view",
    [
        {"base": {"seed": 42}, "directions": [{"name": "smile", "weight": 0.7}, {"name": "glasses", "weight": 1.2}]},
        {"base": {"seed": 42}, "psi": 0.7, "directions": [{"name": "smile", "weight": -1.5}]},
        {"base": {"entry": "bases", "row": 1}, "directions": [{"name": "glasses", "weight": 2}]},
        {"base": {"entry": "bases", "mean": True}, "directions": [{"name": "smile", "weight": 0.333}]},
        {"base": {"seed": 11}},
        {"base": {"entry": "bases", "row": 2}},
        {"kind": "interp", "a": {"seed": 3}, "b": {"entry": "bases", "row": 0}, "steps": 11, "index": 4},
        {"kind": "interp", "a": {"seed": 3}, "b": {"seed": 5}, "psi": 0.8, "steps": 5, "index": 2, "method": "slerp"},
    ],
    ids=["two-dirs", "psi", "entry-row", "mean", "seed-only", "entry-only", "interp", "interp-slerp-psi"],
)
def test_the_shown_command_reproduces_the_view(client, dirs, view, tmp_path):
    res = post(client, "/api/steer", view)
    assert "--precision fp32" in res["command"]
    out = run_shown(res["command"], tmp_path / "out")
    np.testing.assert_array_equal(pixels(res["png"]), pixels(out / res["image"]))


def test_the_brief_example_command_reads_as_written(client, dirs, ws):
    res = post(
        client,
        "/api/steer",
        {"base": {"seed": 42}, "directions": [{"name": "smile", "weight": 0.7}, {"name": "glasses", "weight": 1.2}]},
    )
    assert (
        res["command"]
        == f"latentctl apply seeds:42 --add smile=0.7 --add glasses=1.2 --precision fp32 --workspace {ws}"
    )


def test_sliders_change_the_image(client, dirs):
    a = post(client, "/api/steer", {"base": {"seed": 42}, "directions": [{"name": "smile", "weight": 0}]})
    b = post(client, "/api/steer", {"base": {"seed": 42}, "directions": [{"name": "smile", "weight": 3}]})
    assert a["png"] != b["png"]


def test_strength_strip_is_apply_scales(client, dirs, tmp_path):
    res = post(
        client,
        "/api/strip",
        {"base": {"seed": 4}, "directions": [{"name": "smile", "weight": 1}], "scales": [-2, -1, 0, 1, 2]},
    )
    assert "--scales -2,-1,0,1,2" in res["command"]
    out = run_shown(res["command"], tmp_path / "o")
    for t in res["tiles"]:
        np.testing.assert_array_equal(pixels(t["png"]), pixels(out / t["image"]))
    post(client, "/api/strip", {"base": {"seed": 4}, "directions": []}, 400)
    post(client, "/api/strip", {"base": {"seed": 4}, "directions": [{"name": "smile"}], "scales": list(range(12))}, 400)


def test_save_this_latent_and_load_it_back(client, dirs, ws):
    view = {"base": {"seed": 42}, "directions": [{"name": "smile", "weight": 0.5}]}
    res = post(client, "/api/save", {"name": "my-edit", "view": view})
    assert res["command"].startswith("latentctl latents show my-edit")
    loaded = client.get("/api/entries/my-edit").json()
    assert loaded["kind"] == "points" and loaded["count"] == 1 and len(loaded["preview"]) == 1
    np.testing.assert_array_equal(pixels(loaded["preview"][0]["png"]), pixels(post(client, "/api/steer", view)["png"]))
    cli("latents", "show", "my-edit", "--workspace", ws)
    post(client, "/api/save", {"name": "my-edit", "view": view}, 409)
    listed = [e["name"] for e in client.get("/api/entries").json()["entries"]]
    assert "my-edit" in listed and "smile" in listed


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "..", "a/b", ".hidden", "-rf", "x y", "/etc/passwd", "a\\b", "", "x" * 300])
def test_traversal_and_bad_names_are_refused(client, dirs, name):
    view = {"base": {"seed": 1}}
    post(client, "/api/save", {"name": name, "view": view}, 400)
    post(client, "/api/pile", {"name": name, "seeds": [1]}, 400)
    post(client, "/api/steer", {"base": {"entry": name}}, 400)
    post(client, "/api/steer", {"base": {"seed": 1}, "directions": [{"name": name}]}, 400)


def test_bad_names_in_the_url_are_refused(client):
    for path in ("/api/entries/..%2Fx", "/api/entries/a%2Fb", "/api/entries/.hidden", "/api/entries/%2Fetc%2Fpasswd"):
        r = client.get(path)
        assert r.status_code == 400, (path, r.text)


def test_unknown_entries_are_404(client, dirs):
    assert client.get("/api/entries/nope").status_code == 404
    post(client, "/api/steer", {"base": {"entry": "nope"}}, 404)
    post(client, "/api/steer", {"base": {"seed": 1}, "directions": [{"name": "nope"}]}, 404)
    assert client.get("/api/nowhere").status_code == 404


def test_other_bad_requests(client, dirs):
    post(client, "/api/steer", {"base": {"seed": 1}, "directions": [{"name": "bases"}]}, 400)  # points, not a direction
    post(client, "/api/steer", {"base": {"seed": 1}, "directions": [{"name": "smile", "weight": 1e9}]}, 400)
    post(client, "/api/steer", {"base": {"entry": "bases", "row": 3}}, 400)
    post(client, "/api/steer", {"base": {}}, 400)
    post(client, "/api/steer", {"kind": "interp", "a": {"seed": 1}, "b": {"entry": "bases", "mean": True}}, 400)
    post(client, "/api/steer", {"kind": "interp", "a": {"seed": 1}, "b": {"seed": 2}, "steps": 4, "index": 4}, 400)
    post(client, "/api/direction", {"pos": [], "neg": [1], "name": "x"}, 400)
    post(client, "/api/direction", {"pos": [1], "neg": [2], "name": "x", "method": "svm"}, 400)
    r = client.post("/api/steer", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert client.get("/api/steer").status_code == 405


def test_oversized_bodies_are_413(client):
    r = client.post("/api/tiles", content=b"{" + b" " * 70_000 + b"}", headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["error"]

    def chunks():  # no Content-Length: the cap must hold while streaming too
        for _ in range(20):
            yield b" " * 8192

    r = client.post("/api/tiles", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


# ---- the renderer -------------------------------------------------------------------------------


def test_newest_request_per_view_wins():
    renderer = Renderer()
    release = threading.Event()
    ran = []

    async def scenario():
        blocker = asyncio.ensure_future(renderer.run(("other", "steer"), lambda: release.wait(5)))
        await asyncio.sleep(0.1)  # the blocker holds the render lock
        old = asyncio.ensure_future(renderer.run(("page", "steer"), lambda: ran.append("old")))
        await asyncio.sleep(0.05)
        new = asyncio.ensure_future(renderer.run(("page", "steer"), lambda: ran.append("new")))
        await asyncio.sleep(0.05)
        release.set()
        await blocker
        with pytest.raises(Superseded):
            await old
        await new

    asyncio.run(scenario())
    assert ran == ["new"]


# ---- the command --------------------------------------------------------------------------------


def test_explore_help_imports_neither_torch_nor_the_web_stack():
    code = (
        "import sys\nfrom latentctl.cli.app import app\n"
        "try:\n    app(['explore', '--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('torch', 'starlette', 'uvicorn') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_missing_web_stack_names_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    res = cli("explore", "--no-browser", code=2)
    assert "pip install starlette uvicorn" in res.output and len(res.output.strip().splitlines()) == 1


def test_explore_serves_on_loopback_and_stops_cleanly_on_ctrl_c(ws):
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "latentctl", "explore", "--no-browser", "--port", "0", "--workspace", str(ws)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        base, token = url.split("/?token=")
        assert len(token) >= 32
        deadline = time.time() + 20
        while True:
            try:
                r = httpx.get(f"{base}/api/info", headers={"X-Latentctl-Token": token}, timeout=5)
                break
            except httpx.ConnectError:
                assert time.time() < deadline
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["latent_dim"] == 8
        assert httpx.get(f"{base}/api/info", timeout=5).status_code == 403
        bad = httpx.post(f"{base}/api/tiles", headers={"X-Latentctl-Token": token}, json={"start": -5}, timeout=5)
        assert bad.status_code == 400
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "explorer stopped" in err


def test_the_listening_socket_is_tcp_so_replies_are_not_delayed():
    import socket

    from latentctl.explore.server import bind

    sock = bind("127.0.0.1", 0)
    try:  # asyncio sets TCP_NODELAY only on TCP-proto sockets; without it each reply waits ~40 ms
        assert sock.proto == socket.IPPROTO_TCP and sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_host_other_than_loopback_warns(monkeypatch, ws):
    from latentctl.cli import explore_cmd

    class Stop(Exception):
        pass

    def no_model(*a, **k):
        raise Stop

    monkeypatch.setattr("latentctl.space.session.open_model", no_model)
    res = runner.invoke(app, ["explore", "--host", "0.0.0.0", "--no-browser", "--workspace", str(ws)])
    assert isinstance(res.exception, Stop)
    assert "reachable from other computers" in res.output and "127.0.0.1" in explore_cmd.LOOPBACK
