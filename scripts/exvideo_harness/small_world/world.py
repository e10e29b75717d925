"""The small world: discs of distinct hues gliding and bouncing over a plain, low-saturation background.

Every clip is a pure function of (config, seed): no data files. It comes
with its ground truth (per-object centre tracks, colours, radii and the
frames at which each object bounced), so the metrics in `metrics.py` can be
checked against the world itself.

Motion needs length: objects move `speed` px a frame in a straight line and
reflect off the frame's edges and off each other (equal-mass elastic
collisions). At the default speeds an object crosses the free width in about
30 frames, so an 8-frame clip rarely holds a bounce and a 40-frame clip
holds one or two for every object: a model that only learnt short clips has
seen few bounces and no long straight paths.

Motion can be read from any one frame: each disc is lit along its heading,
its front `HEADLIGHT` of the way to white and its back in its own colour.
SVD sees only the first frame. Without a cue, a disc's direction would be
uniform over the circle, and the lowest squared error a model can reach is
the average of those futures: discs that stay where they are and blur. The
first base trained on unlit discs learnt exactly that (docs/small-world.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import torch

# Hues far enough apart that a blurred disc still falls nearest to its own colour.
PALETTE = np.array([
    (0.90, 0.15, 0.15),  # red
    (0.15, 0.75, 0.20),  # green
    (0.20, 0.30, 0.95),  # blue
    (0.95, 0.85, 0.10),  # yellow
    (0.85, 0.20, 0.85),  # magenta
    (0.10, 0.80, 0.85),  # cyan
], dtype=np.float32)


# How far toward white a disc's front is lit: at most 0.24 RGB from its mean colour (red, the farthest), inside
# the metrics' COLOUR_TOLERANCE, so a lit disc is still one object of one colour.
HEADLIGHT = 0.4

# Seeds below this are held out: benchmarks and evaluations draw from them, training never does.
HELD_OUT_SEEDS = 1_000_000


def training_seed(generator) -> int:
    """A clip seed for training, drawn from `generator` (a torch.Generator) above the held-out range."""
    return HELD_OUT_SEEDS + int(torch.randint(2**31 - HELD_OUT_SEEDS, (), generator=generator))


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    size: int = 128  # px, square frames: a 16x16 SVD latent
    objects: tuple[int, int] = (2, 3)  # inclusive range of discs per clip
    radius: tuple[float, float] = (9.0, 13.0)  # px
    speed: tuple[float, float] = (3.0, 3.5)  # px per frame: narrow, as one frame shows a heading but no speed
    background_gray: tuple[float, float] = (0.35, 0.65)
    background_tint: float = 0.06  # largest channel offset from gray: low saturation


@dataclasses.dataclass(frozen=True)
class Clip:
    frames: np.ndarray  # (t h w 3) float32 in [0, 1], ComfyUI's IMAGE layout
    centres: np.ndarray  # (n t 2) float32, (x, y) in px
    velocities: np.ndarray  # (n t 2) float32, px a frame: where each disc heads from its frame
    colours: np.ndarray  # (n 3) float32 in [0, 1]
    radii: np.ndarray  # (n,) float32, px
    background: np.ndarray  # (3,) float32
    bounces: tuple[frozenset[int], ...]  # per object: the first frames drawn after a wall or disc reflection

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]


def fingerprint(config: WorldConfig = WorldConfig()) -> str:
    """12 hex digits that change whenever the world's pixels do: caches of encoded clips are kept under it."""
    frames = np.concatenate([make_clip(seed, 4, config).frames for seed in range(4)])
    return hashlib.sha256(np.round(frames, 4).tobytes()).hexdigest()[:12]


