"""The modules here drive the harness's small SVD node (exvideo_harness/server_pack) beside full-size SVD-XT, and
share one server: it starts once and loads the full-size checkpoint once, for both."""

import pytest

from exvideo_harness.cache import empty_scratch
from exvideo_harness.comfy_server import start_comfy_server


@pytest.fixture(scope="package")
def comfy_server(tmp_path_factory):
    """A server that also loads the small SVD node; the training checks that no UNet size changes (divergence,
    interrupts, save prefixes) train that one, not the full-size UNet's minute per step."""
    root = tmp_path_factory.mktemp("harness_nodes")
    with start_comfy_server(root / "comfy_server", harness_nodes=True) as server:
        yield server
    empty_scratch(root)
