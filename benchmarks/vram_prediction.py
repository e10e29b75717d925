"""Predicted GPU memory for the README's hardware table: weights plus the memory model's activation peak.

    .venv/bin/python benchmarks/vram_prediction.py

Predictions, not measurements: the weights are counted from the full-size
SVD-XT UNet (built on the meta device) and the ExVideo tensors it adds, in
fp16; the activation peak is `memory_model.activation_bytes`, the estimate the
patched MODEL gives ComfyUI, with the automatic chunk. Cond and uncond run
one after another unless 1.5x a batched forward's estimate is free (ComfyUI's
rule), so both rows are printed. CLIP vision and the VAE are not counted:
ComfyUI loads them before and after the UNet, and they are smaller than what
the UNet frees. `benchmarks/gpu.sh` measures the activation peak on a GPU.
"""

import torch

from common import setup_paths

setup_paths()

from exvideo_core import chunk_policy, memory_model  # noqa: E402
from exvideo_core.constraints import VAE_DOWNSCALE  # noqa: E402
from exvideo_core.layout import TEMPORAL_BLOCKS  # noqa: E402
from exvideo_core.unet_map import skip_copies  # noqa: E402
from exvideo_harness.svd_models import FULL_UNET_CONFIG, svd_model_config  # noqa: E402

GIB = 1024 ** 3
FP16 = 2
SETTINGS = [(512, 512, 25), (512, 512, 128), (768, 768, 128), (1024, 1024, 128)]


def main() -> None:
    with torch.device("meta"):
        unet = svd_model_config(FULL_UNET_CONFIG).get_model({}).diffusion_model
    channels = unet.model_channels
    unet_values = sum(p.numel() for p in unet.parameters())
    # What ExVideo adds to each temporal block: a C x C x 3x3x3 conv with bias and a 128-row position table.
    added = sum((channels * b.channel_mult) ** 2 * 27 + channels * b.channel_mult * 129 for b in TEMPORAL_BLOCKS)
    weights = (unet_values + added) * FP16
    host = skip_copies(unet)
    print(f"weights: SVD-XT UNet {unet_values / 1e9:.2f} G values + ExVideo {added / 1e9:.2f} G, fp16: "
          f"{weights / GIB:.2f} GiB")
    print(f"{'size':>14} {'frames':>6}  {'cond, uncond apart':>18}  {'batched':>8}  {'apart, skips on host':>20}")
    for width, height, frames in SETTINGS:
        pixels = (width // VAE_DOWNSCALE) * (height // VAE_DOWNSCALE)

        def total(videos, host_copies=0.0):
            tokens = videos * frames * pixels
            return (weights + memory_model.activation_bytes(tokens, chunk_policy.AUTO_CHUNK_TOKENS, channels, FP16,
                                                        host_copies)) / GIB

        print(f"{width:>6}x{height:<7} {frames:>6}  {total(1):>15.1f} GiB  {total(2):>4.1f} GiB  "
              f"{total(1, host):>16.1f} GiB")


if __name__ == "__main__":
    main()
