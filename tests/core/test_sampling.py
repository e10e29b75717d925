"""DiffSynth's image-to-video recipe on ComfyUI's sampler: settings, per-frame CFG, latent post-processing."""

import dataclasses

import pytest
import torch

from comfy_extras.nodes_video_model import VideoLinearCFGGuidance

from exvideo_core.sampling import SamplingSettings, renormalize_frames, with_linear_cfg


def test_default_settings_are_the_reference_recipe():
    """DiffSynth's ExVideo example: fps 30, bucket 127, augmentation 0.02, CFG 2 -> 2, 50 Euler/Karras steps."""
    assert dataclasses.asdict(SamplingSettings()) == {
        "fps": 30, "motion_bucket_id": 127, "augmentation_level": 0.02, "min_cfg": 2.0, "cfg": 2.0, "steps": 50,
        "sampler_name": "euler", "scheduler": "karras", "seed": 1}


def test_linear_cfg_equals_the_native_video_linear_cfg_guidance(base):
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(12, 4, 8, 8, generator=g), torch.randn(12, 4, 8, 8, generator=g)
    args = {"cond": cond, "uncond": uncond, "cond_scale": 3.0}
    ours = with_linear_cfg(base, 1.0).model_options["sampler_cfg_function"](args)
    (native_model,) = VideoLinearCFGGuidance().patch(base, 1.0)
    native = native_model.model_options["sampler_cfg_function"](args)
    assert torch.allclose(ours, native, atol=1e-6)
    assert torch.allclose(ours[0], uncond[0] + 1.0 * (cond[0] - uncond[0]))
    assert torch.allclose(ours[-1], uncond[-1] + 3.0 * (cond[-1] - uncond[-1]))
    assert "sampler_cfg_function" not in base.model_options, "the input MODEL is not patched"


def test_renormalize_pins_every_frame_to_the_clips_statistics():
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(6, 4, 8, 8, generator=g) * torch.linspace(0.5, 2.0, 6).reshape(6, 1, 1, 1) + \
        torch.arange(6.0).reshape(6, 1, 1, 1)
    out = renormalize_frames(latent, contrast_scale=1.0)
    frame_means, frame_stds = out.mean(dim=(1, 2, 3)), out.std(dim=(1, 2, 3))
    assert torch.allclose(frame_means, torch.full((6,), latent.mean().item()), atol=1e-5)
    assert torch.allclose(frame_stds, torch.full((6,), latent.std().item()), atol=1e-5)
    assert torch.allclose(renormalize_frames(latent, 1.2), 1.2 * out)
    assert torch.equal(renormalize_frames(latent, 1.2, normalize=False), 1.2 * latent)
    # DiffSynth's SVD pipeline calls it with contrast_enhance_scale=1.2.
    assert torch.equal(renormalize_frames(latent), renormalize_frames(latent, 1.2))


def test_conditioning_carries_the_settings_as_native_svd_conditioning_does():
    """What reaches SVD's encode_adm: each setting under its own key, unchanged, as the native node puts it."""
    from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning

    from exvideo_core.sampling import image_to_video_conditioning
    from exvideo_harness.clip_vision import StubClipVision
    from exvideo_harness.svd_vae import build_svd_vae

    # Three values no swap or off-by-one could keep.
    settings = SamplingSettings(fps=13, motion_bucket_id=77, augmentation_level=0.0, seed=3)
    vae, image = build_svd_vae(seed=0, channels=32), torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(1))
    positive, negative, latent = image_to_video_conditioning(StubClipVision(), vae, image, 128, 128, 5, settings)
    native_positive, native_negative, native_latent = SVD_img2vid_Conditioning().encode(
        StubClipVision(), image, vae, 128, 128, 5, 77, 13, 0.0)
    for ours, native in ((positive, native_positive), (negative, native_negative)):
        keys = ("fps", "motion_bucket_id", "augmentation_level")
        assert {k: ours[0][1][k] for k in keys} == {k: native[0][1][k] for k in keys} == {
            "fps": 13, "motion_bucket_id": 77, "augmentation_level": 0.0}
        torch.testing.assert_close(ours[0][1]["concat_latent_image"], native[0][1]["concat_latent_image"])
        torch.testing.assert_close(ours[0][0], native[0][0])  # the CLIP embedding, (1 1 c)
    assert latent["samples"].shape == native_latent["samples"].shape


class RecordingVAE:
    """Records the pixels it is asked to encode; returns zero latents of their size."""

    def __init__(self):
        self.pixels = []

    def encode(self, pixels):
        self.pixels.append(pixels)
        return torch.zeros(1, 4, pixels.shape[1] // 8, pixels.shape[2] // 8)


@pytest.mark.parametrize("level", [0.0, 0.1])
def test_the_encoded_image_is_the_first_rgb_frame_plus_seeded_augmentation_noise(level):
    from exvideo_core.sampling import image_to_video_conditioning
    from exvideo_harness.clip_vision import StubClipVision

    image = torch.rand(2, 64, 64, 4, generator=torch.Generator().manual_seed(0))  # two RGBA frames
    vae = RecordingVAE()
    image_to_video_conditioning(StubClipVision(), vae, image, 64, 64, 3, SamplingSettings(augmentation_level=level,
                                                                                         seed=3))
    noise = torch.randn(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    (pixels,) = vae.pixels
    torch.testing.assert_close(pixels, image[:1, ..., :3] + level * noise)
