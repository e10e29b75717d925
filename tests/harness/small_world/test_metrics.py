"""The small world's metrics: its own ground truth scores perfectly, broken videos score badly."""

import numpy as np
import pytest

from exvideo_harness.small_world import metrics
from exvideo_harness.small_world.world import HEADLIGHT, WorldConfig, make_clip

FRAMES = 32


@pytest.fixture(scope="module")
def clips():
    return [make_clip(seed, FRAMES) for seed in range(4)]


def test_objects_of_the_first_frame_are_the_worlds(clips):
    for clip in clips:
        objects = metrics.find_objects(clip.frames[0])
        assert len(objects.colours) == len(clip.colours)
        # A disc's mean colour: its own, lit half the headlight on average over its area.
        for colour in clip.colours * (1 - HEADLIGHT / 2) + HEADLIGHT / 2:
            assert np.linalg.norm(objects.colours - colour, axis=1).min() < 0.02
        np.testing.assert_allclose(objects.background, clip.background, atol=1e-6)


def test_tracks_follow_the_world(clips):
    for clip in clips:
        tracks = metrics.track(clip.frames)
        assert tracks.found.all()
        for i, colour in enumerate(metrics.find_objects(clip.frames[0]).colours):
            j = int(np.linalg.norm(clip.colours - colour, axis=1).argmin())
            # Away from occlusions the centroid of the drawn disc is its centre.
            assert np.median(np.linalg.norm(tracks.centres[i] - clip.centres[j], axis=-1)) < 0.5


def test_ground_truth_scores_perfectly(clips):
    for clip in clips:
        report = metrics.measure(clip.frames)
        assert report.persistence == 1.0
        assert report.motion == 1.0
        assert report.drift < 0.01
        slowest, fastest = WorldConfig().speed
        assert slowest - 0.05 <= report.speed <= fastest + 0.05  # centroids of anti-aliased discs


def test_frozen_video_has_no_motion(clips):
    report = metrics.measure(np.repeat(clips[0].frames[:1], FRAMES, axis=0))
    assert report.persistence == 1.0 and report.motion == 0.0 and report.step_change == 0.0


def test_shuffled_video_has_implausible_motion(clips):
    for clip in clips:
        shuffled = clip.frames[np.random.default_rng(0).permutation(FRAMES)]
        assert metrics.measure(shuffled).motion < 0.3


def test_drifting_video_drifts(clips):
    fade = np.linspace(0, 1, FRAMES)[:, None, None, None]
    for clip in clips:
        drifting = clip.frames * (1 - 0.3 * fade) + 0.3 * fade * np.array([0.9, 0.6, 0.1], dtype=np.float32)
        report = metrics.measure(drifting)
        assert report.drift > 0.1
        assert report.background_drift > 0.1


def test_noise_has_no_persistent_objects(clips):
    noise = np.random.default_rng(0).random(clips[0].frames.shape, dtype=np.float32)
    report = metrics.measure(noise)
    assert report.persistence < 0.1 and report.motion < 0.1


def test_lost_objects_lower_persistence(clips):
    clip = clips[0]
    frames = clip.frames.copy()
    frames[FRAMES // 2:] = clip.background  # everything vanishes halfway
    assert metrics.measure(frames).persistence == pytest.approx(0.5)


def test_seamless_joins_look_like_the_inside(clips):
    report = metrics.seams(clips[1].frames, [8, 16, 24])
    assert report.join_persistence == report.inside_persistence == 1.0
    assert abs(report.join_change - report.inside_change) <= 3 * report.inside_spread + 1e-3
    assert abs(report.join_colour_change - report.inside_colour_change) <= 3 * report.inside_colour_spread + 1e-3


def test_a_jump_at_a_join_is_seen(clips):
    # Two clips butted together: at frame 16 everything jumps to another clip's positions and colours.
    jumped = np.concatenate([clips[1].frames[:16], clips[2].frames[16:]])
    report = metrics.seams(jumped, [16])
    assert report.change_ratio > 3
    assert report.join_persistence < report.inside_persistence


def test_a_colour_jump_at_a_join_is_seen_apart_from_motion(clips):
    """A continuation that drifts in colour: from frame 16 on every colour is tinted, while motion goes on."""
    frames = clips[1].frames.copy()
    frames[16:] = 0.9 * frames[16:] + 0.1 * np.array([0.9, 0.6, 0.1], dtype=np.float32)
    tinted, clean = metrics.seams(frames, [16]), metrics.seams(clips[1].frames, [16])
    assert tinted.join_colour_change > tinted.inside_colour_change + 3 * tinted.inside_colour_spread
    assert clean.join_colour_change <= clean.inside_colour_change + 3 * clean.inside_colour_spread
    assert tinted.join_persistence == 1.0
