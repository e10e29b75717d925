"""Every shipped example workflow runs end to end through the real server (small sizes, random weights)."""

import pathlib
import shutil

import pytest

from exvideo_core.video_io import read_video
from fixtures import workflows
from fixtures.cache import REPO_ROOT
from fixtures.exvideo_files import FULL, exvideo_checkpoint_path
from fixtures.svd_checkpoint import svd_xt_checkpoint_path

pytestmark = [pytest.mark.server, pytest.mark.full_size]

WORKFLOW_DIR = REPO_ROOT / "example_workflows"
FRAMES, SIZE, STEPS = 4, 128, 2
# Test-sized settings per node type; everything else runs as shipped.
SMALL = {
    "ExVideoSampler": {"width": SIZE, "height": SIZE, "frames": FRAMES, "steps": STEPS},
    "SVD_img2vid_Conditioning": {"width": SIZE, "height": SIZE, "video_frames": FRAMES},
    "KSampler": {"steps": STEPS},
    "ExVideoRefine": {"width": SIZE, "height": SIZE, "steps": STEPS},
    "ExVideoContinue": {"frames": FRAMES, "overlap_frames": 2, "steps": STEPS},
}
# Frames each workflow writes at the sizes above.
EXPECTED_FRAMES = {"exvideo_256_frames_continuation": FRAMES + 2 * (FRAMES - 2)}


@pytest.fixture(scope="module")
def models(comfy_server):
    """The random-weight SVD-XT and ExVideo files, under the names the workflows use."""
    comfy_server.install_model("checkpoints", svd_xt_checkpoint_path(), "svd_xt.safetensors")
    comfy_server.install_model("exvideo", exvideo_checkpoint_path(16, FULL), "ExVideo-SVD-128f-v1.safetensors")
    shutil.copy(WORKFLOW_DIR / "exvideo_example.png", comfy_server.input_dir / "exvideo_example.png")
    yield
    comfy_server.client.free_memory()


def small_prompt(path: pathlib.Path, object_info: dict) -> dict:
    prompt = workflows.ui_to_api(workflows.load(path), object_info)
    for node in prompt.values():
        node["inputs"].update(SMALL.get(node["class_type"], {}))
    return prompt


TESTED_HERE = ["exvideo_image_to_video", "exvideo_image_to_video_native_nodes", "exvideo_two_pass_refine",
               "exvideo_256_frames_continuation"]
TESTED_ELSEWHERE: set[str] = set()  # workflows whose end-to-end test lives in another module


@pytest.mark.parametrize("name", TESTED_HERE)
def test_example_workflow_writes_a_video(comfy_server, models, name):
    client = comfy_server.client
    prompt = small_prompt(WORKFLOW_DIR / f"{name}.json", client.object_info())
    outputs = client.run(prompt, timeout=900)
    (video,) = [f for f in comfy_server.output_files(outputs) if f.suffix == ".mp4"]
    frames, fps = read_video(video)
    assert frames.shape == (EXPECTED_FRAMES.get(name, FRAMES), SIZE, SIZE, 3)
    assert fps == pytest.approx(30)
    client.free_memory()


def test_every_shipped_workflow_is_tested():
    shipped = {p.stem for p in WORKFLOW_DIR.glob("*.json")}
    assert shipped, "no workflows found"
    assert shipped <= set(TESTED_HERE) | TESTED_ELSEWHERE, shipped - set(TESTED_HERE) - TESTED_ELSEWHERE
