"""The deep cache and keyframes through the real server, on the harness's small random SVD.

Their quality is measured on the small world (benchmarks/sampling_cache.py,
benchmarks/long_video_control.py); here the server runs them as a user's
graph does, with the full-size checkpoint's VAE and CLIP vision.
"""

import re
import shutil

import pytest
import safetensors.torch

from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.svd_checkpoint import svd_xt_checkpoint_path

pytestmark = [pytest.mark.server, pytest.mark.full_size]

SIZE, FRAMES, STEPS = 128, 4, 6


@pytest.fixture(scope="module")
def graph(comfy_server) -> dict:
    """The nodes every prompt starts with: the small SVD, the checkpoint's encoders, the example image."""
    checkpoint = comfy_server.install_model("checkpoints", svd_xt_checkpoint_path(), "svd_xt.safetensors")
    shutil.copy(REPO_ROOT / "example_workflows" / "exvideo_example.png", comfy_server.input_dir)
    return {
        "2": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": checkpoint}},
        "small": {"class_type": "ExVideoHarnessSmallSVD", "inputs": {"seed": 0}},
        "image": {"class_type": "LoadImage", "inputs": {"image": "exvideo_example.png"}},
    }


SETTINGS = {"fps": 30, "motion_bucket_id": 127, "augmentation_level": 0.02, "min_cfg": 1.0, "cfg": 2.0,
            "steps": STEPS, "sampler_name": "euler", "scheduler": "karras", "seed": 5}


def saved_latent(comfy_server, prompt: dict, source: list, prefix: str):
    prompt = {**prompt, "save": {"class_type": "SaveLatent", "inputs": {"samples": source,
                                                                        "filename_prefix": f"long_video/{prefix}"}}}
    comfy_server.client.run(prompt, timeout=600)
    (saved,) = (comfy_server.output_dir / "long_video").glob(f"{prefix}_*.latent")
    return safetensors.torch.load_file(saved)["latent_tensor"]


def sampled(comfy_server, graph: dict, model: list, extra: dict, prefix: str):
    prompt = {**graph, **extra, "sample": {"class_type": "ExVideoSampler", "inputs": {
        "model": model, "clip_vision": ["2", 1], "vae": ["2", 2], "image": ["image", 0], "width": SIZE,
        "height": SIZE, "frames": FRAMES, **SETTINGS}}}
    return saved_latent(comfy_server, prompt, ["sample", 0], prefix)


def deep_cache(interval: int) -> dict:
    return {"cache": {"class_type": "ExVideoDeepCache", "inputs": {"model": ["small", 0], "interval": interval,
                                                                   "depth": 1}}}


def test_deep_cache_runs_fewer_blocks_and_off_is_bit_identical(comfy_server, graph):
    plain = sampled(comfy_server, graph, ["small", 0], {}, "uncached")
    off = sampled(comfy_server, graph, ["cache", 0], deep_cache(1), "cache_off")
    assert plain.isfinite().all() and plain.shape[0] == FRAMES
    assert (off == plain).all()

    cached = sampled(comfy_server, graph, ["cache", 0], deep_cache(3), "cache_3")
    # cond and uncond run as one batch: 6 calls, the whole UNet at the first and the fourth.
    report = re.findall(r"ExVideo Deep Cache \(interval 3, depth 1\): (\d+) full and (\d+) cached UNet calls, "
                        r"([\d.]+)x fewer block evaluations", comfy_server.log_text())
    assert report[-1][:2] == ("2", "4") and float(report[-1][2]) > 2.0
    assert cached.isfinite().all() and not (cached == plain).all()


@pytest.mark.parametrize("loop, images, frames", [(False, 2, FRAMES), (True, 1, FRAMES - 1)],
                         ids=["start_to_end", "loop"])
def test_keyframes_node_samples_through_the_server(comfy_server, graph, loop, images, frames):
    batch = {"batch": {"class_type": "ImageBatch", "inputs": {"image1": ["image", 0], "image2": ["image", 0]}}}
    prompt = {**graph, **(batch if images == 2 else {}),
              "keyframes": {"class_type": "ExVideoKeyframes", "inputs": {
                  "model": ["small", 0], "clip_vision": ["2", 1], "vae": ["2", 2],
                  "keyframes": ["batch" if images == 2 else "image", 0], "loop": loop, "width": SIZE,
                  "height": SIZE, "frames": FRAMES, **SETTINGS}}}
    samples = saved_latent(comfy_server, prompt, ["keyframes", 0], f"keyframes_{loop}")
    assert samples.shape == (frames, 4, SIZE // 8, SIZE // 8) and samples.isfinite().all()
