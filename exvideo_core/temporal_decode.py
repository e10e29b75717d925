"""Decoding long SVD latents with SVD's temporal VAE in overlapping windows.

SVD's temporal decoder mixes information across every frame of its batch, so
ComfyUI's `VAE.decode`, which cuts the frames into memory-sized batches with
hard seams, shows a jump at each cut, and 128 frames in one batch rarely fit.
We decode windows of `window` frames that overlap by `overlap` and blend them
the way DiffSynth-Studio's `SVDVAEDecoder.decode_video` does, so with the same
window and stride the result equals DiffSynth's:

- windows start every `stride = window - overlap` frames; the first window
  that reaches the end is the last, truncated there (never shifted back);
- each decoded chunk is weighted by DiffSynth's mask: the distance to the
  chunk's nearest non-boundary face (frames, pixels), clipped to
  `(frames + height + width) // 6` pixels, and the weighted sums are divided
  by the summed weights.

Optional spatial tiles use the same placement and mask per axis, as in
`decode_video`. Latents are in the VAE's own scale, as ComfyUI's LATENT holds
them after sampling; DiffSynth keeps them multiplied by 0.18215, which its
decoder divides out, so DiffSynth decodes `0.18215 * samples` to our result.

Memory: the output is allocated once on the VAE's output device and chunks
are added into it; besides it only one window's latents, pixels and blend
weights are held, however many frames there are.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import rearrange

import comfy.model_management
import comfy.sd
from comfy.ldm.modules.temporal_ae import VideoDecoder

from .constraints import LATENT_CHANNELS, check_video_latent
from .errors import InputError, ModelError

DEFAULT_WINDOW = 8
DEFAULT_OVERLAP = 4
DEFAULT_TILE_OVERLAP = 8

Span = tuple[int, int]


def check_temporal_vae(vae: comfy.sd.VAE) -> None:
    """Raise ModelError unless `vae` holds SVD's temporal-decoder VAE."""
    decoder = getattr(getattr(vae, "first_stage_model", None), "decoder", None)
    if not isinstance(decoder, VideoDecoder):
        raise ModelError(
            f"ExVideo Temporal VAE Decode needs the temporal-decoder VAE of Stable Video Diffusion, but this VAE "
            f"has a {type(decoder).__name__ if decoder is not None else 'missing'} decoder. Connect the VAE output "
            f"of 'Image Only Checkpoint Loader' (svd_xt.safetensors); for an image VAE use the regular 'VAE Decode'.")


def spans(length: int, size: int, stride: int) -> list[Span]:
    """DiffSynth's placement along one axis: starts every `stride`, up to the first span reaching `length`."""
    return [(start, min(start + size, length)) for start in range(0, length, stride)
            if not (start >= stride and start - stride + size >= length)]


def blend_mask(frames: int, height: int, width: int, bounds: tuple[bool, ...]) -> torch.Tensor:
    """DiffSynth's `build_mask` as (t h w): ramps towards each face of a chunk that is not on the video's boundary.

    `bounds` says, for the (start, end) faces of t, h and w in that order,
    whether the face lies on the video's boundary; there the weight stays flat.
    `height`/`width` are in pixels, so the ramp is per frame in time and per
    pixel in space.
    """
    border = (frames + height + width) // 6
    t = rearrange(torch.arange(frames), "t -> t 1 1")
    h = rearrange(torch.arange(height), "h -> 1 h 1")
    w = rearrange(torch.arange(width), "w -> 1 1 w")
    distances = (t + 1, frames - t, h + 1, height - h, w + 1, width - w)
    mask = torch.full((frames, height, width), border)
    for distance, on_boundary in zip(distances, bounds, strict=True):
        if not on_boundary:
            mask = torch.minimum(mask, distance)
    return mask.clip(min=1) / border


def _check_arguments(samples: torch.Tensor, window: int, overlap: int, tile_size: int, tile_overlap: int) -> None:
    check_video_latent(samples)
    if window < 2:
        raise InputError(f"window_frames must be at least 2, got {window}: the temporal decoder blends neighbouring frames.")
    if not 0 <= overlap < window:
        raise InputError(
            f"overlap_frames must be at least 0 and less than window_frames ({window}), got {overlap}; "
            f"DiffSynth's setting is window 8, overlap 4.")
    if tile_size < 0 or (tile_size > 0 and not 0 <= tile_overlap < tile_size):
        raise InputError(
            f"tile_size must be 0 (no spatial tiles) or larger than tile_overlap (>= 0), got tile_size {tile_size}, "
            f"tile_overlap {tile_overlap}.")


