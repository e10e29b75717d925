"""The sizes, layouts and scale facts every part of the pack obeys, each defined once.

Nodes, the training CLI, the dataset, the trainer and the samplers all read
these; a rule that changes here changes everywhere.
"""

from __future__ import annotations

import logging

from .errors import ExVideoError, InputError

# SVD's VAE maps 8x8 pixels to one latent of 4 channels.
VAE_DOWNSCALE = 8
LATENT_CHANNELS = 4

# ExVideo's positional conv pads by reflection, which needs 2 samples along
# each of its axes: 2 frames, and 2x2 features in every temporal block, the
# deepest of which SVD's UNet runs at the latent / 8: latents of at least
# 16x16, images of at least 128x128.
MIN_FRAMES = 2
MIN_FEATURE_SIZE = 2
MIN_LATENT_SIZE = 16
MIN_PIXELS = VAE_DOWNSCALE * MIN_LATENT_SIZE
# Why there is a smallest size, and what to use instead: every check that refuses a size for it says this.
MIN_SIZE_REASON = (f"ExVideo's positional conv needs at least {MIN_FRAMES} frames and latents of at least "
                   f"{MIN_LATENT_SIZE}x{MIN_LATENT_SIZE}: use {MIN_PIXELS}x{MIN_PIXELS} pixels or larger")

# DiffSynth's maintainers say ExVideo sizes should be multiples of 64 (issue
# #112): the UNet halves its feature maps three times, so other multiples of
# 8 give odd maps that its upsampling crops. They run and are allowed, with a
# warning, since a user may want a particular aspect ratio.
RECOMMENDED_MULTIPLE = 64

# The two latent scales of DiffSynth's SVD: its VAE *encoder* multiplies by
# the SDXL factor while its decoder and the model expect SD's. Its training
# targets (and the released ExVideo weights) and its video-to-video latents
# are therefore DIFFSYNTH_TO_NATIVE_RATIO (about 0.715) times ComfyUI's.
SVD_LATENT_SCALE = 0.18215
DIFFSYNTH_ENCODER_SCALE = 0.13025
DIFFSYNTH_TO_NATIVE_RATIO = DIFFSYNTH_ENCODER_SCALE / SVD_LATENT_SCALE

log = logging.getLogger(__name__)


def check_video_size(width: int, height: int, minimum: int = VAE_DOWNSCALE, what: str = "width and height",
                     error: type[ExVideoError] = InputError) -> None:
    """Refuses sizes the VAE cannot take or below `minimum` pixels; warns off the recommended multiple.

    Sampling checks only the VAE's multiple here: the smallest size depends on
    the UNet's depth, and the patched blocks refuse a too-small deepest level
    themselves. Training clips are checked against MIN_PIXELS (SVD's depth)
    before any clip is encoded.
    """
    if width % VAE_DOWNSCALE or height % VAE_DOWNSCALE:
        raise error(f"{what} must be multiples of {VAE_DOWNSCALE} (the VAE downsamples by {VAE_DOWNSCALE}), "
                        f"got {width}x{height}")
    if min(width, height) < minimum:
        raise error(f"{what} must be at least {minimum} ({MIN_SIZE_REASON}), got {width}x{height}")
    if width % RECOMMENDED_MULTIPLE or height % RECOMMENDED_MULTIPLE:
        log.warning("ExVideo: %dx%d is not a multiple of %d; DiffSynth's authors recommend multiples of %d "
                    "(e.g. %dx%d)", width, height, RECOMMENDED_MULTIPLE, RECOMMENDED_MULTIPLE,
                    round_to_recommended(width), round_to_recommended(height))


def check_training_size(width: int, height: int, what: str = "width and height",
                        error: type[ExVideoError] = InputError) -> None:
    """Training clips at SVD size: refused below MIN_PIXELS before anything is decoded or encoded."""
    check_video_size(width, height, MIN_PIXELS, what, error)


def check_frame_count(frames: int, what: str = "frames", error: type[ExVideoError] = InputError) -> None:
    if frames < MIN_FRAMES:
        raise error(f"{what} must be at least {MIN_FRAMES} ({MIN_SIZE_REASON}), got {frames}")


def check_latent_size(width: int, height: int, what: str, error: type[ExVideoError] = InputError) -> None:
    """Latents already encoded (training clips): refused below MIN_LATENT_SIZE, naming their size in pixels too."""
    if min(width, height) < MIN_LATENT_SIZE:
        raise error(f"{what} {width}x{height} latents ({VAE_DOWNSCALE * width}x{VAE_DOWNSCALE * height} pixels); "
                    f"{MIN_SIZE_REASON}")


def check_feature_map(frames: int, height: int, width: int) -> None:
    """What one temporal block gets at run time: the last guard, for UNets and sizes the checks above let by."""
    if min(frames, height, width) < MIN_FEATURE_SIZE:
        raise InputError(f"a temporal block got {frames} frame(s) of {height}x{width} features, and the conv's "
                         f"reflect padding needs at least {MIN_FEATURE_SIZE} along each axis; {MIN_SIZE_REASON}")


def check_video_latent(samples, what: str = "samples"):
    """One video's SVD latents, frames first, (frames, LATENT_CHANNELS, height, width); returned as they are."""
    if samples.ndim != 4 or samples.shape[1] != LATENT_CHANNELS:
        raise InputError(f"{what}: expected SVD video latents of shape (frames, {LATENT_CHANNELS}, height, width), "
                         f"got {tuple(samples.shape)}: connect the LATENT of an SVD sampler such as ExVideo's (one "
                         f"video, frames in the batch).")
    return samples


def round_to_recommended(pixels: int) -> int:
    return max(RECOMMENDED_MULTIPLE, round(pixels / RECOMMENDED_MULTIPLE) * RECOMMENDED_MULTIPLE)
