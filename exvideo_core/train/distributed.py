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
import math
import os
from typing import Hashable, Iterable, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist

from ..errors import TrainingError

# Rank 0 encodes the clip cache while the others wait in a barrier; encoding a
# large folder takes far longer than torch's default 10-30 minute timeout.
_TIMEOUT = datetime.timedelta(hours=6)

# Tensors travel in flat buckets of at most this size (DDP's default bucket_cap_mb): one collective per bucket,
# not one per tensor. An extension has 528 tensors; a gloo call costs about 2 ms on a CPU, an NCCL call a
# launch each.
BUCKET_BYTES = 25 * 2**20


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
        for bucket in _buckets(list(parameters)):
            flat = _flatten(bucket)
            dist.broadcast(flat, src=0)
            _copy_back(flat, bucket)


def check_same(label: str, value: str, device: torch.device) -> None:
    """Raise on every process if `value` (data fingerprint, parameter digest) differs between processes."""
    if not active():
        return
    digest = torch.tensor(list(hashlib.sha256(value.encode()).digest()[:8]), dtype=torch.float64, device=device)
    low, high = digest.clone(), digest.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise TrainingError(f"the {label} differs between the {dist.get_world_size()} training processes")


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
    for bucket in _buckets([p.grad for p in parameters if p.grad is not None]):
        flat = _flatten(bucket)
        dist.all_reduce(flat)
        flat.div_(world)
        _copy_back(flat, bucket)


def gather_to_first(tensors: Mapping[Hashable, torch.Tensor], device: torch.device) -> dict | None:
    """Every process's named tensors (names unique over all processes), on process 0; None on the others.

    A collective. The other processes' tensors arrive on `device` (the
    group's: CUDA for NCCL), as separate tensors; process 0's own are its
    own. Only process 0 allocates what is sent.
    """
    if not active():
        return dict(tensors)
    rank, world = rank_and_world()
    specs = [(name, tuple(t.shape), t.dtype) for name, t in tensors.items()]
    everyone = [None] * world if rank == 0 else None
    dist.gather_object(specs, everyone, dst=0)
    if rank != 0:
        local = list(tensors.values())
        for bucket in _spec_buckets(specs):
            dist.send(_flatten([local[i].to(device) for i in bucket]), dst=0)
        return None
    gathered = dict(tensors)
    for source in range(1, world):
        for bucket in _spec_buckets(everyone[source]):
            numels = [math.prod(everyone[source][i][1]) for i in bucket]
            flat = torch.empty(sum(numels), dtype=everyone[source][bucket[0]][2], device=device)
            dist.recv(flat, src=source)
            for i, piece in zip(bucket, flat.split(numels)):
                name, shape, _ = everyone[source][i]
                gathered[name] = piece.view(shape).clone()  # a file may not hold views of one buffer
    return gathered


def _buckets(tensors: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    for bucket in _spec_buckets([(None, t.shape, t.dtype, t.device) for t in tensors]):
        yield [tensors[i] for i in bucket]


def _spec_buckets(specs: Sequence[tuple]) -> Iterator[list[int]]:
    """Indices of (name, shape, dtype, ...) specs in buckets of one dtype (and device, when given), in order,
    each at most BUCKET_BYTES unless one tensor alone is larger."""
    filling: dict[tuple, list[int]] = {}  # (dtype, device) -> indices of the open bucket
    filled: dict[tuple, int] = {}  # (dtype, device) -> its bytes
    for index, (_, shape, dtype, *device) in enumerate(specs):
        key, size = (dtype, *device), math.prod(shape) * dtype.itemsize
        if key in filling and filled[key] + size > BUCKET_BYTES:
            yield filling.pop(key)
            del filled[key]
        filling.setdefault(key, []).append(index)
        filled[key] = filled.get(key, 0) + size
    yield from filling.values()


def _flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One contiguous 1-D tensor; a lone contiguous tensor is flattened in place (no copy to send or write back)."""
    if len(tensors) == 1 and tensors[0].is_contiguous():
        return tensors[0].view(-1)
    return torch.cat([t.reshape(-1) for t in tensors])


def _copy_back(flat: torch.Tensor, tensors: Sequence[torch.Tensor]) -> None:
    if len(tensors) == 1 and flat.data_ptr() == tensors[0].data_ptr():
        return
    for tensor, piece in zip(tensors, flat.split([t.numel() for t in tensors])):
        tensor.copy_(piece.view_as(tensor))


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
