"""How the small world is sampled: each model at the motion bucket of the clips it learnt."""

import statistics

import pytest
import torch

from exvideo_core.train.dataset import motion_bucket, motion_score
from exvideo_harness.small_world import generate
from exvideo_harness.small_world.latents import POOL_FRAMES
from exvideo_harness.small_world.train_base import RECIPE
from exvideo_harness.small_world.world import make_clip

MEASURED_CLIPS = 60  # held-out seeds 0-59, as generate.py says


@pytest.mark.parametrize("frames, bucket", [(RECIPE["frames"], generate.BASE_MOTION_BUCKET),
                                            (POOL_FRAMES, generate.EXVIDEO_MOTION_BUCKET)])
def test_sampling_buckets_are_the_medians_of_the_packs_measure(frames, bucket):
    buckets = [motion_bucket(motion_score(torch.from_numpy(make_clip(seed, frames).frames))) for seed in range(MEASURED_CLIPS)]
    assert statistics.median(buckets) == bucket
    assert generate.EXVIDEO_SETTINGS.motion_bucket_id == generate.EXVIDEO_MOTION_BUCKET
