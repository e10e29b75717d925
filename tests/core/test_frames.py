"""Frames as pictures: exvideo_core.frames (contact sheets, PNG files)."""

import cv2
import numpy as np
import torch

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
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(tmp_path / "sheet.png")), cv2.COLOR_BGR2RGB), sheet)
    assert listing(tmp_path) == ["sheet.png"]


def test_contact_sheet_of_a_short_gray_clip():
    sheet = frame_images.contact_sheet(torch.full((2, 4, 4, 1), 0.5))
    assert sheet.shape == (4, 8, 3) and (sheet == 128).all()
