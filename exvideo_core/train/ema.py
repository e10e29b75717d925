"""Exponential moving average of the trained tensors, updated after every optimizer step.

    ema <- decay * ema + (1 - decay) * value

No warm-up: the average starts at the starting weights, which for post-
tuning are a good model already. DiffSynth released an average of epoch
checkpoints with weight 0.9; `decay = 0.9 ** (1 / steps_per_epoch)` gives the
same horizon per step.
"""

from __future__ import annotations

from typing import Mapping

import torch

from ..errors import CheckpointError


class EMA:
    def __init__(self, parameters: Mapping[str, torch.Tensor], decay: float):
        self.decay = decay
        self.values = {name: p.detach().to(torch.float32, copy=True) for name, p in parameters.items()}

    @torch.no_grad()
    def update(self, parameters: Mapping[str, torch.Tensor]) -> None:
        for name, value in self.values.items():
            value.lerp_(parameters[name].detach(), 1.0 - self.decay)

    def load(self, values: Mapping[str, torch.Tensor]) -> None:
        missing = self.values.keys() - values.keys()
        if missing:
            raise CheckpointError(f"the EMA state lacks {len(missing)} tensors, e.g. {sorted(missing)[:3]}")
        for name, value in self.values.items():
            value.copy_(values[name])
