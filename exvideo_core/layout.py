"""Names of ExVideo tensors in DiffSynth's released layout and in ours.

An extension holds, for each of SVD's 16 temporal attention blocks, the
fine-tuned temporal transformer (30 tensors) plus two new parts: the learned
frame-position table and the positional 3D conv. DiffSynth numbers its blocks
in one flat list (`blocks.7.`); ComfyUI names them by UNet position
(`input_blocks.1.1.`). Our own layout uses ComfyUI's names under
`diffusion_model.`, so a key is directly a ModelPatcher weight key, and
`time_pos_table.weight` / `time_pos_conv.{weight,bias}` for the new parts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

import torch

MODEL_PREFIX = "diffusion_model."


@dataclasses.dataclass(frozen=True)
class TemporalBlock:
    diffsynth_index: int
    comfy_name: str  # module path inside the UNet
    channel_mult: int  # channels = model_channels * channel_mult (320 for SVD)

    @property
    def diffsynth_prefix(self) -> str:
        return f"blocks.{self.diffsynth_index}."

    @property
    def comfy_prefix(self) -> str:
        return f"{MODEL_PREFIX}{self.comfy_name}."


TEMPORAL_BLOCKS: tuple[TemporalBlock, ...] = (
    TemporalBlock(7, "input_blocks.1.1", 1),
    TemporalBlock(17, "input_blocks.2.1", 1),
    TemporalBlock(29, "input_blocks.4.1", 2),
    TemporalBlock(39, "input_blocks.5.1", 2),
    TemporalBlock(51, "input_blocks.7.1", 4),
    TemporalBlock(61, "input_blocks.8.1", 4),
    TemporalBlock(83, "middle_block.1", 4),
    TemporalBlock(113, "output_blocks.3.1", 4),
    TemporalBlock(123, "output_blocks.4.1", 4),
    TemporalBlock(133, "output_blocks.5.1", 4),
    TemporalBlock(144, "output_blocks.6.1", 2),
    TemporalBlock(154, "output_blocks.7.1", 2),
    TemporalBlock(164, "output_blocks.8.1", 2),
    TemporalBlock(175, "output_blocks.9.1", 1),
    TemporalBlock(185, "output_blocks.10.1", 1),
    TemporalBlock(195, "output_blocks.11.1", 1),
)

# Per-block module names: DiffSynth's TemporalAttentionBlock -> ComfyUI's
# SpatialVideoTransformer (the temporal part of it).
TEMPORAL_MODULES: dict[str, str] = {
    "positional_embedding_proj.0": "time_pos_embed.0",
    "positional_embedding_proj.2": "time_pos_embed.2",
    "norm_in": "time_stack.0.norm_in",
    "act_fn_in.proj": "time_stack.0.ff_in.net.0.proj",
    "ff_in": "time_stack.0.ff_in.net.2",
    "norm1": "time_stack.0.norm1",
    "attn1.to_q": "time_stack.0.attn1.to_q",
    "attn1.to_k": "time_stack.0.attn1.to_k",
    "attn1.to_v": "time_stack.0.attn1.to_v",
    "attn1.to_out": "time_stack.0.attn1.to_out.0",
    "norm2": "time_stack.0.norm2",
    "attn2.to_q": "time_stack.0.attn2.to_q",
    "attn2.to_k": "time_stack.0.attn2.to_k",
    "attn2.to_v": "time_stack.0.attn2.to_v",
    "attn2.to_out": "time_stack.0.attn2.to_out.0",
    "norm_out": "time_stack.0.norm3",
    "act_fn_out.proj": "time_stack.0.ff.net.0.proj",
    "ff_out": "time_stack.0.ff.net.2",
}
# Attention projections have no bias in either implementation.
_NO_BIAS = {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn2.to_q", "attn2.to_k", "attn2.to_v"}

TABLE = "time_pos_table.weight"
CONV_WEIGHT = "time_pos_conv.weight"
CONV_BIAS = "time_pos_conv.bias"
NEW_TENSORS: dict[str, str] = {
    "positional_embedding.embeddings": TABLE,
    "positional_conv.weight": CONV_WEIGHT,
    "positional_conv.bias": CONV_BIAS,
}


def _tensor_names() -> dict[str, str]:
    names = dict(NEW_TENSORS)
    for diffsynth, comfy in TEMPORAL_MODULES.items():
        names[f"{diffsynth}.weight"] = f"{comfy}.weight"
        if diffsynth not in _NO_BIAS:
            names[f"{diffsynth}.bias"] = f"{comfy}.bias"
    return names


# Within one block: DiffSynth tensor name -> ComfyUI tensor name (33 entries).
BLOCK_TENSORS: dict[str, str] = _tensor_names()
TEMPORAL_TENSORS: tuple[str, ...] = tuple(v for v in BLOCK_TENSORS.values() if v not in NEW_TENSORS.values())

DIFFSYNTH_TO_COMFY: dict[str, str] = {
    block.diffsynth_prefix + ds: block.comfy_prefix + cf
    for block in TEMPORAL_BLOCKS
    for ds, cf in BLOCK_TENSORS.items()
}
COMFY_TO_DIFFSYNTH: dict[str, str] = {v: k for k, v in DIFFSYNTH_TO_COMFY.items()}

LAYOUTS = ("diffsynth", "comfyui")

_DIFFSYNTH_KEY = re.compile(r"^blocks\.\d+\.")


def detect_layout(keys) -> str | None:
    """'diffsynth', 'comfyui', or None when the keys are neither."""
    keys = list(keys)
    if any(key.endswith(".positional_embedding.embeddings") and _DIFFSYNTH_KEY.match(key) for key in keys):
        return "diffsynth"
    if any(key.startswith(MODEL_PREFIX) and key.endswith("." + TABLE) for key in keys):
        return "comfyui"
    return None


def describe_foreign_keys(keys) -> str:
    """A hint at what a file that is not an ExVideo extension probably is."""
    keys = sorted(keys)
    if not keys:
        return "it holds no tensors"
    if any(k.startswith("model.diffusion_model.") for k in keys):
        if any(k.startswith("conditioner.embedders.0.open_clip") for k in keys):
            return ("it is a full SVD checkpoint: put it in models/checkpoints and load it with "
                    "'Image Only Checkpoint Loader (img2vid model)'")
        return "it is a full diffusion model checkpoint: put it in models/checkpoints"
    if any(k.startswith(("lora_unet_", "lora_te")) or ".lora_" in k or "lora_down" in k for k in keys):
        return "it is a LoRA: load it with a LoRA loader node"
    sample = ", ".join(keys[:3])
    return f"its tensors are named like {sample}"


def to_comfyui(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {DIFFSYNTH_TO_COMFY[k]: v for k, v in state_dict.items()}


def to_diffsynth(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {COMFY_TO_DIFFSYNTH[k]: v for k, v in state_dict.items()}


def diffsynth_signature(state_dict: dict[str, torch.Tensor]) -> str:
    """DiffSynth's model fingerprint: md5 of the sorted `key:shape` and `key` list.

    DiffSynth recognises the released ExVideo-SVD-128f-v1 by this value
    (`9a4ab6869ac9b7d6e31f9854e397c867`), so a file we write in its layout
    with N = 128 must reproduce it exactly.
    """
    entries = []
    for key, value in state_dict.items():
        entries.append(key + ":" + "_".join(str(s) for s in value.shape))
        entries.append(key)
    return hashlib.md5(",".join(sorted(entries)).encode("utf-8")).hexdigest()
