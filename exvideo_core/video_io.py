"""Video files in and out: writing IMAGE batches as MP4, reading any video's frames.

Frames are ComfyUI IMAGE tensors, `(t, h, w, c)` float in [0, 1]. MP4 files are
encoded as H.264 with PyAV (FFmpeg's libx264), which browsers, and so ComfyUI's
video preview, play; pip's OpenCV has no H.264 encoder. Reading goes through
OpenCV's FFmpeg backend, which fails silently (frames that never decode), so
every step is checked and a failure raises an error naming the file and the
likely cause. Files appear under their final name complete or not at all: they
are written through `atomic_file` to a hidden temporary file in the same
folder, read back, and only then renamed. Output names (ComfyUI's counters and
folders) are the nodes' concern: nodes/output_paths.py.
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
from fractions import Fraction
from typing import Callable, Iterator

import av
import cv2
import numpy as np
import torch

from . import atomic_file
from .errors import VideoError, VideoReadError, VideoWriteError
from .frames import check_frames, rgb_uint8

VIDEO_EXTENSIONS = (".mp4", ".webm", ".gif", ".mov", ".avi", ".mkv", ".m4v")

# Named, not "h264", which takes whichever H.264 encoder FFmpeg lists first; PyAV's wheels from PyPI ship it.
_H264_ENCODER = "libx264"
_MAX_CRF = 51  # x264's quality scale: 0 is lossless, 51 the smallest file
# Frame rates become fractions with at most this denominator: 29.97 stays 2997/100, 30000/1001 stays itself.
_MAX_FPS_DENOMINATOR = 100_000

# A corrupt header may claim any length, so preallocation trusts it only this far; beyond, the buffer grows.
_MAX_PREALLOCATED_FRAMES = 1024


# ---------------------------------------------------------------- writing

def _frame_rate(fps) -> Fraction:
    """fps as the fraction the stream's time base is made of."""
    if isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0:
        rate = Fraction(fps).limit_denominator(_MAX_FPS_DENOMINATOR)
        if rate > 0:
            return rate
    raise VideoError(f"fps must be a positive number (at least 1/{_MAX_FPS_DENOMINATOR}), got {fps!r}.")


def _picture(frame: torch.Tensor, pad_h: int, pad_w: int) -> av.VideoFrame:
    """One frame as yuv420p, BT.709 limited range, as the stream is tagged (players then show the same colours)."""
    rgb = rgb_uint8(frame)
    if pad_h or pad_w:
        rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_colorspace="ITU709")


def _encode(frames: torch.Tensor, tmp: pathlib.Path, rate: Fraction, crf: float,
            progress: Callable[[int], None] | None) -> None:
    """Encodes `frames` into `tmp`; FFmpeg failures surface as av.FFmpegError."""
    # 4:2:0 video needs even sizes: the last row and column are repeated rather than cropped or left to FFmpeg.
    height, width = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
    pad_h, pad_w = height - frames.shape[1], width - frames.shape[2]
    # +faststart moves the index (moov) before the frames, so a browser can start playing before the download ends.
    container = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
    try:
        stream = container.add_stream(_H264_ENCODER, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "colorspace": "bt709", "color_range": "tv"}
        for i, frame in enumerate(frames):
            container.mux(stream.encode(_picture(frame, pad_h, pad_w)))
            if progress is not None:
                progress(i + 1)
        container.mux(stream.encode(None))  # the frames x264 still holds for lookahead
    except BaseException:
        with contextlib.suppress(av.FFmpegError):  # the temporary file is deleted anyway: keep the first error
            container.close()
        raise
    container.close()  # writes the index; a full disk shows here at the latest


def _verify_written(tmp: pathlib.Path, expected: int, path: pathlib.Path) -> str:
    """Reads the container header back, so a short or unreadable file is never kept; returns its video codec."""
    try:
        with av.open(str(tmp)) as container:
            stream = container.streams.video[0]
            count, codec = stream.frames, stream.codec_context.name
    except (av.FFmpegError, IndexError):
        count, codec = -1, None
    if count != expected:
        found = "an unreadable file" if count < 0 else f"{count} of {expected} frames"
        raise VideoWriteError(f"Writing {path} failed: the encoder produced {found} (is the disk full?).")
    return codec


def write_mp4(frames: torch.Tensor, path: str | os.PathLike, fps: float,
              progress: Callable[[int], None] | None = None, crf: float = 19) -> str:
    """Writes an IMAGE batch as an H.264 MP4 file, atomically; returns the codec read back ('h264').

    yuv420p, BT.709, index at the front (+faststart): plays in browsers and ComfyUI's preview.
    Odd widths/heights are padded to even by repeating the last row/column.
    `crf` is x264's constant rate factor, 0 (lossless, not playable in most browsers)
    to 51 (smallest); 19 is close to visually lossless.
    `progress(frames_written)` is called after every frame; an exception it raises
    (such as ComfyUI's interrupt) aborts the write and leaves no file behind.
    """
    frames = check_frames(frames)
    rate = _frame_rate(fps)
    if not (isinstance(crf, (int, float)) and 0 <= crf <= _MAX_CRF):
        raise VideoError(f"crf must be a number from 0 to {_MAX_CRF}, got {crf!r}.")
    path = pathlib.Path(path)
    if path.suffix.lower() != ".mp4":
        raise VideoError(f"write_mp4 writes .mp4 files, not {path.name!r}.")
    if _H264_ENCODER not in av.codecs_available:
        raise VideoWriteError(f"Cannot write {path}: this PyAV build has no H.264 encoder ({_H264_ENCODER}); "
                              f"install PyAV's wheel from PyPI (pip install av).")

    def write(tmp: pathlib.Path) -> str:
        try:
            _encode(frames, tmp, rate, crf, progress)
        except av.FFmpegError as e:
            raise VideoWriteError(f"Cannot write {path}: H.264 encoding failed: {e}.") from e
        return _verify_written(tmp, frames.shape[0], path)

    return atomic_file.write_file(path, write, error=VideoWriteError, make_folder=False)


