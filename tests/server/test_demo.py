"""The README's main command on the runtime alone: the demo with every test-only package unimportable.

`scripts/setup.sh` without `--test` installs no pytest, hypothesis, diffsynth,
playwright or comfy-test; a user's machine has none of them. The demo runs in
a process whose importer refuses those names, so any import of them, direct
or through the harness, fails here as it would there.
"""

import subprocess
import sys

import pytest

from exvideo_core.video_io import read_video
from exvideo_harness.cache import REPO_ROOT

pytestmark = [pytest.mark.server, pytest.mark.full_size]

TEST_ONLY = ("pytest", "_pytest", "hypothesis", "diffsynth", "playwright", "comfy_test")
BLOCKER = f"""
import importlib.abc, runpy, sys

class TestToolsAbsent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TEST_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (test-only: setup.sh without --test has none)")
        return None

for name in list(sys.modules):
    if name.split(".")[0] in {TEST_ONLY!r}:
        del sys.modules[name]
sys.meta_path.insert(0, TestToolsAbsent())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_the_demo_runs_without_any_test_tool(tmp_path):
    output = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-P", "-c", BLOCKER, str(REPO_ROOT / "scripts" / "demo.py"),
         "--width", "64", "--height", "64", "--frames", "4", "--steps", "1", "--output", str(output)],
        capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "ModuleNotFoundError" not in done.stderr
    (video,) = output.glob("*.mp4")
    frames, _ = read_video(video)
    assert frames.shape[:3] == (4, 64, 64)
    assert list(output.glob("*.png")), "the contact sheet is written beside the video"
    assert not (output / "server").exists(), "the server's scratch folders stay outside the pack"


def test_the_blocker_really_refuses_the_test_tools(tmp_path):
    """Without this the test above would prove nothing."""
    script = tmp_path / "imports_pytest.py"
    script.write_text("import pytest\n")
    done = subprocess.run([sys.executable, "-P", "-c", BLOCKER, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "test-only" in done.stderr, done.stderr
