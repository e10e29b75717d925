"""A real ComfyUI server per module, and headless Chromium on its frontend."""

import os

import pytest

from exvideo_harness import browser as browser_harness
from exvideo_harness.comfy_server import ComfyServer, start_comfy_server
from exvideo_harness.exvideo_files import FULL, exvideo_checkpoint_path
from exvideo_harness.svd_checkpoint import svd_xt_checkpoint_path


@pytest.fixture(scope="module")
def comfy_server(module_scratch) -> ComfyServer:
    """One ComfyUI server per test module; its tests share its queue, caches and loaded models.

    Per module, not per session: a server that has loaded full-size SVD holds
    over 10 GB, which the in-process full-size tests of other modules need.
    """
    with start_comfy_server(module_scratch / "comfy_server") as server:
        yield server


@pytest.fixture(scope="module")
def models(comfy_server):
    """The random-weight SVD-XT and ExVideo files in the server, under the names the templates use."""
    comfy_server.install_model("checkpoints", svd_xt_checkpoint_path(), "svd_xt.safetensors")
    comfy_server.install_model("exvideo", exvideo_checkpoint_path(128, FULL), "ExVideo-SVD-128f-v1.safetensors")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, one per test module, with a fresh temporary profile."""
    if os.environ.get("EXVIDEO_NO_BROWSER") == "1":
        pytest.skip("EXVIDEO_NO_BROWSER=1: the headless-browser tests are switched off")
    try:
        sync_playwright = browser_harness.sync_playwright()
    except browser_harness.BrowserUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    with sync_playwright() as playwright:
        chromium = browser_harness.launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def ui_settings(comfy_server):
    status, body = comfy_server.client.request("POST", "/settings", browser_harness.UI_SETTINGS)
    assert status == 200, f"POST /settings answered {status}: {body}"


@pytest.fixture
def comfy_page(browser, comfy_server, ui_settings):
    """A new tab on the server's frontend in a fresh browser context (no state from other tests)."""
    context, page = browser_harness.new_page(browser, comfy_server)
    try:
        yield page
    finally:
        context.close()
