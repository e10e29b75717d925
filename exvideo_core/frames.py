"""Frames as pictures: checking IMAGE batches, converting frames to uint8 RGB, resizing, contact sheets and PNG files.

Frames are ComfyUI IMAGE tensors, `(t, h, w, c)` float in [0, 1].
"""

from __future__ import annotations

import io
import math
import os
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image

from . import atomic_file
from .errors import VideoError, VideoWriteError


def check_frames(frames: torch.Tensor) -> torch.Tensor:
    """`frames` if it is a non-empty IMAGE batch with 1, 3 or 4 channels; VideoError otherwise."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise VideoError(f"Expected an IMAGE batch (frames, height, width, 1 | 3 | 4 channels), got {shape}.")
    if frames.shape[0] == 0:
        raise VideoError("The IMAGE batch holds no frames: there is nothing to write.")
    return frames


def rgb_uint8(frame: torch.Tensor) -> np.ndarray:
    """One (h, w, c) frame as (h, w, 3) uint8 RGB: alpha dropped, gray repeated."""
    frame = frame[..., :3] if frame.shape[-1] == 4 else frame.expand(-1, -1, 3)
    return frame.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()


def center_crop_box(h: int, w: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(top, left, crop_h, crop_w): the largest centred h x w window with the aspect of width x height."""
    if w * height > h * width:  # too wide: keep the full height
        crop_h, crop_w = h, max(1, round(h * width / height))
    else:
        crop_h, crop_w = max(1, round(w * height / width)), w
    return (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w


def resize_frames(frames: torch.Tensor, width: int, height: int, crop: bool = True) -> torch.Tensor:
    """(t h w c) -> (t height width c); `crop` first cuts the centre to the target aspect instead of stretching.

    Antialiased bilinear, so shrinking a large video averages its pixels rather than skipping them.
    """
    if crop:
        top, left, crop_h, crop_w = center_crop_box(frames.shape[1], frames.shape[2], width, height)
        frames = frames[:, top:top + crop_h, left:left + crop_w]
    if frames.shape[1:3] == (height, width):
        return frames.clone()
    pixels = rearrange(frames, "t h w c -> t c h w")
    pixels = F.interpolate(pixels, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return rearrange(pixels, "t c h w -> t h w c").clamp_(0, 1)


def contact_sheet(frames: torch.Tensor, columns: int = 8, max_frames: int = 32) -> np.ndarray:
    """Evenly spaced frames (first and last included) in a grid, row by row, as (h, w, 3) uint8 RGB."""
    frames = check_frames(frames)
    if columns < 1 or max_frames < 1:
        raise VideoError(f"contact_sheet needs columns >= 1 and max_frames >= 1 (got {columns}, {max_frames}).")
    count = min(max_frames, frames.shape[0])
    picks = np.linspace(0, frames.shape[0] - 1, count).round().astype(int)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    h, w = frames.shape[1:3]
    sheet = np.zeros((rows * h, columns * w, 3), np.uint8)
    for cell, index in enumerate(picks):
        row, col = divmod(cell, columns)
        sheet[row * h:(row + 1) * h, col * w:(col + 1) * w] = rgb_uint8(frames[index])
    return sheet


def write_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Writes an (h, w, 3) uint8 RGB image, such as a contact sheet, as PNG, atomically, into an existing folder."""
    def write(tmp: pathlib.Path) -> None:
        data = io.BytesIO()  # encoded before the file is opened: a failing encoder leaves nothing to clean
        try:
            Image.fromarray(np.ascontiguousarray(image)).save(data, format="PNG")
        except (OSError, ValueError, TypeError) as e:
            raise VideoWriteError(f"Could not encode {pathlib.Path(path).name} as PNG: {e}.") from e
        tmp.write_bytes(data.getvalue())

    atomic_file.write_file(path, write, error=VideoWriteError, make_folder=False)
