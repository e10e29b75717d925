"""Video-to-video refinement: DiffSynth's second ExVideo pass on ComfyUI's native sampler.

The reference upscales a generated 512x512 video to 1024x1024 (PIL bicubic),
VAE-encodes it, noises it to denoising strength 0.5 and re-denoises it in 25
Euler steps, conditioned on the input image at 1024x1024. Here the frames are
encoded with ComfyUI's VAE and re-denoised by `sample_video` with `denoise`:
the native sampler then starts from the encoded video noised to the sigma at
which a `steps / denoise`-step schedule has `steps` steps left. DiffSynth
spreads its steps over the last `denoising_strength` of Karras' ramp
instead: with euler/karras, 25 steps and 0.5 both make 25 model calls, but
from sigma 15.6 (DiffSynth) and 14.1 (ComfyUI).

Latent scale. ComfyUI's `VAE.encode` returns raw VAE latents, the space its
samplers and decoders use for SVD. DiffSynth's SVD VAE encoder multiplies by
0.13025 (the SDXL factor) while its decoder and the model expect 0.18215
(SD/SVD), so DiffSynth's vid2vid starts from latents 0.13025 / 0.18215
(about 0.715) times what the video encodes to. `diffsynth_latent_scale`
reproduces that on purpose, for parity with the reference; off, the video
starts at the scale the model was trained on and that the first pass made.
"""

from __future__ import annotations

from typing import Callable

import torch

import comfy.model_management
import comfy.utils

from .constraints import DIFFSYNTH_TO_NATIVE_RATIO, check_video_size
from .errors import InputError
from .patch import check_video_length
from .sampling import SamplingSettings, image_to_video_conditioning, sample_video

# Frames upscaled and encoded at a time: 128 frames of 1024x1024 would take
# 1.6 GB as float pixels at once, 16 take 0.2 GB.
ENCODE_BATCH = 16


def encode_frames(vae, frames: torch.Tensor, width: int, height: int,
                  diffsynth_latent_scale: bool = False) -> torch.Tensor:
    """IMAGE (t h w c) in [0, 1] -> raw VAE latents (t 4 height/8 width/8), resized and centre-cropped first.

    Bicubic, like the reference's PIL resize; clamped, since bicubic overshoots
    [0, 1] at edges and the VAE expects pixels in range.
    """
    check_video_size(width, height)
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise InputError(f"expected video frames as an IMAGE batch (frames, height, width, channels), "
                           f"got shape {tuple(frames.shape)}")
    latents = []
    for start in range(0, frames.shape[0], ENCODE_BATCH):
        comfy.model_management.throw_exception_if_processing_interrupted()
        chunk = frames[start:start + ENCODE_BATCH, ..., :3].movedim(-1, 1)  # (b c h w)
        pixels = comfy.utils.common_upscale(chunk, width, height, "bicubic", "center").clamp(0, 1)
        latents.append(vae.encode(pixels.movedim(1, -1)))
    latent = torch.cat(latents)  # (t 4 h/8 w/8)
    if diffsynth_latent_scale:
        latent = latent * DIFFSYNTH_TO_NATIVE_RATIO
    return latent


# The reference's second pass: 25 steps (at denoise 0.5), at 1024x1024.
REFINE_SETTINGS = SamplingSettings(steps=25)


def refine_video(model, clip_vision, vae, frames: torch.Tensor, settings: SamplingSettings = REFINE_SETTINGS, *,
                 width: int = 1024, height: int = 1024, denoise: float = 0.5, diffsynth_latent_scale: bool = False,
                 callback: Callable | None = None, image: torch.Tensor | None = None) -> dict:
    """Re-denoise a video (IMAGE t h w c) at width x height; returns the LATENT of the refined video.

    Conditioned on `image` (IMAGE; first image used) or, without it, on the
    first frame. The reference conditions on its original input image, which
    is sharper than the first frame of a 512x512 first pass.
    """
    if not 0.0 <= denoise <= 1.0:
        raise InputError(f"denoise must be between 0 and 1, got {denoise}")
    check_video_length(model, frames.shape[0])
    samples = encode_frames(vae, frames, width, height, diffsynth_latent_scale)
    condition = frames[:1] if image is None else image[:1]
    positive, negative, _ = image_to_video_conditioning(clip_vision, vae, condition, width, height,
                                                        samples.shape[0], settings)
    return sample_video(model, positive, negative, {"samples": samples}, settings, denoise=denoise,
                        callback=callback)
