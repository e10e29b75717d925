"""The few collective operations a data-parallel run needs (torchrun + torch.distributed).

Every process trains the same trained tensors on its own samples; after the
backward passes the gradients are averaged, so the processes take identical
optimizer steps and stay in sync without wrapping the model in DDP (the
trained tensors live in ComfyUI patches, not in one module). Outside a
process group every function is the single-process identity.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.distributed as dist


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def average_gradients(parameters: Iterable[torch.Tensor]) -> None:
    if not active():
        return
    world = dist.get_world_size()
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad.div_(world)


def mean(value: float, device: torch.device) -> float:
    """The mean of `value` over all processes (NaN anywhere gives NaN everywhere)."""
    if not active():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / dist.get_world_size()


def any_true(flag: bool, device: torch.device) -> bool:
    """True on every process if it is true on one, so all stop at the same step."""
    if not active():
        return flag
    tensor = torch.tensor([float(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())
