"""SVD's temporal ResBlock with one forward: its spatial ResBlock over chunks of frames, the temporal part whole.

The temporal ResBlock (`time_stack`) normalises over the whole clip, so it
stays whole: it holds no channel expansion, and its transients are a few
copies of its input. Every VideoResBlock is replaced on the clone by an
object patch holding an `ExVideoVideoResBlock` sharing its modules; the
unpatched MODEL keeps its own.
"""

from __future__ import annotations

import torch
from einops import rearrange

import comfy.model_patcher
from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock, VideoResBlock

from .chunk_policy import chunk_frames
from .chunking import map_frames
from .layout import MODEL_PREFIX
from .shared_module import share_modules


class ExVideoVideoResBlock(VideoResBlock):
    frame_chunk: int | None
    chunk_level: int

    @classmethod
    def wrap(cls, base: VideoResBlock, frame_chunk: int | None, level: int) -> "ExVideoVideoResBlock":
        block = share_modules(cls, base)
        block.frame_chunk, block.chunk_level = frame_chunk, level
        return block

    def forward(self, x: torch.Tensor, emb: torch.Tensor, num_video_frames: int,
                image_only_indicator=None) -> torch.Tensor:
        chunk = chunk_frames(self.frame_chunk, self.chunk_level, x.shape[0], *x.shape[-2:]) or x.shape[0]
        x = map_frames(lambda rows, emb_rows: ResBlock.forward(self, rows, emb_rows), chunk, x, emb)
        # The rest is VideoResBlock.forward after its spatial ResBlock (pinned: tests/core/test_host_pins.py).
        x = rearrange(x, "(b t) c h w -> b c t h w", t=num_video_frames)
        mixed = self.time_stack(x, rearrange(emb, "(b t) ... -> b t ...", t=num_video_frames))
        mixed = self.time_mixer(x_spatial=x, x_temporal=mixed, image_only_indicator=image_only_indicator)
        return rearrange(mixed, "b c t h w -> (b t) c h w")


def patch_resblocks(patched: comfy.model_patcher.ModelPatcher, model: comfy.model_patcher.ModelPatcher,
                    frame_chunk: int | None, levels: dict[str, int]) -> None:
    """Object patches on `patched`: every VideoResBlock of `model` as an ExVideoVideoResBlock sharing its modules."""
    for name, module in model.model.named_modules():
        if isinstance(module, VideoResBlock):
            level = levels[name.removeprefix(MODEL_PREFIX)]
            patched.add_object_patch(name, ExVideoVideoResBlock.wrap(model.get_model_object(name), frame_chunk, level))
