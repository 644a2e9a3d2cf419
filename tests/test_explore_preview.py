"""Issue 28: a fast preview in the explorer for large StyleGAN2 models.

The skip generator sums an RGB image at every resolution on its way to the full one, so
``synthesis(stop_at=r)`` can stop there (``preview_resolutions``); the explorer renders the largest
such size up to ``PREVIEW_LIMIT`` while a slider moves (``"preview": true``) and the full image on
release. The models here are tiny random skip generators at 128 px, with the explorer's limit
lowered to 64 so a preview happens (a model above 256 px would be too slow for a test).
"""

from __future__ import annotations

import base64
import io
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from latentctl.explore.api import PREVIEW_LIMIT, Explorer, RequestError, preview_size
from latentctl.models.stylegan2 import StyleGAN2Generator
from latentctl.space.generate import to_uint8

# Tiny: 4 channels at 128 px, 16 at 32 px and below; z and w 16 long, a 2-layer mapping.
TINY_SG2 = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=512, channel_max=16)


def _with_filters(module: torch.nn.Module) -> torch.nn.Module:
    """Fresh networks hold all-zero FIR buffers (the importer fills NVIDIA's); a zero filter would
    blank the skip path's upsampled image and so hide a wrong stage. Use NVIDIA's [1, 3, 3, 1]."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps) / torch.outer(taps, taps).sum()
    with torch.no_grad():
        for name, buf in module.named_buffers():
            if name.endswith("fir"):
                buf.copy_(kernel)
    return module


def sg2(resolution: int = 128, architecture: str = "skip", **kw) -> StyleGAN2Generator:
    torch.manual_seed(0)
    gen = StyleGAN2Generator(resolution=resolution, architecture=architecture, **{**TINY_SG2, **kw})
    with torch.no_grad():  # visible noise, so the "const" maps take part in the comparison
        for name, p in gen.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    return _with_filters(gen).eval()


def _ws(gen: StyleGAN2Generator, n: int = 2) -> torch.Tensor:
    with torch.no_grad():
        return gen.mapping(torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(1)))


# ---- the generator --------------------------------------------------------------------------------


def test_preview_resolutions_are_the_skip_stages_from_64_below_full():
    assert sg2(128).preview_resolutions == (64,)
    assert sg2(256).preview_resolutions == (64, 128)
    assert sg2(64).preview_resolutions == ()  # 64 is the full image, nothing smaller is >= 64
    assert sg2(32).preview_resolutions == ()
    # orig and resnet draw RGB only at the end: nothing to stop at
    assert sg2(128, "orig").preview_resolutions == ()
    assert sg2(256, "resnet").preview_resolutions == ()


@pytest.mark.parametrize("noise_mode", ["const", "none"])
def test_stop_at_returns_the_image_the_full_synthesis_had_summed_there(noise_mode):
    gen = sg2(256)
    ws = _ws(gen)
    captured = {}
    hooks = [
        stage.register_forward_hook(lambda _m, _i, out, res=res: captured.__setitem__(res, out[1].clone()))
        for res, stage in zip(gen.stage_resolutions, gen.stages)
    ]
    try:
        with torch.no_grad():
            full = gen.synthesis(ws, noise_mode=noise_mode)
    finally:
        for hook in hooks:
            hook.remove()
    assert full.shape == (2, 3, 256, 256)
    torch.testing.assert_close(captured[256], full, rtol=0, atol=0)
    for res in (64, 128):
        with torch.no_grad():
            preview = gen.synthesis(ws, noise_mode=noise_mode, stop_at=res)
        assert preview.shape == (2, 3, res, res)
        torch.testing.assert_close(preview, captured[res], rtol=0, atol=0)
        assert preview.abs().max() > 0  # a picture, not an empty accumulator


def test_the_full_image_is_the_upsampled_preview_plus_the_remaining_stages():
    # The skip path, step by step: what follows 64 px only upsamples the preview and adds the
    # 128 px stage's RGB, so running that one stage from the 64 px state gives the full image.
    from latentctl.models.stylegan2 import _upsample2x

    gen = sg2(128)
    ws = _ws(gen)
    with torch.no_grad():
        preview = gen.synthesis(ws, stop_at=64)
        x = img = None
        start = 0
        for stage in gen.stages[:-1]:
            x, img = stage(x, img, ws[:, start : start + stage.num_conv + stage.num_rgb], "const")
            start += stage.num_conv
        torch.testing.assert_close(img, preview, rtol=0, atol=0)
        last = gen.stages[-1]
        x = last.up_conv(x, ws[:, start], noise_mode="const")
        x = last.conv(x, ws[:, start + 1], noise_mode="const")
        rgb = last.rgb(x, ws[:, start + 2], noise_mode="none")
        full = gen.synthesis(ws)
    torch.testing.assert_close(_upsample2x(preview, last.fir) + rgb, full, rtol=1e-5, atol=1e-5)


def test_stop_at_none_is_the_full_synthesis_unchanged():
    gen = sg2(128)
    ws = _ws(gen)
    with torch.no_grad():
        torch.testing.assert_close(gen.synthesis(ws, stop_at=None), gen.synthesis(ws), rtol=0, atol=0)
        torch.testing.assert_close(gen(torch.zeros(1, 16)), gen.synthesis(gen.mapping(torch.zeros(1, 16))))


@pytest.mark.parametrize("bad", [32, 128, 100, 0, -64, True, 64.0, "64"])
def test_a_stop_at_that_is_no_preview_resolution_is_a_value_error_naming_them(bad):
    gen = sg2(128)
    with pytest.raises(ValueError, match=r"stop_at must be one of the preview resolutions \(64\)"):
        gen.synthesis(_ws(gen), stop_at=bad)


def test_orig_and_resnet_refuse_any_stop_at():
    for arch in ("orig", "resnet"):
        gen = sg2(128, arch)
        with pytest.raises(ValueError, match=f"none for the {arch} architecture"):
            gen.synthesis(_ws(gen), stop_at=64)


def test_ws_are_still_checked_when_stopping_early():
    gen = sg2(128)
    with pytest.raises(ValueError, match="ws must have shape"):
        gen.synthesis(_ws(gen)[:, :-1], stop_at=64)


# ---- which size the explorer previews at ----------------------------------------------------------


def test_the_preview_size_is_the_largest_size_up_to_the_limit_on_models_above_it():
    assert PREVIEW_LIMIT == 256
    assert preview_size((64, 128, 256, 512), 1024) == 256
    assert preview_size((64, 128), 512) == 128
    assert preview_size((64, 128, 256), 512) == 256
    assert preview_size((64, 128), 256) is None  # 256 px renders fast enough in full
    assert preview_size((64, 128, 256, 512), 256) is None
    assert preview_size((), 1024) is None  # no preview sizes: orig/resnet, StyleGAN3, other models
    assert preview_size((512,), 1024) is None  # none small enough
    assert preview_size((64,), 128, limit=64) == 64
    assert preview_size((64,), 64, limit=32) is None  # never the full size itself


def test_a_generator_without_preview_sizes_has_no_preview():
    session = SimpleNamespace(
        store=None,
        info=SimpleNamespace(model=SimpleNamespace(latent_dim=8, image_size=1024, space="")),
        generator=object(),
    )
    assert Explorer(session).preview_size is None
    assert Explorer(session, preview_limit=64).preview_size is None


# ---- the explorer's API on an imported 128 px skip StyleGAN2 --------------------------------------


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A workspace whose current run is a 128 px skip StyleGAN2, saved as `latentctl import` saves
    one, opened as the explorer opens it."""
    from latentctl.config import ModelConfig
    from latentctl.files import checkpoint
    from latentctl.files.workspace import CHECKPOINT_NAME, Workspace
    from latentctl.models import build_generator
    from latentctl.space.session import open_model

    network = {"resolution": 128, "img_channels": 3, "architecture": "skip", **TINY_SG2}
    config = ModelConfig(family="gan", arch="stylegan2", image_size=128, channels=3, latent_dim=16, network=network)
    torch.manual_seed(0)
    generator = _with_filters(build_generator(config))
    root = tmp_path_factory.mktemp("preview-ws")
    ws = Workspace(root)
    run_dir = ws.new_run_dir("sg2-128")
    checkpoint.save(run_dir / CHECKPOINT_NAME, generator=generator, model_config=config, run_id="preview-test")
    ws.set_current(run_dir)
    return open_model(None, "cpu", root, "fp32"), root


