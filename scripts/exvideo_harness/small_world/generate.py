"""Videos of the small world made the ways the pack makes them, for the benchmark and the tests.

Every path is the pack's own: `image_to_video_conditioning` and
`sample_video` (ExVideo Image to Video), `continue_video` and `join_clips`
(Continue Video), ComfyUI's Context Windows (Manual) node on the MODEL, and
`temporal_decode` (Temporal VAE Decode). Frames come back as numpy
(t h w 3) in [0, 1], the metrics' input.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from exvideo_core.continuation import continue_video, join_clips
from exvideo_core.sampling import SamplingSettings, image_to_video_conditioning, sample_video
from exvideo_core.temporal_decode import temporal_decode

from .world import WorldConfig, make_clip

# Each model samples at the motion bucket of the clips it learnt: the median of the pack's own measure over
# 60 held-out clips of its length, seeds 0-59 (tests/harness/small_world/test_generate.py). The per-pixel
# temporal spread grows with a clip's length, so 8-frame clips sit near 11 and 40-frame clips near 36; the
# pack's default of 127 asks for motion neither model saw.
BASE_MOTION_BUCKET = 11
EXVIDEO_MOTION_BUCKET = 36
BASE_SETTINGS = SamplingSettings(motion_bucket_id=BASE_MOTION_BUCKET, steps=25, min_cfg=1.0, cfg=2.0)
EXVIDEO_SETTINGS = dataclasses.replace(BASE_SETTINGS, motion_bucket_id=EXVIDEO_MOTION_BUCKET)


@dataclasses.dataclass(frozen=True)
class Encoders:
    vae: object
    clip_vision: object


def first_frame(seed: int) -> torch.Tensor:
    """The IMAGE (1 h w 3) a held-out clip starts with."""
    return torch.from_numpy(make_clip(seed, 1).frames)


def decode(encoders: Encoders, samples: torch.Tensor) -> np.ndarray:
    return temporal_decode(encoders.vae, samples).clamp(0, 1).cpu().numpy()


def image_to_video(model, encoders: Encoders, image: torch.Tensor, frames: int,
                   settings: SamplingSettings = EXVIDEO_SETTINGS) -> torch.Tensor:
    """Latents (t 4 h w) of one video, as ExVideo Image to Video samples them."""
    size = WorldConfig().size
    positive, negative, latent = image_to_video_conditioning(encoders.clip_vision, encoders.vae, image, size, size,
                                                             frames, settings)
    return sample_video(model, positive, negative, latent, settings)["samples"]


def continued(model, encoders: Encoders, image: torch.Tensor, clip_frames: int, total: int, overlap: int,
              settings: SamplingSettings = EXVIDEO_SETTINGS, *, reference: bool = False, anchor: bool = False
              ) -> tuple[torch.Tensor, list[int]]:
    """Latents of a video of at least `total` frames made by Continue Video, and the frames where clips join.

    reference: each clip also conditioned on `image` (Continue's reference_image); anchor: its anchor_colour.
    """
    video = {"samples": image_to_video(model, encoders, image, clip_frames, settings)}
    joins = []
    while video["samples"].shape[0] < total:
        clip = continue_video(model, encoders.clip_vision, encoders.vae, video, clip_frames, overlap,
                              dataclasses.replace(settings, seed=settings.seed + len(joins) + 1),
                              reference_image=image if reference else None, anchor=anchor)
        joins.append(video["samples"].shape[0])
        video = join_clips(video, clip, overlap)
    return video["samples"], joins


def windowed(model, encoders: Encoders, image: torch.Tensor, frames: int, window: int, overlap: int,
             settings: SamplingSettings = EXVIDEO_SETTINGS) -> tuple[torch.Tensor, list[int]]:
    """Latents of one sampling through native Context Windows (Manual), and the frames where windows start or end.

    The node's defaults but the sizes: static standard windows fused by pyramid weights along SVD's frames.
    """
    from comfy_extras.nodes_context_windows import ContextWindowsManualNode

    windowed_model = ContextWindowsManualNode.execute(model, window, overlap, "standard_static", 1, False,
                                                      "pyramid", 0).result[0]
    samples = image_to_video(windowed_model, encoders, image, frames, settings)
    handler = windowed_model.model_options["context_handler"]
    windows = handler.context_schedule.func(frames, handler, windowed_model.model_options)
    seams = {w[0] for w in windows[1:]} | {w[-1] + 1 for w in windows[:-1]}
    return samples, sorted(seams)
