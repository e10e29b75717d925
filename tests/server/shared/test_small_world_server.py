"""The long-video options through the real server, on the project's small world (its shipped weights)."""

import re

import numpy as np
import pytest
import safetensors.torch
from PIL import Image

from exvideo_core.video_io import read_video
from exvideo_harness.small_world import generate, models
from exvideo_harness.small_world.world import make_clip

pytestmark = pytest.mark.server

FRAMES, STEPS = 8, 6


@pytest.fixture(scope="module")
def world(comfy_server) -> dict:
    """The nodes every prompt starts with: the small world's SVD, its extension applied, a held-out first frame."""
    extension = comfy_server.install_model("exvideo", models.weights_dir() / models.EXVIDEO_FILE)
    frame = (generate.first_frame(0)[0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(frame).save(comfy_server.input_dir / "small_world_0.png")
    return {
        "world": {"class_type": "ExVideoHarnessSmallWorld", "inputs": {}},
        "exvideo": {"class_type": "ApplyExVideo", "inputs": {"model": ["world", 0], "exvideo_name": extension,
                                                             "frames": 0, "frame_chunk": -1}},
        "image": {"class_type": "LoadImage", "inputs": {"image": "small_world_0.png"}},
    }


def sampled(comfy_server, world: dict, model: list, extra: dict, prefix: str):
    """The latent ExVideo Image to Video makes from `model` (a link), saved by native Save Latent."""
    settings = {**vars(generate.EXVIDEO_SETTINGS), "steps": STEPS, "seed": 5}
    prompt = {**world, **extra,
              "sample": {"class_type": "ExVideoSampler", "inputs": {
                  "model": model, "clip_vision": ["world", 1], "vae": ["world", 2], "image": ["image", 0],
                  "width": 128, "height": 128, "frames": FRAMES, **settings}},
              "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sample", 0],
                                                              "filename_prefix": f"small_world/{prefix}"}}}
    comfy_server.client.run(prompt, timeout=600)
    (saved,) = (comfy_server.output_dir / "small_world").glob(f"{prefix}_*.latent")
    return safetensors.torch.load_file(saved)["latent_tensor"]


def deep_cache(interval: int) -> dict:
    return {"cache": {"class_type": "ExVideoDeepCache",
                      "inputs": {"model": ["exvideo", 0], "interval": interval, "depth": 1}}}


def test_deep_cache_runs_fewer_blocks_and_off_is_bit_identical(comfy_server, world):
    plain = sampled(comfy_server, world, ["exvideo", 0], {}, "uncached")
    off = sampled(comfy_server, world, ["cache", 0], deep_cache(1), "cache_off")
    assert plain.isfinite().all() and plain.shape[0] == FRAMES
    assert (off == plain).all()

    cached = sampled(comfy_server, world, ["cache", 0], deep_cache(3), "cache_3")
    # cond and uncond run as one batch: 6 calls, the whole UNet at the first and the fourth.
    report = re.findall(r"ExVideo Deep Cache \(interval 3, depth 1\): (\d+) full and (\d+) cached UNet calls, "
                        r"([\d.]+)x fewer block evaluations", comfy_server.log_text())
    assert report[-1][:2] == ("2", "4") and float(report[-1][2]) > 2.0
    assert cached.isfinite().all() and not (cached == plain).all()
    assert (cached - plain).abs().mean() < plain.abs().mean()


def test_keyframes_end_at_their_image_and_a_loop_comes_back(comfy_server, world):
    """From a held-out clip's first frame to its last: the video's last frame is that image, not another clip's."""
    truth = make_clip(0, FRAMES).frames
    Image.fromarray((truth[-1] * 255).round().astype(np.uint8)).save(comfy_server.input_dir / "small_world_0_end.png")
    settings = {**vars(generate.EXVIDEO_SETTINGS), "steps": STEPS, "seed": 5}
    prompt = {**world,
              "end": {"class_type": "LoadImage", "inputs": {"image": "small_world_0_end.png"}},
              "batch": {"class_type": "ImageBatch", "inputs": {"image1": ["image", 0], "image2": ["end", 0]}},
              "keyframes": {"class_type": "ExVideoKeyframes", "inputs": {
                  "model": ["exvideo", 0], "clip_vision": ["world", 1], "vae": ["world", 2],
                  "keyframes": ["batch", 0], "loop": False, "width": 128, "height": 128, "frames": FRAMES,
                  **settings}},
              "decode": {"class_type": "ExVideoTemporalDecode", "inputs": {
                  "vae": ["world", 2], "samples": ["keyframes", 0], "window_frames": FRAMES, "overlap_frames": 0}},
              "preview": {"class_type": "ExVideoSaveMP4", "inputs": {
                  "images": ["decode", 0], "fps": 12.0, "filename_prefix": "small_world/keyframes",
                  "contact_sheet": False}}}
    outputs = comfy_server.client.run(prompt, timeout=600)
    (video,) = [f for f in comfy_server.output_files(outputs) if f.suffix == ".mp4"]
    frames = read_video(video)[0].numpy()
    assert frames.shape[0] == FRAMES
    to_end, to_start = np.abs(frames[-1] - truth[-1]).mean(), np.abs(frames[-1] - truth[0]).mean()
    # The last frame is the end image, as closely as a first frame is the start image.
    assert to_end < to_start and to_end <= 1.5 * np.abs(frames[0] - truth[0]).mean() + 0.01
