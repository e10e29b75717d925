"""TrainConfig: validation with clear messages, JSON round trip, learning-rate warm-up."""

import dataclasses

import pytest

from exvideo_core import ExVideoError
from exvideo_core.train import TrainConfig, TrainConfigError


def test_defaults_follow_the_reference():
    config = TrainConfig()
    assert (config.learning_rate, config.weight_decay, config.target_scale, config.fps) == (1e-5, 0.01, 1.01, 30)
    assert config.sigma_sampling == "karras" and config.mode == "full" and config.gradient_checkpointing


@pytest.mark.parametrize("field, value, message", [
    ("mode", "dora", "mode must be one of"),
    ("learning_rate", 0.0, r"learning_rate must be in \(0, 1\]"),
    ("learning_rate", float("nan"), "learning_rate"),
    ("learning_rate", 10.0, "learning_rate"),
    ("steps", 0, "steps must be at least 1"),
    ("ema_decay", 1.0, "ema_decay"),
    ("autocast", "fp8", "autocast"),
    ("latent_scale", "sd", "latent_scale"),
    ("max_grad_norm", -1.0, "max_grad_norm"),
    ("grad_accumulation", 0, "grad_accumulation"),
])
def test_invalid_settings_are_named(field, value, message):
    with pytest.raises(TrainConfigError, match=message) as error:
        TrainConfig(**{field: value})
    assert isinstance(error.value, ExVideoError)


def test_json_round_trip():
    config = TrainConfig(mode="lora", lora_rank=4, ema_decay=0.99, autocast="bf16", max_grad_norm=None, seed=7)
    assert TrainConfig.from_json(config.to_json()) == config


def test_unknown_setting_in_json_is_refused():
    text = TrainConfig().to_json().replace('"fps"', '"frames_per_second"')
    with pytest.raises(TrainConfigError, match="frames_per_second"):
        TrainConfig.from_json(text)


def test_linear_warmup_then_constant():
    config = TrainConfig(learning_rate=1e-4, warmup_steps=4)
    assert [config.learning_rate_at(s) for s in range(6)] == pytest.approx([2.5e-5, 5e-5, 7.5e-5, 1e-4, 1e-4, 1e-4])
    assert dataclasses.replace(config, warmup_steps=0).learning_rate_at(0) == 1e-4
