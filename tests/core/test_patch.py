"""Applying ExVideo to ComfyUI SVD models: equivalences, isolation, robustness (small random models)."""

import pytest
import torch

import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
import comfy.sample
import comfy.supported_models

from exvideo_core import (ExVideoError, FrameCountError, IncompatibleModelError, apply_exvideo,
                          load_exvideo, new_exvideo)
from exvideo_core.temporal_block import ExVideoVideoTransformer
from exvideo_harness.exvideo_files import FULL, random_exvideo_state_dict
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, apply_model_direct, build_svd_model, svd_conditioning

pytestmark = pytest.mark.usefixtures("unload_after")


@pytest.mark.parametrize("frames", [2, 14, 25])
def test_fresh_extension_equals_the_base_model_up_to_25_frames(base, frames):
    reference = apply_model_direct(base, frames, videos=2)
    patched = apply_exvideo(base, new_exvideo(base, 64))
    assert torch.allclose(apply_model_direct(patched, frames, videos=2), reference, atol=1e-5)


def test_fresh_extension_copies_base_weights(base):
    fresh = new_exvideo(base, 40)
    state = base.model.state_dict()
    for key, value in fresh.temporal_tensors():
        assert torch.equal(value, state[key].float()), key
    assert fresh.num_frames == 40 and fresh.metadata["exvideo.training_steps"] == "0"


def test_original_model_is_bit_identical_after_a_patched_clone_ran(base, weights):
    before = apply_model_direct(base, 8)
    patched_out = apply_model_direct(apply_exvideo(base, weights), 8)
    after = apply_model_direct(base, 8)
    assert torch.equal(before, after)
    assert (patched_out - before).abs().max() > 1e-2
    assert not any(isinstance(m, ExVideoVideoTransformer) for m in base.model.modules())


def test_two_clones_with_different_extensions_coexist(base, weights, other_weights):
    first, second = apply_exvideo(base, weights), apply_exvideo(base, other_weights)
    a1, b1 = apply_model_direct(first, 8), apply_model_direct(second, 8)
    a2, b2 = apply_model_direct(first, 8), apply_model_direct(second, 8)
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    assert (a1 - b1).abs().max() > 1e-2


def test_applying_again_replaces_the_extension(base, weights, other_weights):
    twice = apply_exvideo(apply_exvideo(base, weights), other_weights)
    once = apply_exvideo(base, other_weights)
    assert torch.equal(apply_model_direct(twice, 8), apply_model_direct(once, 8))


def test_videos_in_one_forward_equal_separate_forwards(base, weights):
    patched = apply_exvideo(base, weights)
    together = apply_model_direct(patched, 30, videos=2, seed=5)
    g = torch.Generator().manual_seed(5)
    # Rebuild the same per-video inputs and run each video alone.
    x = torch.randn(60, 4, 16, 16, generator=g)
    concat = torch.randn(60, 4, 16, 16, generator=g)
    context = torch.randn(2, 1, 64, generator=g).repeat_interleave(30, 0)
    y = patched.model.encode_adm(fps=30, motion_bucket_id=127, augmentation_level=0.02).expand(30, -1)
    comfy.model_management.load_models_gpu([patched])
    for video in range(2):
        frames = slice(30 * video, 30 * (video + 1))
        with torch.no_grad():
            alone = patched.model.apply_model(
                x[frames], torch.ones(30), c_concat=concat[frames], c_crossattn=context[frames], y=y,
                num_video_frames=30, image_only_indicator=torch.zeros(1, 30),
                transformer_options=patched.model_options["transformer_options"])
        assert torch.allclose(alone, together[frames], atol=1e-5)


def test_same_inside_a_sampler_and_called_directly(base, weights):
    """Capture what the sampler feeds apply_model, then replay it outside the sampler."""
    patched = apply_exvideo(base, weights)
    captured = []

    def capture(executor, *args, **kwargs):
        out = executor(*args, **kwargs)
        captured.append((args, kwargs, out.clone()))
        return out

    spy = patched.clone()
    spy.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test-capture", capture)
    frames = 12
    positive, negative = svd_conditioning(frames, context_dim=64)
    latent = torch.zeros(frames, 4, 16, 16)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    comfy.sample.sample(spy, noise, 2, 2.5, "euler", "karras", positive, negative, latent, seed=0, disable_pbar=True)
    assert captured
    args, kwargs, sampler_out = captured[0]
    assert kwargs["num_video_frames"] == frames
    comfy.model_management.load_models_gpu([patched])
    # apply_model(x, t, c_concat, c_crossattn, control, transformer_options, **conds)
    args = (*args[:5], patched.model_options["transformer_options"], *args[6:])
    with torch.no_grad():
        direct = patched.model.apply_model(*args, **kwargs)
    assert torch.allclose(direct, sampler_out, atol=1e-5)


