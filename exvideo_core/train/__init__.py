"""Post-tuning SVD's temporal modules into an ExVideo extension (arXiv 2406.14130, section 3).

Data, once:
    dataset = VideoClipDataset.from_folder(folder, num_frames, width, height, frame_stride=1)
              (or VideoClipDataset.from_images(IMAGE, ...))
    clips = encode_clips(dataset, vae, clip_vision)      # save_clip_cache / load_clip_cache
Training:
    trainer = Trainer(model, clips, TrainConfig(...), weights=None)    # or Trainer.resume(model, clips, path)
    result = trainer.train(progress=None, should_stop=None, state_path=None)
    trainer.weights(ema=False) -> ExVideoWeights;  trainer.lora_state_dict() (mode="lora")
Evaluation:
    denoising_error(model, clips, sigmas, seed)   # any MODEL, e.g. trainer.patched_model()
LoRA files:
    lora_state_dict(values, alpha), merge_lora(weights, lora)
From the command line (one process, or one per device under torchrun):
    python -m exvideo_core.train --config run.toml       (see `cli`)

Names that need comfy are imported on first use (see `exvideo_core.lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes
from .config import TrainConfig, TrainConfigError

if TYPE_CHECKING:
    from .cache import EncodedClip, encode_clip, encode_clips, load_clip_cache, save_clip_cache
    from .dataset import DatasetError, VideoClip, VideoClipDataset, motion_bucket, motion_score
    from .lora import lora_state_dict, merge_lora
    from .objective import denoising_error
    from .state import TrainStateError, load_state, state_file
    from .trainer import Trainer, TrainingDivergedError, TrainResult

_MODULES = {
    ".cache": ["EncodedClip", "encode_clip", "encode_clips", "load_clip_cache", "save_clip_cache"],
    ".dataset": ["DatasetError", "VideoClip", "VideoClipDataset", "motion_bucket", "motion_score"],
    ".lora": ["lora_state_dict", "merge_lora"],
    ".objective": ["denoising_error"],
    ".state": ["TrainStateError", "load_state", "state_file"],
    ".trainer": ["Trainer", "TrainingDivergedError", "TrainResult"],
}

__all__ = sorted(["TrainConfig", "TrainConfigError", *(name for names in _MODULES.values() for name in names)])

__getattr__ = lazy_attributes(__name__, {name: module for module, names in _MODULES.items() for name in names})
