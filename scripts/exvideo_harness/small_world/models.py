"""The small world's SVD: ComfyUI's own UNet, temporal VAE and CLIP vision classes at reduced width.

    unet = build_unet()                   # a ComfyUI SVD MODEL (ModelPatcher), random weights
    vae = build_vae()                     # a comfy.sd.VAE with SVD's temporal decoder, 32 base channels
    clip_vision = build_clip_vision()     # a comfy.clip_vision.ClipVisionModel, 2 narrow layers

Trained weights, where they exist, are read from `weights_dir()`
(`load_vae`, `load_unet`); the CLIP vision model keeps the random weights
`CLIP_SEED` gives it: SVD only needs a fixed feature of the first frame, and
the UNet learns to read whatever that feature is.
"""

from __future__ import annotations

import os
import pathlib

import torch

import comfy.clip_vision
import comfy.sd
import comfy.utils

from ..random_init import randomize_
from ..svd_models import SMALL_UNET_CONFIG, build_svd_model, svd_model_config, svd_patcher
from ..svd_vae import PREFIX as VAE_PREFIX, build_svd_vae, load_svd_vae

HERE = pathlib.Path(__file__).resolve().parent
CLIP_VISION_CONFIG = HERE / "clip_vision_config.json"
VAE_CHANNELS = 32  # the narrowest GroupNorm(32) allows
UNET_CONFIG = SMALL_UNET_CONFIG  # 32 base channels, context_dim 64 = the CLIP config's projection_dim
CLIP_SEED = 7
VAE_FILE = "vae.safetensors"
UNET_FILE = "unet.safetensors"
EXVIDEO_FILE = "ExVideo-small-world-40f.safetensors"


def weights_dir() -> pathlib.Path:
    """The shipped weights; EXVIDEO_SMALL_WORLD_WEIGHTS points elsewhere (tests, a server they start)."""
    return pathlib.Path(os.environ.get("EXVIDEO_SMALL_WORLD_WEIGHTS", HERE / "weights"))


def build_vae(seed: int = 0) -> comfy.sd.VAE:
    return build_svd_vae(seed, channels=VAE_CHANNELS)


def load_vae(path: pathlib.Path | None = None) -> comfy.sd.VAE:
    """The trained VAE (its file holds the sgm checkpoint's `first_stage_model.*` tensors)."""
    state_dict = comfy.utils.load_torch_file(str(path or weights_dir() / VAE_FILE))
    return load_svd_vae(state_dict, VAE_CHANNELS, torch.float32)


def vae_state_dict(vae: comfy.sd.VAE) -> dict[str, torch.Tensor]:
    return {VAE_PREFIX + name: tensor for name, tensor in vae.first_stage_model.state_dict().items()}


def build_unet(seed: int = 0):
    return build_svd_model(UNET_CONFIG, seed=seed)


def load_unet(path: pathlib.Path | None = None):
    """The trained base UNet as a MODEL (its file holds `diffusion_model.*` tensors)."""
    model = svd_model_config(UNET_CONFIG).get_model({})
    state_dict = comfy.utils.load_torch_file(str(path or weights_dir() / UNET_FILE))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in missing if k.startswith("diffusion_model.")]
    if missing or unexpected:
        raise ValueError(f"{path}: not the small world's UNet (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return svd_patcher(model)


def build_clip_vision() -> comfy.clip_vision.ClipVisionModel:
    clip_vision = comfy.clip_vision.ClipVisionModel(str(CLIP_VISION_CONFIG))
    randomize_(clip_vision.model, CLIP_SEED, prefix="clip_vision.")
    return clip_vision
