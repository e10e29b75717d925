"""Applying an ExVideo extension to a ComfyUI SVD `ModelPatcher`.

Everything goes through ComfyUI's own patcher machinery on a clone, so the
MODEL the user passed in is never changed:
- the 30 fine-tuned tensors of each temporal block are "set" weight patches:
  applied when the clone is loaded, backed up and restored when it is
  unloaded, stackable with LoRAs like any other weight patch;
- each of the 16 temporal blocks is replaced by an object patch holding an
  `ExVideoVideoTransformer` that shares the block's modules and owns the
  clone's position table and conv. Object patches are applied and restored
  by the patcher too, so two clones with different extensions coexist;
- the table length goes on the clone as the attachment ATTACHMENT, and an
  outer-sample wrapper refuses a longer video before anything is loaded or
  sampled, for our nodes and for native samplers alike (with ComfyUI's
  context windows, a longer window: each window uses rows 0..length-1).

Training installs its own fp32 tables and convs through the same seam
(`modules=`) and trains the temporal tensors as the layers' own (full mode)
or through LoRA weight wrappers, so full mode asks for no "set" patches
(`set_patches=False`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

import comfy.lora
import comfy.model_base
import comfy.model_patcher
import comfy.patcher_extension
import comfy.utils
from comfy.ldm.modules.attention import SpatialVideoTransformer

from . import layout
from . import skip_stack
from .chunk_policy import check_frame_chunk
from .memory_model import memory_required
from .video_resblock import patch_resblocks
from .unet_map import levels as unet_levels
from .constraints import MIN_FRAMES
from .context_windows import check_window_length, for_svd_frames
from .errors import FrameCountError, IncompatibleModelError, InputError
from .layout import TEMPORAL_BLOCKS, TemporalBlock
from .position import initial_table
from .temporal_block import ExVideoVideoTransformer, FramePositionTable, frame_count_error, positional_conv
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


# The one key under which a patched MODEL carries what ExVideo put on it (attachment and wrapper).
ATTACHMENT = "exvideo"

BlockModules = Mapping[TemporalBlock, tuple[FramePositionTable, torch.nn.Module]]


@dataclass(frozen=True)
class ExVideoPatch:
    """The attachment of a patched MODEL: what samplers need to know before they start."""

    num_frames: int  # the position table's length: the longest video, in latent frames
    skips_on_host: bool = False  # the UNet's skip stack in host memory (skip_stack.py)


def apply_exvideo(model: comfy.model_patcher.ModelPatcher, weights: ExVideoWeights, *,
                  modules: BlockModules | None = None, set_patches: bool = True,
                  frame_chunk: int | None = None, skips_on_host: bool = False) -> comfy.model_patcher.ModelPatcher:
    """A clone of `model` that runs ExVideo with `weights`; `model` itself is untouched.

    modules: the position table and conv of each block, to install as they
        are (a trainer's fp32 tensors, trained in place); by default they are
        made from `weights` in the model's dtype.
    set_patches: whether the extension's temporal tensors become "set" weight
        patches; a caller that supplies every one of them otherwise (a
        trainer's own fp32 tensors) turns them off.
    frame_chunk: frames per chunk of the chunked forward (chunk_policy.py):
        None picks one per UNet level where chunking pays (about
        chunk_policy.AUTO_CHUNK_TOKENS tokens a chunk; small videos run whole),
        0 runs every layer on all frames at once, K forces K frames a chunk.
        The outputs are the same either way; only memory and speed differ.
    skips_on_host: keep the UNet's skip stack in host memory while it runs
        on a GPU (skip_stack.py): about 5 copies of a level-0 feature map
        off the GPU, for two transfers of each a forward. Exact too; no
        effect on a CPU; refused when sampling with a ControlNet.
    """
    check_frame_chunk(frame_chunk)
    if not isinstance(skips_on_host, bool):
        raise InputError(f"skips_on_host must be True or False, got {skips_on_host!r}")
    check_model(model)
    _check_fit(model, weights)
    patched = model.clone()
    if set_patches:
        patched.add_patches({key: ("set", (tensor,)) for key, tensor in weights.temporal_tensors()})
    modules = modules or _modules_from(weights, model)
    extra_bytes = 0
    levels = unet_levels(model.model.diffusion_model)
    for block in TEMPORAL_BLOCKS:
        table, conv = modules[block]
        patched.add_object_patch(layout.MODEL_PREFIX + block.comfy_name,
                                 ExVideoVideoTransformer.wrap(_temporal_block(model, block), table, conv, frame_chunk,
                                                              levels[block.comfy_name]))
        extra_bytes += sum(p.numel() * p.element_size() for p in (*table.parameters(), *conv.parameters()))
    # Lets ComfyUI's memory planning count the new tensors (about 0.8 GB at SVD size in fp16).
    patched.size = model.model_size() + extra_bytes
    # The estimate ComfyUI plans with, counting the skip stack as held unless it is in host memory.
    patched.add_object_patch("memory_required", memory_required(model.model, frame_chunk, skips_on_host))
    patch_resblocks(patched, model, frame_chunk, levels)
    skip_stack.keep_on_host(patched.model_options, skips_on_host)
    patched.set_attachments(ATTACHMENT, ExVideoPatch(num_frames=weights.num_frames, skips_on_host=skips_on_host))
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, ATTACHMENT, _before_sampling)
    return patched


def _modules_from(weights: ExVideoWeights, model: comfy.model_patcher.ModelPatcher) -> BlockModules:
    dtype = model.model_dtype()
    modules = {}
    for block in TEMPORAL_BLOCKS:
        conv_weight, conv_bias = weights.conv(block)
        modules[block] = (FramePositionTable(weights.table(block).to(dtype)),
                          positional_conv(conv_weight.shape[0], conv_weight, conv_bias, dtype=dtype,
                                          device=model.offload_device))
    return modules


def table_length(model: comfy.model_patcher.ModelPatcher) -> int | None:
    """The position table length of an ExVideo-patched MODEL; None for a MODEL without ExVideo."""
    patch = model.get_attachment(ATTACHMENT)
    return patch.num_frames if patch is not None else None


def check_video_length(model: comfy.model_patcher.ModelPatcher, frames: int, model_options: dict | None = None) -> None:
    """Raise FrameCountError if one model call on a `frames`-frame video would need more rows than the table has.

    Without context windows a model call sees the whole video. With ComfyUI's
    own (Context Windows (Manual), in `model_options`, by default the
    MODEL's) it sees one window, a video of its own: then the window must fit.
    """
    rows = table_length(model)
    if rows is None or frames <= rows:
        return
    handler = (model.model_options if model_options is None else model_options).get("context_handler")
    if handler is None:
        raise frame_count_error(frames, rows)
    check_window_length(handler, frames, rows)


def _before_sampling(executor, noise, latent_image, *args, **kwargs):
    # Runs before ComfyUI loads the model or takes a step, on this sampling's
    # own copy of the model options; an SVD latent batch is one video's frames.
    guider = executor.class_obj
    patch = guider.model_patcher.get_attachment(ATTACHMENT)
    if patch is not None and patch.skips_on_host:
        skip_stack.check_conds(guider.conds)
    if not latent_image.is_nested:
        check_video_length(guider.model_patcher, latent_image.shape[0], guider.model_options)
    for_svd_frames(guider.model_options)
    return executor(noise, latent_image, *args, **kwargs)


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
    if num_frames < MIN_FRAMES:
        raise FrameCountError(f"an ExVideo extension needs at least {MIN_FRAMES} frames, not {num_frames}")
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
