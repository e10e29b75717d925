"""The small world: deterministic clips whose ground truth matches their pixels."""

import numpy as np
import pytest
import torch

from exvideo_harness.small_world.world import (HEADLIGHT, HELD_OUT_SEEDS, WorldConfig, make_clip, simulate,
                                               training_seed)


def test_a_seed_is_a_clip():
    a, b = make_clip(5, 12), make_clip(5, 12)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, make_clip(6, 12).frames)


def test_a_window_is_the_same_frames_as_the_long_clip():
    whole, window = make_clip(9, 30), make_clip(9, 10, start=17)
    np.testing.assert_array_equal(window.frames, whole.frames[17:27])
    np.testing.assert_array_equal(window.centres, whole.centres[:, 17:27])
    assert window.bounces == tuple(frozenset(t - 17 for t in b if 17 <= t < 27) for b in whole.bounces)


def test_clip_layout_and_ground_truth():
    config = WorldConfig()
    clip = make_clip(3, 16)
    n = len(clip.colours)
    assert config.objects[0] <= n <= config.objects[1]
    assert clip.frames.shape == (16, config.size, config.size, 3) and clip.frames.dtype == np.float32
    assert 0 <= clip.frames.min() and clip.frames.max() <= 1
    assert clip.centres.shape == (n, 16, 2)
    # The background is low-saturation; every disc is drawn in its own colour, half lit at its centre.
    assert np.ptp(clip.background) <= 2 * config.background_tint
    for i in _unoccluded(clip):
        x, y = clip.centres[i, 0]
        lit = HEADLIGHT * (0.5 + 0.5 * _ahead(clip, i, int(x) + 0.5, int(y) + 0.5))
        np.testing.assert_allclose(clip.frames[0, int(y), int(x)], clip.colours[i] * (1 - lit) + lit, atol=1e-5)


def _unoccluded(clip, frame=0):
    centres = clip.centres[:, frame]
    return [i for i in range(len(clip.radii))
            if not any(np.linalg.norm(centres[j] - centres[i]) < clip.radii[i] + clip.radii[j]
                       for j in range(i + 1, len(clip.radii)))]


def _heading(clip, i, frame=0):
    return clip.velocities[i, frame] / np.linalg.norm(clip.velocities[i, frame])


def _ahead(clip, i, x, y, frame=0):
    """How far (x, y) lies ahead of disc i's centre along its heading, in radii."""
    return float(np.dot([x, y] - clip.centres[i, frame], _heading(clip, i, frame)) / clip.radii[i])


@pytest.mark.parametrize("seed", range(4))
def test_a_disc_is_lit_along_its_heading_so_one_frame_shows_where_it_goes(seed):
    clip = make_clip(seed, 12, start=5)
    for i in _unoccluded(clip):
        front, back = (clip.centres[i, 0] + s * 0.7 * clip.radii[i] * _heading(clip, i) for s in (1, -1))
        lightness = [clip.frames[0, int(p[1]), int(p[0])].sum() for p in (front, back)]
        assert lightness[0] > lightness[1] + 0.5 * HEADLIGHT


def test_velocities_are_the_steps_between_bounces():
    clip = make_clip(11, 60)
    steps = np.diff(clip.centres, axis=1)  # step t goes from frame t to t + 1
    for i, bounces in enumerate(clip.bounces):
        for t in range(59):
            if t + 1 not in bounces:
                np.testing.assert_allclose(steps[i, t], clip.velocities[i, t], atol=1e-4)


def test_discs_move_in_straight_lines_between_their_bounces():
    clip = make_clip(11, 60)
    speeds = np.linalg.norm(np.diff(clip.centres, axis=1), axis=-1)
    assert speeds.min() > 0.5  # nothing stands still
    acceleration = np.linalg.norm(np.diff(clip.centres, n=2, axis=1), axis=-1)  # (n, t-2), centred on frame t+1
    for i, bounces in enumerate(clip.bounces):
        near = {f for b in bounces for f in (b - 1, b)}
        straight = [acceleration[i, t - 1] for t in range(1, 59) if t not in near]
        assert max(straight) < 1e-4  # float32 centres
        assert all(acceleration[i, b - 1] > 1e-3 for b in bounces if 1 <= b < 59)


def test_walls_reflect_and_discs_stay_inside():
    centres, _, bounces = simulate(np.array([[20.0, 64.0]]), np.array([[-4.0, 0.0]]), np.array([10.0]), 128, 10)
    # 20 -> 16 -> 12 -> reflected at 10 to 12 (moving right from then on).
    np.testing.assert_allclose(centres[0, :5, 0], [20, 16, 12, 12, 16])
    assert bounces == (frozenset({3}),)
    clip = make_clip(4, 200)
    radii = clip.radii[:, None]
    assert (clip.centres >= radii[..., None] - 1e-4).all() and (clip.centres <= 128 - radii[..., None] + 1e-4).all()


def test_discs_collide_elastically():
    centres, _, bounces = simulate(np.array([[40.0, 64.0], [80.0, 64.0]]), np.array([[3.0, 0.0], [-3.0, 0.0]]),
                                np.array([10.0, 10.0]), 128, 12)
    assert bounces[0] == bounces[1] and len(bounces[0]) == 1
    after = next(iter(bounces[0])) + 1
    # Equal masses head-on: the velocities swap.
    np.testing.assert_allclose(centres[0, after + 1] - centres[0, after], [-3, 0])
    np.testing.assert_allclose(centres[1, after + 1] - centres[1, after], [3, 0])


def test_motion_needs_length():
    """Few bounces in the base's 8 frames, several in the extension's 40."""
    short = np.mean([sum(len(b) for b in make_clip(s, 8).bounces) / len(make_clip(s, 8).bounces) for s in range(40)])
    long = np.mean([sum(len(b) for b in make_clip(s, 40).bounces) / len(make_clip(s, 40).bounces) for s in range(40)])
    assert short < 1.0 and long > 2.0


@pytest.mark.parametrize("seed", range(3))
def test_training_seeds_are_never_held_out(seed):
    assert training_seed(torch.Generator().manual_seed(seed)) >= HELD_OUT_SEEDS


def test_the_fingerprint_follows_the_pixels(monkeypatch):
    """Cached latents are kept under it: a world drawn differently must not reuse another world's."""
    from exvideo_harness.small_world import world

    assert world.fingerprint() == world.fingerprint()
    assert world.fingerprint(WorldConfig(speed=(2.5, 4.0))) != world.fingerprint()
    lit = world.fingerprint()
    monkeypatch.setattr(world, "HEADLIGHT", 0.0)
    assert world.fingerprint() != lit
