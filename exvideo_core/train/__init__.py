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
"""

from .cache import EncodedClip, encode_clip, encode_clips, load_clip_cache, save_clip_cache
from .config import TrainConfig, TrainConfigError
from .dataset import DatasetError, VideoClip, VideoClipDataset, motion_bucket, motion_score
from .lora import lora_state_dict, merge_lora
from .objective import denoising_error
from .state import load_state
from .trainer import Trainer, TrainingDivergedError, TrainResult

__all__ = [
    "DatasetError", "EncodedClip", "TrainConfig", "TrainConfigError", "TrainResult", "Trainer",
    "TrainingDivergedError", "VideoClip", "VideoClipDataset", "denoising_error", "encode_clip", "encode_clips",
    "load_clip_cache", "load_state", "lora_state_dict", "merge_lora", "motion_bucket", "motion_score",
    "save_clip_cache",
]