def _tiles(height: int, width: int, tile_size: int, tile_overlap: int) -> list[tuple[Span, Span]]:
    if tile_size == 0:
        return [((0, height), (0, width))]
    stride = tile_size - tile_overlap
    return [(h, w) for h in spans(height, tile_size, stride) for w in spans(width, tile_size, stride)]


def _finish(image: torch.Tensor, weight: torch.Tensor, process_output) -> None:
    """Frames (t h w c) that got all their chunks: weighted sums to averages, then to image values, in place."""
    image /= weight
    image.copy_(rearrange(process_output(rearrange(image, "t h w c -> t c h w")), "t c h w -> t h w c"))


@torch.no_grad()
def temporal_decode(
    vae: comfy.sd.VAE,
    samples: torch.Tensor,
    window: int = DEFAULT_WINDOW,
    overlap: int = DEFAULT_OVERLAP,
    tile_size: int = 0,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Decode SVD latents (t, 4, h, w) to a ComfyUI IMAGE (t, H, W, 3) in [0, 1].

    `tile_size`/`tile_overlap` are in latent pixels (0: whole frames).
    `callback(done, total)` is called after each decoded chunk; between chunks
    a ComfyUI interrupt raises `InterruptProcessingException`.
    """
    check_temporal_vae(vae)
    _check_arguments(samples, window, overlap, tile_size, tile_overlap)
    frames, _, height, width = samples.shape
    scale = vae.spacial_compression_decode()
    windows = spans(frames, window, window - overlap)
    tiles = _tiles(height, width, tile_size, tile_overlap)
    total = len(windows) * len(tiles)

    # The first window and tile are the largest.
    (t0, t1), ((h0, h1), (w0, w1)) = windows[0], tiles[0]
    window_frames = t1 - t0
    # `memory_used_decode` is per frame (VAE.decode multiplies it by its batch); a window is one batch.
    per_frame = vae.memory_used_decode((window_frames, LATENT_CHANNELS, h1 - h0, w1 - w0), vae.vae_dtype)
    comfy.model_management.load_models_gpu(
        [vae.patcher], memory_required=window_frames * per_frame, force_full_load=vae.disable_offload)

    out_device = vae.output_device
    image = torch.zeros((frames, height * scale, width * scale, vae.output_channels), device=out_device)
    # Blend weights of frames first .. first + window - 1 only: the frames
    # before a window's start get no more chunks and are finished then.
    weight = torch.zeros((window_frames, height * scale, width * scale, 1), device=out_device)
    first = 0
    step = 0
    for t0, t1 in windows:
        _finish(image[first:t0], weight[:t0 - first], vae.process_output)
        weight = weight.roll(first - t0, dims=0)
        weight[window_frames - (t0 - first):] = 0
        first = t0
        for (h0, h1), (w0, w1) in tiles:
            comfy.model_management.throw_exception_if_processing_interrupted()
            # The decoder takes its whole batch as one clip, so the batch is the window. (Its `timesteps`
            # argument cannot be passed: SVD's middle attention block is a plain one that takes no keywords.)
            chunk = samples[t0:t1, :, h0:h1, w0:w1].to(vae.vae_dtype).to(vae.device)
            pixels = vae.first_stage_model.decode(chunk).to(out_device).float()
            pixels = rearrange(pixels, "t c h w -> t h w c")
            t, h, w = pixels.shape[:3]
            mask = blend_mask(t, h, w, (t0 == 0, t1 >= frames, h0 == 0, h1 >= height, w0 == 0, w1 >= width))
            mask = rearrange(mask.to(out_device), "t h w -> t h w 1")
            image[t0:t1, h0 * scale:h1 * scale, w0 * scale:w1 * scale] += pixels * mask
            weight[:t, h0 * scale:h1 * scale, w0 * scale:w1 * scale] += mask
            # Otherwise this chunk's tensors live on while the next one is decoded: two windows at the peak.
            del chunk, pixels, mask
            step += 1
            if callback is not None:
                callback(step, total)
    _finish(image[first:], weight[:frames - first], vae.process_output)
    return image
