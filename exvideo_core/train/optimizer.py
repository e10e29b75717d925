"""AdamW over the trained tensors, its state sharded across the processes of a torchrun (ZeRO stage 1).

    optimizer = adamw(parameters, config)         # torch's ZeroRedundancyOptimizer when there are processes
    state = full_state(optimizer, parameters, device)  # collective: {name: {step, exp_avg, exp_avg_sq}} on process 0
    load_full_state(optimizer, parameters, state)  # every process keeps the part of a saved state it owns

Why ZeroRedundancyOptimizer and not FSDP: the trained tensors are fp32
masters that reach the UNet through ComfyUI weight wrappers and object
patches on a clone (trainable.py), not the parameters of one module that
FSDP could wrap and flatten; ComfyUI loads, casts and unloads that UNet
itself. ZeRO needs only the list of tensors: each process keeps AdamW's two
moments for its share of them (balanced by size, largest first) and steps
only those, then broadcasts its updated tensors to the others. Gradients
stay whole on every process (`distributed.average_gradients`, so clipping
and the fp16 loss scaler see the full gradient as in one process); sharding
them too, as DeepSpeed's ZeRO-2 in DiffSynth's script does, would save the
gradients' memory but needs an engine around the backward pass.

AdamW is elementwise, so a tensor's update is the same whichever process
computes it: a sharded run equals an unsharded one with the same gradients.
The saved state is always the whole one, indexed by tensor name
(`state.save_state`), so a state saved by any number of processes resumes
in any other number.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch.distributed.optim import ZeroRedundancyOptimizer

from . import distributed
from .config import TrainConfig

MOMENTS = ("exp_avg", "exp_avg_sq")


def adamw(parameters: Mapping[str, torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over `parameters`; sharded over the processes of an active group of more than one."""
    tensors = list(parameters.values())
    if distributed.rank_and_world()[1] > 1:
        return ZeroRedundancyOptimizer(tensors, optimizer_class=torch.optim.AdamW, lr=config.learning_rate,
                                       weight_decay=config.weight_decay)
    return torch.optim.AdamW(tensors, lr=config.learning_rate, weight_decay=config.weight_decay)


def sharded(optimizer: torch.optim.Optimizer) -> bool:
    return isinstance(optimizer, ZeroRedundancyOptimizer)


def full_state(optimizer: torch.optim.Optimizer, parameters: Mapping[str, torch.Tensor],
               device: torch.device) -> dict[str, dict[str, torch.Tensor]] | None:
    """The whole optimizer state by trained tensor name on process 0, None on the others.

    Sharded, this is a collective (every process sends its share to process
    0, in buckets): all processes must call it at the same step. Not
    ZeroRedundancyOptimizer.consolidate_state_dict, which pickles and
    broadcasts each tensor's state to every process, two collectives a tensor.
    """
    if not sharded(optimizer):
        names = list(parameters)  # state_dict indexes the tensors in the order the optimizer was given them
        return {names[index]: dict(fields) for index, fields in optimizer.state_dict()["state"].items() if fields}
    name_of = {id(tensor): name for name, tensor in parameters.items()}
    shard = {(name_of[id(tensor)], field): value
             for tensor, fields in optimizer.optim.state.items() for field, value in fields.items()}
    gathered = distributed.gather_to_first(shard, device)
    if gathered is None:
        return None
    state: dict[str, dict[str, torch.Tensor]] = {name: {} for name in parameters}
    for (name, field), value in gathered.items():
        state[name][field] = value
    return {name: fields for name, fields in state.items() if fields}


def load_full_state(optimizer: torch.optim.Optimizer, parameters: Mapping[str, torch.Tensor],
                    state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Load a whole saved state (from any number of processes); sharded, each process keeps its share."""
    names = list(parameters)
    groups = [{**{k: v for k, v in group.items() if k != "params"}, "params": list(range(len(names)))}
              for group in optimizer.param_groups]
    optimizer.load_state_dict({"state": {names.index(name): dict(fields) for name, fields in state.items()},
                               "param_groups": groups})
    if sharded(optimizer):
        # ZeroRedundancyOptimizer keeps the live state in its local optimizer (`.optim`); loading also leaves
        # a copy of this process's share in the wrapper's own `.state`, which nothing reads (state_dict()
        # rebuilds the whole state from the shards) and which would double the share's memory on the device.
        optimizer.state.clear()


def local_moments(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Elements and bytes of AdamW's moments this process holds (its shard when sharded)."""
    states = [optimizer.optim.state, optimizer.state] if sharded(optimizer) else [optimizer.state]
    tensors = {id(t): t for state in states for fields in state.values() if fields
               for name, t in fields.items() if name in MOMENTS}
    return {"elements": sum(t.numel() for t in tensors.values()),
            "bytes": sum(t.numel() * t.element_size() for t in tensors.values())}
