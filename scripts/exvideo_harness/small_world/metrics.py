"""Quality of a small-world video, measured from its pixels alone.

The first frame says what the video is about: its background colour (the
median of the border) and its objects (connected regions of a colour far
from the background). Every frame is then segmented by nearest colour among
the background and those objects, and each object is followed as the
largest connected region of its colour.

    report = measure(frames)                 # frames: (t h w 3) floats in [0, 1]
    report.persistence, report.motion, report.drift, report.step_change

- persistence: the share of (object, frame) pairs in which the object is
  found at about its first-frame size (area within [1/2, 2] times);
- motion: the share of frame triples, away from walls and other objects
  (where the world's bounces happen), in which the object moves at least
  `MIN_SPEED` px a frame and accelerates by at most `MAX_ACCELERATION` px a
  frame squared: the world's own tracks move in straight lines at 3-3.5 px a
  frame, so its ground truth scores 1, a frozen video 0;
- acceleration: the mean centroid acceleration over those triples, px/frame^2;
- drift: the colour change from the first frame to the last, of the objects'
  mean colours and of the background, as an RGB distance in [0, 1] units;
- step_change: the mean absolute pixel change from each frame to the next.

`seams(frames, joins)` compares the frame-to-frame change and the tracks at
given join frames against the steps inside the clips.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from scipy import ndimage

# A region is an object of the first frame when its colour is this far from the background (RGB, [0, 1] units)...
OBJECT_CONTRAST = 0.25
# ...and it covers at least this many pixels (a disc of radius 3).
MIN_AREA = 28
# A pixel belongs to the nearest of the background and the objects' colours, if within this distance of it.
COLOUR_TOLERANCE = 0.3
# Found "at about its size": area within this factor of the first frame's.
SIZE_FACTOR = 2.0
MIN_SPEED = 0.75  # px/frame; the world's slowest disc moves 3
MAX_ACCELERATION = 1.0  # px/frame^2; the world's discs move in straight lines between bounces
# Triples whose object comes this close (px, beyond its radius and a frame's motion) to a wall or another
# object are left out of the motion measure: bounces are the world's accelerations.
BOUNCE_MARGIN = 2.0


@dataclasses.dataclass(frozen=True)
class Objects:
    colours: np.ndarray  # (n 3)
    areas: np.ndarray  # (n,) px in the first frame
    background: np.ndarray  # (3,)


@dataclasses.dataclass(frozen=True)
class Tracks:
    centres: np.ndarray  # (n t 2) (x, y) px; NaN where the object was not found
    areas: np.ndarray  # (n t) px of the object's largest region (0 where absent)
    found: np.ndarray  # (n t) bool: found at about its first-frame size
    colours: np.ndarray  # (n t 3) mean colour of that region (NaN where absent)
    backgrounds: np.ndarray  # (t 3) median colour of the background pixels


@dataclasses.dataclass(frozen=True)
class Report:
    objects: int
    persistence: float
    motion: float
    acceleration: float
    speed: float
    object_drift: float
    background_drift: float
    step_change: float

    @property
    def drift(self) -> float:
        return max(self.object_drift, self.background_drift)


def find_objects(frame: np.ndarray) -> Objects:
    """The background colour and the objects of one frame (h w 3)."""
    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
    background = np.median(border, axis=0)
    foreground = np.linalg.norm(frame - background, axis=-1) > OBJECT_CONTRAST
    labels, count = ndimage.label(foreground)
    colours, areas = [], []
    for index in range(1, count + 1):
        region = labels == index
        area = int(region.sum())
        if area >= MIN_AREA:
            # The inner pixels: the rim is blended with the background.
            core = ndimage.binary_erosion(region, iterations=2)
            colours.append(frame[core if core.any() else region].mean(axis=0))
            areas.append(area)
    return Objects(np.array(colours, dtype=np.float32).reshape(-1, 3), np.array(areas, dtype=np.float32), background)


def track(frames: np.ndarray, objects: Objects | None = None) -> Tracks:
    """Follows the first frame's objects through every frame by colour."""
    frames = np.asarray(frames, dtype=np.float32)
    objects = objects or find_objects(frames[0])
    n, t = len(objects.colours), len(frames)
    palette = np.concatenate([objects.background[None], objects.colours])  # index 0: background
    centres = np.full((n, t, 2), np.nan, dtype=np.float32)
    areas = np.zeros((n, t), dtype=np.float32)
    colours = np.full((n, t, 3), np.nan, dtype=np.float32)
    backgrounds = np.empty((t, 3), dtype=np.float32)
    for f, frame in enumerate(frames):
        distances = np.linalg.norm(frame[:, :, None, :] - palette, axis=-1)  # (h w k)
        nearest = distances.argmin(-1)
        nearest[distances.min(-1) > COLOUR_TOLERANCE] = -1
        backgrounds[f] = np.median(frame[nearest == 0], axis=0) if (nearest == 0).any() else np.nan
        for i in range(n):
            labels, count = ndimage.label(nearest == i + 1)
            if not count:
                continue
            sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=range(1, count + 1))
            region = labels == (int(np.argmax(sizes)) + 1)
            ys, xs = np.nonzero(region)
            centres[i, f] = xs.mean() + 0.5, ys.mean() + 0.5
            areas[i, f] = len(xs)
            colours[i, f] = frame[region].mean(axis=0)
    ratio = areas / np.maximum(objects.areas[:, None], 1)
    found = (ratio >= 1 / SIZE_FACTOR) & (ratio <= SIZE_FACTOR)
    return Tracks(centres, areas, found, colours, backgrounds)


