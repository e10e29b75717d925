"""The README's main command on the runtime alone: the demo in an environment without any test tool.

`scripts/setup.sh` without `--test` installs no pytest, hypothesis, diffsynth,
playwright or comfy-test; a user's machine has none of them. The demo runs in
a venv whose site-packages are the test venv's, less those distributions
(linked, not copied), so importing one of them, directly or through the
harness, fails there as it would on the user's machine.
"""

import pathlib
import subprocess
import sys
import sysconfig

import pytest

from exvideo_core.video_io import read_video
from exvideo_harness.cache import REPO_ROOT

pytestmark = [pytest.mark.server, pytest.mark.full_size]

TEST_ONLY = ("pytest", "_pytest", "hypothesis", "diffsynth", "playwright", "comfy_test")
# Not ours to need: a user's ComfyUI may have OpenCV (VideoHelperSuite pulls it in), a fresh one has not.
NOT_REQUIRED = ("cv2", "opencv_python", "opencv_python_headless")


def _is_test_only(entry: pathlib.Path) -> bool:
    """`pytest`, `_pytest`, `pytest-8.4.2.dist-info`, ...: the name up to the version or suffix is a test tool's
    (or a package the runtime must do without)."""
    return entry.name.split("-")[0].split(".")[0] in TEST_ONLY + NOT_REQUIRED


@pytest.fixture(scope="module")
def runtime_python(module_scratch) -> pathlib.Path:
    """A python whose packages are the runtime's: every entry of this venv's site-packages but the test tools."""
    venv = module_scratch / "runtime-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = pathlib.Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       check=True, capture_output=True, text=True).stdout.strip())
    ours = pathlib.Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not _is_test_only(entry) and not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    return python


def test_the_runtime_python_lacks_every_test_tool_and_has_the_runtime(runtime_python):
    """Without this the demo test would prove nothing."""
    probe = ("import importlib.util as u; "
             f"print([n for n in {TEST_ONLY + NOT_REQUIRED!r} if u.find_spec(n)]); "
             "import torch, comfy, exvideo_core, exvideo_harness, av, PIL, aiohttp; print('runtime ok')")
    done = subprocess.run([str(runtime_python), "-P", "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["[]", "runtime ok"]


def test_the_demo_runs_without_any_test_tool(runtime_python, tmp_path):
    output = tmp_path / "demo"
    done = subprocess.run(
        [str(runtime_python), "-P", str(REPO_ROOT / "scripts" / "demo.py"),
         "--width", "128", "--height", "128", "--frames", "4", "--steps", "1", "--output", str(output)],
        capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (video,) = output.glob("*.mp4")
    frames, _ = read_video(video)
    assert frames.shape[:3] == (4, 128, 128)
    assert list(output.glob("*.png")), "the contact sheet is written beside the video"
    assert not (output / "server").exists(), "the server's scratch folders stay outside the pack"
