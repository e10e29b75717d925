"""Keyframes: the fused guider runs the native sampler as Image to Video does, and segments join on their keyframes."""

import dataclasses

import pytest
import torch

from exvideo_core import apply_exvideo, keyframes
from exvideo_core.errors import InputError
from exvideo_core.keyframes import KeyframeVideo, keyframe_video, sample_between
from exvideo_core.sampling import SamplingSettings, image_to_video_conditioning, sample_video

pytestmark = pytest.mark.usefixtures("unload_after")

SIZE, FRAMES = 128, 4
SETTINGS = SamplingSettings(steps=3, min_cfg=1.0, cfg=2.5, seed=4)


@pytest.fixture(scope="module")
def exvideo(base, weights):
    return apply_exvideo(base, weights)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, SIZE, SIZE, 3, generator=g)


def conditioning(clip_vision, vae, image, frames=FRAMES):
    return image_to_video_conditioning(clip_vision, vae, image[None], SIZE, SIZE, frames, SETTINGS)


@pytest.mark.parametrize("sampler_name, scheduler", [("euler", "karras"), ("dpmpp_2m", "normal")])
def test_all_weight_on_the_start_is_image_to_video(exvideo, clip_vision, vae, images, monkeypatch, sampler_name,
                                                   scheduler):
    """The guider's sigmas, noise, CFG and sampler are Image to Video's: with the end's weight at 0 they agree."""
    settings = dataclasses.replace(SETTINGS, sampler_name=sampler_name, scheduler=scheduler)
    positive, negative, latent = conditioning(clip_vision, vae, images[0])
    expected = sample_video(exvideo, positive, negative, latent, settings)["samples"]
    monkeypatch.setattr(keyframes, "start_weights", torch.ones)
    end = conditioning(clip_vision, vae, images[1])[:2]
    torch.testing.assert_close(sample_between(exvideo, (positive, negative), end, latent, settings), expected)


def test_the_end_path_decides_the_last_frame(exvideo, clip_vision, vae, images):
    start, latent = conditioning(clip_vision, vae, images[0])[:2], conditioning(clip_vision, vae, images[0])[2]
    one = sample_between(exvideo, start, conditioning(clip_vision, vae, images[1])[:2], latent, SETTINGS)
    other = sample_between(exvideo, start, conditioning(clip_vision, vae, images[2])[:2], latent, SETTINGS)
    assert not torch.allclose(one[-1], other[-1], atol=1e-3)


def test_segments_join_on_their_keyframes_and_a_loop_drops_its_repeated_frame(exvideo, clip_vision, vae, images,
                                                                               monkeypatch):
    calls = []
    real = keyframes.sample_between

    def spy(model, start, end, latent, settings, callback=None):
        calls.append(settings.seed)
        return real(model, start, end, latent, settings, callback)

    monkeypatch.setattr(keyframes, "sample_between", spy)
    through = keyframe_video(exvideo, clip_vision, vae, images, SIZE, SIZE, KeyframeVideo(FRAMES), SETTINGS)
    assert through["samples"].shape[0] == 2 * FRAMES - 1 and calls == [4, 5]
    calls.clear()
    loop = keyframe_video(exvideo, clip_vision, vae, images[:2], SIZE, SIZE, KeyframeVideo(FRAMES, loop=True),
                          SETTINGS)
    assert loop["samples"].shape[0] == 2 * FRAMES - 2 and calls == [4, 5]
    calls.clear()
    single = keyframe_video(exvideo, clip_vision, vae, images[:1], SIZE, SIZE, KeyframeVideo(FRAMES, loop=True),
                            SETTINGS)
    assert single["samples"].shape[0] == FRAMES - 1 and calls == [4]


def test_one_keyframe_without_loop_and_short_segments_are_refused(images):
    with pytest.raises(InputError, match="at least two images"):
        KeyframeVideo(FRAMES).segments(images[:1])
    with pytest.raises(InputError, match="at least 3 frames"):
        KeyframeVideo(2)
