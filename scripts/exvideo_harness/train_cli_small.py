"""The training CLI on the small SVD: `python -m exvideo_harness.train_cli_small --config run.toml [--cpu]`.

Runs `exvideo_core.train.cli.main` unchanged except that the checkpoint
loader builds the small random UNet and the tiny encoders (ComfyUI detects
only real-sized SVD checkpoints), so it can run under torchrun in a test.
Every safetensors file the run writes (all it writes) is reported on stderr
as "rank R wrote PATH".
"""

import os
import pathlib
import sys

from exvideo_core import atomic_file
from exvideo_core.train import cli


def small_checkpoint(path: pathlib.Path, encoders: bool):
    from exvideo_harness.svd_models import SMALL_UNET_CONFIG, build_svd_model
    from exvideo_harness.train_data import tiny_clip_vision, tiny_vae

    model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
    return (model, tiny_vae(), tiny_clip_vision()) if encoders else (model, None, None)


def _report_writes():
    write = atomic_file.atomic_write

    def reporting(path, *args, **kwargs):
        print(f"rank {os.environ.get('RANK', '0')} wrote {path}", file=sys.stderr, flush=True)
        return write(path, *args, **kwargs)

    atomic_file.atomic_write = reporting  # every save goes through it


if __name__ == "__main__":
    _report_writes()
    sys.exit(cli.main(sys.argv[1:], load_checkpoint=small_checkpoint))
