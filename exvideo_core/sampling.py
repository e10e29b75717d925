"""The image-to-video recipe of DiffSynth's ExVideo example, on ComfyUI's native sampler.

Conditioning as SVD expects it (CLIP image embedding, VAE latent of the
first frame with seeded noise augmentation, zeroed negative), per-frame
linear CFG, and sampling through `comfy.sample.sample`, so any native
sampler, scheduler, model patch or LoRA works as it does for KSampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

import comfy.model_patcher
import comfy.sample
import comfy.utils

from .constraints import LATENT_CHANNELS, VAE_DOWNSCALE, check_video_size


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    """SVD conditioning and sampler settings, one value from the node inputs to the sampler.

    Every ExVideo sampling node (Image to Video, Refine, Continue) takes them
    as the inputs `nodes/sampling_inputs.py` declares, with these names, and
    passes them on whole: no int can land in another's place.
    Defaults: DiffSynth's ExVideo example.
    """

    fps: int = 30
    motion_bucket_id: int = 127
    augmentation_level: float = 0.02
    min_cfg: float = 2.0
    cfg: float = 2.0
    steps: int = 50
    sampler_name: str = "euler"
    scheduler: str = "karras"
    seed: int = 1


def image_to_video_conditioning(clip_vision, vae, image: torch.Tensor, width: int, height: int, frames: int,
                                settings: SamplingSettings = SamplingSettings(), *,
                                embedding_image: torch.Tensor | None = None):
    """Positive/negative SVD conditioning and an empty latent for `frames` frames.

    image: IMAGE (b h w c) in [0, 1]; only its first frame is used. Unlike
    the native node, the augmentation noise is seeded, so a seed reproduces
    a video exactly. `embedding_image`: the CLIP embedding comes from this
    image's first frame instead (the latent still comes from `image`).
    """
    check_video_size(width, height)
    image = image[:1]
    embedding_source = image if embedding_image is None else embedding_image[:1]
    image_emb = clip_vision.encode_image(embedding_source).image_embeds.unsqueeze(0)  # (1 1 c)
    pixels = comfy.utils.common_upscale(image.movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1)
    pixels = pixels[..., :3]
    if settings.augmentation_level > 0:
        generator = torch.Generator().manual_seed(settings.seed)
        noise = torch.randn(pixels.shape, generator=generator, dtype=pixels.dtype)
        pixels = pixels + settings.augmentation_level * noise.to(pixels.device)
    image_latent = vae.encode(pixels)
    extra = {"motion_bucket_id": settings.motion_bucket_id, "fps": settings.fps,
             "augmentation_level": settings.augmentation_level}
    positive = [[image_emb, {**extra, "concat_latent_image": image_latent}]]
    negative = [[torch.zeros_like(image_emb), {**extra, "concat_latent_image": torch.zeros_like(image_latent)}]]
    latent = torch.zeros(frames, LATENT_CHANNELS, height // VAE_DOWNSCALE, width // VAE_DOWNSCALE)
    return positive, negative, {"samples": latent}


def with_linear_cfg(model: comfy.model_patcher.ModelPatcher, min_cfg: float) -> comfy.model_patcher.ModelPatcher:
    """A clone whose CFG scale ramps linearly from `min_cfg` (first frame) to the sampler's cfg (last frame).

    The same as the native VideoLinearCFGGuidance, and equal to DiffSynth's
    `linspace(min_cfg, max_cfg, T)` on the noise prediction, since SVD's
    denoised output is affine in it. The latent batch is one video.
    """

    def linear_cfg(args):
        cond, uncond, cond_scale = args["cond"], args["uncond"], args["cond_scale"]
        scale = torch.linspace(min_cfg, cond_scale, cond.shape[0], device=cond.device, dtype=cond.dtype)
        return uncond + scale.reshape(-1, *([1] * (cond.ndim - 1))) * (cond - uncond)

    patched = model.clone()
    patched.set_model_sampler_cfg_function(linear_cfg)
    return patched


def sample_video(model, positive, negative, latent: dict, settings: SamplingSettings, denoise: float = 1.0,
                 callback: Callable | None = None) -> dict:
    """Denoise `latent` (one video: t c h w) with per-frame linear CFG; returns a LATENT dict.

    A `noise_mask` in the LATENT is honoured as by KSampler: frames where it
    is 0 are kept (continuation carries the previous clip's frames this way).
    """
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    noise = comfy.sample.prepare_noise(samples, settings.seed)
    guided = with_linear_cfg(model, settings.min_cfg)
    out = comfy.sample.sample(guided, noise, settings.steps, settings.cfg, settings.sampler_name, settings.scheduler,
                              positive, negative, samples, denoise=denoise, noise_mask=latent.get("noise_mask"),
                              callback=callback, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
                              seed=settings.seed)
    return {**latent, "samples": out}


def renormalize_frames(latent: torch.Tensor, contrast_scale: float = 1.2, normalize: bool = True) -> torch.Tensor:
    """DiffSynth's post-processing: each frame (t c h w) to the clip's global mean/std, then scaled.

    Long SVD videos drift in brightness and contrast from frame to frame;
    pinning every frame to the clip's statistics removes the flicker, and
    the contrast scale counteracts the washed-out look of long generations.
    """
    if normalize:
        mean, std = latent.mean(), latent.std()
        frame_mean = latent.mean(dim=(1, 2, 3), keepdim=True)
        frame_std = latent.std(dim=(1, 2, 3), keepdim=True)
        latent = (latent - frame_mean) / frame_std * std + mean
    return latent * contrast_scale