def pixels(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def test_the_generator_offers_its_skip_stages_as_previews(session):
    sess, _ = session
    assert sess.generator.preview_sizes == (64,)
    assert Explorer(sess).preview_size is None  # 128 px is below the default limit: always full
    assert Explorer(sess).info()["preview_size"] is None
    assert Explorer(sess, preview_limit=64).info()["preview_size"] == 64


def test_a_moving_slider_gets_the_preview_and_the_release_the_full_image(session):
    sess, root = session
    explorer = Explorer(sess, workspace_arg=root, preview_limit=64)
    view = {"base": {"seed": 3}, "psi": 0.7}
    full = explorer.steer(view)
    fast = explorer.steer({**view, "preview": True})
    assert (full["preview"], full["size"]) == (False, 128)
    assert (fast["preview"], fast["size"]) == (True, 64)
    assert pixels(full["png"]).shape == (128, 128, 3)
    assert pixels(fast["png"]).shape == (64, 64, 3)  # not upscaled by the server: the page's CSS does
    # Everything but the picture is the full view's: the command and file named are full size.
    assert {k: v for k, v in fast.items() if k not in ("png", "preview", "size")} == {
        k: v for k, v in full.items() if k not in ("png", "preview", "size")
    }
    assert explorer.steer({**view, "preview": False}) == full

    # The pixels: the full image is what `generate` draws, the preview the 64 px stage's image.
    z = explorer.seed_latents([3], 0.7)
    with torch.no_grad():
        w = torch.from_numpy(z)
        want_full = to_uint8(sess.generator(w))[0]
        want_fast = to_uint8(
            sess.generator.net.synthesis(w.unsqueeze(1).expand(-1, sess.generator.num_ws, -1), stop_at=64)
        )[0]
    np.testing.assert_array_equal(pixels(full["png"]), want_full)
    np.testing.assert_array_equal(pixels(fast["png"]), want_fast)
    # ... which is the picture the full image refines, not another one
    small = np.asarray(Image.fromarray(want_full).resize((64, 64), Image.BILINEAR), np.float32)
    assert np.corrcoef(small.ravel(), want_fast.astype(np.float32).ravel())[0, 1] > 0.5


def test_a_strip_may_preview_too_and_a_bad_flag_is_refused(session):
    sess, root = session
    explorer = Explorer(sess, workspace_arg=root, preview_limit=64)
    entry = sess.entry(np.ones((1, 16), np.float32), kind="direction")
    explorer.store.save("preview-dir", entry, force=True)
    req = {"base": {"seed": 1}, "directions": [{"name": "preview-dir", "weight": 1}], "scales": [-1, 0, 1]}
    full, fast = explorer.strip(req), explorer.strip({**req, "preview": True})
    assert not full["preview"] and fast["preview"] and fast["command"] == full["command"]
    assert [pixels(t["png"]).shape for t in fast["tiles"]] == [(64, 64, 3)] * 3
    assert [pixels(t["png"]).shape for t in full["tiles"]] == [(128, 128, 3)] * 3
    with pytest.raises(RequestError, match="preview must be true or false"):
        explorer.steer({"base": {"seed": 1}, "preview": "yes"})


def test_asking_for_a_preview_without_one_gets_the_full_image(session):
    sess, root = session
    explorer = Explorer(sess, workspace_arg=root)  # default limit: a 128 px model has no preview
    res = explorer.steer({"base": {"seed": 3}, "preview": True})
    assert res["preview"] is False and res["size"] == 128
    assert pixels(res["png"]).shape == (128, 128, 3)


def test_the_preview_through_the_http_api(session):
    pytest.importorskip("starlette")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from latentctl.explore.server import create_app

    sess, root = session
    token = "t0ken-for-preview-tests"
    app = create_app(Explorer(sess, workspace_arg=root, preview_limit=64), token)
    with TestClient(app, headers={"X-Latentctl-Token": token, "X-Latentctl-Client": "page"}) as client:
        assert client.get("/api/info").json()["preview_size"] == 64
        fast = client.post("/api/steer", json={"base": {"seed": 2}, "preview": True}).json()
        full = client.post("/api/steer", json={"base": {"seed": 2}}).json()
        assert fast["preview"] is True and pixels(fast["png"]).shape == (64, 64, 3)
        assert full["preview"] is False and pixels(full["png"]).shape == (128, 128, 3)
        bad = client.post("/api/steer", json={"base": {"seed": 2}, "preview": 1})
        assert bad.status_code == 400 and "preview" in bad.json()["error"]
        # saving a previewed view saves its latent, the same as the full view's
        saved = client.post("/api/save", json={"name": "previewed", "view": {"base": {"seed": 2}, "preview": True}})
        assert saved.status_code == 200
    np.testing.assert_array_equal(sess.store.load("previewed").z, Explorer(sess).seed_latents([2], 1.0))
