"""Low-rank adapters on the temporal linears, in ComfyUI's own LoRA terms.

Training uses ComfyUI's `LoraDiff` (comfy.weight_adapter) as a weight
wrapper: the effective weight is `W + alpha / rank * up @ down`, with `W`
the extension's tensor. The exported file uses the generic key format that
`comfy.lora.load_lora` maps for any UNet weight:

    diffusion_model.<block>.<module>.lora_up.weight    (out, rank)
    diffusion_model.<block>.<module>.lora_down.weight  (rank, in)
    diffusion_model.<block>.<module>.alpha             ()

so 'LoraLoaderModelOnly' applies it after 'ExVideo Apply Extension', and `merge_lora`
folds it into an extension with ComfyUI's own `calculate_weight`. `save_lora`
writes such a file, with metadata naming the extension it belongs on.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Mapping

import torch

import comfy.lora
from comfy.weight_adapter.lora import LoRAAdapter, LoraDiff

from .. import safetensors_io
from ..errors import CheckpointError, InputError, NoLoRAError
from ..layout import TABLE, TEMPORAL_BLOCKS
from ..weights import FORMAT_VERSION, ExVideoWeights, from_state_dict
from .seeding import generator

# The linears of one temporal attention block that get adapters; norms,
# biases and the time_mixer stay as the extension has them.
LORA_MODULES = (
    "time_pos_embed.0", "time_pos_embed.2",
    "time_stack.0.ff_in.net.0.proj", "time_stack.0.ff_in.net.2",
    "time_stack.0.attn1.to_q", "time_stack.0.attn1.to_k", "time_stack.0.attn1.to_v", "time_stack.0.attn1.to_out.0",
    "time_stack.0.attn2.to_q", "time_stack.0.attn2.to_k", "time_stack.0.attn2.to_v", "time_stack.0.attn2.to_out.0",
    "time_stack.0.ff.net.0.proj", "time_stack.0.ff.net.2",
)
UP, DOWN = ".lora_up.weight", ".lora_down.weight"


def lora_targets() -> list[str]:
    """Module paths (`diffusion_model.<block>.<module>`) of every adapted linear."""
    return [block.comfy_prefix + module for block in TEMPORAL_BLOCKS for module in LORA_MODULES]


def new_adapter(weight: torch.Tensor, rank: int, alpha: float, rng: torch.Generator,
                device: torch.device) -> LoraDiff:
    """A fresh adapter for `weight` (out, in): down ~ Kaiming-uniform, up = 0, so it starts as a no-op."""
    out_features, in_features = weight.shape
    down = torch.empty(rank, in_features)
    torch.nn.init.kaiming_uniform_(down, a=math.sqrt(5), generator=rng)
    up = torch.zeros(out_features, rank)
    return LoraDiff((up, down, alpha, None, None, None)).to(device)


def new_adapters(weights: ExVideoWeights, rank: int, alpha: float, seed: int,
                 device: torch.device) -> dict[str, LoraDiff]:
    adapters = {}
    for path in lora_targets():
        adapters[path] = new_adapter(weights.tensors[path + ".weight"], rank, alpha, generator(seed, "lora", path),
                                     device)
    return adapters


def adapters_from_state_dict(state_dict: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, LoraDiff]:
    """Trainable adapters from a file in our format (via ComfyUI's own loader), for resuming."""
    adapters = {}
    for path in lora_targets():
        alpha = state_dict.get(path + ".alpha")
        loaded = None if alpha is None else LoRAAdapter.load(path, dict(state_dict), alpha.item(), None)
        if loaded is None:
            raise CheckpointError(f"the LoRA state has no adapter (factors and alpha) for {path}")
        adapters[path] = loaded.to_train().to(device=device, dtype=torch.float32)
    return adapters


def adapters_alpha(adapters: Mapping[str, LoraDiff]) -> float:
    """The one alpha of `adapters` (a file we wrote has the same alpha on every adapter)."""
    alphas = {adapter.alpha.item() for adapter in adapters.values()}
    if len(alphas) != 1:
        raise CheckpointError(f"the LoRA's adapters have different alphas ({sorted(alphas)}); expected one")
    return alphas.pop()


def factors(adapters: Mapping[str, LoraDiff]) -> dict[str, torch.nn.Parameter]:
    """The trainable tensors of `adapters`, by their key in the exported file."""
    named = {}
    for path, adapter in adapters.items():
        named[path + UP] = adapter.lora_up.weight
        named[path + DOWN] = adapter.lora_down.weight
    return named


def lora_state_dict(values: Mapping[str, torch.Tensor], alpha: float,
                    dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A ComfyUI LoRA file's tensors from the factors (`<path>.lora_up.weight` / `.lora_down.weight`)."""
    state_dict = {}
    for path in lora_targets():
        state_dict[path + UP] = values[path + UP].detach().to(device="cpu", dtype=dtype, copy=True)
        state_dict[path + DOWN] = values[path + DOWN].detach().to(device="cpu", dtype=dtype, copy=True)
        state_dict[path + ".alpha"] = torch.tensor(float(alpha))
    return state_dict


def lora_values(values: Mapping[str, torch.Tensor]) -> int:
    """How many values `lora_state_dict` writes for these factors: theirs and an alpha for each layer."""
    return sum(values[path + UP].numel() + values[path + DOWN].numel() + 1 for path in lora_targets())


def merge_lora(weights: ExVideoWeights, lora: Mapping[str, torch.Tensor], strength: float = 1.0) -> ExVideoWeights:
    """`weights` with `lora` folded into its temporal tensors, exactly as ComfyUI would apply it."""
    key_map = {key.removesuffix(".weight"): key for key in weights.tensors if key.endswith(".weight")}
    patches = comfy.lora.load_lora(dict(lora), key_map, log_missing=False)
    known = {k for path in key_map for k in (path + UP, path + DOWN, path + ".alpha")}
    unused = sorted(set(lora) - known)
    if unused or not patches:
        raise CheckpointError(f"this LoRA does not fit the ExVideo extension: {len(unused)} of its tensors name no "
                              f"temporal weight (e.g. {unused[:3]})")
    tensors = dict(weights.tensors)
    for key, patch in patches.items():
        merged = weights.tensors[key].to(torch.float32, copy=True)
        tensors[key] = comfy.lora.calculate_weight([(strength, patch, 1.0, None, None)], merged, key)
    metadata = {**weights.metadata, "exvideo.source": "merged LoRA"}
    return from_state_dict(tensors, metadata, source="the merged extension")


LORA_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
REQUIRES = ("Apply on top of the ExVideo extension saved from the same post-tuning run (ExVideo Apply "
            "Extension, then LoraLoaderModelOnly at strength 1.0): the run trained that extension's position "
            "tables and convs together with this LoRA, so with any other extension it does not reproduce the "
            "trained model.")


FULL_MODE_HAS_NO_LORA = ("this LoRA is empty: ExVideo Post-Tune trained in full mode, where every trained tensor is "
                         "in its exvideo output. Save that with ExVideo Save Extension (or apply it with ExVideo "
                         "Apply Extension (weights)), or train with mode 'lora' to get a LoRA.")


class NoLoRA(dict):
    """The lora output of a full-mode run: empty, and reading its tensors fails, saying why.

    A plain {} would pass for a LoRA: native Save LoRA Weights would write it as
    an empty .safetensors and Load LoRA Model would apply nothing, silently.
    Both read the mapping (safetensors' save_file calls items(), ComfyUI's LoRA
    loader tests keys with `in` and iterates), so every read raises
    NoLoRAError. It is still falsy and equal to {}, which is how our nodes
    tell that there is nothing to merge or save.
    """

    def _refuse(self, *args, **kwargs):
        raise NoLoRAError(FULL_MODE_HAS_NO_LORA)

    __iter__ = __contains__ = __getitem__ = keys = items = values = get = copy = _refuse

    def __repr__(self) -> str:
        return "NoLoRA()"


def check_lora(lora: Mapping[str, torch.Tensor]) -> None:
    """Refuse anything but a complete LoRA of ExVideo's temporal linears (as `lora_state_dict` makes)."""
    if not lora:
        raise NoLoRAError(FULL_MODE_HAS_NO_LORA)
    expected = {path + suffix for path in lora_targets() for suffix in (UP, DOWN, ".alpha")}
    unknown, missing = sorted(set(lora) - expected), sorted(expected - set(lora))
    if unknown or missing:
        raise CheckpointError(f"this is not a LoRA of ExVideo's temporal layers (from ExVideo Post-Tune in lora "
                              f"mode): {len(unknown)} unknown tensors (e.g. {unknown[:2]}), {len(missing)} missing "
                              f"(e.g. {missing[:2]})")


def extension_fingerprint(weights: ExVideoWeights) -> str:
    """A short hash of the extension's position tables (trained in every mode), to tell runs apart."""
    digest = hashlib.sha256()
    for block in TEMPORAL_BLOCKS:
        digest.update(weights.tensors[block.comfy_prefix + TABLE].to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_lora(lora: Mapping[str, torch.Tensor], path: str | os.PathLike, dtype: str = "fp32",
              extension: ExVideoWeights | None = None) -> None:
    """Write a trained LoRA as a ComfyUI LoRA file (atomically), factors in `dtype` ('fp32', 'fp16', 'bf16').

    The metadata says it belongs on the extension of the same run; with
    `extension` it also records that extension's length, steps and fingerprint.
    """
    check_lora(lora)
    if dtype not in LORA_DTYPES:
        raise InputError(f"dtype must be one of {sorted(LORA_DTYPES)}, got {dtype!r}")
    # alpha is read with .item(); it stays fp32, exact whatever the factors' dtype.
    tensors = {key: value.detach().to("cpu", torch.float32 if key.endswith(".alpha") else LORA_DTYPES[dtype])
               for key, value in lora.items()}
    first = lora_targets()[0]
    metadata = {"exvideo.format_version": FORMAT_VERSION, "exvideo.kind": "lora", "exvideo.requires": REQUIRES,
                "exvideo.lora_rank": str(tensors[first + DOWN].shape[0]),
                "exvideo.lora_alpha": str(tensors[first + ".alpha"].item()), "exvideo.lora_dtype": dtype}
    if extension is not None:
        metadata.update({"exvideo.extension_num_frames": str(extension.num_frames),
                         "exvideo.extension_training_steps": extension.metadata.get("exvideo.training_steps", "0"),
                         "exvideo.extension_fingerprint": extension_fingerprint(extension)})
    safetensors_io.save(tensors, path, metadata)
