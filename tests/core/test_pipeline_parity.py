"""Our sampler equals DiffSynth's SVDVideoPipeline: same weights, initial noise and conditioning tensors.

Both run Euler on Karras sigmas 700 -> 0.002 with per-frame linear CFG. The
pipeline works on latents scaled by 1/sqrt(sigma^2 + 1) and returns them
in the model's latent scale; ComfyUI works on EDM latents and returns a
LATENT divided by SD's 0.18215. Encoders are bypassed on both sides (the
same CLIP embedding and image latent go in), so this compares conditioning
plumbing, guidance and the sampler, not the encoders.
"""

import gc

import pytest
import torch
from diffsynth.pipelines.svd_video import SVDVideoPipeline
from PIL import Image

import comfy.model_management

from exvideo_core import apply_exvideo, load_exvideo
from exvideo_core.sampling import SamplingSettings, sample_video
from exvideo_harness.diffsynth_reference import diffsynth_unet
from exvideo_harness.exvideo_files import FULL, random_exvideo_state_dict
from exvideo_harness.svd_checkpoint import full_size_svd_model

pytestmark = pytest.mark.full_size

FRAMES, LATENT, STEPS = 4, 16, 3  # four frames still ramp the per-frame CFG; each frame costs ~1 s a forward
FPS, MOTION, AUGMENTATION, MIN_CFG, CFG = 30, 127, 0.02, 1.0, 2.5
SD_SCALE = 0.18215  # ComfyUI's SVD latent format (SD15)


class _Decoded(Exception):
    """Stops the pipeline at its decoder, carrying the final latents."""

    def __init__(self, latents):
        self.latents = latents


class _CaptureDecoder:
    def decode_video(self, latents, **kwargs):
        raise _Decoded(latents.clone())


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(7)
    return {
        "noise": torch.randn(FRAMES, 4, LATENT, LATENT, generator=g),
        "image_emb": torch.randn(1, 1024, generator=g),
        "image_latent": torch.randn(1, 4, LATENT, LATENT, generator=g),
    }


@pytest.fixture(scope="module")
def results(inputs):
    extension = random_exvideo_state_dict(16, seed=4, **FULL)
    base = full_size_svd_model()
    model = apply_exvideo(base, load_exvideo(extension))

    extra = {"motion_bucket_id": MOTION, "fps": FPS, "augmentation_level": AUGMENTATION}
    positive = [[inputs["image_emb"][None], {**extra, "concat_latent_image": inputs["image_latent"]}]]
    negative = [[torch.zeros(1, 1, 1024), {**extra, "concat_latent_image": torch.zeros_like(inputs["image_latent"])}]]
    latent = {"samples": torch.zeros(FRAMES, 4, LATENT, LATENT)}
    # comfy.sample draws its noise from the seed; hand it ours instead.
    original_prepare = comfy.sample.prepare_noise
    comfy.sample.prepare_noise = lambda samples, seed, *a: inputs["noise"].clone()
    try:
        with torch.inference_mode():
            settings = SamplingSettings(seed=0, steps=STEPS, cfg=CFG, min_cfg=MIN_CFG, sampler_name="euler",
                                        scheduler="karras")
            ours = sample_video(model, positive, negative, latent, settings)["samples"]
    finally:
        comfy.sample.prepare_noise = original_prepare
    comfy.model_management.unload_all_models()
    sgm = {"model." + k: v for k, v in base.model.state_dict().items() if k.startswith("diffusion_model.")}
    del base, model
    gc.collect()

    pipe = SVDVideoPipeline(device="cpu", torch_dtype=torch.float32)
    pipe.unet = diffsynth_unet(sgm, extension)
    pipe.vae_decoder = _CaptureDecoder()
    pipe.encode_image_with_clip = lambda image: inputs["image_emb"]
    pipe.encode_image_with_vae = lambda image, strength, seed=None: inputs["image_latent"]
    pipe.generate_noise = lambda shape, seed=None, device="cpu", dtype=None: inputs["noise"].clone()
    with pytest.raises(_Decoded) as decoded:
        pipe(input_image=Image.new("RGB", (8 * LATENT, 8 * LATENT)), num_frames=FRAMES, height=8 * LATENT,
             width=8 * LATENT, fps=FPS, motion_bucket_id=MOTION, noise_aug_strength=AUGMENTATION,
             min_cfg_scale=MIN_CFG, max_cfg_scale=CFG, num_inference_steps=STEPS, post_normalize=False,
             contrast_enhance_scale=1.0, progress_bar_cmd=lambda x: x)
    return ours, decoded.value.latents


def test_sampler_matches_diffsynth_pipeline(results):
    ours, theirs = results
    ours = ours * SD_SCALE
    assert ours.shape == theirs.shape == (FRAMES, 4, LATENT, LATENT)
    assert 0.05 < theirs.std() < 20
    # Three steps compound the UNet's ~1e-5 float differences, scaled by sigma
    # ratios up to ~10 in the early Karras steps.
    assert (ours - theirs).abs().max() <= 1e-3 * theirs.abs().max()
