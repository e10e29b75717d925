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

import bisect
import dataclasses
import logging
import os
import pathlib
from typing import Iterator, Sequence

import torch

from ..constraints import check_frame_count, check_training_size
from ..errors import DatasetError, VideoReadError
from ..paths import file_identity
from ..frames import resize_frames
from ..video_io import VIDEO_EXTENSIONS, read_video

# The motion score at which each of SVD's 128 motion buckets starts, from the
# MotionBucketManager of DiffSynth's ExVideo training example
# (examples/ExVideo/ExVideo_svd_train.py): a clip's bucket is the largest id
# whose threshold its score reaches.
MOTION_THRESHOLDS = (
    0.000000000, 0.012205946, 0.015117834, 0.018080613, 0.020614484, 0.021959992, 0.024088068, 0.026323952,
    0.028277775, 0.029968588, 0.031836554, 0.033596724, 0.035121530, 0.037200287, 0.038914755, 0.040696491,
    0.042368013, 0.044265781, 0.046311017, 0.048243891, 0.050294187, 0.052142400, 0.053634230, 0.055612389,
    0.057594258, 0.059410289, 0.061283995, 0.063603796, 0.065192916, 0.067146860, 0.069066539, 0.070390493,
    0.072588451, 0.073959745, 0.075889029, 0.077695683, 0.079783581, 0.082162730, 0.084092639, 0.085958421,
    0.087700523, 0.089684933, 0.091688842, 0.093335517, 0.094987206, 0.096664011, 0.098314710, 0.100262381,
    0.101984538, 0.103404313, 0.105280340, 0.106974818, 0.109028399, 0.111164779, 0.113065213, 0.114362158,
    0.116407216, 0.118063427, 0.119524263, 0.121835820, 0.124242283, 0.126202747, 0.128989249, 0.131672353,
    0.133417681, 0.135567948, 0.137313649, 0.139189199, 0.140912935, 0.143525436, 0.145718485, 0.148315132,
    0.151039496, 0.153218940, 0.155252382, 0.157651082, 0.159966752, 0.162195817, 0.164811596, 0.167341709,
    0.170251891, 0.172651157, 0.175550997, 0.178372145, 0.181039348, 0.183565900, 0.186599866, 0.190071866,
    0.192574754, 0.195026234, 0.198099136, 0.200210452, 0.202522039, 0.205410406, 0.208610669, 0.211623028,
    0.214723110, 0.218520239, 0.222194016, 0.225363150, 0.229384825, 0.233422622, 0.237012610, 0.240735114,
    0.243622541, 0.247465774, 0.252190471, 0.257356376, 0.261856794, 0.266556412, 0.271076709, 0.277361482,
    0.281250387, 0.286582440, 0.291158527, 0.296712339, 0.303008437, 0.311793238, 0.318485111, 0.326999635,
    0.332138240, 0.341770738, 0.354188830, 0.365194678, 0.379234344, 0.401538879, 0.416078776, 0.440871328,
)
MAX_MOTION_BUCKET = len(MOTION_THRESHOLDS) - 1
# The motion_bucket_id setting of the training clips that measures each clip's
# bucket from its motion instead of fixing one (0 and up are buckets, as in the
# samplers; before, 0 meant "measure").
MEASURE_MOTION = -1


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
    return max(0, bisect.bisect_right(MOTION_THRESHOLDS, score) - 1)


def check_motion_bucket_setting(motion_bucket_id: int) -> None:
    """Refuses a motion_bucket_id setting that is neither MEASURE_MOTION nor a bucket."""
    if motion_bucket_id < MEASURE_MOTION:
        raise DatasetError(f"motion_bucket_id must be {MEASURE_MOTION} (measure each clip's motion) or a bucket "
                           f"of 0 or more, got {motion_bucket_id}")


def resize_center_crop(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(t h w c) -> (t height width c): crop the centre to the target aspect, then resize (antialiased)."""
    return resize_frames(frames, width, height, crop=True)


def video_files(folder: str | os.PathLike, recursive: bool = False) -> list[pathlib.Path]:
    """The videos a dataset made from `folder` reads, in the order it reads them."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder")
    pattern = "**/*" if recursive else "*"
    videos = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
        raise DatasetError(f"{folder} holds no videos ({', '.join(VIDEO_EXTENSIONS)})"
                           + ("" if recursive else "; subfolders are not searched"))
    return videos


def folder_identity(folder: str | os.PathLike, recursive: bool = False) -> list[tuple[str, int, int]]:
    """Each video of the folder as (path in the folder, size, modification time): it changes when a video is
    added, removed or written again, which the folder's name alone does not tell."""
    return [(p.relative_to(folder).as_posix(), *file_identity(p)) for p in video_files(folder, recursive)]


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
        return cls(video_files(folder, recursive), num_frames, width, height, frame_stride, clips_per_video)

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