# ---------------------------------------------------------------- reading

def _kept_frames(cap: cv2.VideoCapture, frame_stride: int, max_frames: int, skip_first: int,
                 name: str) -> Iterator[np.ndarray]:
    """The BGR frames kept; the others are only grabbed, never converted or stored."""
    index = kept = 0
    while (not max_frames or kept < max_frames) and cap.grab():
        if index >= skip_first and (index - skip_first) % frame_stride == 0:
            ok, frame = cap.retrieve()
            if not ok:
                raise VideoReadError(f"{name}: frame {index} could not be decoded; the file may be corrupt.")
            kept += 1
            yield frame
        index += 1


def _capacity(total: int, frame_stride: int, max_frames: int, skip_first: int) -> int:
    """How many frames to preallocate, from the container's (possibly missing or wrong) frame count."""
    expected = math.ceil(max(total - skip_first, 0) / frame_stride) if total > 0 else _MAX_PREALLOCATED_FRAMES
    if max_frames:
        expected = min(expected, max_frames)
    return max(1, min(expected, _MAX_PREALLOCATED_FRAMES))


def center_crop_box(h: int, w: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(top, left, crop_h, crop_w): the largest centred h x w window with the aspect of width x height."""
    if w * height > h * width:  # too wide: keep the full height
        crop_h, crop_w = h, max(1, round(h * width / height))
    else:
        crop_h, crop_w = max(1, round(w * height / width)), w
    return (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w


def _to_rgb(bgr: np.ndarray, size: tuple[int, int] | None, crop: bool) -> np.ndarray:
    if size is not None and crop:
        top, left, crop_h, crop_w = center_crop_box(*bgr.shape[:2], *size)
        bgr = bgr[top:top + crop_h, left:left + crop_w]
    if size is not None and (bgr.shape[1], bgr.shape[0]) != tuple(size):
        bgr = cv2.resize(bgr, tuple(size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _stack(frames: Iterator[np.ndarray], capacity: int, size: tuple[int, int] | None,
           crop: bool) -> torch.Tensor | None:
    out, count = None, 0
    for bgr in frames:
        rgb = torch.from_numpy(_to_rgb(bgr, size, crop))
        if out is None:
            out = torch.empty((capacity, *rgb.shape), dtype=torch.float32)
        elif count == out.shape[0]:  # the container under-reported its length
            out = torch.cat([out, torch.empty_like(out)])
        out[count].copy_(rgb)
        count += 1
    # A view: when the header over-reported, the unused tail was never touched, so it holds no real memory.
    return None if out is None else out[:count].div_(255)


def _check_read_args(frame_stride: int, max_frames: int, skip_first: int, size) -> None:
    if frame_stride < 1 or max_frames < 0 or skip_first < 0:
        raise VideoError(f"Need frame_stride >= 1, max_frames >= 0 and skip_first >= 0 "
                         f"(got {frame_stride}, {max_frames}, {skip_first}).")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise VideoError(f"size must be (width, height) with both >= 1, got {size!r}.")


def read_video(path: str | os.PathLike, frame_stride: int = 1, max_frames: int = 0, skip_first: int = 0,
               size: tuple[int, int] | None = None, crop: bool = False) -> tuple[torch.Tensor, float]:
    """Frames of a video file (mp4, webm, gif, mov, avi, ...) as an IMAGE batch, and the file's fps.

    Keeps frames skip_first, skip_first + frame_stride, ... up to max_frames of them (0: all).
    `size=(width, height)` resizes every kept frame as it is decoded, so only the small frames
    are ever held; `crop` first cuts the centre to that aspect ratio instead of stretching. The fps is the file's own, not divided
    by the stride; 0.0 when the container does not say.
    """
    _check_read_args(frame_stride, max_frames, skip_first, size)
    path = pathlib.Path(path)
    if not path.is_file():
        raise VideoReadError(f"{path} does not exist or is not a file.")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise VideoReadError(f"{path.name} could not be opened as a video: it is empty, truncated, corrupt, "
                                 f"or in a format OpenCV's FFmpeg cannot decode.")
        fps = cap.get(cv2.CAP_PROP_FPS)
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        kept = _kept_frames(cap, frame_stride, max_frames, skip_first, path.name)
        frames = _stack(kept, _capacity(total, frame_stride, max_frames, skip_first), size, crop)
    finally:
        cap.release()
    if frames is None:
        if total > 0 and skip_first >= total:
            raise VideoReadError(f"{path.name} has {total} frames: skipping the first {skip_first} leaves none.")
        raise VideoReadError(f"{path.name} holds no decodable frames.")
    return frames, (fps if math.isfinite(fps) and fps > 0 else 0.0)
