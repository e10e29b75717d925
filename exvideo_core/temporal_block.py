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
from .chunking import video_transformer_forward
from .errors import ExVideoError, FrameCountError, IncompatibleModelError, InputError
from .shared_module import share_modules

# Children that belong to the ExVideo wrapper itself, not to the base block.
_OWN_CHILDREN = ("time_pos_table", "time_pos_conv")

# The positional conv's reflect padding needs 2x2 features in the deepest block, 8x below the latent.
MIN_LATENT_SIZE = 16


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
        num_frames = timesteps
        _, _, h, w = x.shape
        if x.shape[0] % num_frames:
            raise InputError(f"a batch of {x.shape[0]} frames is not a whole number of {num_frames}-frame videos")
        transformer_options["activations_shape"] = list(x.shape)
        x_in = x
        if min(num_frames, h, w) < 2:
            # Reflect padding needs two samples along each axis of the 3D conv.
            raise ExVideoError(
                f"ExVideo's positional conv needs at least 2 frames and a 2x2 feature map in every temporal "
                f"block, but got {num_frames} frame(s) of {h}x{w} here. Use at least 2 frames and a latent of "
                f"at least {MIN_LATENT_SIZE}x{MIN_LATENT_SIZE} (an image of {8 * MIN_LATENT_SIZE}x"
                f"{8 * MIN_LATENT_SIZE} pixels or more).")
        chunk = chunk_frames(self.frame_chunk, self.chunk_level, x.shape[0], h, w)
        if chunk and self.use_spatial_context:
            return video_transformer_forward(self, x, context, context if time_context is None else time_context,
                                             num_frames, image_only_indicator, transformer_options, chunk)

        if self.use_spatial_context:
            time_context = context if time_context is None else time_context
            # SVD's temporal cross-attention reads each video's first-frame context.
            time_context = repeat(time_context[::num_frames], "b ... -> (b hw) ...", hw=h * w)
        elif time_context is not None:
            time_context = repeat(time_context, "b ... -> (b hw) ...", hw=h * w)
            if time_context.ndim == 2:
                time_context = rearrange(time_context, "b c -> b 1 c")

        x = self.project_in(x)
        frame_emb = self.time_pos_embed(self.time_pos_table(num_frames, like=x))  # (t c)

        for index, (block, mix_block) in enumerate(zip(self.transformer_blocks, self.time_stack)):
            transformer_options["block_index"] = index
            x = block(x, context=context, transformer_options=transformer_options)

            x_mix = rearrange(x, "(b t) (h w) c -> b c t h w", t=num_frames, h=h, w=w)
            x_mix = x_mix + rearrange(frame_emb, "t c -> 1 c t 1 1")
            x_mix = self.time_pos_conv(x_mix)
            x_mix = rearrange(x_mix, "b c t h w -> (b h w) t c")
            x_mix = mix_block(x_mix, context=time_context, transformer_options=transformer_options)
            x_mix = rearrange(x_mix, "(b h w) t c -> (b t) (h w) c", h=h, w=w)

            x = self.time_mixer(x_spatial=x, x_temporal=x_mix, image_only_indicator=image_only_indicator)

        return self.project_out(x, h, w) + x_in

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
