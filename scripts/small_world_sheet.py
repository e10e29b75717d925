"""The README's result picture: one held-out clip of the small world, the base and ExVideo side by side.

    .venv/bin/python -P scripts/small_world_sheet.py            # writes docs/images/small_world_40_frames.png

Rows, the same evenly spaced frames of 40 as the benchmarks' sheets: the world itself (the clip the first frame
comes from), the base (trained on 8 frames) asked for 40, and the base with
the ExVideo extension post-tuned to 40. Same first frame, settings and seed
as benchmarks/small_world.py.
"""

import argparse
import dataclasses

import numpy as np
import torch
from PIL import Image, ImageDraw

import comfy.cli_args

if not torch.cuda.is_available():
    comfy.cli_args.args.cpu = True

from exvideo_core.frames import contact_sheet, write_png  # noqa: E402
from exvideo_harness.cache import REPO_ROOT  # noqa: E402
from exvideo_harness.small_world import generate  # noqa: E402
from exvideo_harness.small_world.latents import POOL_FRAMES  # noqa: E402
from exvideo_harness.small_world.scoring import SHEET_FRAMES, load_world  # noqa: E402
from exvideo_harness.small_world.world import make_clip  # noqa: E402

LABEL_WIDTH = 150


def strip(frames: np.ndarray, label: str) -> np.ndarray:
    """The benchmarks' one-row contact sheet of `frames` (t h w 3, in [0, 1]), after a label."""
    row = contact_sheet(torch.from_numpy(np.ascontiguousarray(frames)), SHEET_FRAMES, SHEET_FRAMES)
    tag = Image.new("RGB", (LABEL_WIDTH, row.shape[0]), (255, 255, 255))
    ImageDraw.Draw(tag).multiline_text((8, row.shape[0] // 2 - 14), label, fill=(0, 0, 0))
    return np.concatenate([np.asarray(tag), row], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=int, default=0, help="held-out world seed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(2)
    world = load_world(toy=False)
    image = generate.first_frame(args.clip)
    with torch.inference_mode():
        base = generate.decode(world.encoders, generate.image_to_video(
            world.base, world.encoders, image, POOL_FRAMES,
            dataclasses.replace(generate.BASE_SETTINGS, seed=args.seed)))
        exvideo = generate.decode(world.encoders, generate.image_to_video(
            world.exvideo, world.encoders, image, POOL_FRAMES,
            dataclasses.replace(generate.EXVIDEO_SETTINGS, seed=args.seed)))
    rows = [strip(make_clip(args.clip, POOL_FRAMES).frames, "the world\n(truth)"),
            strip(base, "base, trained\non 8 frames"), strip(exvideo, "+ ExVideo,\npost-tuned to 40")]
    gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    path = REPO_ROOT / "docs" / "images" / "small_world_40_frames.png"
    write_png(np.concatenate([rows[0], gap, rows[1], gap, rows[2]]), path)
    print(f"wrote {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
