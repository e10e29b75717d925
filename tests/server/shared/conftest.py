"""The server tests that need neither a browser nor a pristine server share one: it starts once and loads full-size
SVD-XT once for all of them (a server start and a checkpoint load cost about 45 s on two cores).

tests/server/test_server.py keeps a server of its own, with only what a user installs (this one also loads the
harness's small SVD node), and tests/server/test_frontend.py one with an untouched input/ folder.
Measured on a 2-core, 24 GB machine like CI's: the post-tuning template's training sets the peak (21 GB used in all), whether
it runs first on the fresh server or last.
"""

import pytest

from exvideo_harness.cache import empty_scratch
from exvideo_harness.comfy_server import start_comfy_server


@pytest.fixture(scope="package")
def comfy_server(tmp_path_factory):
    """A server that also loads the small SVD node; the training checks that no UNet size changes (divergence,
    interrupts, save prefixes) train that one, not the full-size UNet's minute per step."""
    root = tmp_path_factory.mktemp("shared_server")
    with start_comfy_server(root / "comfy_server", harness_nodes=True) as server:
        yield server
    empty_scratch(root)
