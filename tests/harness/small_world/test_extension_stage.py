"""Stage 3 runs the pack's own nodes in a real server: its first steps give an ExVideo file of the world's length."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from exvideo_core import load_exvideo
from exvideo_core import safetensors_io
from exvideo_harness.small_world import models
from exvideo_harness.small_world.latents import POOL_FRAMES

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> pathlib.Path:
    """Random stage 1 and 2 files in the shipped layout: the stage's plumbing, not its quality."""
    folder = tmp_path_factory.mktemp("weights")
    safetensors_io.save(models.vae_state_dict(models.build_vae()), folder / models.VAE_FILE)
    unet = models.build_unet().model.diffusion_model
    safetensors_io.save({"diffusion_model." + k: v for k, v in unet.state_dict().items()}, folder / models.UNET_FILE)
    return folder


def test_two_steps_through_the_server_export_an_extension(random_weights, tmp_path):
    env = {**os.environ, "EXVIDEO_SMALL_WORLD_WEIGHTS": str(random_weights)}
    command = [sys.executable, "-P", "-m", "exvideo_harness.small_world.train_extension", "--steps", "2",
               "--clips", "2", "--root", str(tmp_path / "server")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    exported = random_weights / models.EXVIDEO_FILE
    weights = load_exvideo(exported)
    assert weights.num_frames == POOL_FRAMES
    entry = json.loads((random_weights / "manifest.json").read_text())[models.EXVIDEO_FILE]
    assert entry["steps"] == 2 and entry["recipe"]["layout"] == "diffsynth" and entry["wall_s_2_cores"] >= 0
    # The clips are the world's, as mp4s in the server's input folder; a second run resumes, so nothing trains.
    clips = sorted((tmp_path / "server" / "input" / "small_world_clips").iterdir())
    assert len(clips) == 2
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-4000:]
    resumed = load_exvideo(exported).state_dict()
    assert resumed.keys() == weights.state_dict().keys()
    assert all(torch.equal(resumed[k], v) for k, v in weights.state_dict().items())
