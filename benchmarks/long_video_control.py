"""Keyframes and loops on the small world: how close each end comes to its image, and what it costs in motion.

ExVideo at its extended length (40 frames) from held-out clips of the world:
- unconstrained: Image to Video from the clip's first frame (the yardstick);
- keyframes: ExVideo Keyframes from the clip's first frame to its 40th, a
  real end of that motion;
- loop: ExVideo Keyframes from the first frame back to itself.
All with the same settings and seeds, scored by the world's metrics.

    .venv/bin/python benchmarks/long_video_control.py           # 2 clips x seed 1, 25 steps
    .venv/bin/python benchmarks/long_video_control.py --toy     # random weights, 1 clip, 2 steps: the machinery

Goals (#25): the end frame as close to its image as SVD's first frame is to
its conditioning image; motion and persistence within 10% of unconstrained
generation; a loop's seam (last frame back to the first) no larger than a
step inside the video.
"""

import dataclasses
import time

import numpy as np
import torch

from common import setup_paths

setup_paths()

from exvideo_core.keyframes import KeyframeVideo, keyframe_video  # noqa: E402
from exvideo_harness.small_world import generate  # noqa: E402
from exvideo_harness.small_world.latents import POOL_FRAMES  # noqa: E402
from exvideo_harness.small_world.scoring import (Row, benchmark_arguments, load_world, nanmean, ratio,  # noqa: E402
                                                 print_table, write_sheet)
from exvideo_harness.small_world.world import WorldConfig, make_clip  # noqa: E402

WITHIN = 0.10


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference of two frames (h w 3) in [0, 1]."""
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


def main() -> None:
    args = benchmark_arguments(__doc__, images=2, seeds=[1], toy_steps=2, sheets=True)
    world = load_world(args.toy)
    size = WorldConfig().size
    rows = {"unconstrained": Row("unconstrained", POOL_FRAMES),
            "keyframes, first to 40th": Row("keyframes, first to 40th", POOL_FRAMES),
            "loop": Row("loop", POOL_FRAMES - 1)}  # its last frame, the first again, dropped
    ends = {name: [] for name in rows}  # the distance each row is judged by at its end
    loop_seams, loop_steps = [], []

    def keyframed(images, loop, settings):
        samples = keyframe_video(world.exvideo, world.encoders.clip_vision, world.encoders.vae, images, size, size,
                                 KeyframeVideo(POOL_FRAMES, loop), settings)["samples"]
        return generate.decode(world.encoders, samples)

    with torch.inference_mode():
        for clip_seed in range(args.images):
            truth = make_clip(clip_seed, POOL_FRAMES).frames
            first, last = torch.from_numpy(truth[:1]), torch.from_numpy(truth[-1:])
            for seed in args.seeds:
                settings = dataclasses.replace(generate.EXVIDEO_SETTINGS, seed=seed, steps=args.steps)
                made = {}
                for name, make in (
                        ("unconstrained", lambda: generate.decode(world.encoders, generate.image_to_video(
                            world.exvideo, world.encoders, first, POOL_FRAMES, settings))),
                        ("keyframes, first to 40th", lambda: keyframed(torch.cat([first, last]), False, settings)),
                        ("loop", lambda: keyframed(first, True, settings))):
                    started = time.monotonic()
                    made[name] = make()
                    rows[name].seconds += time.monotonic() - started
                    rows[name].score(made[name])
                if clip_seed == 0 and seed == args.seeds[0]:
                    for name, frames in {"the world": truth, **made}.items():
                        write_sheet(args.sheets, f"keyframes {name.split(',')[0]}", frames)
                ends["unconstrained"].append(distance(made["unconstrained"][0], truth[0]))
                ends["keyframes, first to 40th"].append(distance(made["keyframes, first to 40th"][-1], truth[-1]))
                loop = made["loop"]
                loop_seams.append(distance(loop[-1], loop[0]))
                loop_steps.append(float(np.abs(np.diff(loop, axis=0)).mean()))
    report(args, rows, ends, loop_seams, loop_steps)


def report(args, rows: dict, ends: dict, loop_seams: list, loop_steps: list) -> None:
    print(f"keyframes and loops on the small world: ExVideo at {POOL_FRAMES} frames, {args.images} held-out clips x "
          f"seeds {args.seeds}, {args.steps} euler steps")
    print_table(list(rows.values()))
    free, keyed = rows["unconstrained"], rows["keyframes, first to 40th"]
    first_error, end_error = nanmean(ends["unconstrained"]), nanmean(ends["keyframes, first to 40th"])
    print("\ngoals:")
    print(f"  end frame to its image {end_error:.4f} against the first frame to its image (unconstrained) "
          f"{first_error:.4f}: ratio {ratio(end_error, first_error):.2f}  (goal <= 1: "
          f"{'met' if end_error <= first_error else 'NOT met'})")
    for row in (keyed, rows["loop"]):
        for field in ("persistence", "motion"):
            relative = ratio(row.stat(field)[0], free.stat(field)[0])
            print(f"  {row.name}, {field:11s} / unconstrained: {relative:.3f}  (goal within {WITHIN:.0%}: "
                  f"{'met' if abs(1 - relative) <= WITHIN else 'NOT met'})")
    seam, step = nanmean(loop_seams), nanmean(loop_steps)
    print(f"  loop seam (last frame to first) {seam:.4f} against a step inside {step:.4f}: ratio "
          f"{ratio(seam, step):.2f}  (goal <= 1: {'met' if seam <= step else 'NOT met'})")
    print(f"  time a video, keyframes / unconstrained: {ratio(keyed.seconds, free.seconds):.2f}")


if __name__ == "__main__":
    main()
