"""ExVideo's claim on the small world: post-tuning extends the length a model can make.

The project's own small SVD (scripts/exvideo_harness/small_world: a base
trained on 8-frame clips, an ExVideo extension post-tuned to 40 frames by
the pack's trainer), sampled the pack's ways from held-out first frames, and
scored by the world's metrics from the pixels alone:

    rows:  the world itself (ground truth, 40 frames), and through the VAE (encoded, decoded: the ceiling
           of anything the model makes, since its frames come out of that decoder)
           base at its trained length (8), base at 40 (positions it never saw)
           ExVideo at 40
           ExVideo past its table, 120 frames, by Continue Video (plain, with the reference image, with
           anchored colour) and by native context windows

    .venv/bin/python benchmarks/small_world.py                    # 2 images x seed 1, 25 steps
    .venv/bin/python benchmarks/small_world.py --toy              # random weights, 1 image, 2 steps: the machinery

Each cell is the mean over images and seeds, with its standard deviation.
The goals are printed as ratios with their thresholds, met or not.
"""

import dataclasses
import time

import torch

from common import setup_paths

setup_paths()

from exvideo_harness.small_world import generate  # noqa: E402
from exvideo_harness.small_world.latents import POOL_FRAMES  # noqa: E402
from exvideo_harness.small_world.scoring import (Row, benchmark_arguments, load_world, nanmean, ratio,  # noqa: E402
                                                 print_table, write_sheet)
from exvideo_harness.small_world.world import WorldConfig, make_clip  # noqa: E402

BASE_FRAMES = 8
EXTENDED = POOL_FRAMES
BEYOND = 3 * EXTENDED
OVERLAP = 8
SIMILAR = 0.9  # ExVideo at the extended length keeps at least this share of the base's trained-length scores


def main() -> None:
    args = benchmark_arguments(__doc__, images=2, seeds=[1], toy_steps=2, sheets=True)
    world = load_world(args.toy)
    base, exvideo, encoders = world.base, world.exvideo, world.encoders
    decode = lambda samples: generate.decode(encoders, samples)  # noqa: E731

    def plain(model, frames):
        return lambda image, settings: (decode(generate.image_to_video(model, encoders, image, frames, settings)), [])

    def as_base(make):
        """The base samples at the motion bucket of its own 8-frame clips."""
        return lambda image, settings: make(image, dataclasses.replace(
            settings, motion_bucket_id=generate.BASE_MOTION_BUCKET))

    def continued(**options):
        def make(image, settings):
            samples, joins = generate.continued(exvideo, encoders, image, EXTENDED, BEYOND, OVERLAP, settings,
                                                **options)
            return decode(samples), joins
        return make

    def windowed(image, settings):
        samples, seams = generate.windowed(exvideo, encoders, image, BEYOND, EXTENDED, OVERLAP, settings)
        return decode(samples), seams

    makers = {
        "base, trained length": (BASE_FRAMES, as_base(plain(base, BASE_FRAMES))),
        "base, extended length": (EXTENDED, as_base(plain(base, EXTENDED))),
        "ExVideo, extended length": (EXTENDED, plain(exvideo, EXTENDED)),
        "ExVideo, Continue Video": (BEYOND, continued()),
        "Continue, reference image": (BEYOND, continued(reference=True)),
        "Continue, anchored colour": (BEYOND, continued(anchor=True)),
        "ExVideo, context windows": (BEYOND, windowed),
    }
    truth, through_vae = Row("the world itself", EXTENDED), Row("the world through the VAE", EXTENDED)
    rows = [Row(name, frames) for name, (frames, _) in makers.items()]
    with torch.inference_mode():
        for image_seed in range(args.images):
            clip = make_clip(image_seed, EXTENDED).frames
            truth.score(clip)
            through_vae.score(decode(encoders.vae.encode(torch.from_numpy(clip))))
            image = generate.first_frame(image_seed)
            for seed in args.seeds:
                settings = dataclasses.replace(generate.EXVIDEO_SETTINGS, seed=seed, steps=args.steps)
                for row in rows:
                    started = time.monotonic()
                    pixels, joins = makers[row.name][1](image, settings)
                    row.seconds += time.monotonic() - started
                    assert len(pixels) >= row.frames, (row.name, pixels.shape)
                    row.score(pixels, joins)
                    if image_seed == 0 and seed == args.seeds[0]:
                        write_sheet(args.sheets, row.name, pixels)
    report(args, [truth, through_vae], rows)


def report(args, references: list[Row], rows: list[Row]) -> None:
    print(f"small world: {args.images} held-out first frames x seeds {args.seeds}, {args.steps} euler steps, "
          f"{WorldConfig().size} px square; mean +- std over the {args.images * len(args.seeds)} videos")
    print_table([*references, *rows])
    by_name = {row.name: row for row in rows}
    base, long_base, ex = (by_name[n] for n in ("base, trained length", "base, extended length",
                                                  "ExVideo, extended length"))
    print("\ngoals:")
    for field in ("persistence", "motion"):
        relative = ratio(ex.stat(field)[0], base.stat(field)[0])
        print(f"  ExVideo at {EXTENDED} / base at {BASE_FRAMES}, {field:11s}: {relative:.3f}  "
              f"(goal >= {SIMILAR}: {'met' if relative >= SIMILAR else 'NOT met'})")
    for field in ("persistence", "motion"):
        gap = base.stat(field)[0] - long_base.stat(field)[0]
        spread = max(base.stat(field)[1], long_base.stat(field)[1])
        print(f"  base at {BASE_FRAMES} - base at {EXTENDED}, {field:11s}: {gap:+.3f} against the seeds' spread "
              f"{spread:.3f}  (goal: worse by more than the spread: {'met' if gap > spread else 'NOT met'})")
    for row in rows:
        if not row.seams:
            continue
        join = nanmean(s.join_change for s in row.seams)
        inside = nanmean(s.inside_change for s in row.seams)
        spread = nanmean(s.inside_spread for s in row.seams)
        persistence = nanmean(s.join_persistence for s in row.seams)
        inside_persistence = nanmean(s.inside_persistence for s in row.seams)
        colour = nanmean(s.join_colour_change for s in row.seams)
        inside_colour = nanmean(s.inside_colour_change for s in row.seams)
        colour_spread = nanmean(s.inside_colour_spread for s in row.seams)
        print(f"  {row.name}: frame change at seams {join:.4f} against {inside:.4f} +- {spread:.4f} inside "
              f"(ratio {ratio(join, inside):.2f}; goal within the spread: "
              f"{'met' if abs(join - inside) <= spread else 'NOT met'}); colour change at seams {colour:.4f} "
              f"against {inside_colour:.4f} +- {colour_spread:.4f} inside (goal within the spread: "
              f"{'met' if abs(colour - inside_colour) <= colour_spread else 'NOT met'}); persistence across seams "
              f"{persistence:.3f} against {inside_persistence:.3f} inside")


if __name__ == "__main__":
    main()
