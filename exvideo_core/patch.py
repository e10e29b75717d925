"""Applying an ExVideo extension to a ComfyUI SVD `ModelPatcher`.

Everything goes through ComfyUI's own patcher machinery on a clone, so the
MODEL the user passed in is never changed:
- the 30 fine-tuned tensors of each temporal block are "set" weight patches:
  applied when the clone is loaded, backed up and restored when it is
  unloaded, stackable with LoRAs like any other weight patch;
- each of the 16 temporal blocks is replaced by an object patch holding an
  `ExVideoVideoTransformer` that shares the block's modules and owns the
  clone's position table and conv. Object patches are applied and restored
  by the patcher too, so two clones with different extensions coexist.
"""

from __future__ import annotations

import torch

import comfy.lora
import comfy.model_base
import comfy.model_patcher
import comfy.utils
from comfy.ldm.modules.attention import SpatialVideoTransformer

from . import layout
from .errors import IncompatibleModelError
from .layout import TEMPORAL_BLOCKS, TemporalBlock
from .position import initial_table
from .temporal_block import ExVideoVideoTransformer, FramePositionTable, positional_conv
from .weights import ExVideoWeights, from_state_dict


def _temporal_block(model: comfy.model_patcher.ModelPatcher, block: TemporalBlock) -> SpatialVideoTransformer:
    """The block as the model has it before any of this clone's patches (an ExVideo block if patched)."""
    try:
        module = model.get_model_object(layout.MODEL_PREFIX + block.comfy_name)
    except AttributeError:
        module = None
    if not isinstance(module, SpatialVideoTransformer):
        raise IncompatibleModelError(
            f"this MODEL has no temporal attention block at {block.comfy_name}: ExVideo extends Stable Video "
            f"Diffusion (SVD / SVD-XT img2vid) only. Load an SVD checkpoint with 'Image Only Checkpoint Loader'.")
    return module


def check_model(model: comfy.model_patcher.ModelPatcher) -> None:
    """Raise IncompatibleModelError unless `model` is an SVD image-to-video UNet."""
    base = model.model
    # SV3D subclasses SVD_img2vid with the same UNet but another conditioning
    # and purpose: ExVideo was tuned for SVD's image-to-video only.
    if type(base) is not comfy.model_base.SVD_img2vid:
        raise IncompatibleModelError(
            f"ExVideo extends Stable Video Diffusion image-to-video (SVD / SVD-XT), but this MODEL is "
            f"{type(base).__name__}. Load svd_xt.safetensors (or svd.safetensors) with 'Image Only Checkpoint Loader'.")
    for block in TEMPORAL_BLOCKS:
        _temporal_block(model, block)


def _check_fit(model: comfy.model_patcher.ModelPatcher, weights: ExVideoWeights) -> None:
    for block in TEMPORAL_BLOCKS:
        module = _temporal_block(model, block)
        channels = weights.table(block).shape[1]
        if module.in_channels != channels:
            raise IncompatibleModelError(
                f"this ExVideo extension was made for a UNet with {weights.model_channels} base channels "
                f"({channels} at {block.comfy_name}), but the MODEL has {module.in_channels} there. "
                f"Use an extension made for this base model.")
        to_k = module.time_stack[0].attn2.to_k.weight
        ext_to_k = weights.tensors[block.comfy_prefix + "time_stack.0.attn2.to_k.weight"]
        if tuple(to_k.shape) != tuple(ext_to_k.shape):
            raise IncompatibleModelError(
                f"this ExVideo extension's temporal cross-attention expects {ext_to_k.shape[-1]}-dim image "
                f"embeddings but the MODEL uses {to_k.shape[-1]}: it was made for another base model.")


def apply_exvideo(model: comfy.model_patcher.ModelPatcher, weights: ExVideoWeights) -> comfy.model_patcher.ModelPatcher:
    """A clone of `model` that runs ExVideo with `weights`; `model` itself is untouched."""
    check_model(model)
    _check_fit(model, weights)
    dtype = model.model_dtype()
    patched = model.clone()
    patched.add_patches({key: ("set", (tensor,)) for key, tensor in weights.temporal_tensors()})
    extra_bytes = 0
    for block in TEMPORAL_BLOCKS:
        base = _temporal_block(model, block)
        table = FramePositionTable(weights.table(block).to(dtype))
        conv_weight, conv_bias = weights.conv(block)
        conv = positional_conv(base.in_channels, conv_weight, conv_bias, dtype=dtype, device=model.offload_device)
        patched.add_object_patch(layout.MODEL_PREFIX + block.comfy_name, ExVideoVideoTransformer.wrap(base, table, conv))
        extra_bytes += sum(p.numel() * p.element_size() for p in (*table.parameters(), *conv.parameters()))
    # Lets ComfyUI's memory planning count the new tensors (about 0.8 GB at SVD size in fp16).
    patched.size = model.model_size() + extra_bytes
    return patched


def effective_weight(model: comfy.model_patcher.ModelPatcher, key: str) -> torch.Tensor:
    """The value `key` has when `model` runs: the stored weight with the clone's weight patches, fp32 on CPU."""
    # While some clone of this model is loaded, the parameter holds that
    # clone's patched value; the shared backup holds the stored one.
    backup = model.backup.get(key)
    stored = backup.weight if backup is not None else comfy.utils.get_attr(model.model, key)
    weight = stored.detach().to(device="cpu", dtype=torch.float32, copy=True)
    if key in model.patches:
        weight = comfy.lora.calculate_weight(model.patches[key], weight, key)
    return weight


def new_exvideo(model: comfy.model_patcher.ModelPatcher, num_frames: int) -> ExVideoWeights:
    """A fresh extension for `model`: the starting point of post-tuning.

    Temporal weights are copied from the model, the conv is the identity and
    the table holds SVD's sinusoid at the ping-pong positions, so for videos
    of up to 25 frames the patched model computes what the model computes.
    """
    check_model(model)
    if num_frames < 2:
        raise ValueError(f"an ExVideo extension needs at least 2 frames, not {num_frames}")
    tensors = {}
    for block in TEMPORAL_BLOCKS:
        channels = _temporal_block(model, block).in_channels
        for name in layout.TEMPORAL_TENSORS:
            tensors[block.comfy_prefix + name] = effective_weight(model, block.comfy_prefix + name)
        conv_weight = torch.zeros(channels, channels, 3, 3, 3)
        conv_weight[:, :, 1, 1, 1] = torch.eye(channels)
        tensors[block.comfy_prefix + layout.CONV_WEIGHT] = conv_weight
        tensors[block.comfy_prefix + layout.CONV_BIAS] = torch.zeros(channels)
        tensors[block.comfy_prefix + layout.TABLE] = initial_table(num_frames, channels)
    return from_state_dict(tensors, {"exvideo.source": "new_exvideo", "exvideo.training_steps": "0"},
                           source="the new extension")
