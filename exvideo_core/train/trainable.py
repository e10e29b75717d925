"""What a post-tuning run trains, and the ComfyUI clone it trains through.

The trained tensors are fp32 master copies owned by the trainer, whatever
the MODEL's dtype, and they reach the model only through a clone's patches:

- the clone is `apply_exvideo(model, weights, modules=...)`: every temporal
  block is an ExVideo block (object patch) around the trainer's own fp32
  position tables and convs, trained in place;
- `full`: each trained temporal tensor is the layer's own tensor while the
  clone is loaded (an object patch, cast by ComfyUI's ops to the activations'
  dtype). A weight wrapper would do as much, but ComfyUI's ops copy every
  wrapped weight before its wrappers run (`cast_bias_weight`), so each
  forward would copy the 833M temporal values only to drop the copy for the
  master. No "set" patches either: they would only put a second copy of
  every trained tensor on the device;
- `lora`: ComfyUI's LoraDiff weight wrapper (the mechanism of
  comfy_extras/nodes_train.py) adds to the extension's weight (its "set"
  patch).

So the base MODEL is never written: ComfyUI restores it when the clone is
unloaded, as after any patched sampling, and a reload mid-run (ComfyUI
freeing memory) re-applies the same trained tensors.
"""

from __future__ import annotations

from typing import Mapping

import torch

import comfy.model_patcher
import comfy.utils
from comfy.weight_adapter import WeightAdapterTrainBase

from .. import layout
from ..errors import IncompatibleModelError
from ..layout import CONV_BIAS, CONV_WEIGHT, TABLE, TEMPORAL_BLOCKS
from ..patch import apply_exvideo
from ..temporal_block import FramePositionTable, positional_conv
from ..weights import ExVideoWeights, from_state_dict
from . import lora as lora_lib


def _autograd_copy(tensor: torch.Tensor) -> torch.Tensor:
    # Inside a node the MODEL was loaded in inference mode, and autograd refuses
    # to save such tensors for the backward pass. ComfyUI's ops copy a weight or
    # bias that has wrappers before running them, and during training that copy
    # is an ordinary tensor: so every frozen layer with inference tensors gets
    # this no-op wrapper. Ordinary tensors (a MODEL loaded outside a node) need
    # none: the copies would double the UNet in what autograd saves.
    return tensor


def layer_tensor_keys(model: comfy.model_patcher.ModelPatcher) -> list[str]:
    """Keys of the weights and biases of all the UNet's ComfyUI ops layers (those that take weight wrappers)."""
    keys = []
    for name, module in model.get_model_object("diffusion_model").named_modules():
        # Skip the position conv of an ExVideo block some other clone may have patched in.
        if not hasattr(module, "weight_function") or name.endswith("." + CONV_WEIGHT.rsplit(".", 1)[0]):
            continue
        keys.extend(f"{layout.MODEL_PREFIX}{name}.{tensor}" for tensor in ("weight", "bias")
                    if getattr(module, tensor, None) is not None)
    return keys


