"""Encoded clips: what the trainer consumes, computed once per clip.

The VAE and CLIP vision encoders are only needed here; training reads the
cache, so a long run (or every process of a distributed one) never holds
them. Latents are stored as ComfyUI's VAE returns them (unscaled); the
trainer applies the latent scale it is configured with (see `objective`).
The conditioning latent of frame 0 is `latents[0]`, as in DiffSynth's
example: SVD's VAE encoder works frame by frame.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from typing import Callable, Iterable, Sequence

import torch

from .. import safetensors_io
from ..errors import CheckpointError, DatasetError
from .dataset import MEASURE_MOTION, VideoClip, check_motion_bucket_setting, motion_bucket, motion_score

_FORMAT = "exvideo_clip_cache/1"


@dataclasses.dataclass(frozen=True)
class EncodedClip:
    name: str
    latents: torch.Tensor  # (t c h w) VAE latents of every frame, unscaled, fp32
    image_embeds: torch.Tensor  # (1 d) CLIP vision embedding of frame 0
    motion_bucket_id: int
    motion_score: float

    @property
    def num_frames(self) -> int:
        return self.latents.shape[0]


@torch.no_grad()
def encode_clip(clip: VideoClip, vae, clip_vision, motion_bucket_id: int = MEASURE_MOTION) -> EncodedClip:
    """`vae`: ComfyUI VAE (encode takes IMAGE in [0, 1]); `clip_vision`: ComfyUI CLIP vision model."""
    check_motion_bucket_setting(motion_bucket_id)
    frames = clip.frames[..., :3]
    latents = vae.encode(frames).float().cpu()
    image_embeds = clip_vision.encode_image(frames[:1]).image_embeds.float().cpu()
    score = motion_score(frames)
    bucket = motion_bucket(score) if motion_bucket_id == MEASURE_MOTION else motion_bucket_id
    return EncodedClip(clip.name, latents, image_embeds, bucket, score)


def encode_clips(clips: Iterable[VideoClip], vae, clip_vision, motion_bucket_id: int = MEASURE_MOTION,
                 progress: Callable[[int], None] | None = None) -> list[EncodedClip]:
    """Encode every clip; a `motion_bucket_id` of 0 or more fixes the bucket instead of measuring each
    clip's motion (MEASURE_MOTION).

    `progress(clips_done)` is called after each clip; an exception it raises
    (ComfyUI's interrupt) stops the encoding.
    """
    check_motion_bucket_setting(motion_bucket_id)  # before the first clip is read
    encoded = []
    for clip in clips:
        encoded.append(encode_clip(clip, vae, clip_vision, motion_bucket_id))
        if progress is not None:
            progress(len(encoded))
    if not encoded:
        raise DatasetError("no training clip could be made: every video was unreadable or shorter than a clip "
                           "(see the warnings above); lower num_frames or frame_stride, or add longer videos")
    return encoded


def fingerprint(clips: Sequence[EncodedClip]) -> str:
    """Identifies a cache by its clips' names, shapes and buckets (not values): the same in every process of a
    distributed run, and all a training state saved before `clip_record` holds of its clips."""
    entries = [(c.name, list(c.latents.shape), list(c.image_embeds.shape), c.motion_bucket_id) for c in clips]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


# How close the content numbers of `clip_record` must be for a resume to take them for the same clip: encoding
# the same video again gives them up to float rounding (less than this even with another device or precision
# of the VAE); other frames give numbers far apart.
CONTENT_TOLERANCE = {"rel_tol": 1e-2, "abs_tol": 1e-3}


def clip_record(clips: Sequence[EncodedClip]) -> list[dict]:
    """What a training state keeps of the clips it was trained on: names, shapes, buckets, and the content
    numbers `clip_difference` compares (the motion score; the mean latent of the first and the last frame,
    so that a reversed clip differs too)."""
    return [{"name": c.name, "latents": list(c.latents.shape), "image_embeds": list(c.image_embeds.shape),
             "motion_bucket_id": c.motion_bucket_id,
             "content": [c.motion_score, c.latents[0].mean().item(), c.latents[-1].mean().item()]}
            for c in clips]


def clip_difference(saved: Sequence[dict], clips: Sequence[EncodedClip]) -> str | None:
    """How `clips` differ from the `clip_record` of a state, in words; None when they are the same clips."""
    if len(saved) != len(clips):
        return f"{len(saved)} clip(s) then, {len(clips)} now"
    for old, new in zip(saved, clip_record(clips)):
        if old["name"] != new["name"]:
            return f"clip {new['name']!r} where {old['name']!r} was"
        for key, what in (("latents", "latent shape"), ("image_embeds", "image embedding size"),
                          ("motion_bucket_id", "motion bucket")):
            if old[key] != new[key]:
                return f"clip {new['name']!r} has {what} {new[key]}, {old[key]} then"
        if not all(math.isclose(a, b, **CONTENT_TOLERANCE)
                   for a, b in zip(old["content"], new["content"])):
            return f"clip {new['name']!r} holds other frames under the same name and size"
    return None


def save_clip_cache(clips: Sequence[EncodedClip], path: str | os.PathLike) -> None:
    tensors, entries = {}, []
    for index, clip in enumerate(clips):
        tensors[f"clip.{index}.latents"] = clip.latents
        tensors[f"clip.{index}.image_embeds"] = clip.image_embeds
        entries.append({"name": clip.name, "motion_bucket_id": clip.motion_bucket_id,
                        "motion_score": clip.motion_score})
    safetensors_io.save(tensors, path, {"format": _FORMAT, "clips": json.dumps(entries)})


def load_clip_cache(path: str | os.PathLike) -> list[EncodedClip]:
    tensors, metadata = safetensors_io.load(path)
    name = os.path.basename(os.fspath(path))
    if metadata.get("format") != _FORMAT:
        raise CheckpointError(f"{name} is not an ExVideo clip cache (made by encode_clips + save_clip_cache)")
    try:
        entries = json.loads(metadata["clips"])
        return [EncodedClip(entry["name"], tensors[f"clip.{i}.latents"], tensors[f"clip.{i}.image_embeds"],
                            int(entry["motion_bucket_id"]), float(entry["motion_score"]))
                for i, entry in enumerate(entries)]
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{name} is a damaged clip cache ({type(e).__name__}: {e})") from None
