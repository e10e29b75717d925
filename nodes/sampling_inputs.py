"""The SVD conditioning and sampler inputs shared by every ExVideo sampling node, in one order."""

import comfy.samplers
from comfy_api.v0_0_2 import io

from ..exvideo_core.sampling import SamplingSettings

SAMPLING_DEFAULTS = SamplingSettings()


def svd_sampling_inputs(steps: int = SAMPLING_DEFAULTS.steps, seed: int = SAMPLING_DEFAULTS.seed,
                        steps_tooltip: str = "Denoising steps.",
                        seed_tooltip: str = "Seed of the initial noise and of the augmentation noise.") -> list:
    """The inputs of `SamplingSettings`, one per field and named as its fields, with its defaults: a node
    builds it with `SamplingSettings(**sampling)` from these (a test checks the names stay in step)."""
    return [
        io.Int.Input("fps", default=SAMPLING_DEFAULTS.fps, min=1, max=1024,
                     tooltip="Frame-rate conditioning (the model gets fps - 1)."),
        io.Int.Input("motion_bucket_id", default=SAMPLING_DEFAULTS.motion_bucket_id, min=0, max=1023,
                     tooltip="SVD's motion bucket: more motion with higher values. A clip's measured motion "
                             "falls in 0 (still) to 127, the buckets ExVideo Training Clips trains at."),
        io.Float.Input("augmentation_level", default=SAMPLING_DEFAULTS.augmentation_level, min=0.0, max=10.0, step=0.01,
                       tooltip="Noise added to the conditioning image; more frees the video from it."),
        io.Float.Input("min_cfg", default=SAMPLING_DEFAULTS.min_cfg, min=0.0, max=100.0, step=0.5, round=0.01,
                       tooltip="CFG of the first frame; it ramps linearly to 'cfg' at the last frame."),
        io.Float.Input("cfg", default=SAMPLING_DEFAULTS.cfg, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="CFG of the last frame."),
        io.Int.Input("steps", default=steps, min=1, max=10000, tooltip=steps_tooltip),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default=SAMPLING_DEFAULTS.sampler_name,
                       tooltip="Any native sampler."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default=SAMPLING_DEFAULTS.scheduler,
                       tooltip="Any native scheduler; karras matches the reference."),
        io.Int.Input("seed", default=seed, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip=seed_tooltip),
    ]
