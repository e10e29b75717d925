"""One walk over ComfyUI's SVD `UNetModel`: every layer's name, level, channels, kind and part in the skip stack.

ComfyUI's UNet runs its blocks' layers itself (`forward_timestep_embed`), so
the layers are what the pack patches, chunks and checkpoints. Everything
that needs the UNet's shape reads this map: chunking (a layer's level scales
its chunk), the skip stack (how much it holds), gradient checkpointing (the
layers to wrap) and the layout's table of temporal blocks (checked against
it by a test).
"""

from __future__ import annotations

import dataclasses

import torch

from comfy.ldm.modules.attention import SpatialVideoTransformer
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, ResBlock, Upsample, VideoResBlock

# The kinds of layer, for what they do to frames: per frame, across frames, or resampling.
SPATIAL_RESBLOCK, TEMPORAL_RESBLOCK = "resblock", "video_resblock"
TEMPORAL_TRANSFORMER, DOWNSAMPLE, UPSAMPLE, OTHER = "video_transformer", "downsample", "upsample", "other"


@dataclasses.dataclass(frozen=True)
class UNetLayer:
    name: str  # below the UNet: "input_blocks.1.1", "middle_block.0", ...
    level: int  # of its input: 0 at the latent's size, one more after each Downsample
    channels: int  # of its output
    kind: str
    pushes_skip: bool  # the last layer of an input block: the UNet keeps its output for the decoder
    pops_skip: bool  # the first layer of an output block: it takes a popped skip, concatenated

    @property
    def out_level(self) -> int:
        return self.level + (self.kind == DOWNSAMPLE) - (self.kind == UPSAMPLE)


def _kind(layer: torch.nn.Module) -> str:
    # VideoResBlock is a ResBlock: the more specific class first.
    for cls, kind in ((VideoResBlock, TEMPORAL_RESBLOCK), (ResBlock, SPATIAL_RESBLOCK),
                      (SpatialVideoTransformer, TEMPORAL_TRANSFORMER), (Downsample, DOWNSAMPLE),
                      (Upsample, UPSAMPLE)):
        if isinstance(layer, cls):
            return kind
    return OTHER


def unet_map(unet: torch.nn.Module) -> tuple[UNetLayer, ...]:
    """Every layer of the input, middle and output blocks, in the order the UNet runs them."""
    layers, level, channels = [], 0, unet.model_channels
    parts = [("input_blocks", unet.input_blocks), ("middle_block", [unet.middle_block]),
             ("output_blocks", unet.output_blocks)]
    for part, blocks in parts:
        for index, block in enumerate(blocks):
            prefix = part if part == "middle_block" else f"{part}.{index}"
            for position, layer in enumerate(block):
                kind = _kind(layer)
                channels = getattr(layer, "out_channels", channels)
                entry = UNetLayer(f"{prefix}.{position}", level, channels, kind,
                                  pushes_skip=part == "input_blocks" and position == len(block) - 1,
                                  pops_skip=part == "output_blocks" and position == 0)
                layers.append(entry)
                level = entry.out_level
    return tuple(layers)


def levels(unet: torch.nn.Module) -> dict[str, int]:
    """Each layer's level, by name."""
    return {layer.name: layer.level for layer in unet_map(unet)}


def skip_copies(unet: torch.nn.Module) -> float:
    """The skip stack's size, in copies of a level-0 feature map (model_channels values a latent pixel).

    Each input block's output stays on the stack: its channels at 1/4 of the
    tokens per level down. For SVD 3 copies at level 0 and 2.06 below, 5.06
    in all.
    """
    return sum(layer.channels / unet.model_channels / 4 ** layer.out_level
               for layer in unet_map(unet) if layer.pushes_skip)
