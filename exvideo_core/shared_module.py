"""A module object that shares another's parameters, buffers and children: the one way the pack makes one.

Weight keys, ComfyUI's weight patches and wrappers and LoRAs then resolve to
the very same tensors, while the new object can have another class (a
forward of ours) or attributes of its own.
"""

from __future__ import annotations

import torch


def share_modules(cls, base: torch.nn.Module, own: tuple[str, ...] = ()) -> torch.nn.Module:
    """A `cls` instance with `base`'s attributes, children, parameters and buffers (but `own`), without __init__."""
    module = cls.__new__(cls)
    torch.nn.Module.__init__(module)
    for name, value in vars(base).items():
        if not name.startswith("_") and name != "training":
            setattr(module, name, value)
    module.train(base.training)
    for name, child in base.named_children():
        if name not in own:
            module.add_module(name, child)
    for name, param in base.named_parameters(recurse=False):
        module.register_parameter(name, param)
    for name, buf in base.named_buffers(recurse=False):
        module.register_buffer(name, buf)
    return module
