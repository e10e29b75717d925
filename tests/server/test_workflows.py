"""Every shipped example workflow runs end to end through the real server (small sizes, random weights).

The server starts with an empty input folder and no test puts the example
image there: the pack does when it loads, as for a user who has just
installed it. The workflows run as saved but for SMALL (sizes and steps);
the model files are installed under the names they select.
"""

import math
import pathlib

import pytest

from exvideo_core import load_exvideo
from exvideo_core.train import load_state
from exvideo_core.video_io import read_video, write_mp4
from exvideo_harness import workflows
from exvideo_harness.workflows import FRAMES, SIZE, SMALL, STEPS
from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.train_data import moving_square_video

pytestmark = [pytest.mark.server, pytest.mark.full_size]

WORKFLOW_DIR = REPO_ROOT / "example_workflows"
SAMPLE_IMAGE = "exvideo_example.png"
# Frames each workflow writes at the sizes above.
EXPECTED_FRAMES = {"exvideo_256_frames_continuation": FRAMES + 2 * (FRAMES - 2)}


def small_prompt(path: pathlib.Path, object_info: dict) -> dict:
    prompt = workflows.ui_to_api(workflows.load(path), object_info)
    for node in prompt.values():
        node["inputs"].update(SMALL.get(node["class_type"], {}))
    return prompt


TESTED_HERE = ["exvideo_image_to_video", "exvideo_image_to_video_native_nodes", "exvideo_two_pass_refine",
               "exvideo_256_frames_continuation"]
TRAINING = "exvideo_post_tuning"
TESTED_ELSEWHERE: set[str] = set()  # workflows whose end-to-end test lives in another module


def test_loading_the_pack_put_the_example_image_into_the_empty_input_folder(comfy_server):
    # First in the module: before the training test adds its videos.
    assert sorted(p.name for p in comfy_server.input_dir.iterdir()) == [SAMPLE_IMAGE]
    assert (comfy_server.input_dir / SAMPLE_IMAGE).read_bytes() == (WORKFLOW_DIR / SAMPLE_IMAGE).read_bytes()
    assert f"put the example input {SAMPLE_IMAGE} into" in comfy_server.log_text()
    assert SAMPLE_IMAGE in comfy_server.client.object_info("LoadImage")["LoadImage"]["input"]["required"]["image"][0]


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


def test_the_post_tuning_workflow_trains_then_samples_with_the_result(comfy_server, models):
    client = comfy_server.client
    videos = comfy_server.input_dir / "exvideo_training_videos"
    videos.mkdir(exist_ok=True)
    write_mp4(moving_square_video(FRAMES + 2, size=SIZE), videos / "square.mp4", fps=30, crf=0)
    prompt = small_prompt(WORKFLOW_DIR / f"{TRAINING}.json", client.object_info())
    outputs = client.run(prompt, timeout=1800)
    files = comfy_server.output_files(outputs)
    (video,) = [f for f in files if f.suffix == ".mp4"]
    assert read_video(video)[0].shape == (FRAMES, SIZE, SIZE, 3)
    (plot,) = [f for f in files if f.suffix == ".png" and "contact" not in f.name]
    assert plot.stat().st_size > 0
    (extension,) = (comfy_server.output_dir / "exvideo").glob("my_extension*.safetensors")
    trained = load_exvideo(extension)
    assert trained.num_frames == FRAMES and trained.metadata["exvideo.training_steps"] == str(STEPS)
    state = load_state(comfy_server.output_dir / "exvideo_training" / "my_extension.state.safetensors")
    assert state.step == STEPS and all(math.isfinite(loss) for loss in state.losses)
    client.free_memory()


def test_every_shipped_workflow_is_tested():
    shipped = {p.stem for p in WORKFLOW_DIR.glob("*.json")}
    assert shipped, "no workflows found"
    tested = set(TESTED_HERE) | {TRAINING} | TESTED_ELSEWHERE
    assert shipped <= tested, shipped - tested
