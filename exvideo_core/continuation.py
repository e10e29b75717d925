"""Videos longer than one clip: a chain of clips, each continuing the previous one without a jump.

The next clip starts with the previous clip's last `overlap` latent frames
and the sampler keeps them, so the model generates the remaining frames as
the continuation of real motion, not of a still image. The keeping is
ComfyUI's own inpainting machinery, the same replacement DiffSynth's
pipeline does with `mask_frames` / `mask_frame_ids`:

- the LATENT holds the carried frames in its first `overlap` positions and
  a `noise_mask` of shape (t 1 h w): 0 on carried frames (keep), 1 on the
  rest (generate). ComfyUI reshapes a noise mask to (-1, 1, H, W), resizes
  it to the latent and tiles it over the batch (`comfy.utils.reshape_mask`),
  so a video mask needs one plane per frame: a single plane would apply to
  every frame;
- `comfy.samplers.KSamplerX0Inpaint` then, before every model call, replaces
  the carried frames by their clean latents noised to the current sigma
  with the sampler's own initial noise (`latent + sigma * noise` for SVD's
  EDM sampling; DiffSynth also re-noises with the clip's initial noise), and
  replaces the model's prediction for them by the clean latents. All native
  samplers go through it (ddim with fresh noise for the re-noising).

The image conditioning is the previous clip's last frame. Joining drops the
new clip's carried frames, so the joined video has each frame once.

Two options against the drift that makes joins visible, each off by default:
- `reference_image`: the CLIP embedding comes from this image (the video's
  original first frame), while the latent conditioning stays the last
  frame; the content's identity is then anchored to the start, not to a
  frame that has already drifted;
- `anchor_colour`: each latent channel of the new frames gets the mean and
  spread it has in the video's first clip, re-anchoring colour and
  brightness to the start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from einops import reduce

from .constraints import check_video_latent
from .errors import InputError
from .patch import check_video_length
from .sampling import SamplingSettings, image_to_video_conditioning, sample_video

# SVD's temporal decoder computes a frame from its neighbours: the last frame
# is decoded with as many frames before it as one window of the long-video
# decode holds (DiffSynth's 8).
LAST_FRAME_DECODE_CONTEXT = 8


def carry_frames(previous: torch.Tensor, frames: int, overlap: int) -> dict:
    """A LATENT of `frames` frames starting with the last `overlap` of `previous` (t 4 h w), kept by its noise_mask."""
    if not 1 <= overlap < frames:
        raise InputError(
            f"overlap_frames must be at least 1 and less than frames ({frames}), got {overlap}: the new clip needs "
            f"frames of its own after the {overlap} carried ones.")
    if overlap > previous.shape[0]:
        raise InputError(f"overlap_frames ({overlap}) is more than the previous video's {previous.shape[0]} frames.")
    _, channels, height, width = previous.shape
    samples = torch.zeros(frames, channels, height, width, dtype=previous.dtype, device=previous.device)
    samples[:overlap] = previous[-overlap:]
    noise_mask = torch.ones(frames, 1, height, width, dtype=previous.dtype, device=previous.device)
    noise_mask[:overlap] = 0.0
    return {"samples": samples, "noise_mask": noise_mask}


def last_frame(vae, samples: torch.Tensor) -> torch.Tensor:
    """The last frame of a video latent (t 4 h w) as an IMAGE (1 H W 3)."""
    return vae.decode(samples[-LAST_FRAME_DECODE_CONTEXT:])[-1:]


def anchor_colour(clip: torch.Tensor, reference: torch.Tensor, overlap: int) -> torch.Tensor:
    """`clip` (t c h w) with each channel of its frames after `overlap` at `reference`'s mean and std."""
    new = clip[overlap:]
    mean, std = new.mean(dim=(0, 2, 3), keepdim=True), new.std(dim=(0, 2, 3), keepdim=True)
    target_mean = reference.mean(dim=(0, 2, 3), keepdim=True)
    target_std = reference.std(dim=(0, 2, 3), keepdim=True)
    return torch.cat([clip[:overlap], (new - mean) / std.clamp_min(1e-6) * target_std + target_mean])


