"""Tiny test videos whose frames tell their index, and the error bounds H.264 keeps them within."""

import math
import pathlib

import torch

# H.264 at crf 19, 4:2:0 chroma, on a smooth pattern: about 4-6/255 mean absolute error per frame and up to
# 31/255 worst pixel were measured at these sizes, mostly from halving the chroma of such tiny frames (crf 0,
# lossless, still gives 3-5/255). 8/255 leaves room for other FFmpeg builds yet stays far below the ~22/255
# that separates consecutive pattern frames, so a frame lost, repeated or reordered still fails.
MEAN_ERROR_BOUND = 8 / 255
PIXEL_ERROR_BOUND = 48 / 255


def moving_pattern(frames: int, height: int, width: int) -> torch.Tensor:
    """Smooth colour waves that move by 1/12 of their period per frame."""
    y = torch.linspace(0, 1, height)[:, None].expand(height, width)
    x = torch.linspace(0, 1, width)[None, :].expand(height, width)
    out = []
    for i in range(frames):
        shift = i / 12
        out.append(torch.stack([0.5 + 0.4 * torch.sin(2 * math.pi * (x + shift)),
                                0.5 + 0.4 * torch.cos(2 * math.pi * (y - shift)),
                                0.3 + 0.4 * x * y], dim=-1))
    return torch.stack(out)


def gray_levels(frames: int, height: int = 16, width: int = 16) -> torch.Tensor:
    """Frame i is uniformly gray at level 20 * i / 255, so a decoded frame tells its index."""
    return (torch.arange(frames, dtype=torch.float32) * 20 / 255).view(-1, 1, 1, 1).expand(frames, height, width, 3)


def frame_indices(frames: torch.Tensor) -> list[int]:
    return [round(v) for v in (frames.mean(dim=(1, 2, 3)) * 255 / 20).tolist()]


def per_frame_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean(dim=(1, 2, 3))


def listing(folder: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
