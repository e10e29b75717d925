"""Training clips: N consecutive frames of a video, resized and centre-cropped.

A `VideoClipDataset` reads its sources lazily, one video at a time, so a
folder of long high-resolution videos never sits in memory at once. Each
source gives up to `clips_per_video` non-overlapping windows of `num_frames`
frames, taken every `frame_stride` frames from the start (DiffSynth's example
takes the first N frames at stride 1). Frames are IMAGE tensors `(t h w c)`
in [0, 1], as ComfyUI's VAE takes them; `2x - 1` gives the [-1, 1] pixels of
DiffSynth's pipeline, on which the motion score is measured.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Iterator, Sequence

import numpy as np
import torch

from ..constraints import check_frame_count, check_training_size
from ..errors import ExVideoError
from ..frames import resize_frames
from ..video_io import VIDEO_EXTENSIONS, VideoReadError, read_video

# Every 8th threshold of the motion-score -> bucket table in DiffSynth's ExVideo
# training example (MotionBucketManager); interpolating linearly between them
# lands within one bucket of the full 128-entry table.
_MOTION_ANCHORS = np.array([
    0.0122, 0.0283, 0.0424, 0.0576, 0.0726, 0.0877, 0.1020, 0.1164, 0.1334,
    0.1510, 0.1703, 0.1926, 0.2147, 0.2436, 0.2813, 0.3321, 0.4409])
_MOTION_ANCHOR_BUCKETS = np.array([1, *range(8, 127, 8), 127])
MAX_MOTION_BUCKET = 127


class DatasetError(ExVideoError, ValueError):
    """No usable training clip, or settings that cannot give one."""


@dataclasses.dataclass(frozen=True)
class VideoClip:
    name: str  # source and window, for messages and the cache
    frames: torch.Tensor  # (t h w c) in [0, 1]


def motion_score(frames: torch.Tensor) -> float:
    """DiffSynth's motion score: per-pixel std over time of the [-1, 1] frames (t h w c), averaged."""
    pixels = frames[..., :3].float() * 2 - 1
    return pixels.std(dim=0).mean().item()


def motion_bucket(score: float) -> int:
    """SVD's `motion_bucket_id` (0..127) for a motion score, as DiffSynth's example assigns it."""
    if score < _MOTION_ANCHORS[0]:
        return 0
    return int(min(MAX_MOTION_BUCKET, np.floor(np.interp(score, _MOTION_ANCHORS, _MOTION_ANCHOR_BUCKETS))))


def resize_center_crop(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(t h w c) -> (t height width c): crop the centre to the target aspect, then resize (antialiased)."""
    return resize_frames(frames, width, height, crop=True)


class VideoClipDataset:
    """Clips of `num_frames` frames at `width` x `height` from video files or IMAGE tensors.

    Sources shorter than `num_frames` (after the stride) and unreadable files
    are skipped with a warning; `encode_clips` refuses a dataset that yields
    no clip at all.
    """

    def __init__(self, sources: Sequence[str | os.PathLike | torch.Tensor], num_frames: int, width: int, height: int,
                 frame_stride: int = 1, clips_per_video: int = 1):
        check_frame_count(num_frames, "a training clip's frames", DatasetError)
        check_training_size(width, height, "training clips' width and height", DatasetError)
        if frame_stride < 1 or clips_per_video < 1:
            raise DatasetError(f"frame_stride and clips_per_video must be at least 1, got {frame_stride}, "
                               f"{clips_per_video}")
        if not sources:
            raise DatasetError("the dataset has no sources: give video files or an IMAGE batch")
        self.sources = list(sources)
        self.num_frames, self.width, self.height = num_frames, width, height
        self.frame_stride, self.clips_per_video = frame_stride, clips_per_video

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, num_frames: int, width: int, height: int, frame_stride: int = 1,
                    clips_per_video: int = 1, recursive: bool = False) -> "VideoClipDataset":
        folder = pathlib.Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"{folder} is not a folder")
        pattern = "**/*" if recursive else "*"
        videos = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not videos:
            raise DatasetError(f"{folder} holds no videos ({', '.join(VIDEO_EXTENSIONS)})"
                               + ("" if recursive else "; subfolders are not searched"))
        return cls(videos, num_frames, width, height, frame_stride, clips_per_video)

    @classmethod
    def from_images(cls, images: torch.Tensor, num_frames: int, width: int, height: int, frame_stride: int = 1,
                    clips_per_video: int = 1) -> "VideoClipDataset":
        """One IMAGE batch (t h w c, in [0, 1]) as a video."""
        if images.ndim != 4 or images.shape[-1] not in (3, 4):
            raise DatasetError(f"expected an IMAGE batch (frames, height, width, 3 or 4), got {tuple(images.shape)}")
        available = (images.shape[0] + frame_stride - 1) // frame_stride
        if available < num_frames:
            raise DatasetError(f"the IMAGE batch has {images.shape[0]} frames, {available} at stride {frame_stride}: "
                               f"fewer than the {num_frames} frames of one clip")
        return cls([images], num_frames, width, height, frame_stride, clips_per_video)

    def __iter__(self) -> Iterator[VideoClip]:
        for index, source in enumerate(self.sources):
            yield from self._clips(index, source)

    def _clips(self, index: int, source) -> Iterator[VideoClip]:
        wanted = self.num_frames * self.clips_per_video
        if isinstance(source, torch.Tensor):
            name = f"images{index}"
            frames = source[::self.frame_stride][:wanted]
        else:
            name = pathlib.Path(source).name
            try:
                # Cropped and resized while decoding: a long 4K video never sits in memory at full size.
                frames, _ = read_video(source, frame_stride=self.frame_stride, max_frames=wanted,
                                       size=(self.width, self.height), crop=True)
            except VideoReadError as e:
                logging.warning("ExVideo training: skipping %s: %s", name, e)
                return
        count = frames.shape[0] // self.num_frames
        if count == 0:
            logging.warning("ExVideo training: skipping %s: it has %d frames at stride %d, a clip needs %d",
                            name, frames.shape[0], self.frame_stride, self.num_frames)
            return
        for window in range(count):
            clip = frames[window * self.num_frames:(window + 1) * self.num_frames, ..., :3]
            start = window * self.num_frames * self.frame_stride
            yield VideoClip(f"{name}@{start}", resize_center_crop(clip.float(), self.width, self.height))
