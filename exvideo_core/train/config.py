"""`TrainConfig`: every setting of a post-tuning run, validated once, stored with the run's state.

Defaults follow DiffSynth's ExVideo training example (AdamW at 1e-5, sigma
drawn uniformly from 1000 Karras sigmas, x0 target scaled by 1.01, fps 30,
gradient checkpointing) except where noted on the field.
"""

from __future__ import annotations

import dataclasses
import json
import math

from ..errors import TrainConfigError

MODES = ("full", "lora")
SIGMA_SAMPLING = ("karras", "lognormal")
LATENT_SCALES = ("native", "diffsynth")
AUTOCAST = (None, "bf16", "fp16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000  # optimizer steps in all (a resumed run counts the steps already done)
    mode: str = "full"  # "full": every temporal tensor; "lora": low-rank adapters on the temporal linears
    lora_rank: int = 16
    lora_alpha: float = 16.0
    learning_rate: float = 1e-5
    # torch's AdamW default, which the reference trains with.
    weight_decay: float = 0.01
    warmup_steps: int = 0  # linear warm-up from 0 to learning_rate, then constant (the reference has none)
    grad_accumulation: int = 1  # clips per optimizer step (per process)
    # None: no clipping; the norm is still computed to catch non-finite gradients.
    max_grad_norm: float | None = 1.0
    gradient_checkpointing: bool = True
    autocast: str | None = None  # None (model dtype), "bf16", or "fp16" (with dynamic loss scaling)
    # Per-step EMA of the trained tensors; None: off. The reference averaged epoch
    # checkpoints with 0.9; decay = 0.9 ** (1 / steps_per_checkpoint) is the per-step equivalent.
    ema_decay: float | None = None
    sigma_sampling: str = "karras"  # "karras": uniform index over 1000 Karras sigmas; "lognormal": EDM's
    lognormal_mean: float = -1.2  # EDM's P_mean
    lognormal_std: float = 1.2  # EDM's P_std
    # "native": the model's latent format (x0 = 0.18215 * VAE latent, what ComfyUI samples in);
    # "diffsynth": 0.13025 * VAE latent, the scale the released ExVideo was trained at.
    latent_scale: str = "native"
    target_scale: float = 1.01  # the reference's contrast_enhance_scale on the x0 target ("avoids gray videos")
    fps: int = 30
    seed: int = 0
    save_every: int = 0  # write the resumable state every this many steps (0: only on interrupt and at the end)

    def __post_init__(self):
        _check(self.steps >= 1, f"steps must be at least 1, got {self.steps}")
        _check(self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}")
        _check(self.lora_rank >= 1, f"lora_rank must be at least 1, got {self.lora_rank}")
        _check(_finite(self.lora_alpha) and self.lora_alpha > 0, f"lora_alpha must be positive, got {self.lora_alpha}")
        # Above 1, one AdamW step moves every weight by about its own size: never useful, and it
        # could overflow fp32 weights before a non-finite loss shows it.
        _check(_finite(self.learning_rate) and 0 < self.learning_rate <= 1,
               f"learning_rate must be in (0, 1], got {self.learning_rate}")
        _check(_finite(self.weight_decay) and 0 <= self.weight_decay < 1,
               f"weight_decay must be in [0, 1), got {self.weight_decay}")
        _check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        _check(self.grad_accumulation >= 1, f"grad_accumulation must be at least 1, got {self.grad_accumulation}")
        _check(self.max_grad_norm is None or (_finite(self.max_grad_norm) and self.max_grad_norm > 0),
               f"max_grad_norm must be positive or None, got {self.max_grad_norm}")
        _check(self.autocast in AUTOCAST, f"autocast must be one of {AUTOCAST}, got {self.autocast!r}")
        _check(self.ema_decay is None or (_finite(self.ema_decay) and 0 < self.ema_decay < 1),
               f"ema_decay must be in (0, 1) or None, got {self.ema_decay}")
        _check(self.sigma_sampling in SIGMA_SAMPLING,
               f"sigma_sampling must be one of {SIGMA_SAMPLING}, got {self.sigma_sampling!r}")
        _check(_finite(self.lognormal_mean) and _finite(self.lognormal_std) and self.lognormal_std > 0,
               f"lognormal_mean must be finite and lognormal_std positive, got {self.lognormal_mean}, "
               f"{self.lognormal_std}")
        _check(self.latent_scale in LATENT_SCALES,
               f"latent_scale must be one of {LATENT_SCALES}, got {self.latent_scale!r}")
        _check(_finite(self.target_scale) and self.target_scale > 0,
               f"target_scale must be positive, got {self.target_scale}")
        _check(self.fps >= 1, f"fps must be at least 1, got {self.fps}")
        _check(self.save_every >= 0, f"save_every must be >= 0, got {self.save_every}")

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of optimizer step `step` (0-based): linear warm-up, then constant."""
        if self.warmup_steps and step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        return self.learning_rate

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        values = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainConfigError(f"unknown training settings {unknown}: the state was written by a newer version")
        return cls(**values)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise TrainConfigError(message)
