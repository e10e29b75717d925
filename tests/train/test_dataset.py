"""VideoClipDataset: windows, stride, resize + crop, skipping and errors; motion score and bucket."""

import logging
import math

import pytest
import torch

from exvideo_core.train import DatasetError, VideoClipDataset, encode_clips, motion_bucket, motion_score
from exvideo_core.train.dataset import MAX_MOTION_BUCKET, MOTION_THRESHOLDS, resize_center_crop
from exvideo_core.video_io import write_mp4
from exvideo_harness.train_data import moving_square_video


def test_images_give_consecutive_windows_at_the_stride():
    video = torch.arange(24, dtype=torch.float32).reshape(24, 1, 1, 1).expand(24, 16, 16, 3) / 24
    clips = list(VideoClipDataset.from_images(video, 4, 128, 128, frame_stride=2, clips_per_video=3))
    assert [c.name for c in clips] == ["images0@0", "images0@8", "images0@16"]
    assert [round(v * 24) for v in clips[1].frames[:, 0, 0, 0].tolist()] == [8, 10, 12, 14]
    assert all(c.frames.shape == (4, 128, 128, 3) for c in clips)


def test_resize_and_center_crop():
    frames = torch.zeros(1, 64, 128, 3)
    frames[:, :, 32:96] = 1.0  # the central square of a 2:1 frame
    out = resize_center_crop(frames, 32, 32)
    assert out.shape == (1, 32, 32, 3) and out.min() > 0.99
    assert resize_center_crop(torch.rand(2, 48, 64, 4), 24, 16).shape == (2, 16, 24, 4)


def test_too_short_images_are_refused():
    with pytest.raises(DatasetError, match="10 frames, 5 at stride 2: fewer than the 8"):
        VideoClipDataset.from_images(torch.rand(10, 16, 16, 3), 8, 128, 128, frame_stride=2)


@pytest.mark.parametrize("width, height, problem", [(132, 128, "multiples of 8"), (20, 16, "multiples of 8"),
                                                     (64, 64, "at least 128"), (128, 120, "at least 128")])
def test_sizes_the_model_cannot_use_are_refused(width, height, problem):
    """The rule the CLI and the Trainer hold too (constraints.MIN_PIXELS): refused before any clip is read."""
    with pytest.raises(DatasetError, match=problem):
        VideoClipDataset.from_images(torch.rand(8, 16, 16, 3), 4, width, height)


def test_sizes_off_the_recommended_multiple_are_allowed_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        VideoClipDataset.from_images(torch.rand(8, 16, 16, 3), 4, 136, 128)
    assert "not a multiple of 64" in caplog.text and "e.g. 128x128" in caplog.text


def test_folder_skips_short_and_broken_videos_with_warnings(tmp_path, caplog):
    write_mp4(moving_square_video(12, size=64), tmp_path / "long.mp4", fps=30)
    write_mp4(moving_square_video(3, size=64), tmp_path / "short.mp4", fps=30)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "notes.txt").write_text("ignored")
    dataset = VideoClipDataset.from_folder(tmp_path, 6, 128, 128, clips_per_video=4)
    with caplog.at_level(logging.WARNING):
        clips = list(dataset)
    assert [c.name for c in clips] == ["long.mp4@0", "long.mp4@6"]
    assert clips[0].frames.shape == (6, 128, 128, 3)
    # The square moves right: the bright mass of the last frame is right of the first's.
    columns = torch.arange(128.0)
    centre = [(f.mean(dim=(0, 2)) * columns).sum() / f.mean(dim=(0, 2)).sum() for f in clips[0].frames[[0, -1]]]
    assert centre[1] > centre[0] + 2
    assert "skipping short.mp4: it has 3 frames" in caplog.text
    assert "skipping broken.mp4" in caplog.text


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "readme.txt").write_text("no videos")
    with pytest.raises(DatasetError, match="holds no videos"):
        VideoClipDataset.from_folder(tmp_path, 8, 128, 128)


