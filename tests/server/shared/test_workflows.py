"""The post-tuning template end to end through the API (small sizes, random weights).

tests/server/test_frontend.py runs every other template from the browser's Run
button. This one trains the full-size UNet, which after that module's runs,
beside the browser, outgrew a 24 GB machine; here it runs on the shared server
(conftest.py), with no browser. It runs as saved but for SMALL (sizes and
steps), on a video folder put into input/ as a user would.
"""

import math

import pytest

from exvideo_core import load_exvideo
from exvideo_core.train import load_state
from exvideo_core.video_io import read_video, write_mp4
from exvideo_harness import workflows
from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.train_data import moving_square_video
from exvideo_harness.workflows import FRAMES, SIZE, SMALL, STEPS

pytestmark = [pytest.mark.server, pytest.mark.full_size]

TEMPLATE = REPO_ROOT / "example_workflows" / "exvideo_post_tuning.json"
TRAINING_VIDEOS = "exvideo_training_videos"  # the template's Training Clips folder


def test_the_post_tuning_template_trains_then_samples_with_the_result(comfy_server, models):
    client = comfy_server.client
    videos = comfy_server.input_dir / TRAINING_VIDEOS
    videos.mkdir()
    write_mp4(moving_square_video(FRAMES + 2, size=SIZE), videos / "square.mp4", fps=30, crf=0)
    prompt = workflows.ui_to_api(workflows.load(TEMPLATE), client.object_info())
    for node in prompt.values():
        node["inputs"].update(SMALL.get(node["class_type"], {}))
    files = comfy_server.output_files(client.run(prompt, timeout=1800))

    (video,) = [f for f in files if f.suffix == ".mp4"]
    frames, fps = read_video(video)
    assert frames.shape == (FRAMES, SIZE, SIZE, 3) and fps == pytest.approx(30)
    (plot,) = [f for f in files if f.suffix == ".png" and "contact" not in f.name]
    assert plot.stat().st_size > 0
    (extension,) = (comfy_server.output_dir / "exvideo").glob("my_extension*.safetensors")
    trained = load_exvideo(extension)
    assert trained.num_frames == FRAMES and trained.metadata["exvideo.training_steps"] == str(STEPS)
    state = load_state(comfy_server.output_dir / "exvideo_training" / "my_extension.state.safetensors")
    assert state.step == STEPS and all(math.isfinite(loss) for loss in state.losses)
