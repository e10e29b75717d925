"""Continuing a video clip by clip on the small random SVD model: carried frames, lengths, order, join metric."""

import importlib

import pytest
import torch
from einops import rearrange, repeat

import comfy.model_management
import comfy.sample

from exvideo_core.continuation import (LAST_FRAME_DECODE_CONTEXT, carry_frames, continue_video, join_clips,
                                       join_jump)
from exvideo_core.errors import ExVideoError
from exvideo_core.sampling import SamplingSettings, image_to_video_conditioning, with_linear_cfg
from exvideo_harness.clip_vision import StubClipVision
from exvideo_harness.pack import load_pack_nodes

PREVIOUS, FRAMES, OVERLAP, LATENT_HW = 10, 5, 2, 8


def latent(frames: int, seed: int) -> torch.Tensor:
    return torch.randn(frames, 4, LATENT_HW, LATENT_HW, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def previous():
    return latent(PREVIOUS, seed=3)


def last_image() -> torch.Tensor:
    return torch.rand(1, 8 * LATENT_HW, 8 * LATENT_HW, 3, generator=torch.Generator().manual_seed(4))


@pytest.fixture(autouse=True)
def inference_and_unload():
    # As ComfyUI runs nodes; outside it ComfyUI's encoders leak memory on the CPU.
    with torch.inference_mode():
        yield
    comfy.model_management.unload_all_models()


def continue_(base, clip_vision, vae, previous, previous_images=None):
    return continue_video(base, clip_vision, vae, {"samples": previous}, FRAMES, OVERLAP,
                          SamplingSettings(steps=1, seed=2),
                          previous_images=last_image() if previous_images is None else previous_images)["samples"]


@pytest.fixture(scope="module")
def continued(base, vae):
    """One continuation and the images its conditioning encoded, shared: each sampler run costs seconds here."""
    clip_vision = StubClipVision()
    decoded_video = torch.cat([torch.zeros(3, 8 * LATENT_HW, 8 * LATENT_HW, 3), last_image()])
    with torch.inference_mode():
        clip = continue_(base, clip_vision, vae, latent(PREVIOUS, seed=3), previous_images=decoded_video)
    return clip, clip_vision.images


@pytest.fixture(scope="module")
def clip(continued):
    return continued[0]


def test_carried_latent_layout(previous):
    carried = carry_frames(previous, FRAMES, OVERLAP)
    assert carried["samples"].shape == (FRAMES, 4, LATENT_HW, LATENT_HW)
    assert torch.equal(carried["samples"][:OVERLAP], previous[-OVERLAP:])
    assert not carried["samples"][OVERLAP:].any()
    # One mask plane per frame, as ComfyUI's SetLatentNoiseMask stores masks: 0 keeps, 1 generates.
    mask = carried["noise_mask"]
    assert mask.shape == (FRAMES, 1, LATENT_HW, LATENT_HW)
    assert not mask[:OVERLAP].any() and mask[OVERLAP:].eq(1).all()


def test_native_sampler_keeps_the_masked_frames(base, clip_vision, vae, previous):
    """ComfyUI's own sampling path honours the per-frame mask: carried frames come back, others are generated."""
    carried = carry_frames(previous, FRAMES, OVERLAP)
    positive, negative, _ = image_to_video_conditioning(clip_vision, vae, last_image(), 64, 64, FRAMES)
    noise = comfy.sample.prepare_noise(carried["samples"], 0)
    out = comfy.sample.sample(with_linear_cfg(base, 2.0), noise, 2, 2.0, "euler", "karras", positive, negative,
                              carried["samples"], noise_mask=carried["noise_mask"], disable_pbar=True, seed=0)
    # Up to float round-off: the sampler scales latents in and out and adds and subtracts the noise.
    assert torch.allclose(out[:OVERLAP], previous[-OVERLAP:], atol=1e-5)
    assert (out[OVERLAP:] - carried["samples"][OVERLAP:]).abs().amin(dim=(1, 2, 3)).gt(0).all()


def test_new_clip_starts_with_the_previous_frames_exactly(clip, previous):
    assert clip.shape == (FRAMES, 4, LATENT_HW, LATENT_HW)
    assert torch.equal(clip[:OVERLAP], previous[-OVERLAP:])
    assert torch.isfinite(clip).all()


def test_new_frames_follow_the_carried_frames(clip, base, clip_vision, vae):
    """Same seed and conditioning, other carried frames: other new frames, so the model sees what is carried."""
    other = continue_(base, clip_vision, vae, latent(PREVIOUS, seed=5))
    assert (clip[OVERLAP:] - other[OVERLAP:]).abs().max() > 1e-3


@pytest.mark.parametrize("frames, overlap, match", [
    (FRAMES, FRAMES, "less than frames"),
    (FRAMES, FRAMES + 1, "less than frames"),
    (FRAMES, 0, "at least 1"),
    (PREVIOUS + 4, PREVIOUS + 1, "more than the previous video"),
])
def test_bad_overlap_is_a_clear_error(previous, frames, overlap, match):
    with pytest.raises(ExVideoError, match=match):
        carry_frames(previous, frames, overlap)


def test_join_drops_the_carried_frames_and_keeps_the_order():
    # Frame i of a holds i, frame i of b holds 100 + i, b's first two being a copy of a's last two.
    a = repeat(torch.arange(5.0), "t -> t 4 2 2")
    b = repeat(100 + torch.arange(6.0), "t -> t 4 2 2").clone()
    b[:2] = a[-2:]
    joined = join_clips({"samples": a}, {"samples": b}, 2)["samples"]
    assert joined[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 102, 103, 104, 105]
    assert torch.equal(join_clips({"samples": a}, {"samples": b}, 0)["samples"], torch.cat([a, b]))


@pytest.mark.parametrize("b_frames, overlap, size, match", [
    (6, 6, 2, "less than the second clip"),
    (8, 6, 2, "at most the first"),
    (6, -1, 2, "at least 0"),
    (6, 2, 4, "different frame sizes"),
])
def test_bad_join_is_a_clear_error(b_frames, overlap, size, match):
    a = torch.zeros(5, 4, 2, 2)
    b = torch.zeros(b_frames, 4, size, size)
    with pytest.raises(ExVideoError, match=match):
        join_clips({"samples": a}, {"samples": b}, overlap)


def smooth_video(frames: int, start: float, seed: int) -> torch.Tensor:
    """IMAGE (t h w c): a fixed random picture brightening by 0.01 per frame, from `start`."""
    picture = torch.rand(1, 4, 4, 3, generator=torch.Generator().manual_seed(seed))
    return picture + start + 0.01 * rearrange(torch.arange(frames, dtype=torch.float32), "t -> t 1 1 1")


def test_join_jump_sees_a_jump_and_not_a_seamless_join():
    a = smooth_video(8, 0.0, seed=0)
    seamless = torch.cat([a, smooth_video(8, 0.08, seed=0)])
    jump = join_jump(seamless, [8])
    assert jump.at_joins == pytest.approx([0.01]) and jump.inside_median == pytest.approx(0.01)
    assert jump.ratio == pytest.approx(1.0)
    cut = join_jump(torch.cat([a, smooth_video(8, 0.08, seed=1)]), [8])  # another picture after the join
    assert cut.inside_median == pytest.approx(0.01) and cut.ratio > 10


def test_join_jump_reads_latents_and_several_joins():
    video = torch.cat([smooth_video(6, 0.5 * clip, seed=0) for clip in range(3)])
    jump = join_jump(rearrange(video, "t h w c -> t c h w"), [6, 12])
    assert jump.at_joins == pytest.approx([0.45, 0.45]) and jump.ratio == pytest.approx(45, rel=1e-4)
    with pytest.raises(ExVideoError, match="between 1 and 17"):
        join_jump(video, [18])


def test_continue_node_chains_videos_and_decodes_the_last_frame(base, clip_vision, vae, previous):
    module = importlib.import_module(f"{load_pack_nodes().__name__}.nodes_continuation")
    for node in module.NODES:
        assert all(item.tooltip for item in node.GET_SCHEMA().inputs), node
    settings = {"frames": FRAMES, "overlap_frames": OVERLAP, "fps": 30, "motion_bucket_id": 127,
                "augmentation_level": 0.02, "min_cfg": 2.0, "cfg": 2.0, "steps": 1, "sampler_name": "euler",
                "scheduler": "karras", "seed": 2}
    video, clip = module.ExVideoContinue.execute(model=base, clip_vision=clip_vision, vae=vae,
                                                 previous={"samples": previous}, **settings).result
    assert video["samples"].shape[0] == PREVIOUS + FRAMES - OVERLAP
    assert torch.equal(video["samples"][:PREVIOUS], previous)
    assert torch.equal(video["samples"][PREVIOUS:], clip["samples"][OVERLAP:])
    assert "noise_mask" not in clip
    (joined,) = module.ExVideoJoinLatents.execute(a={"samples": previous}, b=clip, overlap_frames=OVERLAP).result
    assert torch.equal(joined["samples"], video["samples"])
    # Without previous_images the last frame is decoded from the last frames, with one decode window of context.
    (condition,) = clip_vision.images
    assert torch.allclose(condition, vae.decode(previous[-LAST_FRAME_DECODE_CONTEXT:])[-1:], atol=1e-5)


def test_conditioned_on_the_last_given_image(continued):
    _, encoded = continued
    assert len(encoded) == 1 and torch.equal(encoded[0], last_image())


def test_anchor_colour_gives_new_frames_the_first_clips_statistics(previous):
    from exvideo_core.continuation import anchor_colour

    clip = latent(FRAMES, seed=5) * 3 + 1
    anchored = anchor_colour(clip, previous[:FRAMES], OVERLAP)
    assert torch.equal(anchored[:OVERLAP], clip[:OVERLAP])
    torch.testing.assert_close(anchored[OVERLAP:].mean(dim=(0, 2, 3)), previous[:FRAMES].mean(dim=(0, 2, 3)))
    torch.testing.assert_close(anchored[OVERLAP:].std(dim=(0, 2, 3)), previous[:FRAMES].std(dim=(0, 2, 3)))


def test_the_options_reach_the_sampler(base, vae, previous, monkeypatch):
    """reference_image: its CLIP embedding, the last frame's latent; anchor: the first clip's statistics."""
    import exvideo_core.continuation as continuation

    sampled = []

    def fake_sample(model, positive, negative, carried, settings, callback=None):
        sampled.append(positive)
        return {"samples": latent(FRAMES, seed=6) * 5}

    monkeypatch.setattr(continuation, "sample_video", fake_sample)
    clip_vision, reference = StubClipVision(), torch.rand(1, 8 * LATENT_HW, 8 * LATENT_HW, 3)
    out = continue_video(base, clip_vision, vae, {"samples": previous}, FRAMES, OVERLAP,
                         SamplingSettings(steps=1, seed=2), previous_images=last_image(), reference_image=reference,
                         anchor=True)["samples"]
    (positive,) = sampled
    assert len(clip_vision.images) == 1, "the last frame's embedding was computed and thrown away"
    torch.testing.assert_close(positive[0][0][0], clip_vision.encode_image(reference).image_embeds)
    assert not torch.allclose(positive[0][0][0], clip_vision.encode_image(last_image()).image_embeds)
    expected = image_to_video_conditioning(StubClipVision(), vae, last_image(), 8 * LATENT_HW, 8 * LATENT_HW,
                                           FRAMES, SamplingSettings(steps=1, seed=2))[0]
    torch.testing.assert_close(positive[0][1]["concat_latent_image"], expected[0][1]["concat_latent_image"])
    assert torch.equal(out[:OVERLAP], previous[-OVERLAP:])
    torch.testing.assert_close(out[OVERLAP:].mean(dim=(0, 2, 3)), previous[:FRAMES].mean(dim=(0, 2, 3)))
