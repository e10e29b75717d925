"""A post-tuning run's resumable state, in one safetensors file.

Tensors (all fp32):
    exvideo.<key>             the extension as trained so far (ExVideo keys)
    lora.<key>                the LoRA (LoRA mode; ComfyUI LoRA keys)
    optim.<name>.<field>      AdamW's moment estimates per trained tensor
    ema.<name>                the EMA (when on)
Metadata (JSON strings): the config, the step and loss history, the
optimizer's scalars (per-tensor step counts), the fp16 loss scaler, the
extension's own metadata, the data fingerprint and the record of the clips
(`cache.clip_record`; absent from states saved before it existed).

Nothing is pickled, so a state file is as safe to open as a model file, and
the write is atomic (temporary file, then rename): an interrupt during a
save leaves the previous state intact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import torch

from .. import safetensors_io
from ..errors import CheckpointError, TrainStateError
from ..paths import resolve_inside
from ..weights import ExVideoWeights, from_state_dict
from .config import TrainConfig

FORMAT = "exvideo_train_state/1"
STORED_DTYPE = torch.float32  # of every tensor in the file
_SECTIONS = ("exvideo.", "lora.", "optim.", "ema.")
SUFFIX = ".state.safetensors"


def state_file(folder: str | os.PathLike, run_name: str) -> str:
    """The state file of run `run_name` in `folder`; TrainStateError for names that lead outside it."""
    if not run_name or os.path.basename(os.path.normpath(run_name)) in ("", ".", ".."):
        raise TrainStateError(f"run_name {run_name!r} does not name a training state; use a name such as "
                              f"'exvideo_run'.")
    return resolve_inside(folder, run_name + SUFFIX, error=TrainStateError)


@dataclasses.dataclass
class TrainState:
    config: TrainConfig
    step: int  # optimizer steps done
    losses: list[float]  # one per step done
    weights: ExVideoWeights
    lora: dict[str, torch.Tensor] | None
    optimizer: dict[str, dict[str, torch.Tensor]]  # trained tensor name -> AdamW state (step, exp_avg, exp_avg_sq)
    ema: dict[str, torch.Tensor] | None
    scaler: dict | None  # torch.amp.GradScaler.state_dict() under fp16 autocast
    data: str  # fingerprint of the clips it was trained on
    clips: list[dict] | None = None  # cache.clip_record of those clips; None in states saved before it existed


@dataclasses.dataclass(frozen=True)
class StateHeader:
    """What a resume checks before loading a state: the run's settings, its step and its clips."""

    config: TrainConfig
    step: int
    data: str
    clips: list[dict] | None


def save_state(state: TrainState, path: str | os.PathLike) -> None:
    tensors = {"exvideo." + k: v for k, v in state.weights.tensors.items()}
    tensors.update({"lora." + k: v for k, v in (state.lora or {}).items()})
    tensors.update({"ema." + k: v for k, v in (state.ema or {}).items()})
    scalars = {}
    for name, fields in state.optimizer.items():
        for field, value in fields.items():
            if value.ndim == 0:
                scalars.setdefault(name, {})[field] = value.item()
            else:
                tensors[f"optim.{name}.{field}"] = value
    tensors = {k: v.detach().to(device="cpu", dtype=STORED_DTYPE) for k, v in tensors.items()}
    metadata = {
        "format": FORMAT,
        "config": state.config.to_json(),
        "progress": json.dumps({"step": state.step, "losses": state.losses}),
        "optimizer_scalars": json.dumps(scalars),
        "optimizer_tensors": json.dumps(sorted(state.optimizer)),
        "scaler": json.dumps(state.scaler),
        "extension_metadata": json.dumps(state.weights.metadata),
        "data": state.data,
        "has_lora": json.dumps(state.lora is not None),
        "has_ema": json.dumps(state.ema is not None),
    }
    if state.clips is not None:
        metadata["clips"] = json.dumps(state.clips)
    safetensors_io.save(tensors, path, metadata)


def state_bytes(extension_values: int, lora_values: int, trained_values: int, ema: bool) -> int:
    """The bytes of the tensors `save_state` writes for a run of these sizes (in values): the extension, the
    LoRA, AdamW's two moments of every trained tensor and, with an EMA, its copy of them."""
    return STORED_DTYPE.itemsize * (extension_values + lora_values + (2 + ema) * trained_values)


def read_state_header(path: str | os.PathLike) -> StateHeader:
    """The settings, step count and clips of a saved run, from the file's header alone (no tensor is read)."""
    _, metadata = safetensors_io.read_header(pathlib.Path(path))
    name = os.path.basename(os.fspath(path))
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{name} is not an ExVideo training state (expected format {FORMAT!r}, "
                              f"found {metadata.get('format')!r})")
    try:
        return StateHeader(TrainConfig.from_json(metadata["config"]), int(json.loads(metadata["progress"])["step"]),
                           metadata["data"], _clips(metadata))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{name} is a damaged ExVideo training state ({type(e).__name__}: {e})") from None


def _clips(metadata: dict) -> list[dict] | None:
    return json.loads(metadata["clips"]) if "clips" in metadata else None


def load_state(path: str | os.PathLike) -> TrainState:
    tensors, metadata = safetensors_io.load(path)
    name = os.path.basename(os.fspath(path))
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{name} is not an ExVideo training state (expected format {FORMAT!r}, "
                              f"found {metadata.get('format')!r})")
    sections = {prefix: {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
                for prefix in _SECTIONS}
    try:
        config = TrainConfig.from_json(metadata["config"])
        progress = json.loads(metadata["progress"])
        scalars = json.loads(metadata["optimizer_scalars"])
        optimizer = {tensor_name: {} for tensor_name in json.loads(metadata["optimizer_tensors"])}
        for key, value in sections["optim."].items():
            tensor_name, field = key.rsplit(".", 1)
            optimizer[tensor_name][field] = value
        for tensor_name, fields in scalars.items():
            optimizer[tensor_name].update({k: torch.tensor(v, dtype=torch.float32) for k, v in fields.items()})
        state = TrainState(
            config=config,
            step=int(progress["step"]),
            losses=[float(x) for x in progress["losses"]],
            weights=from_state_dict(sections["exvideo."], json.loads(metadata["extension_metadata"]), source=name),
            lora=sections["lora."] if json.loads(metadata["has_lora"]) else None,
            optimizer=optimizer,
            ema=sections["ema."] if json.loads(metadata["has_ema"]) else None,
            scaler=json.loads(metadata["scaler"]),
            data=metadata["data"],
            clips=_clips(metadata),
        )
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as e:  # including TrainConfigError and JSON errors
        raise CheckpointError(f"{name} is a damaged ExVideo training state ({type(e).__name__}: {e})") from None
    if len(state.losses) != state.step:
        raise CheckpointError(f"{name} is a damaged ExVideo training state: {len(state.losses)} losses for "
                              f"{state.step} steps")
    return state
