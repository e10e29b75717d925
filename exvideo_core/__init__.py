"""ExVideo (arXiv 2406.14130) on ComfyUI's native SVD model.

Public API:
    load_exvideo(path_or_state_dict) -> ExVideoWeights
    apply_exvideo(model, weights) -> ModelPatcher (a patched clone)
    new_exvideo(model, num_frames) -> ExVideoWeights
    save_exvideo(weights, path, layout="diffsynth" | "comfyui")

Names that need comfy are imported on first use (see `lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (CheckpointError, ExVideoError, FileError, FrameCountError, IncompatibleModelError, InputError,
                     ModelError, SaveError, TrainingError)
from .lazy import lazy_attributes

if TYPE_CHECKING:
    from .patch import apply_exvideo, new_exvideo
    from .weights import ExVideoWeights, load_exvideo, save_exvideo

__all__ = [
    "CheckpointError", "ExVideoError", "ExVideoWeights", "FileError", "FrameCountError", "IncompatibleModelError",
    "InputError", "ModelError", "SaveError", "TrainingError", "apply_exvideo", "load_exvideo", "new_exvideo",
    "save_exvideo",
]

__getattr__ = lazy_attributes(__name__, {
    "apply_exvideo": ".patch", "new_exvideo": ".patch",
    "ExVideoWeights": ".weights", "load_exvideo": ".weights", "save_exvideo": ".weights",
})
