"""Encoding clips with ComfyUI's VAE and CLIP vision, and the cache file."""

import pytest
import torch

from exvideo_core import CheckpointError
from exvideo_core.safetensors_io import save
from exvideo_core.train import (DatasetError, VideoClipDataset, encode_clips, load_clip_cache, motion_bucket,
                                motion_score, save_clip_cache)
from exvideo_core.train.dataset import MEASURE_MOTION
from exvideo_harness.train_data import moving_square_video, tiny_clip_vision, tiny_vae, training_clips


def test_clips_hold_latents_clip_embedding_and_motion_bucket():
    clips = training_clips()
    assert len(clips) == 2
    for clip in clips:
        assert clip.latents.shape == (8, 4, 16, 16) and clip.latents.dtype == torch.float32
        assert clip.image_embeds.shape == (1, 64)
        assert 0 <= clip.motion_bucket_id <= 127 and clip.motion_bucket_id == motion_bucket(clip.motion_score)
    assert not torch.equal(clips[0].latents, clips[1].latents)


def test_latents_are_the_vaes_unscaled_frame_latents_and_the_embedding_is_of_frame_0():
    video = moving_square_video(8)
    (clip,) = encode_clips(VideoClipDataset.from_images(video, 8, 128, 128), tiny_vae(), tiny_clip_vision())
    with torch.no_grad():
        alone = tiny_vae().encode(video[3:4])
        embeds = tiny_clip_vision().encode_image(video[:1]).image_embeds
    # Alone or in a batch, the encoder differs only by fp32 summation order.
    assert torch.allclose(clip.latents[3:4], alone, atol=1e-3)
    assert torch.allclose(clip.image_embeds, embeds, atol=1e-6)
    assert clip.motion_score == pytest.approx(motion_score(video))


def test_fixed_motion_bucket():
    dataset = VideoClipDataset.from_images(moving_square_video(8, size=64), 8, 128, 128)
    (clip,) = encode_clips(dataset, tiny_vae(), tiny_clip_vision(), motion_bucket_id=127)
    assert clip.motion_bucket_id == 127


def test_minus_one_measures_and_zero_is_bucket_zero_as_in_the_samplers():
    dataset = VideoClipDataset.from_images(moving_square_video(8, size=64), 8, 128, 128)
    (measured,) = encode_clips(dataset, tiny_vae(), tiny_clip_vision(), motion_bucket_id=MEASURE_MOTION)
    assert MEASURE_MOTION == -1 and measured.motion_bucket_id == motion_bucket(measured.motion_score) > 0
    (still,) = encode_clips(dataset, tiny_vae(), tiny_clip_vision(), motion_bucket_id=0)
    assert still.motion_bucket_id == 0


def test_a_setting_below_minus_one_is_refused_before_any_clip_is_read():
    class Unread:
        def __iter__(self):
            raise AssertionError("a clip was read")

    with pytest.raises(DatasetError, match=r"motion_bucket_id must be -1 \(measure each clip's motion\) or a "
                                           r"bucket of 0 or more, got -2"):
        encode_clips(Unread(), tiny_vae(), tiny_clip_vision(), motion_bucket_id=-2)


def test_cache_round_trip(tmp_path):
    clips = training_clips()
    save_clip_cache(clips, tmp_path / "clips.safetensors")
    loaded = load_clip_cache(tmp_path / "clips.safetensors")
    assert [c.name for c in loaded] == [c.name for c in clips]
    for a, b in zip(loaded, clips):
        assert torch.equal(a.latents, b.latents) and torch.equal(a.image_embeds, b.image_embeds)
        assert (a.motion_bucket_id, a.motion_score) == (b.motion_bucket_id, b.motion_score)


def test_other_files_are_not_taken_for_a_cache(tmp_path):
    save({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not an ExVideo clip cache"):
        load_clip_cache(tmp_path / "other.safetensors")