def motion_triples(tracks: Tracks, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Speeds and accelerations (px/frame, px/frame^2) at every middle frame of a found triple away from bounces."""
    c, found = tracks.centres, tracks.found
    n, t = found.shape
    speeds, accelerations = [], []
    radii = np.sqrt(np.maximum(tracks.areas, 1) / math.pi)
    for i in range(n):
        for f in range(1, t - 1):
            if not found[i, f - 1:f + 2].all():
                continue
            step = np.linalg.norm(c[i, f + 1] - c[i, f - 1]) / 2
            reach = radii[i, f] + step + BOUNCE_MARGIN
            near_wall = c[i, f].min() < reach or c[i, f].max() > size - reach
            near_other = any(
                found[j, f] and np.linalg.norm(c[i, f] - c[j, f]) < reach + radii[j, f] + step
                for j in range(n) if j != i)
            if near_wall or near_other:
                continue
            speeds.append(step)
            accelerations.append(np.linalg.norm(c[i, f + 1] - 2 * c[i, f] + c[i, f - 1]))
    return np.array(speeds), np.array(accelerations)


def measure(frames: np.ndarray, tracks: Tracks | None = None) -> Report:
    """The clip's scores; `tracks`: its `track(frames)` where the caller has them already."""
    frames = np.asarray(frames, dtype=np.float32)
    tracks = track(frames) if tracks is None else tracks
    speeds, accelerations = motion_triples(tracks, frames.shape[2])
    plausible = (speeds >= MIN_SPEED) & (accelerations <= MAX_ACCELERATION)
    return Report(
        objects=tracks.found.shape[0],
        persistence=float(tracks.found.mean()) if tracks.found.size else 0.0,
        motion=float(plausible.mean()) if plausible.size else 0.0,
        acceleration=float(accelerations.mean()) if accelerations.size else math.nan,
        speed=float(speeds.mean()) if speeds.size else math.nan,
        object_drift=_colour_drift(tracks.colours[:, 0], tracks.colours[:, -1]),
        background_drift=_colour_drift(tracks.backgrounds[:1], tracks.backgrounds[-1:]),
        step_change=float(np.abs(np.diff(frames, axis=0)).mean()) if len(frames) > 1 else 0.0,
    )


def _colour_drift(first: np.ndarray, last: np.ndarray) -> float:
    """Mean RGB distance between matching colours; an object or background lost on the way counts as 1."""
    distances = np.linalg.norm(first - last, axis=-1)
    return float(np.nan_to_num(distances, nan=1.0).mean()) if distances.size else 0.0


@dataclasses.dataclass(frozen=True)
class SeamReport:
    join_change: float  # mean absolute pixel change across the joins
    inside_change: float  # the same between consecutive frames inside the clips
    inside_spread: float  # its standard deviation over those steps
    join_acceleration: float  # mean centroid acceleration of triples centred on a join
    inside_acceleration: float
    join_persistence: float  # share of objects found on both sides of the joins
    inside_persistence: float
    join_colour_change: float  # mean RGB change of the background and the tracked objects across the joins
    inside_colour_change: float  # the same between consecutive frames inside the clips
    inside_colour_spread: float  # its standard deviation over those steps

    @property
    def change_ratio(self) -> float:
        return self.join_change / max(self.inside_change, 1e-9)


def seams(frames: np.ndarray, joins: list[int], tracks: Tracks | None = None) -> SeamReport:
    """Compares each join (the step from frame j-1 to frame j) with the steps inside the clips."""
    frames = np.asarray(frames, dtype=np.float32)
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # steps[k]: frame k -> k+1
    at_join = np.zeros(len(steps), dtype=bool)
    at_join[[j - 1 for j in joins if 0 < j < len(frames)]] = True
    tracks = track(frames) if tracks is None else tracks
    c, found = tracks.centres, tracks.found
    both = found[:, :-1] & found[:, 1:]  # (n, steps)
    acc = np.full(found.shape, np.nan)
    triple = found[:, :-2] & found[:, 1:-1] & found[:, 2:]
    acc[:, 1:-1] = np.where(triple, np.linalg.norm(c[:, 2:] - 2 * c[:, 1:-1] + c[:, :-2], axis=-1), np.nan)
    # A join between frames j-1 and j has its acceleration measured at both frames around it.
    join_frames = sorted({f for j in joins for f in (j - 1, j) if 0 < f < len(frames) - 1})
    inside_frames = [f for f in range(1, len(frames) - 1) if f not in join_frames]
    colour_steps = _colour_steps(tracks)
    return SeamReport(
        join_change=float(steps[at_join].mean()) if at_join.any() else math.nan,
        inside_change=float(steps[~at_join].mean()),
        inside_spread=float(steps[~at_join].std()),
        join_acceleration=float(np.nanmean(acc[:, join_frames])) if join_frames else math.nan,
        inside_acceleration=float(np.nanmean(acc[:, inside_frames])),
        join_persistence=float(both[:, at_join].mean()) if at_join.any() and both.size else math.nan,
        inside_persistence=float(both[:, ~at_join].mean()) if both.size else math.nan,
        join_colour_change=float(np.nanmean(colour_steps[at_join])) if at_join.any() else math.nan,
        inside_colour_change=float(np.nanmean(colour_steps[~at_join])),
        inside_colour_spread=float(np.nanstd(colour_steps[~at_join])),
    )


def _colour_steps(tracks: Tracks) -> np.ndarray:
    """Per step k (frame k -> k+1): the mean RGB change of the background and of each object found on both frames.

    The drift users see at a join is a jump in these colours, which a mean
    pixel change mixes up with the objects' motion.
    """
    background = np.linalg.norm(np.diff(tracks.backgrounds, axis=0), axis=-1)[None]  # (1 steps)
    objects = np.linalg.norm(np.diff(tracks.colours, axis=1), axis=-1)  # (n steps); NaN where either is absent
    objects[~(tracks.found[:, :-1] & tracks.found[:, 1:])] = np.nan
    changes = np.concatenate([background, objects])
    with warnings.catch_warnings():  # a step where nothing was found on both frames has no colour change: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(changes, axis=0)
