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

Every name is imported on first use (see `exvideo_core.lazy`): this list is the only one.
"""

from ..lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "..errors": ["DatasetError", "TrainConfigError", "TrainStateError", "TrainingDivergedError"],
    ".cache": ["EncodedClip", "encode_clip", "encode_clips", "load_clip_cache", "save_clip_cache"],
    ".config": ["TrainConfig"],
    ".dataset": ["VideoClip", "VideoClipDataset", "motion_bucket", "motion_score"],
    ".lora": ["lora_state_dict", "merge_lora"],
    ".objective": ["denoising_error"],
    ".state": ["load_state", "state_file"],
    ".trainer": ["Trainer", "TrainResult"],
})
