"""Long videos two ways, on the join metric `continuation.join_jump`: native context windows and Continue Video.

Small random SVD (scripts/exvideo_harness/svd_models.py, SMALL_UNET_CONFIG),
small random VAE, stub CLIP vision, an extension of `--table` rows; 128x128
pixels (16x16 latents), the pack's example image. Both make a video of
2 * table - overlap latent frames, the same two spans of `table` frames:

- continuation: a `table`-frame clip (ExVideo Image to Video's sampling),
  then ExVideo Continue Video's `table`-frame clip carrying the last
  `overlap` frames (conditioned on the first clip's last frame), joined;
- windows: one sampling through ComfyUI's Context Windows (Manual),
  `standard_static` windows of `table` frames overlapping by `overlap`,
  which are exactly those two spans, for each of the given fuse methods.

The jump is measured on the latents at the frame steps where the second span
starts to count (table - overlap: the windows' blend begins) and where the
second part's own frames begin (table: Continue's first new frame, the end
of the windows' blend): the larger over the median step elsewhere, so about
1 for an invisible join. With random weights these numbers say whether the
method itself leaves a seam at test sizes, not how a real video looks.

    .venv/bin/python benchmarks/context_windows.py               # table 8, overlap 2, 2 steps, seeds 0 1 2
"""

import argparse
import statistics

import torch

from common import REPO_ROOT, setup_paths



def example_image() -> torch.Tensor:
    import numpy as np
    from PIL import Image

    with Image.open(REPO_ROOT / "example_workflows" / "exvideo_example.png") as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels)[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=int, default=8, help="position table rows = window and clip length")
    parser.add_argument("--overlap", type=int, default=2, help="window overlap = Continue Video's carried frames")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fuse", nargs="+", default=["pyramid", "overlap-linear"],
                        help="Context Windows (Manual) fuse methods (pyramid is its default)")
    args = parser.parse_args()
    setup_paths()
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False

    from comfy_extras.nodes_context_windows import ContextWindowsManualNode
    from exvideo_core import load_exvideo
    from exvideo_core.continuation import continue_video, join_clips, join_jump
    from exvideo_core.patch import apply_exvideo
    from exvideo_core.sampling import SamplingSettings, image_to_video_conditioning, sample_video
    from exvideo_harness.clip_vision import StubClipVision
    from exvideo_harness.exvideo_files import SMALL, random_exvideo_state_dict
    from exvideo_harness.svd_models import SMALL_UNET_CONFIG, build_svd_model
    from exvideo_harness.svd_vae import build_svd_vae

    table, overlap, size = args.table, args.overlap, 128
    length = 2 * table - overlap
    joins = [table - overlap, table]
    model = apply_exvideo(build_svd_model(SMALL_UNET_CONFIG, seed=0),
                          load_exvideo(random_exvideo_state_dict(table, seed=1, **SMALL)))
    vae, clip_vision, image = build_svd_vae(seed=0, channels=32), StubClipVision(), example_image()

    def sample(sampled_model, frames: int, settings) -> dict:
        positive, negative, latent = image_to_video_conditioning(clip_vision, vae, image, size, size, frames, settings)
        return sample_video(sampled_model, positive, negative, latent, settings)

    def continuation(seed: int) -> torch.Tensor:
        first = sample(model, table, SamplingSettings(steps=args.steps, seed=seed))
        second = continue_video(model, clip_vision, vae, first, table, overlap,
                                SamplingSettings(steps=args.steps, seed=seed + 1))
        return join_clips(first, second, overlap)["samples"]

    def windows(fuse: str):
        windowed = ContextWindowsManualNode.execute(model, table, overlap, "standard_static", 1, False, fuse,
                                                    0).result[0]
        return lambda seed: sample(windowed, length, SamplingSettings(steps=args.steps, seed=seed))["samples"]

    methods = {"Continue Video": continuation, **{f"context windows, {fuse}": windows(fuse) for fuse in args.fuse}}
    print(f"{length} latent frames ({size}x{size} px), table {table}, overlap {overlap}, {args.steps} euler steps, "
          f"joins at frame steps {joins}; join_jump ratio (largest join step / median step elsewhere)")
    print(f"{'method':32s} " + " ".join(f"seed {s:<4d}" for s in args.seeds) + "  mean")
    with torch.inference_mode():
        for name, make in methods.items():
            ratios = []
            for seed in args.seeds:
                video = make(seed)
                assert video.shape[0] == length, video.shape
                ratios.append(join_jump(video, joins).ratio)
            print(f"{name:32s} " + " ".join(f"{r:9.3f}" for r in ratios) + f"  {statistics.mean(ratios):.3f}")


if __name__ == "__main__":
    main()
