"""The loss plot: pixels where the curves must be, and the cases ComfyUI's Plot Loss Graph cannot draw."""

import math

import numpy as np
import pytest

from exvideo_core.train.loss_plot import MARGIN, MEAN, RAW, loss_plot, loss_values, running_mean

W, H = 200, 120


def plot_area(image) -> np.ndarray:
    """The pixels inside the frame (and its 2 px border), without the labels around it; columns and rows keep
    their image coordinates where they are compared with W, H and MARGIN (blank beyond the frame)."""
    pixels = np.asarray(image).copy()
    keep = np.zeros(pixels.shape[:2], bool)
    keep[MARGIN - 2:H - MARGIN + 3, MARGIN - 2:W - MARGIN + 3] = True
    pixels[~keep] = 255
    return pixels


def colour_columns(image, colour) -> set[int]:
    return set(np.flatnonzero((plot_area(image) == colour).all(axis=2).any(axis=0)).tolist())


def test_raw_losses_grey_and_their_running_mean_blue_from_the_windows_end():
    image = loss_plot([1.0, 0.0] * 10, W, H, window=4)
    assert image.size == (W, H) and image.mode == "RGB"
    raw, mean = colour_columns(image, RAW), colour_columns(image, MEAN)
    assert min(raw) <= MARGIN + 1 and max(raw) >= W - MARGIN - 1
    step = (W - 2 * MARGIN) / 19
    assert min(mean) >= MARGIN + 3 * step - 2  # the first mean is that of steps 0..3
    assert max(mean) >= W - MARGIN - 2


def test_the_running_mean_of_an_alternating_loss_is_flat():
    assert np.allclose(running_mean(np.array([1.0, 0.0] * 5), 2), 0.5)
    pixels = plot_area(loss_plot([1.0, 0.0] * 10, W, H, window=2))
    rows = np.flatnonzero((pixels == MEAN).all(axis=2).any(axis=1))
    assert rows.max() - rows.min() <= 2 and abs(rows.mean() - H / 2) <= 2


def test_log_scale_puts_each_decade_equally_apart():
    pixels = plot_area(loss_plot([1e-3, 1e-2, 1e-1, 1.0], W, H, window=1, log_scale=True))
    rows = [np.flatnonzero((pixels[:, column] == RAW).all(axis=1)) for column in (MARGIN + 1, W - MARGIN - 1)]
    assert rows[0].min() >= H - MARGIN - 2 and rows[1].max() <= MARGIN + 2
    mid = np.flatnonzero((pixels[:, W // 2] == RAW).all(axis=1)).mean()  # halfway: 10^-1.5
    assert abs(mid - H / 2) <= 3


@pytest.mark.parametrize("losses", [[0.25], [0.5] * 4, [], [math.nan, math.inf]])
def test_one_step_a_constant_loss_and_no_finite_loss_still_draw(losses):
    """Plot Loss Graph divides by max - min (zero for these) or by the step count."""
    image = loss_plot(losses, W, H)
    assert image.size == (W, H)
    drawn = colour_columns(image, RAW) | colour_columns(image, MEAN)
    assert bool(drawn) == bool(losses and math.isfinite(losses[0]))


def test_non_finite_losses_are_left_out_not_drawn_as_spikes():
    pixels = plot_area(loss_plot([1.0, 0.5, math.nan, math.inf, 0.25], W, H, window=1))
    rows = np.flatnonzero((pixels == RAW).all(axis=2).any(axis=1))
    # The finite losses alone set the scale: 1.0 at the top, 0.25 at the bottom of the plot area.
    assert abs(rows.min() - MARGIN) <= 1 and abs(rows.max() - (H - MARGIN)) <= 1


def test_loss_map_values_from_comfyuis_train_lora_or_ours():
    import torch

    assert loss_values({"loss": [0.5, torch.tensor(0.25)]}) == [0.5, 0.25]
