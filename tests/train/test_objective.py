"""The objective against DiffSynth 1.1.9's scheduler, and what reaches ComfyUI's apply_model."""

import math

import pytest
import torch
from diffsynth.schedulers.continuous_ode import ContinuousODEScheduler

import comfy.model_management
import comfy.patcher_extension

from exvideo_core import apply_exvideo, new_exvideo
from exvideo_core.train import TrainConfig, denoising_error
from exvideo_core.train.objective import clean_latents, denoising_loss, draw_sigma, loss_weight, training_sigmas
from exvideo_harness.train_data import training_clips

pytestmark = pytest.mark.usefixtures("unload_after")


@pytest.fixture(scope="module")
def scheduler():
    return ContinuousODEScheduler(num_inference_steps=1000)


def test_sigmas_are_diffsynths_training_sigmas(base, scheduler):
    assert torch.allclose(training_sigmas(base), scheduler.sigmas, rtol=1e-5)


@pytest.mark.parametrize("index", [0, 500, 999])
def test_weight_is_diffsynths_training_weight(scheduler, index):
    sigma = scheduler.sigmas[index].item()
    assert loss_weight(sigma) == pytest.approx(scheduler.training_weight(scheduler.timesteps[index]).item(), rel=1e-5)


@pytest.mark.parametrize("index", [10, 600, 990])
def test_comfys_denoised_is_diffsynths_final_step(base, scheduler, index):
    """DiffSynth feeds the UNet add_noise(x0) and reads x0 with step(to_final=True); ComfyUI does the same."""
    g = torch.Generator().manual_seed(index)
    x0, noise, v = (torch.randn(4, 4, 8, 8, generator=g) for _ in range(3))
    timestep = scheduler.timesteps[index]
    sigma = scheduler.sigmas[index]
    sampling = base.get_model_object("model_sampling")
    noisy = x0 + sigma * noise
    diffsynth_input = scheduler.add_noise(x0, noise, timestep)
    assert torch.allclose(sampling.calculate_input(sigma, noisy), diffsynth_input, atol=1e-5)
    diffsynth_x0 = scheduler.step(v, timestep, diffsynth_input.clone(), to_final=True)
    assert torch.allclose(sampling.calculate_denoised(sigma, v, noisy), diffsynth_x0, atol=1e-4)


def test_karras_draw_is_uniform_over_the_table(base):
    sigmas = training_sigmas(base)
    config = TrainConfig()
    draws = [draw_sigma(config, sigmas, torch.Generator().manual_seed(s)) for s in range(200)]
    assert set(draws) <= set(sigmas.tolist())
    assert draw_sigma(config, sigmas, torch.Generator().manual_seed(3)) == draws[3]
    # Uniform over indices: about half the draws fall in each half of the table.
    assert 70 < sum(d > sigmas[500].item() for d in draws) < 130


def test_lognormal_draw_uses_edm_defaults_within_the_models_range(base):
    sigmas = training_sigmas(base)
    config = TrainConfig(sigma_sampling="lognormal")
    draws = torch.tensor([draw_sigma(config, sigmas, torch.Generator().manual_seed(s)) for s in range(400)])
    assert draws.min() >= 0.002 * (1 - 1e-6) and draws.max() <= 700 * (1 + 1e-6)
    assert draws.log().median().item() == pytest.approx(-1.2, abs=0.2)


def test_latent_scales(base):
    clip = training_clips()[0]
    assert torch.allclose(clean_latents(base, clip, "native"), clip.latents * 0.18215)
    assert torch.allclose(clean_latents(base, clip, "diffsynth"), clip.latents * 0.13025)


def test_loss_runs_one_video_with_the_reference_conditioning(base):
    clip = training_clips()[0]
    model = apply_exvideo(base, new_exvideo(base, 8))
    captured = []

    def capture(executor, *args, **kwargs):
        out = executor(*args, **kwargs)
        captured.append((args, kwargs, out))
        return out

    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test-capture", capture)
    comfy.model_management.load_models_gpu([model])
    config = TrainConfig()
    noise = torch.randn(clip.latents.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss = denoising_loss(model, clip, 2.5, noise, config)
    ((x, sigma, c_concat, c_crossattn, *_), kwargs, denoised), = captured
    x0 = clip.latents * 0.18215
    assert torch.allclose(x, x0 + 2.5 * noise) and torch.equal(sigma, torch.full((8,), 2.5))
    assert torch.equal(c_concat, clip.latents[:1].expand(8, -1, -1, -1))
    assert torch.equal(c_crossattn, clip.image_embeds.expand(8, 1, 64))
    assert kwargs["num_video_frames"] == 8 and torch.equal(kwargs["image_only_indicator"], torch.zeros(1, 8))
    adm = base.model.encode_adm(fps=30, motion_bucket_id=clip.motion_bucket_id, augmentation_level=0.0)
    assert torch.equal(kwargs["y"], adm.expand(8, -1))
    expected = torch.nn.functional.mse_loss(denoised, 1.01 * x0) * math.sqrt(1 + 2.5 ** 2) / 2.5
    assert torch.allclose(loss, expected)


def test_denoising_error_is_reproducible(base):
    clips = list(training_clips()[:1])
    model = apply_exvideo(base, new_exvideo(base, 8))
    first = denoising_error(model, clips, [1.0], seed=1)
    assert denoising_error(model, clips, [1.0], seed=1) == first
    assert denoising_error(model, clips, [1.0], seed=2) != first
