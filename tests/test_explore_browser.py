"""The explorer in a real browser: Debian's chromium driven by Playwright against a real uvicorn
server on 127.0.0.1. Playwright never downloads a browser here; without /usr/bin/chromium the
test is skipped (install it with `apt-get install -y chromium`)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import run as cli

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_SHOT = Path(__file__).resolve().parents[1] / "docs" / "explore.png"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: apt-get install -y chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_run):
    pytest.importorskip("uvicorn")
    pytest.importorskip("playwright")
    from latentctl.explore.api import Explorer
    from latentctl.explore.server import bind, create_app, make_server, new_token
    from latentctl.files.workspace import Workspace
    from latentctl.space.session import open_model

    ws = tmp_path_factory.mktemp("browser-ws")
    Workspace(ws).set_current(tiny_run)  # the session's tiny run (conftest): only read here
    token = new_token()
    sock = bind("127.0.0.1", 0)
    srv = make_server(create_app(Explorer(open_model(None, "cpu", ws, "fp32"), workspace_arg=ws), token))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/?token={token}", ws
    srv.should_exit = True
    thread.join(10)
    sock.close()


def test_sort_make_a_direction_and_steer_in_the_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, ws = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            tiles = page.locator(".tile")
            expect(tiles).to_have_count(24)
            # The seed is readable beside the image, and the image is scaled up crisply.
            expect(page.locator('.tile[data-seed="3"] .seed')).to_have_text("seed 3")
            assert page.locator(".tile img").first.evaluate("i => getComputedStyle(i).imageRendering") == "pixelated"
            assert page.locator(".tile img").first.bounding_box()["width"] >= 96
            for seed in range(10):
                page.click(f'.tile[data-seed="{seed}"] button.has')
                page.click(f'.tile[data-seed="{seed + 10}"] button.not')
            expect(page.locator("#n-pos")).to_have_text("10")
            expect(page.locator("#n-neg")).to_have_text("10")
            expect(page.locator("#need")).to_contain_text("enough picks")
            expect(page.locator("#check")).to_contain_text("leave-one-out accuracy")

            page.fill("#dir-name", "browser-dir")
            page.click("#make-dir")
            expect(page.locator("#dir-report")).to_contain_text("saved 'browser-dir'")
            expect(page.locator('#entries li[data-name="browser-dir"]')).to_have_count(1)
            slider = page.locator('.dir-slider[data-name="browser-dir"]')
            expect(slider).to_have_count(1)
            expect(page.locator("#steer-cmd")).to_contain_text("--add browser-dir=1")
            before = page.locator("#steer-img").get_attribute("src")
            slider.fill("3")  # sets the range's value and fires its input event, as a drag does
            expect(page.locator("#steer-cmd")).to_contain_text("--add browser-dir=3")
            after = page.locator("#steer-img").get_attribute("src")
            assert after and after != before, "moving the slider did not change the image"

            page.click("#show-strip")
            expect(page.locator("#strip img")).to_have_count(5)
            page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    if os.environ.get("LATENTCTL_DOCS_SCREENSHOT"):
        shutil.copyfile(tmp_path / "explore.png", DOCS_SHOT)
    shown = cli("latents", "show", "browser-dir", "--workspace", ws).output
    assert "direction, 1 x 8" in shown and "explore" in shown
