"""Gradient checkpointing of the UNet, installed as ModelPatcher object patches.

ComfyUI's UNet never calls a block's `forward`: `forward_timestep_embed`
iterates the block and calls each layer (ResBlock, temporal attention,
Downsample, ...) itself. So the layers are checkpointed, one by one, which
is also the granularity of DiffSynth's flat block list. Each layer is
replaced, on the training clone only, by a shallow copy whose forward runs
under `torch.utils.checkpoint`; unpatching puts the original back.
"""

from __future__ import annotations

import copy
from typing import Iterator

import torch
import torch.utils.checkpoint

import comfy.model_patcher

from ..layout import MODEL_PREFIX
from ..unet_map import unet_map


def checkpointed(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of `module` that recomputes its activations during the backward pass.

    `copy.copy` copies the module's attribute dict one level deep: the copy
    shares the parameter, buffer and child tables, so every weight keeps its
    key and ComfyUI's weight patches and wrappers reach the same tensors.
    """
    layer = copy.copy(module)
    forward = type(module).forward

    def checkpointed_forward(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(layer, *args, **kwargs)
        return torch.utils.checkpoint.checkpoint(forward, layer, *args, use_reentrant=False, **kwargs)

    layer.forward = checkpointed_forward
    return layer


def unet_layer_keys(model: comfy.model_patcher.ModelPatcher) -> Iterator[str]:
    """Object-patch keys of every layer of the UNet's input, middle and output blocks."""
    yield from (MODEL_PREFIX + layer.name for layer in unet_map(model.get_model_object("diffusion_model")))


def add_gradient_checkpointing(model: comfy.model_patcher.ModelPatcher) -> None:
    """Checkpoint every UNet layer of `model` (a clone: the patches stay on it)."""
    for key in list(unet_layer_keys(model)):
        model.add_object_patch(key, checkpointed(model.get_model_object(key)))
