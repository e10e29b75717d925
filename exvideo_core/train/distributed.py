"""The few collective operations a data-parallel run needs (torchrun + torch.distributed).

Every process trains the same trained tensors on its own samples; after the
backward passes the gradients are averaged, so every process sees the same
gradient, without wrapping the model in DDP (the trained tensors live in
ComfyUI patches, not in one module). AdamW's state is sharded: each process
updates its share of the tensors and sends the result to the others
(optimizer.py, torch's ZeroRedundancyOptimizer), so all stay in sync. Outside
a process group every function is the single-process identity.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from typing import Iterable, Iterator

import torch
import torch.distributed as dist

from ..errors import ExVideoError

# Rank 0 encodes the clip cache while the others wait in a barrier; encoding a
# large folder takes far longer than torch's default 10-30 minute timeout.
_TIMEOUT = datetime.timedelta(hours=6)


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def launched() -> bool:
    """Whether torchrun (or another launcher setting WORLD_SIZE) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """The process group of a torchrun launch (NCCL on CUDA, gloo otherwise); nothing for one process."""
    if not launched():
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_parameters(parameters: Iterable[torch.Tensor]) -> None:
    """Every process starts from process 0's tensors (a fresh LoRA is seeded, but a launcher may differ)."""
    if not active():
        return
    with torch.no_grad():
        for parameter in parameters:
            dist.broadcast(parameter, src=0)


def check_same(label: str, value: str, device: torch.device) -> None:
    """Raise on every process if `value` (data fingerprint, parameter digest) differs between processes."""
    if not active():
        return
    digest = torch.tensor(list(hashlib.sha256(value.encode()).digest()[:8]), dtype=torch.float64, device=device)
    low, high = digest.clone(), digest.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise ExVideoError(f"the {label} differs between the {dist.get_world_size()} training processes")


def digest(tensors: Iterable[torch.Tensor]) -> str:
    """A hash of the tensors' exact bytes, to compare processes' trained tensors without sending them."""
    h = hashlib.sha256()
    for tensor in tensors:
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


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