def test_survives_unload_and_reload(base, weights):
    patched = apply_exvideo(base, weights)
    first = apply_model_direct(patched, 8)
    comfy.model_management.unload_all_models()
    comfy.model_management.soft_empty_cache()
    assert torch.equal(apply_model_direct(patched, 8), first)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_unets(dtype, weights):
    fp32 = apply_model_direct(apply_exvideo(build_svd_model(SMALL_UNET_CONFIG, seed=0), weights), 8)
    half_model = build_svd_model(SMALL_UNET_CONFIG, seed=0, dtype=dtype)
    patched = apply_exvideo(half_model, weights)
    assert all(p.dtype == dtype for p in patched.object_patches[
        "diffusion_model.middle_block.1"].time_pos_conv.parameters())
    out = apply_model_direct(patched, 8)
    assert torch.isfinite(out).all()
    assert (out.float() - fp32).abs().max() < 0.1 * fp32.abs().max()


def test_more_frames_than_the_table_is_a_clear_error(base, weights):
    with pytest.raises(FrameCountError, match="40 latent frames .* only 32"):
        apply_model_direct(apply_exvideo(base, weights), 40)


def test_extended_table_runs_longer_videos(base, weights):
    out = apply_model_direct(apply_exvideo(base, weights.extend(40)), 40)
    assert out.shape[0] == 40 and torch.isfinite(out).all()


def test_too_small_latent_is_a_clear_error(base, weights):
    with pytest.raises(ExVideoError, match="at least 16x16"):
        apply_model_direct(apply_exvideo(base, weights), 4, latent_hw=8)


def test_extension_for_another_width_is_refused(base):
    full = load_exvideo(random_exvideo_state_dict(4, seed=0, **FULL))
    with pytest.raises(IncompatibleModelError, match="320 at input_blocks.1.1.*MODEL has 32"):
        apply_exvideo(base, full)


def test_sv3d_is_refused(weights):
    config = comfy.supported_models.SV3D_u(dict(SMALL_UNET_CONFIG, adm_in_channels=256))
    config.unet_config["num_head_channels"] = 16
    sv3d = comfy.model_patcher.ModelPatcher(config.get_model({}), torch.device("cpu"), torch.device("cpu"))
    with pytest.raises(IncompatibleModelError, match="SV3D_u"):
        apply_exvideo(sv3d, weights)


def test_image_model_is_refused(weights):
    config = comfy.supported_models.SD15({
        "model_channels": 32, "in_channels": 4, "use_linear_in_transformer": False, "adm_in_channels": None,
        "use_temporal_attention": False, "context_dim": 64, "num_res_blocks": [1, 1],
        "channel_mult": [1, 2], "transformer_depth": [1, 1], "transformer_depth_output": [1, 1, 1, 1],
        "num_head_channels": 16, "num_heads": -1, "image_size": 32, "use_spatial_transformer": True,
        "legacy": False, "out_channels": 4, "transformer_depth_middle": 1})
    sd15 = comfy.model_patcher.ModelPatcher(config.get_model({}), torch.device("cpu"), torch.device("cpu"))
    with pytest.raises(IncompatibleModelError, match="BaseModel"):
        apply_exvideo(sd15, weights)


def test_the_patched_model_carries_its_table_length_and_the_input_model_none(base, weights):
    from exvideo_core.patch import ATTACHMENT, ExVideoPatch, table_length

    patched = apply_exvideo(base, weights)
    assert patched.get_attachment(ATTACHMENT) == ExVideoPatch(num_frames=32)
    assert table_length(patched) == 32 and table_length(base) is None
    assert table_length(apply_exvideo(patched, weights.extend(40))) == 40


def test_a_native_sampler_refuses_a_too_long_video_before_loading_the_model(base, weights, monkeypatch):
    """The table length used to be known only inside each block, at the first step (after loading)."""
    patched = apply_exvideo(base, weights)
    loads = []
    monkeypatch.setattr(comfy.model_management, "load_models_gpu", lambda *a, **k: loads.append(a))
    positive, negative = svd_conditioning(40, context_dim=64)
    latent = torch.zeros(40, 4, 16, 16)
    with pytest.raises(FrameCountError, match="40 latent frames .* only 32"):
        comfy.sample.sample(patched, torch.randn_like(latent), 2, 2.0, "euler", "karras", positive, negative, latent,
                            disable_pbar=True, seed=0)
    assert not loads, "the check runs before ComfyUI loads anything"


def test_refine_and_continue_refuse_before_encoding_or_decoding(base, weights):
    from exvideo_core.continuation import continue_video
    from exvideo_core.refine import refine_video

    class NoVAE:
        def __getattr__(self, name):
            raise AssertionError(f"the VAE was used ({name}) before the length check")

    patched = apply_exvideo(base, weights)
    with pytest.raises(FrameCountError, match="33 latent frames .* only 32"):
        refine_video(patched, None, NoVAE(), torch.zeros(33, 128, 128, 3), width=128, height=128)
    with pytest.raises(FrameCountError, match="40 latent frames .* only 32"):
        continue_video(patched, None, NoVAE(), {"samples": torch.zeros(8, 4, 16, 16)}, 40, 4)
