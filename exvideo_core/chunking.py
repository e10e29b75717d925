"""A frame-chunked forward for the ExVideo-patched SVD UNet: memory that stops growing with the transients.

The UNet runs all `(b t)` frames of a video through every layer at once, so
its widest transients (the GEGLU projections, 8x the channels, and the
attention) scale with the frame count. Most layers do not need the clip:

- per-frame layers (spatial ResBlocks, spatial attention and feed-forwards,
  GroupNorms over (c h w) of one frame, projections) treat each `(b t)` row
  on its own, so they run over chunks of K frames, exactly;
- cross-frame layers (the temporal transformer, tokens `(b h w) t c`) treat
  each spatial position on its own, so they run over chunks of positions
  holding K frames' worth of tokens; ExVideo's 3x3x3 positional conv reads a
  1-row halo on each side of its chunk, cut from the once-padded clip;
- the temporal ResBlock (`VideoResBlock.time_stack`) normalises over the
  whole clip, so it stays whole: it holds no channel expansion and its
  transients are a few copies of its input.

What stays O(T) is each layer's input and output, the UNet's skip stack and
a few level copies; the transients are O(K). The 16 temporal attention blocks
chunk inside `ExVideoVideoTransformer` (see `video_transformer_forward`);
every VideoResBlock is replaced on the clone by an object patch holding a
`ChunkedVideoResBlock` sharing its modules, and the clone's `memory_required`
is an object patch reporting `MemoryModel`'s estimate, so ComfyUI batches
cond with uncond when they fit. The unpatched MODEL keeps its own blocks and
estimate.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from einops import rearrange, repeat

import comfy.model_management
import comfy.model_patcher
from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock, VideoResBlock

from .errors import InputError
from .layout import MODEL_PREFIX as UNET_PREFIX
from .shared_module import share_modules
from .unet_map import skip_copies

# frame_chunk=None picks K per UNet level so that a chunk holds about this
# many tokens (8 frames of a 512x512 video's level 0, 64x64 latents): the
# level-0 GEGLU transient of one chunk is then 8 * 4096 tokens x 2560 channels,
# about 170 MB in fp16, whatever the length. Deeper levels (4x, 16x, 64x fewer
# tokens a frame) get longer chunks, and small videos (a 16x16 latent: 128
# frames a chunk) run unchunked, where splitting would only cost kernel
# launches. Chunking pays where T * h * w exceeds this, which is where
# activation memory, not weights, sets the peak.
AUTO_CHUNK_TOKENS = 8 * 64 * 64


# The memory model of the forward (docs/memory.md), in copies of a level-0
# feature map (model_channels values a token, a token being one frame's
# latent pixel), dtype-sized: what stays alive across the whole forward, per
# token of the batch (the skip stack, about 4.5 copies at SVD's widths, a
# layer's input and output, the level-0 concatenation of the decoder), and
# what one chunk adds while it runs, per token of the chunk (the GEGLU's 8x
# projection and its two 4x halves, attention, norms). Counted from the
# layers' shapes, not yet fitted: benchmarks/unet_memory.py measures the
# full-size peaks to check them against (docs/memory.md). With the skip stack
# in host memory its copies (unet_map.skip_copies) leave the held part.
HELD_COPIES = 12
CHUNK_COPIES = 24


def activation_bytes(tokens: int, chunk_tokens: int, model_channels: int, dtype_size: int,
                     host_copies: float = 0.0) -> int:
    """Predicted activation peak of one forward over `tokens` (b t h w at the latent) in chunks of `chunk_tokens`.

    host_copies: held copies kept in host memory instead (the skip stack).
    """
    held = (HELD_COPIES - host_copies) * tokens
    return int(dtype_size * model_channels * (held + CHUNK_COPIES * min(chunk_tokens, tokens)))


def memory_required(base_model, frame_chunk: int | None, skips_on_host: bool = False) -> Callable:
    """The clone's `BaseModel.memory_required` (an object patch): the chunked forward's `activation_bytes`.

    Same signature and dtype rule as ComfyUI's, which for SVD reserves
    about 0.02 MiB a token and dtype byte, several times what the chunked
    forward holds; reserving that would keep cond and uncond from batching
    (ComfyUI batches them when 1.5x the estimate is free). The attention
    backends size their own query chunks to the free memory, so they are not
    counted apart.
    """
    model_channels = base_model.diffusion_model.model_channels
    host_copies = skip_copies(base_model.diffusion_model) if skips_on_host else 0.0

    def required(input_shape, cond_shapes={}):
        dtype = base_model.manual_cast_dtype or base_model.get_dtype()
        pixels = math.prod(input_shape[2:])
        tokens = input_shape[0] * pixels
        if frame_chunk == 0:
            chunk_tokens = tokens
        elif frame_chunk is None:
            chunk_tokens = AUTO_CHUNK_TOKENS
        else:
            chunk_tokens = frame_chunk * pixels
        return activation_bytes(tokens, chunk_tokens, model_channels, comfy.model_management.dtype_size(dtype),
                                host_copies)

    return required


def check_frame_chunk(frame_chunk) -> None:
    """Refuses anything but None (automatic), 0 (unchunked) or a positive frame count."""
    if frame_chunk is None:
        return
    if isinstance(frame_chunk, bool) or not isinstance(frame_chunk, int) or frame_chunk < 0:
        raise InputError(f"frame_chunk must be a whole number of frames >= 0 (0 runs all frames at once) or "
                         f"None for automatic, got {frame_chunk!r}")


def chunk_frames(frame_chunk: int | None, level: int, rows: int, h: int, w: int) -> int:
    """Frames per chunk for a layer at UNet `level` with `rows` = (b t) frames of h x w tokens; 0: run it whole.

    K frames means K frames' worth of the latent's tokens: a level with h and
    w halved `level` times takes 4**level times as many frames a chunk, so deep
    levels (a few tokens a frame) do not split into launches of nothing.
    """
    if frame_chunk is None:
        chunk = max(1, AUTO_CHUNK_TOKENS // (h * w))
    else:
        chunk = frame_chunk * 4 ** level
    return chunk if 0 < chunk < rows else 0


def map_frames(fn: Callable[..., torch.Tensor], chunk: int, x: torch.Tensor, *per_frame) -> torch.Tensor:
    """fn over chunks of `chunk` rows of x (and of each per-frame tensor with x's leading size), concatenated.

    The output is allocated once and filled, so no chunk list and concatenated
    copy exist together.
    """
    rows = x.shape[0]
    out = None
    for start in range(0, rows, chunk):
        part = slice(start, min(start + chunk, rows))
        args = [a[part] if a is not None and a.shape[0] == rows else a for a in per_frame]
        y = fn(x[part], *args)
        if out is None:
            out = y.new_empty((rows, *y.shape[1:]))
        out[part] = y
        del y
    return out


class ChunkedVideoResBlock(VideoResBlock):
    """SVD's VideoResBlock with its spatial ResBlock over chunks of frames; the temporal ResBlock stays whole."""

    frame_chunk: int | None
    chunk_level: int

    @classmethod
    def wrap(cls, base: VideoResBlock, frame_chunk: int | None, level: int) -> "ChunkedVideoResBlock":
        block = share_modules(cls, base)
        block.frame_chunk, block.chunk_level = frame_chunk, level
        return block

    def forward(self, x: torch.Tensor, emb: torch.Tensor, num_video_frames: int,
                image_only_indicator=None) -> torch.Tensor:
        chunk = chunk_frames(self.frame_chunk, self.chunk_level, x.shape[0], *x.shape[-2:])
        if not chunk:
            return super().forward(x, emb, num_video_frames, image_only_indicator)
        x = map_frames(lambda rows, emb_rows: ResBlock.forward(self, rows, emb_rows), chunk, x, emb)
        # The rest is VideoResBlock.forward after its spatial ResBlock.
        x = rearrange(x, "(b t) c h w -> b c t h w", t=num_video_frames)
        mixed = self.time_stack(x, rearrange(emb, "(b t) ... -> b t ...", t=num_video_frames))
        mixed = self.time_mixer(x_spatial=x, x_temporal=mixed, image_only_indicator=image_only_indicator)
        return rearrange(mixed, "b c t h w -> (b t) c h w")


def video_transformer_forward(block, x: torch.Tensor, context, time_context, num_frames: int, image_only_indicator,
                              transformer_options: dict, chunk: int) -> torch.Tensor:
    """`ExVideoVideoTransformer.forward` (depth 1, spatial time context) over chunks of K frames' tokens.

    Spatial part: norm, proj_in and the spatial transformer block per chunk
    of K frames. Temporal part: per video, per chunk of rows holding about K
    frames' worth of tokens, the positional conv (on rows with a 1-row halo
    of the clip padded once), the temporal transformer block and the alpha
    blend, into a new buffer (writing over the spatial result would save a
    copy but break autograd for a trainer). Then proj_out and the residual per
    chunk of frames.
    """
    bt, _, h, w = x.shape
    spatial_block, mix_block = block.transformer_blocks[0], block.time_stack[0]
    transformer_options["block_index"] = 0

    def spatial(rows: torch.Tensor, context_rows) -> torch.Tensor:
        return spatial_block(block.project_in(rows), context=context_rows, transformer_options=transformer_options)

    x_s = map_frames(spatial, chunk, x, context)  # (b t) (h w) c
    channels = x_s.shape[-1]
    frame_emb = block.time_pos_embed(block.time_pos_table(num_frames, like=x_s))  # t c
    padded = block.time_pos_conv.pad(rearrange(x_s, "(b t) (h w) c -> b c t h w", t=num_frames, h=h)
                                     + rearrange(frame_emb, "t c -> 1 c t 1 1"))
    # Each video's first-frame context, as the unchunked forward repeats it per position.
    video_context = None if time_context is None else time_context[::num_frames]
    grid = x_s.view(bt // num_frames, num_frames, h, w, channels)
    mixed_grid = torch.empty_like(grid)
    rows_per_chunk = max(1, chunk * h // num_frames)
    halo = block.time_pos_conv.reflect_padding
    for video in range(grid.shape[0]):
        indicator = None if image_only_indicator is None else image_only_indicator[video:video + 1]
        for top in range(0, h, rows_per_chunk):
            bottom = min(top + rows_per_chunk, h)
            mix = block.time_pos_conv.convolve(padded[video:video + 1, :, :, top:bottom + 2 * halo])
            mix = rearrange(mix, "1 c t h w -> (h w) t c")
            position_context = None if video_context is None else repeat(
                video_context[video:video + 1], "1 ... -> n ...", n=mix.shape[0])
            mix = mix_block(mix, context=position_context, transformer_options=transformer_options)
            mix = rearrange(mix, "(h w) t c -> t (h w) c", w=w)
            spatial_part = grid[video, :, top:bottom].reshape(num_frames, -1, channels)
            mixed = block.time_mixer(x_spatial=spatial_part, x_temporal=mix, image_only_indicator=indicator)
            mixed_grid[video, :, top:bottom] = mixed.view(num_frames, bottom - top, w, channels)
            del mix, mixed, spatial_part
    del padded, grid, x_s

    return map_frames(lambda rows, inputs: block.project_out(rows, h, w) + inputs, chunk,
                      mixed_grid.view(bt, h * w, channels), x)


def patch_forward(patched: comfy.model_patcher.ModelPatcher, model: comfy.model_patcher.ModelPatcher,
                  frame_chunk: int | None, levels: dict[str, int], skips_on_host: bool = False) -> None:
    """Object patches on `patched`: every VideoResBlock of `model` chunked (sharing its modules), its memory estimate.

    Object patches live on the clone: ComfyUI sets them while the clone is
    loaded and restores `model`'s own when it unloads. The estimate counts
    the skip stack as held unless `skips_on_host` (skip_stack.py).
    """
    patched.add_object_patch("memory_required", memory_required(model.model, frame_chunk, skips_on_host))
    for name, module in model.model.named_modules():
        if isinstance(module, VideoResBlock):
            level = levels[name.removeprefix(UNET_PREFIX)]
            patched.add_object_patch(name, ChunkedVideoResBlock.wrap(model.get_model_object(name), frame_chunk, level))
