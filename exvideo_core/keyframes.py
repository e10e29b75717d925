"""Keyframes and loops: a video that starts at one image and ends at another, by fusing two denoising paths.

Training-free, after Time Reversal Fusion (Feng et al., arXiv 2403.14611).
At every model call the noisy video is denoised twice: forward, conditioned
on the start image as SVD always is, and time-reversed, conditioned on the
end image (SVD makes the reversed video from its first frame, which is the
end image). The two predictions are fused frame by frame, the forward path
weighing 1 at the first frame and the reversed path 1 at the last, so each
end of the video is pinned to its image as firmly as SVD pins a first frame.

ViBiDSampler (arXiv 2410.05651) runs the two paths one after the other
within a step, re-noising between them. That needs the step's next sigma,
which belongs to the sampler: it would be a sampler loop of our own, for one
sampler. The fusion is a `CFGGuider` instead (as the native DualCFGGuider
is), so every native sampler and scheduler runs it, and so do the
ExVideo-patched MODEL at any length its table allows, frame chunking, the
skip stack, context windows and the deep cache. It costs two model calls a
step.

A loop is a video from an image back to the same image, its last frame
dropped so that it plays round without a repeated frame. Several keyframes
make a video of segments, each from one keyframe to the next, joined on the
keyframe they share.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from einops import rearrange

import comfy.sample
import comfy.samplers
import comfy.utils

from .continuation import join_clips
from .errors import InputError
from .sampling import SamplingSettings, image_to_video_conditioning, with_linear_cfg

END_CONDS = ("positive_end", "negative_end")
MIN_SEGMENT_FRAMES = 3  # the two keyframes and one frame between


def start_weights(frames: int) -> torch.Tensor:
    """(frames) the forward path's share of each frame's prediction: 1 at the start image, 0 at the end image."""
    return torch.linspace(1.0, 0.0, frames)


class KeyframeGuider(comfy.samplers.CFGGuider):
    """CFG on one video under two conditionings, the start's (positive, negative) and the end's, fused per frame."""

    def set_keyframe_conds(self, start: tuple, end: tuple) -> None:
        """`start` and `end`: (positive, negative) SVD conditionings of the start and the end image."""
        self.inner_set_conds({"positive": start[0], "negative": start[1],
                              END_CONDS[0]: end[0], END_CONDS[1]: end[1]})

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 (the host's signature)
        forward = comfy.samplers.sampling_function(
            self.inner_model, x, timestep, self.conds.get("negative"), self.conds.get("positive"), self.cfg,
            model_options=model_options, seed=seed)
        backward = comfy.samplers.sampling_function(
            self.inner_model, x.flip(0), _reversed(timestep, x.shape[0]), self.conds.get(END_CONDS[1]),
            self.conds.get(END_CONDS[0]), self.cfg, model_options=model_options, seed=seed).flip(0)
        weight = rearrange(start_weights(x.shape[0]), "t -> t 1 1 1").to(forward)
        return weight * forward + (1 - weight) * backward


def _reversed(timestep: torch.Tensor, frames: int) -> torch.Tensor:
    # Per-frame sigmas (one per latent of the batch) follow their frames.
    return timestep.flip(0) if timestep.ndim == 1 and timestep.shape[0] == frames else timestep


def sample_between(model, start: tuple, end: tuple, latent: dict, settings: SamplingSettings,
                   callback: Callable | None = None) -> torch.Tensor:
    """One video from the start conditioning to the end one, on the native sampler and scheduler of `settings`.

    As SamplerCustomAdvanced runs a guider; the sigmas are KSampler's for the same sampler and scheduler.
    """
    guided = with_linear_cfg(model, settings.min_cfg)
    guider = KeyframeGuider(guided)
    guider.set_keyframe_conds(start, end)
    guider.set_cfg(settings.cfg)
    samples = comfy.sample.fix_empty_latent_channels(guided, latent["samples"])
    sigmas = comfy.samplers.KSampler(guided, steps=settings.steps, device=guided.load_device,
                                     sampler=settings.sampler_name, scheduler=settings.scheduler,
                                     model_options=guided.model_options).sigmas
    return guider.sample(comfy.sample.prepare_noise(samples, settings.seed), samples,
                         comfy.samplers.sampler_object(settings.sampler_name), sigmas, callback=callback,
                         disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=settings.seed)


@dataclasses.dataclass(frozen=True)
class KeyframeVideo:
    frames: int  # of each segment, both keyframes included
    loop: bool = False  # end at the first keyframe again (with one keyframe, a loop of it)

    def __post_init__(self):
        if self.frames < MIN_SEGMENT_FRAMES:
            raise InputError(f"A keyframe segment needs at least {MIN_SEGMENT_FRAMES} frames (its two keyframes "
                             f"and one between), got {self.frames}.")

    def segments(self, keyframes: torch.Tensor) -> list[tuple[int, int]]:
        """(start, end) keyframe indices of each segment."""
        count = keyframes.shape[0]
        if count < 2 and not self.loop:
            raise InputError("Keyframes needs at least two images (start and end), or one image with loop on. "
                             "Batch the images in order (e.g. with Batch Images).")
        pairs = [(i, i + 1) for i in range(count - 1)]
        return pairs + [(count - 1, 0)] if self.loop else pairs


def keyframe_video(model, clip_vision, vae, keyframes: torch.Tensor, width: int, height: int, plan: KeyframeVideo,
                   settings: SamplingSettings, callback: Callable | None = None) -> dict:
    """A LATENT video through `keyframes` (IMAGE, k h w c) in order; each segment `plan.frames` long.

    Each keyframe's conditioning is made once, as Image to Video makes it
    (its seeded augmentation included); segment i samples with seed + i.
    """
    pairs = plan.segments(keyframes)
    conds = {i: image_to_video_conditioning(clip_vision, vae, keyframes[i:i + 1], width, height, plan.frames,
                                            settings) for i in sorted({k for pair in pairs for k in pair})}
    video = None
    for number, (first, last) in enumerate(pairs):
        positive, negative, latent = conds[first]
        segment = sample_between(model, (positive, negative), conds[last][:2], latent,
                                 dataclasses.replace(settings, seed=settings.seed + number), callback)
        # A segment starts at the keyframe the last one ended at: that frame is kept once.
        video = {"samples": segment} if video is None else join_clips(video, {"samples": segment}, 1)
    samples = video["samples"]
    return {"samples": samples[:-1] if plan.loop else samples}