def continue_video(model, clip_vision, vae, previous_latent: dict, frames: int, overlap: int = 8,
                   settings: SamplingSettings = SamplingSettings(), *, previous_images: torch.Tensor | None = None,
                   reference_image: torch.Tensor | None = None, anchor: bool = False,
                   callback: Callable | None = None) -> dict:
    """The LATENT of the clip that continues `previous_latent` (a clip or a whole video; t 4 h w).

    The clip has `frames` frames, its first `overlap` equal to the previous
    video's last. It is conditioned on the previous video's last frame: the
    last image of `previous_images` (the decoded video) when given, else that
    frame decoded here with `vae`. Size and everything else follow the
    previous latent. `reference_image` and `anchor`: the options of the
    module docstring (`anchor` takes the first clip as the previous video's
    first `frames` frames).
    """
    previous = check_video_latent(previous_latent["samples"], "the previous latent")
    check_video_length(model, frames)
    latent = carry_frames(previous, frames, overlap)
    _, _, latent_height, latent_width = previous.shape
    scale = vae.spacial_compression_encode()
    condition = last_frame(vae, previous) if previous_images is None else previous_images[-1:]
    positive, negative, _ = image_to_video_conditioning(
        clip_vision, vae, condition, latent_width * scale, latent_height * scale, frames, settings,
        embedding_image=reference_image)
    out = sample_video(model, positive, negative, latent, settings, callback=callback)["samples"]
    if anchor:
        out = anchor_colour(out, previous[:frames].to(out), overlap)
    # Euler-type samplers return the kept frames up to float round-off, but
    # multistep ones (uni_pc) end on a mix of several predictions and drift;
    # written back, the overlap equals the previous frames bit for bit.
    out[:overlap] = previous[-overlap:].to(out)
    return {"samples": out}


def join_clips(latent_a: dict, latent_b: dict, overlap: int) -> dict:
    """The video of `latent_a` followed by `latent_b` without its first `overlap` frames (a's last, carried)."""
    a = check_video_latent(latent_a["samples"], "the first latent")
    b = check_video_latent(latent_b["samples"], "the second latent")
    if a.shape[1:] != b.shape[1:]:
        raise InputError(f"the two latents have different frame sizes, {tuple(a.shape[1:])} and "
                           f"{tuple(b.shape[1:])}: they are not clips of one video.")
    if not 0 <= overlap < b.shape[0] or overlap > a.shape[0]:
        raise InputError(
            f"overlap ({overlap}) must be at least 0, less than the second clip's {b.shape[0]} frames and at most "
            f"the first's {a.shape[0]}; use the overlap_frames the second clip was made with.")
    return {"samples": torch.cat([a, b[overlap:].to(a)])}


@dataclass(frozen=True)
class JoinJump:
    """Mean absolute change between consecutive frames at each join, and the median of it elsewhere."""

    at_joins: list[float]
    inside_median: float

    @property
    def ratio(self) -> float:
        """The largest join's change over the typical change inside clips: about 1 for an invisible join."""
        if self.inside_median == 0:
            return math.inf if max(self.at_joins) > 0 else 1.0
        return max(self.at_joins) / self.inside_median


def join_jump(frames: torch.Tensor, joins: list[int]) -> JoinJump:
    """How visible the joins of a video are.

    `frames`: IMAGE (t h w c) or latent (t c h w), frames first either way.
    `joins`: index of the first frame of each later clip in the joined video
    (for `join_clips(a, b, k)`, the number of frames of a).
    """
    count = frames.shape[0]
    if not joins or any(not 1 <= j < count for j in joins):
        raise InputError(f"joins must be frame indices between 1 and {count - 1}, got {joins}")
    change = reduce((frames[1:] - frames[:-1]).abs().float(), "t ... -> t", "mean")  # (t-1): frame i -> i + 1
    at_join = torch.zeros(count - 1, dtype=torch.bool)
    at_join[[j - 1 for j in joins]] = True
    if at_join.all():
        raise InputError("every frame step is a join: no frames inside the clips to compare with")
    return JoinJump([change[j - 1].item() for j in joins], change[~at_join].median().item())
