"""Where the small world's base stands as a denoiser, and how hard its latents are to learn.

A sampler ends well only if the model removes noise at every level. For
held-out clips of the base's length, noised at each sigma and denoised once
with their true conditioning, this prints the x0 error per frame as a share
of the latents' variance, next to the error of the best denoiser that knows
nothing of the world: shrinking the noisy latent towards 0 by
1 / (1 + sigma^2), which scores sigma^2 / (1 + sigma^2) on unit-variance
latents. A model near that line at low sigma leaves its last steps' noise
in the video. Frame 0 has its latent in the conditioning, so a model that
has learnt SVD's conditioning is best there.

It also prints two properties of the VAE's latents (in SVD's latent
format): the change between neighbouring latent pixels and between
consecutive frames, as shares of the variance. The world is flat colours
moving 3 px a frame, so smooth latents would score low on both.

    .venv/bin/python benchmarks/small_world_denoising.py            # the shipped weights, 2 clips
    .venv/bin/python benchmarks/small_world_denoising.py --toy      # random weights: the machinery
"""

import torch

from common import setup_paths

setup_paths()

from exvideo_core.train.cache import encode_clip  # noqa: E402
from exvideo_core.train.dataset import VideoClip  # noqa: E402
from exvideo_core.train.objective import clean_latents, predict_x0, svd_conditioning  # noqa: E402
from exvideo_harness.small_world import models  # noqa: E402
from exvideo_harness.small_world.scoring import benchmark_arguments  # noqa: E402
from exvideo_harness.small_world.train_base import FPS, RECIPE  # noqa: E402
from exvideo_harness.small_world.world import make_clip  # noqa: E402

SIGMAS = (0.1, 0.5, 2.0, 8.0, 30.0)


def main() -> None:
    args = benchmark_arguments(__doc__, images=2, seeds=[0])
    frames = RECIPE["frames"]
    model = models.build_unet() if args.toy else models.load_unet()
    vae = models.build_vae() if args.toy else models.load_vae()
    model.model.float()
    clip_vision = models.build_clip_vision()
    errors = {sigma: torch.zeros(frames) for sigma in SIGMAS}
    neighbours, steps = [], []
    with torch.inference_mode():
        for image_seed in range(args.images):
            # Encoded and conditioned by the pack's own post-tuning code, as SVD_img2vid conditions a video.
            clip = encode_clip(VideoClip(f"held-out clip {image_seed}",
                                         torch.from_numpy(make_clip(image_seed, frames).frames)), vae, clip_vision)
            x0 = clean_latents(model, clip, "native")
            conditioning = svd_conditioning(model, clip, FPS)
            neighbours.append(((x0[..., 1:] - x0[..., :-1]).pow(2).mean() / x0.var()).item())
            steps.append(((x0[1:] - x0[:-1]).pow(2).mean() / x0.var()).item())
            for seed in args.seeds:
                generator = torch.Generator().manual_seed(seed)
                for sigma in SIGMAS:
                    noisy = x0 + sigma * torch.randn(x0.shape, generator=generator)
                    denoised = predict_x0(model, noisy, sigma, conditioning).float().cpu()
                    errors[sigma] += ((denoised - x0) ** 2).mean(dim=(1, 2, 3)) / x0.var()
    runs = args.images * len(args.seeds)
    print(f"small world base as a denoiser: {args.images} held-out clips of {frames} frames x noise seeds "
          f"{args.seeds}; x0 error / latent variance")
    print(f"{'sigma':>6}  {'shrinkage':>9}  {'frame 0':>7}  {'frames 1-' + str(frames - 1):>10}  model / shrinkage")
    for sigma in SIGMAS:
        shrinkage = sigma ** 2 / (1 + sigma ** 2)
        per_frame = errors[sigma] / runs
        print(f"{sigma:6.1f}  {shrinkage:9.3f}  {per_frame[0]:7.3f}  {per_frame[1:].mean():10.3f}  "
              f"{per_frame.mean() / shrinkage:.2f}")
    print(f"latents: neighbouring pixels differ by {sum(neighbours) / len(neighbours):.2f} of their variance, "
          f"consecutive frames by {sum(steps) / len(steps):.2f}")


if __name__ == "__main__":
    main()
