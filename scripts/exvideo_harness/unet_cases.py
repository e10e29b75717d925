"""UNet inputs and outputs shared by the DiffSynth parity tests: one forward of ComfyUI's SVD UNet on seeded inputs.

One ComfyUI forward may hold several videos (cond and uncond are batched),
so `comfy_outputs` runs `videos` different videos in one forward, split back per video.
"""

import torch

import comfy.model_management

LATENT = 16  # the smallest size whose deepest level (2x2) admits reflect padding
FPS, MOTION, AUGMENTATION = 30, 127, 0.02
TOLERANCE = 1e-4


def case_inputs(frames: int, videos: int, seed: int):
    """Video i's latents and image embedding are drawn before video i + 1's, so the first videos of two cases
    of one seed and frame count are the same inputs."""
    g = torch.Generator().manual_seed(seed)
    pairs = [(torch.randn(frames, 8, LATENT, LATENT, generator=g), torch.randn(1, 1024, generator=g))
             for _ in range(videos)]
    samples, image_embs = (list(column) for column in zip(*pairs))
    return samples, image_embs, 0.25 * seed - 0.5


@torch.no_grad()
def comfy_outputs(model, frames, videos, seed):
    samples, image_embs, timestep = case_inputs(frames, videos, seed)
    comfy.model_management.load_models_gpu([model])
    count = frames * videos
    y = model.model.encode_adm(fps=FPS, motion_bucket_id=MOTION, augmentation_level=AUGMENTATION)
    out = model.model.diffusion_model(
        torch.cat(samples),
        torch.full((count,), timestep),
        context=torch.cat([emb[None].expand(frames, 1, 1024) for emb in image_embs]),
        y=y.expand(count, -1),
        num_video_frames=frames,
        image_only_indicator=torch.zeros(videos, frames),
        transformer_options=model.model_options["transformer_options"],
    )
    return list(out.split(frames))
