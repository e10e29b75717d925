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
is an object patch reporting the memory model's estimate (memory_model.py), so ComfyUI batches
cond with uncond when they fit. The unpatched MODEL keeps its own blocks and
estimate.
"""

from __future__ import annotations

from typing import Callable

import torch
from einops import rearrange, repeat

import comfy.model_patcher
from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock, VideoResBlock

from .chunk_policy import chunk_frames
from .layout import MODEL_PREFIX as UNET_PREFIX
from .memory_model import memory_required
from .shared_module import share_modules

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
