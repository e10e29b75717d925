"""What a sampling cache saves and costs on ExVideo, measured on the small world.

ExVideo at its extended length (40 frames), sampled from held-out first
frames the pack's way, uncached and through each cache:
- ours, ExVideo Deep Cache (DeepCache: the whole UNet every `interval`
  calls, its `depth` shallowest blocks at each end between);
- ComfyUI's native EasyCache and LazyCache (whole-model caches that skip
  calls), at their nodes' defaults.
The same images and seeds for every row. UNet block evaluations are counted
through ComfyUI's block patches, in full and cached calls alike; the time
is each row's own, in this one run.

    .venv/bin/python benchmarks/sampling_cache.py           # 2 images x seed 1, 25 steps
    .venv/bin/python benchmarks/sampling_cache.py --toy     # random weights, 1 image, 4 steps: the machinery

Goal (#25): at least 1.8x fewer block evaluations, with persistence and
motion within 5% of uncached sampling.
"""

import dataclasses
import time

import numpy as np
import torch

from common import setup_paths

setup_paths()

from exvideo_core.deep_cache import DeepCacheSettings, with_deep_cache  # noqa: E402
from exvideo_harness.small_world import generate  # noqa: E402
from exvideo_harness.small_world.latents import POOL_FRAMES  # noqa: E402
from exvideo_harness.small_world.scoring import (BlockCounter, Row, benchmark_arguments, load_world,  # noqa: E402
                                                  print_table, ratio)

FEWER_BLOCKS = 1.8
WITHIN = 0.05
DEEP_CACHE = [DeepCacheSettings(2, 1), DeepCacheSettings(3, 1), DeepCacheSettings(4, 1), DeepCacheSettings(3, 2)]


def caches(model) -> dict:
    """Each row's MODEL: uncached, ours at each setting, the native caches at their defaults."""
    from comfy_extras.nodes_easycache import EasyCacheNode, LazyCacheNode

    rows = {"uncached": model}
    for settings in DEEP_CACHE:
        rows[f"deep cache, interval {settings.interval} depth {settings.depth}"] = with_deep_cache(model, settings)
    for node in (EasyCacheNode, LazyCacheNode):
        rows[f"native {node.__name__.removesuffix('Node')} 0.2"] = node.execute(model, 0.2, 0.15, 0.95, False).result[0]
    return rows


def main() -> None:
    args = benchmark_arguments(__doc__, images=2, seeds=[1], toy_steps=4)
    world = load_world(args.toy)
    counter = BlockCounter()
    models = {name: counter.attach(model) for name, model in caches(world.exvideo).items()}
    rows = {name: Row(name, POOL_FRAMES) for name in models}
    distance = {name: [] for name in models}  # mean |pixel - uncached pixel| of the same image and seed
    with torch.inference_mode():
        for image_seed in range(args.images):
            image = generate.first_frame(image_seed)
            for seed in args.seeds:
                settings = dataclasses.replace(generate.EXVIDEO_SETTINGS, seed=seed, steps=args.steps)
                uncached = None
                for name, model in models.items():
                    blocks, started = counter.blocks, time.monotonic()
                    samples = generate.image_to_video(model, world.encoders, image, POOL_FRAMES, settings)
                    rows[name].seconds += time.monotonic() - started
                    rows[name].blocks += counter.blocks - blocks
                    pixels = generate.decode(world.encoders, samples)
                    rows[name].score(pixels)
                    uncached = pixels if uncached is None else uncached
                    distance[name].append(float(np.abs(pixels - uncached).mean()))
    report(args, rows, distance)


def report(args, rows: dict, distance: dict) -> None:
    print(f"sampling caches on the small world: ExVideo at {POOL_FRAMES} frames, {args.images} held-out first "
          f"frames x seeds {args.seeds}, {args.steps} euler steps")
    print_table(list(rows.values()))
    base = rows["uncached"]
    print("\nagainst uncached sampling (ratios; block evaluations counted, time measured in this run):")
    for name, row in rows.items():
        if row is base:
            continue
        fewer = base.blocks / max(1, row.blocks)
        faster = ratio(base.seconds, row.seconds)
        kept = {f: ratio(row.stat(f)[0], base.stat(f)[0]) for f in ("persistence", "motion")}
        met = fewer >= FEWER_BLOCKS and all(abs(1 - k) <= WITHIN for k in kept.values())
        print(f"  {name:38s} {fewer:5.2f}x fewer blocks  {faster:5.2f}x faster  persistence {kept['persistence']:.3f}"
              f"  motion {kept['motion']:.3f}  |pixels - uncached| {np.mean(distance[name]):.4f}  (goal >= "
              f"{FEWER_BLOCKS}x fewer, scores within {WITHIN:.0%}: {'met' if met else 'NOT met'})")


if __name__ == "__main__":
    main()
