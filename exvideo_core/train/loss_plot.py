"""The training loss as a picture (Pillow): every step's loss, its running mean, optionally on a log axis.

The per-step loss of a diffusion model is dominated by the random sigma each
step draws, so the raw curve is mostly noise; the running mean is what shows
whether training goes anywhere. A log axis keeps a loss that falls by orders
of magnitude readable. Non-finite losses are left out of the curve and
counted in the caption.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MARGIN = 40  # px around the plot area, for the labels
RAW, MEAN, FRAME, TEXT = (160, 160, 160), (40, 90, 220), (200, 200, 200), (0, 0, 0)


def loss_values(loss_map: Mapping[str, Sequence]) -> list[float]:
    """The losses of a LOSS_MAP (`{"loss": [...]}`, as ComfyUI's Train LoRA and ExVideo Post-Tune give it)."""
    return [float(value) for value in loss_map["loss"]]


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each `window` consecutive values (len(values) - window + 1 of them)."""
    return np.convolve(values, np.ones(window) / window, mode="valid")


def loss_plot(losses: Sequence[float], width: int, height: int, window: int = 10,
              log_scale: bool = False) -> Image.Image:
    """An RGB image: the losses in grey, their running mean over `window` steps in blue, min/max labelled."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    values = np.asarray(losses, np.float64)
    finite = np.isfinite(values) & ((values > 0) if log_scale else True)
    dropped = int(len(values) - finite.sum())
    caption = f"step {len(values)}" + (f", {dropped} not drawn" if dropped else "")
    draw.text((width - MARGIN - draw.textlength(caption, font=font), height - 14), caption, fill=TEXT, font=font)
    if not finite.any():
        draw.text((MARGIN, height // 2), "no steps" if not len(values) else "no finite loss", fill=TEXT, font=font)
        return image
    shown = np.log10(values[finite]) if log_scale else values[finite]
    steps = np.flatnonzero(finite)
    low, high = float(shown.min()), float(shown.max())
    span = high - low or 1.0  # one step, or a constant loss: a flat line, not a division by zero

    def xy(at_steps: np.ndarray, series: np.ndarray) -> list[tuple[float, float]]:
        x = MARGIN + at_steps * (width - 2 * MARGIN) / max(len(values) - 1, 1)
        y = height - MARGIN - (series - low) / span * (height - 2 * MARGIN)
        return list(zip(x.tolist(), y.tolist()))

    draw.rectangle((MARGIN, MARGIN, width - MARGIN, height - MARGIN), outline=FRAME)
    draw.line(xy(steps, shown), fill=RAW, width=1)
    if len(shown) == 1:
        draw.ellipse(_dot(*xy(steps, shown)[0]), fill=MEAN)
    window = max(1, min(window, len(shown)))
    if window > 1:
        draw.line(xy(steps[window - 1:], running_mean(shown, window)), fill=MEAN, width=2)

    def label(value: float) -> str:
        return f"{10 ** value if log_scale else value:.4g}"

    draw.text((4, MARGIN - 6), label(high), fill=TEXT, font=font)
    draw.text((4, height - MARGIN - 6), label(low), fill=TEXT, font=font)
    if log_scale:
        draw.text((MARGIN, 8), "log scale", fill=TEXT, font=font)
    return image


def _dot(x: float, y: float, radius: float = 3) -> tuple[float, float, float, float]:
    return (x - radius, y - radius, x + radius, y + radius)