def make_clip(seed: int, frames: int, config: WorldConfig = WorldConfig(), start: int = 0) -> Clip:
    """Frames `start` to `start + frames` of the clip `seed`: a window of a longer clip is the same as its frames."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(config.objects[0], config.objects[1] + 1))
    colours = PALETTE[rng.choice(len(PALETTE), n, replace=False)]
    radii = rng.uniform(*config.radius, n).astype(np.float32)
    gray = rng.uniform(*config.background_gray)
    background = np.clip(gray + rng.uniform(-config.background_tint, config.background_tint, 3), 0, 1)
    positions = _place_apart(rng, radii, config.size)
    angles = rng.uniform(0, 2 * math.pi, n)
    velocities = rng.uniform(*config.speed, n)[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
    centres, velocities, bounces = simulate(positions, velocities, radii, config.size, start + frames)
    centres, velocities = centres[:, start:], velocities[:, start:]
    bounces = tuple(frozenset(t - start for t in b if t >= start) for b in bounces)
    return Clip(
        frames=render(centres, velocities, colours, radii, background.astype(np.float32), config.size),
        centres=centres.astype(np.float32), velocities=velocities.astype(np.float32), colours=colours, radii=radii,
        background=background.astype(np.float32), bounces=bounces,
    )


def _place_apart(rng: np.random.Generator, radii: np.ndarray, size: int) -> np.ndarray:
    """Start positions inside the frame with no two discs touching (rejection sampling)."""
    while True:
        positions = np.stack([rng.uniform(r, size - r, 2) for r in radii])
        gaps = [np.linalg.norm(positions[i] - positions[j]) - radii[i] - radii[j]
                for i in range(len(radii)) for j in range(i)]
        if min(gaps, default=1.0) > 2.0:
            return positions


def simulate(positions: np.ndarray, velocities: np.ndarray, radii: np.ndarray, size: int,
             frames: int) -> tuple[np.ndarray, np.ndarray, tuple[frozenset[int], ...]]:
    """Centres and velocities (n t 2) and bounce frames of discs under constant velocity, wall and disc reflections."""
    positions, velocities = positions.astype(np.float64).copy(), velocities.astype(np.float64).copy()
    n = len(radii)
    centres, headings = np.empty((n, frames, 2)), np.empty((n, frames, 2))
    bounces = [set() for _ in range(n)]
    for t in range(frames):
        centres[:, t], headings[:, t] = positions, velocities
        before = velocities.copy()
        positions += velocities
        for i in range(n):
            for axis in range(2):
                low, high = radii[i], size - radii[i]
                if positions[i, axis] < low:
                    positions[i, axis] = 2 * low - positions[i, axis]
                    velocities[i, axis] *= -1
                elif positions[i, axis] > high:
                    positions[i, axis] = 2 * high - positions[i, axis]
                    velocities[i, axis] *= -1
        for i in range(n):
            for j in range(i):
                offset = positions[i] - positions[j]
                distance = np.linalg.norm(offset)
                approaching = np.dot(velocities[i] - velocities[j], offset) < 0
                if distance < radii[i] + radii[j] and approaching:
                    normal = offset / max(distance, 1e-9)
                    exchange = np.dot(velocities[i] - velocities[j], normal) * normal
                    velocities[i] -= exchange
                    velocities[j] += exchange
        for i in np.flatnonzero(np.any(velocities != before, axis=1)):
            if t + 1 < frames:
                bounces[i].add(t + 1)
    return centres, headings, tuple(frozenset(b) for b in bounces)


def render(centres: np.ndarray, velocities: np.ndarray, colours: np.ndarray, radii: np.ndarray,
           background: np.ndarray, size: int) -> np.ndarray:
    """(t h w 3) float32 frames: anti-aliased discs, lit along their headings, drawn in object order."""
    n, t = centres.shape[:2]
    coords = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    frames = np.broadcast_to(background, (t, size, size, 3)).copy()
    headings = velocities / np.maximum(np.linalg.norm(velocities, axis=-1, keepdims=True), 1e-9)
    for i in range(n):
        dx = coords[None, None, :] - centres[i, :, 0, None, None]
        dy = coords[None, :, None] - centres[i, :, 1, None, None]
        alpha = np.clip(radii[i] + 0.5 - np.sqrt(dx * dx + dy * dy), 0.0, 1.0)[..., None]
        # A linear ramp, the lowest-frequency cue there is, so the 8x-downsampling VAE keeps it.
        ahead = (dx * headings[i, :, 0, None, None] + dy * headings[i, :, 1, None, None]) / radii[i]
        light = (HEADLIGHT * np.clip(0.5 + 0.5 * ahead, 0.0, 1.0))[..., None]
        frames = frames * (1 - alpha) + (colours[i] * (1 - light) + light) * alpha
    return frames.astype(np.float32)
