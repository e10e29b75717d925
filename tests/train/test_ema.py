"""EMA of the trained tensors."""

import pytest
import torch

from exvideo_core.errors import CheckpointError
from exvideo_core.train.ema import EMA


def test_update_is_the_exponential_moving_average():
    value = torch.nn.Parameter(torch.zeros(3))
    ema = EMA({"w": value}, decay=0.9)
    with torch.no_grad():
        for step in range(1, 4):
            value.fill_(float(step))
            ema.update({"w": value})
    expected = ((0 * 0.9 + 0.1 * 1) * 0.9 + 0.1 * 2) * 0.9 + 0.1 * 3
    assert torch.allclose(ema.values["w"], torch.full((3,), expected))
    assert ema.values["w"] is not value and ema.values["w"].dtype == torch.float32


def test_load_needs_every_tensor():
    ema = EMA({"a": torch.zeros(2), "b": torch.zeros(2)}, decay=0.5)
    ema.load({"a": torch.ones(2), "b": torch.full((2,), 2.0)})
    assert ema.values["b"].tolist() == [2.0, 2.0]
    with pytest.raises(CheckpointError, match="lacks 1 tensors"):
        ema.load({"a": torch.ones(2)})
