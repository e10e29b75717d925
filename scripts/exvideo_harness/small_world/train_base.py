"""Stage 2 of the small world: the base SVD UNet, trained from scratch on 8-frame clips (SVD-XT's 25 in miniature).

    python -m exvideo_harness.small_world.train_base             # train (resumes), then export
    python -m exvideo_harness.small_world.train_base --max-steps 50

Needs stage 1's VAE in `models.weights_dir()`. SVD's objective and
conditioning, through the code the pack itself uses wherever it exists:
- EDM on ComfyUI's SVD model: `model.apply_model` gives x0, the loss is its
  MSE weighted as SVD's own training weighs it (`svd_loss_weight`), sigma
  log-normal with SVD's shifted P_mean 0.7, P_std 1.6, clamped to the
  model's sigma range;
- conditioning as SVD_img2vid builds it: the first frame's VAE latent,
  noise-augmented in pixel space at a random level, on every frame; the
  first frame's CLIP image embedding; fps, motion bucket (measured by the
  pack's `motion_bucket(motion_score(...))`) and augmentation level in
  `encode_adm`;
- both the CLIP embedding and the image latent dropped together for 10% of
  the clips, as the zeroed negative that classifier-free guidance samples.
Every parameter of the UNet trains; four clips (32 frames) per step, all in
one forward as ComfyUI batches several videos.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange, repeat

from exvideo_core import safetensors_io
from exvideo_core.train.dataset import motion_bucket, motion_score
from exvideo_core.train.objective import training_sigmas

from . import models, training
from .latents import POOL_FRAMES, LatentPool
from .world import make_clip

FPS = 30  # the pack's default, so the nodes' defaults sample what the model learnt
RECIPE = {"stage": "base", "frames": 8, "clips_per_step": 4, "pool": 512, "p_mean": 0.7, "p_std": 1.6,
          "max_augmentation": 0.1, "drop_conditioning": 0.1, "fps": FPS,
          # Planned for 1500 steps; the first steps also encode the pool (about 1 s a clip), which made them
          # slower than planned, so the run was cut to 1000 steps at step 82, still in its warm-up.
          "schedule_note": "steps 0-82 ran under the 1500-step cosine, in warm-up; shortened to 1000 at step 82 to "
                           "fit a working period; steps 82-1000 ran under that 1000-step cosine. At 1000 steps the "
                           "base kept its discs still and let them fade, so the run was extended to 2400 steps at "
                           "step 1000: a warm restart, the lr rising from 2e-5 to 1.4e-4 on the 2400-step cosine. "
                           "At 2400 steps it kept its discs whole but still, the average of the "
                           "futures of a first frame that shows no heading; from step 2400 the "
                           "world lights each disc along its heading (world.HEADLIGHT) at 3 to "
                           "3.5 px a frame, and the run fine-tunes on it: a warm restart. At 3200 "
                           "steps it denoised low noise levels worse than shrinking the noisy "
                           "latent does (benchmarks/small_world_denoising.py): the loss had "
                           "weighed them by DiffSynth's post-tuning weight. From step 3200 it is "
                           "SVD's own weight, on another warm restart (planned for 4400 steps, made "
                           "8000 at step 3529, still at its peak lr)",
          "world": "discs lit along their headings from step 2400; unlit, at 2.5 to 4 px a frame, before",
          "loss_weight": "SVD's (sgm VWeighting) from step 3200; DiffSynth's (objective.loss_weight) before"}
# About 2 s a step on 2 cores once the pool is encoded: steps 3200 to 8000 are three working periods more.
SCHEDULE = training.Schedule(steps=8000, lr=1e-4, warmup=50, restart=3200)
EMA_DECAY = 0.995  # a horizon of 200 steps; the random start weighs 5e-4 at the end
SEED = 2


def svd_loss_weight(sigma: float) -> float:
    """SVD's weight of a squared x0 error at `sigma`: (sigma^2 + 1) / sigma^2, sgm's VWeighting (EDMWeighting at
    sigma_data 1; Stability-AI/generative-models, sgm/modules/diffusionmodules/denoiser_weighting.py).

    It is 1 / c_out^2, so the network's own output counts the same at every noise level. The pack's
    `objective.loss_weight` (DiffSynth's, 1 / c_out) counts it by c_out, about sigma at low noise: right for
    post-tuning a model that already denoises, while a base trained from scratch with it never learns the low
    noise levels that a sampler's last steps need.
    """
    return 1 + 1 / (sigma * sigma)


class BaseObjective:
    """The loss of one training step, drawn from a step's generator."""

    def __init__(self, model, vae, clip_vision, pool: LatentPool, recipe: dict = RECIPE):
        self.model, self.vae, self.clip_vision, self.pool, self.recipe = model, vae, clip_vision, pool, recipe
        sigmas = training_sigmas(model)
        self.sigma_min, self.sigma_max = sigmas[-1].item(), sigmas[0].item()

    def draw_sigma(self, g: torch.Generator) -> float:
        log_sigma = self.recipe["p_mean"] + self.recipe["p_std"] * torch.randn((), generator=g).item()
        return min(max(math.exp(log_sigma), self.sigma_min), self.sigma_max)

    @torch.no_grad()
    def clip_inputs(self, g: torch.Generator) -> dict:
        """One training clip: its latents and its SVD conditioning."""
        frames = self.recipe["frames"]
        index = int(torch.randint(self.pool.size, (), generator=g))
        start = int(torch.randint(POOL_FRAMES - frames + 1, (), generator=g))
        latents = self.pool.latents(index)[start:start + frames]
        pixels = torch.from_numpy(make_clip(self.pool.seed(index), frames, start=start).frames)
        augmentation = self.recipe["max_augmentation"] * torch.rand((), generator=g).item()
        first = pixels[:1]
        image_latent = self.vae.encode(first + augmentation * torch.randn(first.shape, generator=g)).float()
        image_emb = self.clip_vision.encode_image(first).image_embeds.float()  # (1 d)
        if torch.rand((), generator=g).item() < self.recipe["drop_conditioning"]:
            image_latent, image_emb = torch.zeros_like(image_latent), torch.zeros_like(image_emb)
        adm = self.model.model.encode_adm(fps=self.recipe["fps"], augmentation_level=augmentation,
                                          motion_bucket_id=motion_bucket(motion_score(pixels)))
        return {"latents": latents, "c_concat": repeat(image_latent, "1 c h w -> t c h w", t=frames),
                "c_crossattn": repeat(image_emb, "1 d -> t 1 d", t=frames), "y": repeat(adm, "1 d -> t d", t=frames)}

    def __call__(self, g: torch.Generator) -> torch.Tensor:
        clips = [self.clip_inputs(g) for _ in range(self.recipe["clips_per_step"])]
        sigmas = [self.draw_sigma(g) for _ in clips]
        frames = self.recipe["frames"]
        x0 = self.model.model.latent_format.process_in(torch.cat([c["latents"] for c in clips]))
        sigma_per_frame = torch.tensor(sigmas).repeat_interleave(frames)
        noise = torch.randn(x0.shape, generator=g)
        noisy = x0 + rearrange(sigma_per_frame, "n -> n 1 1 1") * noise
        denoised = self.model.model.apply_model(
            noisy, sigma_per_frame, c_concat=torch.cat([c["c_concat"] for c in clips]),
            c_crossattn=torch.cat([c["c_crossattn"] for c in clips]), y=torch.cat([c["y"] for c in clips]),
            num_video_frames=frames, image_only_indicator=torch.zeros(len(clips), frames), transformer_options={})
        errors = rearrange((denoised.float() - x0) ** 2, "(b t) c h w -> b (t c h w)", t=frames).mean(dim=1)
        return (errors * torch.tensor([svd_loss_weight(s) for s in sigmas])).mean()


def main() -> None:
    args = training.stage_arguments(__doc__)
    path = models.weights_dir() / models.UNET_FILE
    if training.exported(path):
        return

    pool = LatentPool.of_shipped_vae(RECIPE["pool"])
    model = models.build_unet(seed=SEED)
    unet = model.model.diffusion_model.float().train()
    objective = BaseObjective(model, pool.vae, models.build_clip_vision(), pool)
    run = training.Run("base", unet, SCHEDULE, SEED, RECIPE, ema_decay=EMA_DECAY)
    if not run.train(objective, args.max_steps):
        training.log.info("base: stopped at step %d/%d; run again to resume", run.step, SCHEDULE.steps)
        return
    tensors = {"diffusion_model." + k: v.half() for k, v in run.final_state_dict().items()}
    safetensors_io.save(tensors, path)
    training.write_manifest_entry(path, {
        "recipe": run.recipe, "final_loss": sum(run.losses[-200:]) / len(run.losses[-200:]),
        "wall_s_2_cores": round(run.wall_s), "steps": run.step, "dtype": "fp16",
    })
    training.log.info("base: exported %s", path)


if __name__ == "__main__":
    main()
