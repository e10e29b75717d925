"""The shipped small world makes videos: from a held-out first frame, discs that the tracker follows as they move.

The floors sit below what benchmarks/small_world.py measured for the shipped
weights (README), so that this guards the files and the sampling path, not
the last digit.
"""

import dataclasses

import pytest
import torch

from exvideo_harness.small_world import generate, metrics
from exvideo_harness.small_world.latents import POOL_FRAMES
from exvideo_harness.small_world.scoring import load_world

pytestmark = pytest.mark.usefixtures("unload_after")

PERSISTENCE_FLOOR = 0.5
MOTION_FLOOR = 0.5


def test_exvideo_makes_40_frames_of_discs_that_persist_and_move():
    world = load_world(toy=False)
    with torch.inference_mode():
        samples = generate.image_to_video(world.exvideo, world.encoders, generate.first_frame(0), POOL_FRAMES,
                                          dataclasses.replace(generate.EXVIDEO_SETTINGS, seed=1))
        report = metrics.measure(generate.decode(world.encoders, samples))
    assert report.objects >= 2
    assert report.persistence >= PERSISTENCE_FLOOR and report.motion >= MOTION_FLOOR, report
