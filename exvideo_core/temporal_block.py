"""SVD's temporal attention block with ExVideo's two additions.

ComfyUI's `SpatialVideoTransformer.forward` computes the frame embedding
inline (`time_pos_embed(sinusoid(arange(T)))`) and passes `x + emb` straight
to the temporal transformer, so neither ExVideo change has a hook. This
subclass shares every child module of the block it wraps (so weight keys,
weight patches and LoRAs resolve to the very same parameters) and adds:

- `time_pos_table`: the learned (N, C) table that replaces the sinusoid
  input of `time_pos_embed`; frame t uses row t;
- `time_pos_conv`: a reflect-padded 3x3x3 conv over (t, h, w), applied to
  `x + emb` before the temporal transformer (padded outside ComfyUI's op, see
  `ReflectPaddedConv3d`).

It is installed as a ModelPatcher object patch, never by editing ComfyUI:
unpatching puts the original block back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

import comfy.ops
from comfy.ldm.modules.attention import SpatialVideoTransformer

from .chunk_policy import chunk_frames
from .chunking import map_frames, position_chunks
from .constraints import check_feature_map
from .errors import FrameCountError, IncompatibleModelError, InputError
from .shared_module import share_modules

# Children that belong to the ExVideo wrapper itself, not to the base block.
_OWN_CHILDREN = ("time_pos_table", "time_pos_conv")


class FramePositionTable(torch.nn.Module):
    """Learned frame-position inputs, one row per frame: (N, C)."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(table, requires_grad=False)

    @property
    def num_frames(self) -> int:
        return self.weight.shape[0]

    def forward(self, num_frames: int, like: torch.Tensor) -> torch.Tensor:
        if num_frames > self.num_frames:
            raise frame_count_error(num_frames, self.num_frames)
        return self.weight[:num_frames].to(device=like.device, dtype=like.dtype)


def frame_count_error(frames: int, rows: int) -> FrameCountError:
    """The error for a video longer than the table, raised by the sampler check and, as a last guard, here."""
    return FrameCountError(
        f"this video has {frames} latent frames but the ExVideo extension's position table covers only {rows}. "
        f"Generate at most {rows} frames, or extend the table (the 'frames' input of ExVideo Apply Extension, or "
        f"ExVideoWeights.extend({frames})) and post-tune it.")


class ReflectPaddedConv3d(comfy.ops.manual_cast.Conv3d):
    """A 3x3x3 conv with reflect padding that every ComfyUI conv3d path computes exactly.

    ComfyUI's `Conv3d._conv_forward` may bypass torch's padding-mode handling:
    with `NVIDIA_MEMORY_CONV_BUG_WORKAROUND` (cuDNN 9.10.2-9.14, torch
    2.9-2.10) every fp16/bf16 conv3d runs `torch.cudnn_convolution(input,
    weight, self.padding, ...)`, which zero-pads whatever `padding_mode` says.
    So the reflection is done here, outside the op, and the op itself convolves
    with padding 0, which all of its paths agree on. It is still ComfyUI's op,
    so weight casting, offloading and weight wrappers work as for any layer,
    and the parameters (`weight`, `bias`) are those of `Conv3d(padding=1,
    padding_mode="reflect")`.
    """

    def __init__(self, channels: int, kernel_size: int = 3, **kwargs):
        super().__init__(channels, channels, kernel_size=kernel_size, padding=0, **kwargs)
        self.reflect_padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolve(self.pad(x))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        # The block's tokens rearranged to (b c t h w) have channels-last strides, which F.pad keeps, and torch's
        # CPU conv3d runs that layout with contiguous weights up to twice as slowly as NCDHW at the deep levels
        # (1280 channels, 2x2, 8 frames: 0.33 s against 0.17 s; 1.5x over a full-size UNet's 16 convs).
        return F.pad(x.contiguous(), (self.reflect_padding,) * 6, mode="reflect")

    def convolve(self, padded: torch.Tensor) -> torch.Tensor:
        """The conv of an already padded input (a chunk cut from `pad(x)` with its halo)."""
        return super().forward(padded)


def positional_conv(channels: int, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype,
                    device: torch.device | None = None) -> ReflectPaddedConv3d:
    # manual_cast ops cast the weights to the activations' dtype and device on
    # the fly, so the conv works under ComfyUI's lowvram loading and any
    # UNet dtype, like the UNet's own layers.
    conv = ReflectPaddedConv3d(channels, kernel_size=3, dtype=dtype, device=device)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


def _check_video(rows: int, num_frames: int, h: int, w: int) -> None:
    if rows % num_frames:
        raise InputError(f"a batch of {rows} frames is not a whole number of {num_frames}-frame videos")
    check_feature_map(num_frames, h, w)


