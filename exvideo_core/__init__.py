"""ExVideo (arXiv 2406.14130) on ComfyUI's native SVD model.

Public API:
    load_exvideo(path_or_state_dict) -> ExVideoWeights
    apply_exvideo(model, weights) -> ModelPatcher (a patched clone)
    new_exvideo(model, num_frames) -> ExVideoWeights
    save_exvideo(weights, path, layout="diffsynth" | "comfyui")
and the errors they raise (errors.py): ExVideoError, its four kinds and the narrower classes listed below.

Every name is imported on first use (see `lazy`): this list is the only one.
"""

from .lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    ".errors": ["CheckpointError", "ExVideoError", "FileError", "FrameCountError", "IncompatibleModelError",
                "InputError", "ModelError", "SaveError", "TrainingError"],
    ".patch": ["apply_exvideo", "new_exvideo"],
    ".weights": ["ExVideoWeights", "load_exvideo", "save_exvideo"],
})
