"""The UNet's skip stack in host memory: what the chunked forward cannot shrink, moved off the GPU.

ComfyUI's UNet keeps every input block's output (`hs`) until the matching
output block concatenates it. Frame chunking bounds the transients, but this
stack stays O(T): about 5 copies of a level-0 feature map a token at SVD's
widths (`unet_map.skip_copies`), 1.7 GB at 512x512x128 in fp16. With the stack in
(pinned) host memory each skip crosses the bus twice a forward, which costs
little next to the UNet's compute at the sizes where the memory matters.

It goes through ComfyUI's own block patches, on the patched clone only:
- `input_block_patch` (ours last) hands the UNet a host copy of `h`, which is
  what `hs.append` stores; the device tensor is kept aside;
- `input_block_patch_after_skip` (ours first) gives the device tensor back
  to the next block. If another pack's patch changed `h` in between, its
  result is what the stack holds and what goes on, moved to the device:
  slower, still exact;
- `output_block_patch` (ours first) moves the popped skip back to `h`'s device.

The patches run outside torch.compile's graphs (`torch.compiler.disable`):
a compiled UNet (TorchCompileModel) breaks its graph at each of them rather
than trace pinned allocations and tensor identities.

ComfyUI applies a ControlNet's residuals to the popped skip before any
output patch runs, on whatever device the skip is on, so sampling with a
ControlNet refuses the option (`check_conds`) rather than fail inside the UNet.
"""

from __future__ import annotations

import torch

import comfy.cli_args

from .errors import InputError

# The ComfyUI block patch lists the stack puts one patch into each.
PATCH_LISTS = ("input_block_patch", "input_block_patch_after_skip", "output_block_patch")


class HostSkipStack:
    """The three block patches that keep ComfyUI's skip stack in `host` memory while the UNet runs elsewhere."""

    def __init__(self, host: torch.device):
        self.host = host
        self._host_copy: torch.Tensor | None = None
        self._device_tensor: torch.Tensor | None = None

    @torch.compiler.disable
    def store(self, h: torch.Tensor, transformer_options: dict) -> torch.Tensor:
        """input_block_patch: the host copy, which the UNet pushes on its stack."""
        if h.device == self.host:
            return h
        pin = h.device.type == "cuda" and not comfy.cli_args.args.disable_pinned_memory
        # The same strides: the decoder's concatenation and convs then run the kernels they run without us.
        copy = torch.empty_like(h, device=self.host, pin_memory=pin)
        # Ordered on the compute stream, as is the copy back: no synchronisation needed.
        copy.copy_(h, non_blocking=pin)
        self._host_copy, self._device_tensor = copy, h
        return copy

    @torch.compiler.disable
    def resume(self, h: torch.Tensor, transformer_options: dict) -> torch.Tensor:
        """input_block_patch_after_skip: the device tensor again, for the next block."""
        host_copy, device_tensor = self._host_copy, self._device_tensor
        self._host_copy = self._device_tensor = None
        if device_tensor is None:
            return h
        if h is host_copy:
            return device_tensor
        # Another patch ran between ours: what it returned is what the UNet goes on with.
        return h.to(device_tensor.device)

    @torch.compiler.disable
    def restore(self, h: torch.Tensor, skip: torch.Tensor, transformer_options: dict):
        """output_block_patch: the popped skip on `h`'s device, for the concatenation."""
        return h, skip.to(h.device, non_blocking=skip.is_pinned())


def _owner(patch) -> HostSkipStack | None:
    owner = getattr(patch, "__self__", None)
    return owner if isinstance(owner, HostSkipStack) else None


def installed_stacks(model_options: dict) -> set[HostSkipStack]:
    """The HostSkipStacks whose patches are in `model_options` (one at most, as keep_on_host leaves them)."""
    patches = model_options["transformer_options"].get("patches", {})
    return {_owner(p) for name in PATCH_LISTS for p in patches.get(name, []) if _owner(p) is not None}


def keep_on_host(model_options: dict, on: bool, host: torch.device = torch.device("cpu")) -> None:
    """Sets whether the UNet of `model_options` (a clone's) keeps its skip stack in `host` memory.

    Any HostSkipStack patches already there (a MODEL patched again) go
    first, so the latest ExVideo Apply Extension decides. New ones go where the module
    docstring says: store last, resume and restore first in their lists.
    """
    options = model_options["transformer_options"]
    if not on and "patches" not in options:
        return
    patches = options.setdefault("patches", {})
    for name in PATCH_LISTS:
        kept = [p for p in patches.get(name, []) if _owner(p) is None]
        if kept:
            patches[name] = kept
        else:
            patches.pop(name, None)
    if on:
        stack = HostSkipStack(host)
        patches["input_block_patch"] = [*patches.get("input_block_patch", []), stack.store]
        patches["input_block_patch_after_skip"] = [stack.resume, *patches.get("input_block_patch_after_skip", [])]
        patches["output_block_patch"] = [stack.restore, *patches.get("output_block_patch", [])]


def check_conds(conds: dict) -> None:
    """Refuse conditionings that carry a ControlNet: it would add device residuals to host skips."""
    if any("control" in cond for group in conds.values() for cond in group or ()):
        raise InputError("ExVideo Apply Extension's skips_on_host keeps the UNet's skip connections in host "
                         "memory, and a ControlNet adds its residuals to them before ExVideo can move them back. Turn "
                         "skips_on_host off when sampling with a ControlNet.")
