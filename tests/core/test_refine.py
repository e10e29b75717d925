"""Video-to-video refine on the small random SVD model and VAE: sizes, scale switch, seeds, the node."""

import importlib

import pytest
import torch

import comfy.model_management

from exvideo_core.errors import ExVideoError
from exvideo_core.constraints import DIFFSYNTH_TO_NATIVE_RATIO
from exvideo_core.refine import encode_frames, refine_video
from exvideo_core.sampling import SamplingSettings
from exvideo_harness.clip_vision import StubClipVision
from exvideo_harness.pack import load_pack_nodes

FRAMES, WIDTH, HEIGHT = 4, 64, 48


def input_frames():
    return torch.rand(FRAMES, 32, 32, 3, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def frames():
    return input_frames()


@pytest.fixture(autouse=True)
def inference_and_unload():
    # As ComfyUI runs nodes; outside it ComfyUI's encoders leak memory on the CPU.
    with torch.inference_mode():
        yield
    comfy.model_management.unload_all_models()


def refine(base, clip_vision, vae, frames, seed=1, **kwargs):
    settings = SamplingSettings(steps=1, seed=seed)
    return refine_video(base, clip_vision, vae, frames, settings, width=WIDTH, height=HEIGHT, **kwargs)["samples"]


@pytest.fixture(scope="module")
def refined(base, vae):
    """Refined at the defaults but size and steps; each sampler run costs seconds on a shared CPU."""
    with torch.inference_mode():
        return refine(base, StubClipVision(), vae, input_frames())


def test_output_is_a_latent_of_the_requested_size(refined):
    assert refined.shape == (FRAMES, 4, HEIGHT // 8, WIDTH // 8)
    assert torch.isfinite(refined).all()


def test_denoise_zero_returns_the_encoded_input(base, clip_vision, vae, frames):
    out = refine(base, clip_vision, vae, frames, denoise=0.0)
    assert torch.equal(out, encode_frames(vae, frames, WIDTH, HEIGHT))


def test_refining_changes_the_encoded_input(refined, vae, frames):
    assert (refined - encode_frames(vae, frames, WIDTH, HEIGHT)).abs().max() > 1e-3


def test_diffsynth_latent_scale_scales_what_is_encoded(base, clip_vision, vae, frames):
    assert DIFFSYNTH_TO_NATIVE_RATIO == 0.13025 / 0.18215
    native = encode_frames(vae, frames, WIDTH, HEIGHT)
    assert torch.equal(encode_frames(vae, frames, WIDTH, HEIGHT, diffsynth_latent_scale=True),
                       native * DIFFSYNTH_TO_NATIVE_RATIO)
    # What the sampler starts from: denoise 0 hands it back untouched.
    out = refine(base, clip_vision, vae, frames, denoise=0.0, diffsynth_latent_scale=True)
    assert torch.equal(out, native * DIFFSYNTH_TO_NATIVE_RATIO)


def test_frames_are_encoded_in_batches_like_all_at_once(vae, frames, monkeypatch):
    whole = encode_frames(vae, frames, WIDTH, HEIGHT)
    monkeypatch.setattr("exvideo_core.refine.ENCODE_BATCH", 3)
    assert torch.allclose(encode_frames(vae, frames, WIDTH, HEIGHT), whole, atol=1e-5)


def test_another_seed_differs(refined, base, clip_vision, vae, frames):
    assert (refine(base, clip_vision, vae, frames, seed=2) - refined).abs().max() > 1e-3


def test_conditioned_on_the_first_frame_or_the_given_image(base, clip_vision, vae, frames):
    refine(base, clip_vision, vae, frames, denoise=0.0)
    image = torch.rand(1, 40, 40, 3, generator=torch.Generator().manual_seed(9))
    refine(base, clip_vision, vae, frames, denoise=0.0, image=image)
    assert torch.equal(clip_vision.images[0], frames[:1])
    assert torch.equal(clip_vision.images[1], image)


def test_size_not_a_multiple_of_8_is_a_clear_error(vae, frames):
    with pytest.raises(ExVideoError, match="multiples of 8"):
        encode_frames(vae, frames, 60, 48)


def test_node_refines_with_the_reference_defaults_but_size(refined, base, clip_vision, vae, frames):
    node = importlib.import_module(f"{load_pack_nodes().__name__}.nodes_refine").ExVideoRefine
    schema = node.GET_SCHEMA()
    assert all(item.tooltip for item in schema.inputs)
    defaults = {item.id: item.default for item in schema.inputs if hasattr(item, "default")}
    assert (defaults["width"], defaults["height"], defaults["denoise"], defaults["steps"]) == (1024, 1024, 0.5, 25)
    assert (defaults["sampler_name"], defaults["scheduler"], defaults["diffsynth_latent_scale"]) == (
        "euler", "karras", False)
    out = node.execute(model=base, clip_vision=clip_vision, vae=vae, images=frames, width=WIDTH, height=HEIGHT,
                       denoise=0.5, fps=30, motion_bucket_id=127, augmentation_level=0.02, min_cfg=2.0, cfg=2.0,
                       steps=1, sampler_name="euler", scheduler="karras", seed=1, diffsynth_latent_scale=False)
    # Same settings, same seed: the same video, so the seed reproduces it.
    assert torch.equal(out.result[0]["samples"], refined)
