"""What the small world's benchmarks share: its models loaded, rows of scored videos and their table.

A row is one way of making videos; each video it makes is scored by
`metrics.measure` (and `metrics.seams` where it has joins), and the row
prints the mean and spread of each score over its videos.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib

import numpy as np
import torch

from exvideo_core.patch import apply_exvideo, new_exvideo

from . import generate, metrics, models
from .latents import POOL_FRAMES

FIELDS = ("persistence", "motion", "acceleration", "drift", "step_change")


def benchmark_arguments(description: str, images: int, seeds: list[int], toy_steps: int = 2, sheets: bool = False
                        ) -> argparse.Namespace:
    """A small world benchmark's command line: --images (held-out world seeds 0..N-1), --seeds, --steps, --toy.

    --toy: random weights, one image, one seed, `toy_steps` steps: the machinery, no claim.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=images, help="held-out clips (world seeds 0..N-1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--steps", type=int, default=generate.EXVIDEO_SETTINGS.steps)
    parser.add_argument("--toy", action="store_true", help=f"random weights, 1 image, {toy_steps} steps")
    if sheets:
        parser.add_argument("--sheets", type=pathlib.Path, help="write the first image's videos as contact sheets here")
    args = parser.parse_args()
    if args.toy:
        args.images, args.seeds, args.steps = 1, [1], toy_steps
    torch.set_num_threads(2)
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False
    return args


@dataclasses.dataclass(frozen=True)
class World:
    base: object  # the base MODEL (8 frames)
    exvideo: object  # the base with the extension applied (POOL_FRAMES)
    encoders: generate.Encoders


def load_world(toy: bool) -> World:
    """The shipped small world, or (toy) random models of its sizes: the machinery without a claim."""
    if toy:
        base = models.build_unet()
        return World(base, apply_exvideo(base, new_exvideo(base, POOL_FRAMES)),
                     generate.Encoders(models.build_vae(), models.build_clip_vision()))
    from exvideo_core import load_exvideo

    base = models.load_unet()
    return World(base, apply_exvideo(base, load_exvideo(models.weights_dir() / models.EXVIDEO_FILE)),
                 generate.Encoders(models.load_vae(), models.build_clip_vision()))


@dataclasses.dataclass
class Row:
    name: str
    frames: int
    reports: list = dataclasses.field(default_factory=list)
    seams: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    blocks: int = 0  # UNet block evaluations, where the row counts them

    def score(self, pixels: np.ndarray, joins: list[int] = ()) -> None:
        tracks = metrics.track(pixels)
        self.reports.append(metrics.measure(pixels, tracks))
        if joins:
            self.seams.append(metrics.seams(pixels, list(joins), tracks))

    def stat(self, field: str) -> tuple[float, float]:
        """Mean and standard deviation over the videos where the score is defined (acceleration needs a track)."""
        values = np.array([getattr(r, field) for r in self.reports], dtype=np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            return math.nan, math.nan
        return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0

    def per_video(self, total: float) -> float:
        return total / max(1, len(self.reports))


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN where the denominator is 0: a score of nothing has no ratio (a goal on it is
    not met), where dividing by a floor printed ratios of 1e8."""
    return numerator / denominator if denominator > 0 else math.nan


def nanmean(values) -> float:
    """The mean of the defined values (NaN where none is)."""
    values = np.array(list(values), dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


SHEET_FRAMES = 10  # frames a contact sheet shows, evenly spaced, first and last included


def write_sheet(folder: pathlib.Path | None, name: str, frames: np.ndarray) -> None:
    """`frames` (t h w 3, in [0, 1]) as a one-row contact sheet `folder/<name as a slug>.png`; no folder: nothing."""
    if folder is None:
        return
    from exvideo_core.frames import contact_sheet, write_png

    folder.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    sheet = contact_sheet(torch.from_numpy(np.ascontiguousarray(frames)), SHEET_FRAMES, SHEET_FRAMES)
    write_png(sheet, folder / f"{slug}.png")


def print_table(rows: list[Row]) -> None:
    """Each row's scores (mean +- std over its videos) and its seconds a video."""
    print(f"{'row':32s} {'frames':>6}  " + "  ".join(f"{f:>15s}" for f in FIELDS) + "  s/video")
    for row in rows:
        cells = "  ".join("{:>7.3f} +-{:<6.3f}".format(*row.stat(f)) for f in FIELDS)
        print(f"{row.name:32s} {row.frames:>6}  {cells}  {row.per_video(row.seconds):7.1f}")


class BlockCounter:
    """Counts the UNet blocks that run, through ComfyUI's block patches (they run in full and cached calls alike).

    Every input and output block runs its patches; the middle block has
    none and runs exactly when the deepest input block has.
    """

    def __init__(self):
        self.blocks = 0

    def attach(self, model):
        """A clone of `model` whose blocks are counted here."""
        counted = model.clone()
        counted.set_model_input_block_patch(self._input)
        counted.set_model_output_block_patch(self._output)
        self._deepest = len(model.model.diffusion_model.input_blocks) - 1
        return counted

    def __deepcopy__(self, memo):
        # ModelPatcher.clone deep-copies the model options, patches and all: the clones sampling makes count here.
        return self

    def _input(self, h, transformer_options):
        self.blocks += 1 + (transformer_options["block"] == ("input", self._deepest))
        return h

    def _output(self, h, skip, transformer_options):
        self.blocks += 1
        return h, skip