def test_a_dataset_without_usable_clips_is_a_clear_error(tmp_path):
    write_mp4(moving_square_video(3, size=32), tmp_path / "short.mp4", fps=30)
    dataset = VideoClipDataset.from_folder(tmp_path, 8, 128, 128)
    with pytest.raises(DatasetError, match="no training clip could be made"):
        encode_clips(dataset, vae=None, clip_vision=None)


def test_motion_score_is_the_mean_temporal_std_of_the_signed_pixels():
    still = torch.full((5, 8, 8, 3), 0.3)
    assert motion_score(still) == 0.0 and motion_bucket(0.0) == 0
    flicker = torch.zeros(4, 8, 8, 3)
    flicker[1::2] = 1.0  # [-1, 1] pixels alternating: unbiased std over 4 frames = sqrt(4/3)
    assert motion_score(flicker) == pytest.approx((4 / 3) ** 0.5)


def diffsynth_bucket(score: float) -> int:
    """MotionBucketManager.get_bucket_id of DiffSynth's examples/ExVideo/ExVideo_svd_train.py, as it reads."""
    for bucket_id in range(len(MOTION_THRESHOLDS) - 1):
        if MOTION_THRESHOLDS[bucket_id + 1] > score:
            return bucket_id
    return len(MOTION_THRESHOLDS) - 1


def test_the_table_is_diffsynths_128_thresholds():
    assert len(MOTION_THRESHOLDS) == 128 and MAX_MOTION_BUCKET == 127
    assert list(MOTION_THRESHOLDS) == sorted(set(MOTION_THRESHOLDS))
    # Spot checks against MotionBucketManager.thresholds: its ends, and buckets 8, 64 and 120.
    assert (MOTION_THRESHOLDS[0], MOTION_THRESHOLDS[1], MOTION_THRESHOLDS[-1]) == (0.0, 0.012205946, 0.440871328)
    assert (MOTION_THRESHOLDS[8], MOTION_THRESHOLDS[64], MOTION_THRESHOLDS[120]) == (0.028277775, 0.133417681,
                                                                                     0.332138240)


def test_every_bucket_starts_at_its_threshold_as_in_diffsynth():
    for bucket, threshold in enumerate(MOTION_THRESHOLDS):
        assert motion_bucket(threshold) == bucket == diffsynth_bucket(threshold)
        if bucket:
            below = math.nextafter(threshold, 0.0)
            assert motion_bucket(below) == bucket - 1 == diffsynth_bucket(below)
    assert motion_bucket(0.5) == 127 and motion_bucket(-0.1) == 0 == diffsynth_bucket(-0.1)
    for score in torch.linspace(0, 0.5, 2001).tolist():
        assert motion_bucket(score) == diffsynth_bucket(score), score


@pytest.mark.parametrize("score, bucket", [(0.02025, 3), (0.05, 19), (0.22915, 99), (0.3865, 124)])
def test_scores_between_the_old_anchors_get_the_tables_bucket(score, bucket):
    """Midway between two of the 17 thresholds the interpolation used, it was one bucket off the table."""
    assert motion_bucket(score) == bucket == diffsynth_bucket(score)


def test_clips_shorter_than_the_positional_conv_allows_are_refused():
    """The dataset, the CLI (which builds one) and the node's widget agree on the smallest clip."""
    import importlib

    from exvideo_core.constraints import MIN_FRAMES
    from exvideo_harness.pack import load_pack_nodes

    frames = torch.rand(6, 128, 128, 3)
    with pytest.raises(DatasetError, match=f"at least {MIN_FRAMES}"):
        VideoClipDataset([frames], num_frames=MIN_FRAMES - 1, width=128, height=128)
    assert len(list(VideoClipDataset([frames], num_frames=MIN_FRAMES, width=128, height=128))) >= 1
    train_nodes = importlib.import_module(f"{load_pack_nodes().__name__}.nodes_train")
    (frames_input,) = [i for i in train_nodes.ExVideoTrainingClips.define_schema().inputs if i.id == "frames"]
    assert frames_input.min == MIN_FRAMES