class TrainableExtension:
    """The trained tensors of one run, by name (`parameters()`), and how they patch a MODEL.

    Names are those of the files they end up in: ExVideo keys
    (`diffusion_model.<block>.<tensor>`) and, for LoRA, the LoRA file's keys.
    """

    mode: str
    set_patches: bool  # whether the extension's temporal tensors stay "set" patches under the wrappers

    def __init__(self, weights: ExVideoWeights, device: torch.device):
        self.start = weights
        self.tables = {block: FramePositionTable(weights.table(block).to(device, torch.float32, copy=True))
                       for block in TEMPORAL_BLOCKS}
        self.convs = {}
        for block in TEMPORAL_BLOCKS:
            conv_weight, conv_bias = weights.conv(block)
            self.convs[block] = positional_conv(conv_weight.shape[0], conv_weight, conv_bias, dtype=torch.float32,
                                                device=device)

    def _position_parameters(self) -> dict[str, torch.nn.Parameter]:
        named = {}
        for block in TEMPORAL_BLOCKS:
            named[block.comfy_prefix + TABLE] = self.tables[block].weight
            named[block.comfy_prefix + CONV_WEIGHT] = self.convs[block].weight
            named[block.comfy_prefix + CONV_BIAS] = self.convs[block].bias
        return named

    def parameters(self) -> dict[str, torch.nn.Parameter]:
        raise NotImplementedError

    def _weight_wrappers(self) -> dict[str, WeightAdapterTrainBase]:
        """Model weight key -> the wrapper that trains it."""
        return {}

    def _layer_tensors(self) -> dict[str, torch.nn.Parameter]:
        """Model key -> the trained tensor that is the layer's own while the clone is loaded."""
        return {}

    def check(self, model: comfy.model_patcher.ModelPatcher) -> None:
        """Raise IncompatibleModelError if `model` has weight patches (a LoRA, a merge) on a tensor that is
        trained as the layer's own: ComfyUI would compute them into a new tensor that replaces the trained
        one, and training would never reach it."""
        patched = sorted(self._layer_tensors().keys() & model.patches.keys())
        if patched:
            raise IncompatibleModelError(
                f"this MODEL has weight patches (a LoRA or merge) on {len(patched)} of the temporal tensors that "
                f"{self.mode}-mode post-tuning trains, e.g. {patched[0]}; connect the MODEL without them "
                f"(straight from the checkpoint loader), or use mode 'lora'")

    def patch(self, model: comfy.model_patcher.ModelPatcher) -> comfy.model_patcher.ModelPatcher:
        """A clone of `model` that computes with the trained tensors."""
        self.check(model)
        modules = {block: (self.tables[block], self.convs[block]) for block in TEMPORAL_BLOCKS}
        patched = apply_exvideo(model, self.start, modules=modules, set_patches=self.set_patches)
        wrappers, replaced = self._weight_wrappers(), self._layer_tensors()
        for key in layer_tensor_keys(model):
            if key not in wrappers and key not in replaced and comfy.utils.get_attr(model.model, key).is_inference():
                patched.add_weight_wrapper(key, _autograd_copy)
        for key, wrapper in wrappers.items():
            patched.add_weight_wrapper(key, wrapper)
        for key, tensor in replaced.items():
            patched.add_object_patch(key, tensor)
        if replaced and patched.model.manual_cast_dtype is None and patched.model_dtype() != torch.float32:
            # ComfyUI's ops compute with a layer's tensors as they are unless told to cast them: in a
            # half-precision UNet the fp32 masters are cast to its dtype on the fly, as under mixed precision
            # (set_model_compute_dtype), and unloading restores the layers' casting flags.
            patched.force_cast_weights = True
        return patched

    def weights(self, values: Mapping[str, torch.Tensor] | None = None) -> ExVideoWeights:
        """The extension the run has made so far; `values` (same names as `parameters()`) override, e.g. EMA."""
        raise NotImplementedError

    def lora_values(self) -> int:
        """How many values the run's LoRA file holds (none without a LoRA)."""
        return 0

    def _metadata(self) -> dict[str, str]:
        return {**self.start.metadata, "exvideo.source": "exvideo post-tuning", "exvideo.train_mode": self.mode}


def _cpu_fp32(values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(device="cpu", dtype=torch.float32, copy=True) for k, v in values.items()}


class FullTemporal(TrainableExtension):
    """Every tensor of the 16 temporal attention blocks: the 30 temporal ones, the table and the conv."""

    mode = "full"
    set_patches = False

    def __init__(self, weights: ExVideoWeights, device: torch.device):
        super().__init__(weights, device)
        self.masters = {key: torch.nn.Parameter(value.detach().to(device, torch.float32, copy=True))
                        for key, value in weights.temporal_tensors()}

    def parameters(self) -> dict[str, torch.nn.Parameter]:
        named = dict(self.masters)
        named.update(self._position_parameters())
        return dict(sorted(named.items()))

    def _layer_tensors(self) -> dict[str, torch.nn.Parameter]:
        return dict(self.masters)

    def weights(self, values: Mapping[str, torch.Tensor] | None = None) -> ExVideoWeights:
        values = self.parameters() if values is None else values
        return from_state_dict(_cpu_fp32(values), self._metadata(), source="the trained extension")


class TemporalLoRA(TrainableExtension):
    """LoRA on the temporal linears (see `lora.LORA_MODULES`) plus the full table and conv."""

    mode = "lora"
    set_patches = True

    def __init__(self, weights: ExVideoWeights, device: torch.device, rank: int, alpha: float, seed: int,
                 lora: Mapping[str, torch.Tensor] | None = None):
        """`lora`: a LoRA state dict (ours) to continue from, whose rank and alpha then apply; otherwise
        fresh no-op adapters of `rank` and `alpha`."""
        super().__init__(weights, device)
        if lora is None:
            self.adapters = lora_lib.new_adapters(weights, rank, alpha, seed, device)
        else:
            self.adapters = lora_lib.adapters_from_state_dict(lora, device)
        self.alpha = lora_lib.adapters_alpha(self.adapters)

    def parameters(self) -> dict[str, torch.nn.Parameter]:
        named = lora_lib.factors(self.adapters)
        named.update(self._position_parameters())
        return dict(sorted(named.items()))

    def _weight_wrappers(self) -> dict[str, WeightAdapterTrainBase]:
        return {path + ".weight": adapter for path, adapter in self.adapters.items()}

    def weights(self, values: Mapping[str, torch.Tensor] | None = None) -> ExVideoWeights:
        """The starting temporal tensors with the trained table and conv; the LoRA goes in its own file."""
        values = self.parameters() if values is None else values
        tensors = dict(self.start.tensors)
        tensors.update(_cpu_fp32({k: v for k, v in values.items() if k in tensors}))
        return from_state_dict(tensors, self._metadata(), source="the trained extension")

    def lora_state_dict(self, values: Mapping[str, torch.Tensor] | None = None,
                        dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        values = self.parameters() if values is None else values
        return lora_lib.lora_state_dict(values, self.alpha, dtype)

    def lora_values(self) -> int:
        return lora_lib.lora_values(self.parameters())