class ExVideoVideoTransformer(SpatialVideoTransformer):
    """A `SpatialVideoTransformer` whose temporal branch runs ExVideo."""

    time_pos_table: FramePositionTable
    time_pos_conv: ReflectPaddedConv3d
    frame_chunk: int | None
    chunk_level: int

    @classmethod
    def wrap(cls, base: SpatialVideoTransformer, table: torch.nn.Module, conv: torch.nn.Module,
             frame_chunk: int | None = 0, level: int = 0) -> "ExVideoVideoTransformer":
        """A new block sharing `base`'s children (an ExVideo block's own parts are replaced).

        frame_chunk: frames per chunk of the chunked forward (see chunking.py);
        0 runs all frames at once, None picks it per level; level: the
        block's UNet level (unet_map), which scales a forced chunk.
        """
        if base.depth != 1 or len(base.time_stack) != 1:
            raise IncompatibleModelError(
                f"ExVideo expects one temporal transformer per block (SVD); this block has {base.depth}")
        block = share_modules(cls, base, own=_OWN_CHILDREN)
        block.time_pos_table = table
        block.time_pos_conv = conv
        block.frame_chunk, block.chunk_level = frame_chunk, level
        return block

    def forward(self, x: torch.Tensor, context=None, time_context=None, timesteps=None,
                image_only_indicator=None, transformer_options={}) -> torch.Tensor:
        """SpatialVideoTransformer.forward (pinned: tests/core/test_host_pins.py) with ExVideo's temporal branch.

        In chunks of `chunk` frames' worth of tokens (chunk_policy.py; the
        whole batch when unchunked): the spatial part per chunk of frames; the
        temporal part (positional conv on rows with their halo of the clip
        padded once, temporal transformer, alpha blend) per chunk of spatial
        positions, into a new buffer (writing over the spatial result would
        save a copy but break autograd for a trainer); then proj_out and the
        residual per chunk of frames.
        """
        num_frames = timesteps
        bt, _, h, w = x.shape
        _check_video(bt, num_frames, h, w)
        transformer_options["activations_shape"] = list(x.shape)
        transformer_options["block_index"] = 0  # depth 1: one spatial and one temporal transformer (wrap)
        chunk = chunk_frames(self.frame_chunk, self.chunk_level, bt, h, w) or bt
        spatial_block, mix_block = self.transformer_blocks[0], self.time_stack[0]

        def spatial(rows: torch.Tensor, context_rows) -> torch.Tensor:
            return spatial_block(self.project_in(rows), context=context_rows, transformer_options=transformer_options)

        tokens = map_frames(spatial, chunk, x, context)  # (b t) (h w) c
        channels = tokens.shape[-1]
        frame_emb = self.time_pos_embed(self.time_pos_table(num_frames, like=tokens))  # t c
        padded = self.time_pos_conv.pad(rearrange(tokens, "(b t) (h w) c -> b c t h w", t=num_frames, h=h)
                                        + rearrange(frame_emb, "t c -> 1 c t 1 1"))
        video_context = self._video_context(context, time_context, num_frames)
        grid = tokens.view(bt // num_frames, num_frames, h, w, channels)
        mixed_grid = torch.empty_like(grid)
        halo = self.time_pos_conv.reflect_padding
        for videos, rows in position_chunks(grid.shape[0], h, max(1, chunk * h // num_frames)):
            mix = self.time_pos_conv.convolve(padded[videos, :, :, rows.start:rows.stop + 2 * halo])
            positions = mix.shape[-2] * mix.shape[-1]
            mix = rearrange(mix, "v c t h w -> (v h w) t c")
            position_context = None if video_context is None else repeat(
                video_context[videos], "v ... -> (v n) ...", n=positions)
            mix = mix_block(mix, context=position_context, transformer_options=transformer_options)
            mix = rearrange(mix, "(v n) t c -> (v t) n c", n=positions)
            spatial_part = grid[videos, :, rows].reshape(-1, positions, channels)
            indicator = None if image_only_indicator is None else image_only_indicator[videos]
            mixed = self.time_mixer(x_spatial=spatial_part, x_temporal=mix, image_only_indicator=indicator)
            mixed_grid[videos, :, rows] = mixed.view(mixed_grid[videos, :, rows].shape)
            del mix, mixed, spatial_part
        del padded, grid, tokens

        return map_frames(lambda rows, inputs: self.project_out(rows, h, w) + inputs, chunk,
                          mixed_grid.view(bt, h * w, channels), x)

    def _video_context(self, context, time_context, num_frames: int):
        """Each video's context of the temporal cross-attention, as the host's forward chooses it (b ...)."""
        if self.use_spatial_context:
            # SVD's temporal cross-attention reads each video's first-frame context.
            return (context if time_context is None else time_context)[::num_frames]
        if time_context is not None and time_context.ndim == 2:
            return rearrange(time_context, "b c -> b 1 c")
        return time_context

    def project_in(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (bt c h w) to the transformer's tokens (bt (h w) c), per frame."""
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = rearrange(x, "bt c h w -> bt (h w) c")
        if self.use_linear:
            x = self.proj_in(x)
        return x

    def project_out(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Tokens back to frames, per frame (the residual is the caller's)."""
        if self.use_linear:
            x = self.proj_out(x)
        x = rearrange(x, "bt (h w) c -> bt c h w", h=h, w=w)
        if not self.use_linear:
            x = self.proj_out(x)
        return x
