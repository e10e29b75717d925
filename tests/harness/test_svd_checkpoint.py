"""The random SVD-XT checkpoint passes for the real `svd_xt.safetensors` in ComfyUI and DiffSynth."""

import logging
import types

import pytest
import torch
from diffsynth.configs.model_config import model_loader_configs
from diffsynth.models.utils import hash_state_dict_keys
from safetensors import safe_open

import comfy.model_base
import comfy.sd
from comfy.ldm.modules.temporal_ae import VideoDecoder

from exvideo_harness.random_init import random_tensor
from exvideo_harness.svd_checkpoint import CONDITIONER_VAE, UNET, VAE, svd_xt_checkpoint_path

pytestmark = pytest.mark.full_size

FRAMES = 2


@pytest.fixture(scope="module")
def checkpoint():
    return svd_xt_checkpoint_path()


class _WarningLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def loaded(checkpoint):
    """What ComfyUI's checkpoint loader makes of the file, with the warnings it logged."""
    log = _WarningLog()
    logging.getLogger().addHandler(log)
    try:
        model, _, vae, clip_vision = comfy.sd.load_checkpoint_guess_config(
            str(checkpoint), output_vae=True, output_clip=False, output_clipvision=True
        )
    finally:
        logging.getLogger().removeHandler(log)
    return types.SimpleNamespace(model=model, vae=vae, clip_vision=clip_vision, warnings=log.messages)


@pytest.fixture(autouse=True)
def _inference_mode():
    # As ComfyUI runs nodes. Outside it, each CPU clip_vision.encode_image keeps
    # about 3.4 GB of autograd state alive (seen with torch 2.14, ComfyUI 0.3.75).
    with torch.inference_mode():
        yield


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))


def test_names_and_shapes_are_those_of_the_real_file(checkpoint):
    # DiffSynth recognises the real file by the md5 of its sorted name:shape list.
    (real_md5,) = [config[1] for config in model_loader_configs if "svd_unet" in config[2]]
    with safe_open(checkpoint, "pt") as file:
        slices = {name: file.get_slice(name) for name in file.keys()}
        tensors = {name: torch.empty(s.get_shape(), device="meta") for name, s in slices.items()}
        assert {s.get_dtype() for s in slices.values()} == {"F16"}
    assert len(tensors) == 2446
    assert hash_state_dict_keys(tensors) == real_md5


def test_values_follow_the_fixture_rules(checkpoint):
    with safe_open(checkpoint, "pt") as file:
        conv_in = file.get_tensor(UNET + "input_blocks.0.0.weight")
        expected = random_tensor("diffusion_model.input_blocks.0.0.weight", conv_in.shape, seed=0, dtype=torch.float16)
        assert torch.equal(conv_in, expected), "UNet values differ from svd_models.build_svd_model's"

        copies = [name for name in file.keys() if name.startswith(CONDITIONER_VAE + "encoder.")]
        assert len(copies) == 106
        for name in copies:
            assert torch.equal(file.get_tensor(name), file.get_tensor(VAE + name[len(CONDITIONER_VAE):])), name
        quant_conv = file.get_tensor(CONDITIONER_VAE + "quant_conv.weight")
        assert torch.equal(quant_conv[:, :, 0, 0], torch.eye(8, dtype=torch.float16))
        assert not file.get_tensor(CONDITIONER_VAE + "quant_conv.bias").any()


def test_comfyui_detects_svd_and_loads_every_weight(loaded):
    assert type(loaded.model.model) is comfy.model_base.SVD_img2vid
    missing = [m for m in loaded.warnings if "unet missing" in m or "Missing VAE keys" in m or "missing clip vision" in m]
    assert not missing


def test_vae_is_the_temporal_decoder_video_vae(loaded, image):
    assert isinstance(loaded.vae.first_stage_model.decoder, VideoDecoder)
    latent = loaded.vae.encode(image)
    assert latent.shape == (1, 4, 8, 8)
    frames = loaded.vae.decode(latent.repeat(FRAMES, 1, 1, 1))
    assert frames.shape == (FRAMES, 64, 64, 3)
    assert torch.isfinite(latent).all() and torch.isfinite(frames).all()


def test_clip_vision_encodes_an_image(loaded, image):
    embeds = loaded.clip_vision.encode_image(image).image_embeds
    assert embeds.shape == (1, 1024)
    assert torch.isfinite(embeds).all() and embeds.abs().sum() > 0


def test_unet_forward_is_finite(loaded, image):
    base = loaded.model.model
    latent = loaded.vae.encode(image)
    embeds = loaded.clip_vision.encode_image(image).image_embeds
    noise = torch.randn(FRAMES, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    out = base.apply_model(
        noise,
        torch.full((FRAMES,), 1.0),
        c_concat=latent.repeat(FRAMES, 1, 1, 1),
        c_crossattn=embeds.unsqueeze(1).repeat(FRAMES, 1, 1),
        y=base.encode_adm(fps=6, motion_bucket_id=127, augmentation_level=0.0).repeat(FRAMES, 1),
        num_video_frames=FRAMES,
    )
    assert out.shape == noise.shape
    assert torch.isfinite(out).all()
