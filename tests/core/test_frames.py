"""Frames as pictures: exvideo_core.frames (contact sheets, PNG files)."""

import numpy as np
import torch
from PIL import Image

from exvideo_core import frames as frame_images
from exvideo_harness.video_frames import gray_levels, listing


# ---------------------------------------------------------------- contact sheet

def test_contact_sheet_picks_evenly_spaced_frames(tmp_path):
    sheet = frame_images.contact_sheet(gray_levels(10, 4, 6), columns=4, max_frames=6)
    assert sheet.shape == (8, 24, 3) and sheet.dtype == np.uint8
    cells = [sheet[r * 4:(r + 1) * 4, c * 6:(c + 1) * 6] for r in range(2) for c in range(4)]
    assert [round(cell.mean() / 20) for cell in cells[:6]] == [0, 2, 4, 5, 7, 9]
    assert not cells[6].any() and not cells[7].any()  # unused cells stay black

    frame_images.write_png(sheet, tmp_path / "sheet.png")
    with Image.open(tmp_path / "sheet.png") as png:
        assert png.mode == "RGB" and np.array_equal(np.asarray(png), sheet)
    assert listing(tmp_path) == ["sheet.png"]


def test_contact_sheet_of_a_short_gray_clip():
    sheet = frame_images.contact_sheet(torch.full((2, 4, 4, 1), 0.5))
    assert sheet.shape == (4, 8, 3) and (sheet == 128).all()


def test_resize_frames_crops_the_centre_or_stretches():
    # Three vertical bands, red | green | blue, in a 3:1 frame: a square crop is the green band alone.
    frames = torch.zeros(1, 12, 36, 3)
    for band in range(3):
        frames[:, :, band * 12:(band + 1) * 12, band] = 1.0
    cropped = frame_images.resize_frames(frames, 6, 6, crop=True)
    stretched = frame_images.resize_frames(frames, 6, 6, crop=False)
    assert cropped.shape == stretched.shape == (1, 6, 6, 3)
    assert (cropped[..., 1] == 1).all() and (cropped[..., [0, 2]] == 0).all()
    assert stretched[0, :, 0, 0].min() > 0.9 and stretched[0, :, -1, 2].min() > 0.9
