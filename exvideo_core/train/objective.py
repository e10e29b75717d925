"""The training objective of DiffSynth's ExVideo example, on ComfyUI's SVD model.

One clip is one video in one forward (`num_video_frames = t`, frames in
order) at one noise level sigma:

    x_t  = x0 + sigma * noise
    loss = mse(D(x_t, sigma), target_scale * x0) * sqrt(1 + sigma^2) / sigma

where D is ComfyUI's denoiser (`model.apply_model` returns x0 for SVD's EDM
v-prediction) and the weight is DiffSynth's `training_weight`. Sigma is drawn
uniformly from the 1000 Karras sigmas between the model's sigma_max and
sigma_min (700 -> 0.002, rho 7: DiffSynth's ContinuousODEScheduler), or from
EDM's log-normal ln(sigma) ~ N(P_mean, P_std^2), clamped to that range.

Conditioning as in the reference: CLIP embedding of frame 0, unscaled VAE
latent of frame 0 on every frame, fps 30, the clip's motion bucket, no noise
augmentation.

Latent scale. SVD samples in `0.18215 * VAE latent` (ComfyUI's
`latent_format.process_in`, "native"). DiffSynth's VAE encoder scales by
0.13025, so its training targets, and the released ExVideo weights, live at
0.715x that ("diffsynth"). The conditioning latent is unscaled in both.
"""

from __future__ import annotations

import math

import torch
from einops import repeat

import comfy.k_diffusion.sampling
import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension

from ..constraints import DIFFSYNTH_ENCODER_SCALE
from .cache import EncodedClip
from .config import TrainConfig

NUM_TRAINING_SIGMAS = 1000
KARRAS_RHO = 7.0


def training_sigmas(model: comfy.model_patcher.ModelPatcher) -> torch.Tensor:
    """The reference's 1000 Karras sigmas, sigma_max first, fp32 on the CPU."""
    sampling = model.get_model_object("model_sampling")
    sigmas = comfy.k_diffusion.sampling.get_sigmas_karras(
        NUM_TRAINING_SIGMAS, float(sampling.sigma_min), float(sampling.sigma_max), rho=KARRAS_RHO)
    return sigmas[:-1]  # without the appended 0


def draw_sigma(config: TrainConfig, sigmas: torch.Tensor, generator: torch.Generator) -> float:
    if config.sigma_sampling == "karras":
        return sigmas[torch.randint(len(sigmas), (), generator=generator)].item()
    log_sigma = config.lognormal_mean + config.lognormal_std * torch.randn((), generator=generator).item()
    return min(max(math.exp(log_sigma), sigmas[-1].item()), sigmas[0].item())


def loss_weight(sigma: float) -> float:
    """DiffSynth's `training_weight`: sqrt(1 + sigma^2) / sigma (SVD's sigma_data is 1)."""
    return (1 + sigma * sigma) ** 0.5 / sigma


def clean_latents(model: comfy.model_patcher.ModelPatcher, clip: EncodedClip, latent_scale: str) -> torch.Tensor:
    """x0 of `clip` in the space the model denoises (t c h w); `latent_scale` as in TrainConfig."""
    if latent_scale == "diffsynth":
        return clip.latents * DIFFSYNTH_ENCODER_SCALE
    return model.model.latent_format.process_in(clip.latents)


def svd_conditioning(model: comfy.model_patcher.ModelPatcher, clip: EncodedClip, fps: int) -> dict:
    """`apply_model` keyword arguments that make `clip` one video, as SVD_img2vid's extra_conds would."""
    t = clip.num_frames
    adm = model.model.encode_adm(fps=fps, motion_bucket_id=clip.motion_bucket_id, augmentation_level=0.0)
    return {
        "c_concat": repeat(clip.latents[0], "c h w -> t c h w", t=t),
        "c_crossattn": repeat(clip.image_embeds, "1 d -> t 1 d", t=t),
        "y": repeat(adm, "1 d -> t d", t=t),
        "num_video_frames": t,
        "image_only_indicator": torch.zeros(1, t),
    }


def predict_x0(model: comfy.model_patcher.ModelPatcher, noisy: torch.Tensor, sigma: float,
               conditioning: dict) -> torch.Tensor:
    """ComfyUI's denoised estimate of one video (t c h w), fp32, on the model's device."""
    device = model.load_device
    sigmas = torch.full((noisy.shape[0],), sigma, device=device)
    # As the sampler prepares them: a dict of the call's own (the UNet writes block indices into it),
    # with the MODEL's wrappers and callbacks, so training sees the model sampling would.
    options = dict(model.model_options["transformer_options"])
    for name in ("wrappers", "callbacks"):
        options[name] = comfy.patcher_extension.merge_nested_dicts(options.get(name, {}), getattr(model, name))
    return model.model.apply_model(noisy.to(device), sigmas, transformer_options=options, **conditioning)


def denoising_loss(model: comfy.model_patcher.ModelPatcher, clip: EncodedClip, sigma: float, noise: torch.Tensor,
                   config: TrainConfig) -> torch.Tensor:
    """The reference's reweighted loss for one clip at one sigma (a 0-dim fp32 tensor)."""
    x0 = clean_latents(model, clip, config.latent_scale).to(model.load_device)
    noisy = x0 + sigma * noise.to(x0.device)
    denoised = predict_x0(model, noisy, sigma, svd_conditioning(model, clip, config.fps))
    return torch.nn.functional.mse_loss(denoised.float(), config.target_scale * x0) * loss_weight(sigma)


@torch.no_grad()
def denoising_error(model: comfy.model_patcher.ModelPatcher, clips: list[EncodedClip], sigmas: list[float],
                    seed: int = 0, latent_scale: str = "native", fps: int = 30) -> float:
    """Held-out metric: mean squared error of the denoised x0 at fixed sigmas and seeded noise.

    Unweighted and against x0 itself (no target scale), so it measures the
    denoiser, not the objective; the noise depends only on `seed`, so two
    models are compared on the very same inputs.
    """
    comfy.model_management.load_models_gpu([model])
    generator = torch.Generator().manual_seed(seed)
    errors = []
    for clip in clips:
        x0 = clean_latents(model, clip, latent_scale).to(model.load_device)
        conditioning = svd_conditioning(model, clip, fps)
        for sigma in sigmas:
            noise = torch.randn(x0.shape, generator=generator).to(x0.device)
            denoised = predict_x0(model, x0 + sigma * noise, sigma, conditioning)
            errors.append(torch.nn.functional.mse_loss(denoised.float(), x0).item())
    return sum(errors) / len(errors)
