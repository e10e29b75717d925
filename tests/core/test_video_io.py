"""Video files in and out: exvideo_core.video_io (MP4 writing, reading any video's frames).

Clips are tiny (a few frames of at most 64x96) so the suite stays fast on a shared CPU.
"""

import errno
import os
import pathlib

import av
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from exvideo_core import atomic_file, video_io
from exvideo_core.frames import rgb_uint8
from exvideo_core.video_io import VideoError, VideoReadError, VideoWriteError
from exvideo_harness.video_frames import (MEAN_ERROR_BOUND, PIXEL_ERROR_BOUND, frame_indices, gray_levels, listing,
                                          moving_pattern, per_frame_error)


# ---------------------------------------------------------------- round trips

def test_round_trip_keeps_frames_size_fps_and_order(tmp_path):
    frames = moving_pattern(12, 48, 64)
    codec = video_io.write_mp4(frames, tmp_path / "clip.mp4", 24)
    decoded, fps = video_io.read_video(tmp_path / "clip.mp4")

    assert codec == "h264"
    assert decoded.shape == frames.shape and decoded.dtype == torch.float32
    assert fps == 24.0
    assert per_frame_error(decoded, frames).max() < MEAN_ERROR_BOUND
    assert (decoded - frames).abs().max() < PIXEL_ERROR_BOUND
    assert 0 <= decoded.min() and decoded.max() <= 1
    # Each decoded frame is nearest to its own source frame: nothing dropped, repeated or swapped.
    distances = (decoded[:, None] - frames[None]).abs().mean(dim=(2, 3, 4))
    assert distances.argmin(dim=1).tolist() == list(range(12))


def test_file_is_browser_playable_h264(tmp_path):
    video_io.write_mp4(moving_pattern(6, 33, 47), tmp_path / "clip.mp4", 12)

    with av.open(str(tmp_path / "clip.mp4")) as container:
        stream = container.streams.video[0]
        assert container.format.name.split(",")[0] in ("mov", "mp4")
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (48, 34)
        assert stream.average_rate == 12 and stream.frames == 6
        # Tagged as the frames were converted, so browsers and OpenCV agree on the colours.
        assert (stream.codec_context.colorspace, stream.codec_context.color_range) == (1, 1)  # BT.709, limited
        assert sum(1 for _ in container.decode(stream)) == 6
    # +faststart: the index comes before the frames, so playback can start while the file downloads.
    atoms = top_level_atoms(tmp_path / "clip.mp4")
    assert atoms[b"moov"][0] < atoms[b"mdat"][0]


def top_level_atoms(path: pathlib.Path) -> dict[bytes, tuple[int, int]]:
    """An MP4 file's top-level boxes: type -> (offset, size)."""
    data, atoms, offset = path.read_bytes(), {}, 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        if size == 1:  # 64-bit size follows the type
            size = int.from_bytes(data[offset + 8:offset + 16], "big")
        assert size >= 8, f"bad atom size {size} at {offset}"
        atoms.setdefault(data[offset + 4:offset + 8], (offset, size))
        offset += size
    return atoms


def test_crf_trades_size_for_quality(tmp_path):
    frames = moving_pattern(12, 48, 64)
    errors, sizes = [], []
    for crf in (0, 19, 40):
        video_io.write_mp4(frames, tmp_path / f"crf{crf}.mp4", 24, crf=crf)
        errors.append(per_frame_error(video_io.read_video(tmp_path / f"crf{crf}.mp4")[0], frames).mean())
        sizes.append((tmp_path / f"crf{crf}.mp4").stat().st_size)
    assert errors == sorted(errors) and sizes == sorted(sizes, reverse=True)


def test_fractional_fps_survives(tmp_path):
    video_io.write_mp4(gray_levels(3), tmp_path / "ntsc.mp4", 29.97)
    assert video_io.read_video(tmp_path / "ntsc.mp4")[1] == pytest.approx(29.97, rel=1e-3)


def test_odd_size_is_padded_by_repeating_the_edge(tmp_path):
    frames = moving_pattern(4, 33, 47)
    video_io.write_mp4(frames, tmp_path / "odd.mp4", 10)
    decoded, _ = video_io.read_video(tmp_path / "odd.mp4")
    assert decoded.shape == (4, 34, 48, 3)
    assert per_frame_error(decoded[:, :33, :47], frames).max() < MEAN_ERROR_BOUND
    # The padding copies the last row and column instead of adding black (or FFmpeg silently cropping).
    assert per_frame_error(decoded[:, 33:, :47], frames[:, 32:33]).max() < MEAN_ERROR_BOUND
    assert per_frame_error(decoded[:, :33, 47:], frames[:, :, 46:47]).max() < MEAN_ERROR_BOUND


def test_gray_is_repeated_and_alpha_dropped(tmp_path):
    rgb = moving_pattern(4, 32, 32)
    gray = rgb.mean(dim=-1, keepdim=True)
    rgba = torch.cat([rgb, torch.rand(4, 32, 32, 1)], dim=-1)  # noisy alpha: any leak would show

    video_io.write_mp4(gray, tmp_path / "gray.mp4", 8)
    video_io.write_mp4(rgba, tmp_path / "rgba.mp4", 8)

    assert per_frame_error(video_io.read_video(tmp_path / "gray.mp4")[0], gray.expand(-1, -1, -1, 3)).max() \
        < MEAN_ERROR_BOUND
    assert per_frame_error(video_io.read_video(tmp_path / "rgba.mp4")[0], rgb).max() < MEAN_ERROR_BOUND


@pytest.mark.parametrize("frames, fps, name, message", [
    (torch.rand(4, 16, 3), 8, "a.mp4", "IMAGE batch"),
    (torch.rand(2, 16, 16, 2), 8, "a.mp4", "IMAGE batch"),
    (torch.rand(0, 16, 16, 3), 8, "a.mp4", "no frames"),
    (torch.rand(2, 16, 16, 3), 0, "a.mp4", "fps"),
    (torch.rand(2, 16, 16, 3), float("nan"), "a.mp4", "fps"),
    (torch.rand(2, 16, 16, 3), 1e-9, "a.mp4", "fps"),
    (torch.rand(2, 16, 16, 3), 8, "a.avi", ".mp4"),
])
def test_write_rejects_bad_arguments(tmp_path, frames, fps, name, message):
    with pytest.raises(VideoError, match=message):
        video_io.write_mp4(frames, tmp_path / name, fps)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("crf", [-1, 52, float("nan"), "19", None])
def test_write_rejects_bad_crf(tmp_path, crf):
    with pytest.raises(VideoError, match="crf must be a number from 0 to 51"):
        video_io.write_mp4(gray_levels(2), tmp_path / "a.mp4", 8, crf=crf)
    assert listing(tmp_path) == []


# ---------------------------------------------------------------- failing writes leave nothing behind

class FailingContainer:
    """An output container from av.open whose muxer breaks after `fail_after` packets.

    It raises the error FFmpeg reports for a full disk, or silently drops the packets.
    """

    def __init__(self, real, fail_after: int, silent: bool):
        self.real, self.fail_after, self.silent, self.muxed = real, fail_after, silent, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def mux(self, packets):
        for packet in packets if isinstance(packets, list) else [packets]:
            if self.muxed >= self.fail_after:
                if self.silent:
                    continue
                av.error.err_check(-errno.ENOSPC)
            self.muxed += 1
            self.real.mux(packet)


@pytest.mark.parametrize("silent", [False, True], ids=["raises", "drops-frames"])
def test_writer_failing_midway_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, silent):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"previous")
    real_open = av.open

    def failing_open(file, mode="r", **kwargs):
        container = real_open(file, mode, **kwargs)
        return FailingContainer(container, fail_after=2, silent=silent) if mode == "w" else container

    monkeypatch.setattr(video_io.av, "open", failing_open)
    message = "2 of 6 frames" if silent else r"clip\.mp4: H\.264 encoding failed: .*No space left on device"
    with pytest.raises(VideoWriteError, match=message):
        video_io.write_mp4(gray_levels(6), target, 8)

    assert listing(tmp_path) == ["clip.mp4"] and target.read_bytes() == b"previous"


def test_interrupt_from_progress_leaves_no_file(tmp_path):
    def interrupt(written):
        if written == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        video_io.write_mp4(gray_levels(6), tmp_path / "clip.mp4", 8, progress=interrupt)
    assert listing(tmp_path) == []


def test_missing_h264_encoder_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(video_io.av, "codecs_available", av.codecs_available - {"libx264"})
    with pytest.raises(VideoWriteError, match=r"clip\.mp4: this PyAV build has no H\.264 encoder \(libx264\)"):
        video_io.write_mp4(gray_levels(2), tmp_path / "clip.mp4", 8)
    assert listing(tmp_path) == []


def test_folder_that_is_a_file_is_reported(tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(VideoWriteError, match="taken is not an existing folder"):
        video_io.write_mp4(gray_levels(2), tmp_path / "taken" / "clip.mp4", 8)


@pytest.mark.parametrize("step", ["open", "replace"])
def test_unwritable_folder_is_reported(tmp_path, monkeypatch, step):
    # Tests run as root, which ignores chmod: fail the filesystem calls the way a read-only folder does.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic_file.os, step, refuse)
    with pytest.raises(VideoWriteError, match=r"clip\.mp4: Permission denied"):
        video_io.write_mp4(gray_levels(2), tmp_path / "clip.mp4", 8)
    assert listing(tmp_path) == []


# ---------------------------------------------------------------- reading

@pytest.fixture(scope="module")
def ten_frames(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "levels.mp4"
    video_io.write_mp4(gray_levels(10), path, 20)
    return path


@pytest.mark.parametrize("stride, max_frames, skip, expected", [
    (1, 0, 0, list(range(10))),
    (3, 0, 0, [0, 3, 6, 9]),
    (3, 2, 1, [1, 4]),
    (1, 4, 0, [0, 1, 2, 3]),
    (1, 0, 7, [7, 8, 9]),
    (4, 50, 2, [2, 6]),
])
def test_stride_max_frames_and_skip(ten_frames, stride, max_frames, skip, expected):
    frames, fps = video_io.read_video(ten_frames, stride, max_frames, skip)
    assert frame_indices(frames) == expected
    assert fps == 20.0


def test_resize_on_read(ten_frames):
    frames, _ = video_io.read_video(ten_frames, max_frames=2, size=(24, 8))
    assert frames.shape == (2, 8, 24, 3)


def test_crop_on_read_keeps_the_centre_at_the_target_aspect(tmp_path):
    # Three vertical bands, red | green | blue, in a 3:1 frame: a square crop is the green band alone.
    frames = torch.zeros(2, 32, 96, 3)
    for band in range(3):
        frames[:, :, band * 32:(band + 1) * 32, band] = 1.0
    video_io.write_mp4(frames, tmp_path / "bands.mp4", fps=10, crf=0)
    cropped, _ = video_io.read_video(tmp_path / "bands.mp4", size=(16, 16), crop=True)
    stretched, _ = video_io.read_video(tmp_path / "bands.mp4", size=(16, 16))
    assert cropped.shape == stretched.shape == (2, 16, 16, 3)
    inner = cropped[:, 2:-2, 2:-2]  # away from chroma bleeding at the band edges
    assert inner[..., 1].min() > 0.8 and inner[..., [0, 2]].max() < 0.2
    assert stretched[:, :, :4, 0].mean() > 0.8  # without crop the red band is still there


def test_buffer_grows_when_the_header_under_reports(ten_frames, monkeypatch):
    monkeypatch.setattr(video_io, "_MAX_PREALLOCATED_FRAMES", 3)
    assert frame_indices(video_io.read_video(ten_frames)[0]) == list(range(10))


def write_gif(path, frames):
    images = [Image.fromarray(rgb_uint8(f)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


def write_with_opencv(fourcc):
    def write(path, frames):
        writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 10, (16, 16))
        assert writer.isOpened()
        for frame in frames:
            writer.write(cv2.cvtColor(rgb_uint8(frame), cv2.COLOR_RGB2BGR))
        writer.release()
    return write


@pytest.mark.parametrize("name, write", [
    ("clip.gif", write_gif),
    ("clip.webm", write_with_opencv("VP90")),
    ("clip.avi", write_with_opencv("MJPG")),
    ("clip.mov", write_with_opencv("mp4v")),
])
def test_reads_other_containers(tmp_path, name, write):
    write(tmp_path / name, gray_levels(5))
    frames, fps = video_io.read_video(tmp_path / name)
    assert frame_indices(frames) == list(range(5))
    assert fps == 10.0


def test_missing_file(tmp_path):
    with pytest.raises(VideoReadError, match="does not exist"):
        video_io.read_video(tmp_path / "nope.mp4")
    with pytest.raises(VideoReadError, match="not a file"):
        video_io.read_video(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not a video" * 100, "truncated"], ids=["empty", "garbage", "truncated"])
def test_unreadable_file(tmp_path, ten_frames, content):
    if content == "truncated":  # the index is at the front (+faststart): cut inside it
        offset, size = top_level_atoms(ten_frames)[b"moov"]
        content = ten_frames.read_bytes()[: offset + size // 2]
    (tmp_path / "bad.mp4").write_bytes(content)
    with pytest.raises(VideoReadError, match="bad.mp4 could not be opened as a video"):
        video_io.read_video(tmp_path / "bad.mp4")


def test_file_cut_before_its_frames(tmp_path, ten_frames):
    # With the index intact the file opens, but no frame's data is there.
    offset, _ = top_level_atoms(ten_frames)[b"mdat"]
    (tmp_path / "cut.mp4").write_bytes(ten_frames.read_bytes()[: offset + 8])
    with pytest.raises(VideoReadError, match="cut.mp4 holds no decodable frames"):
        video_io.read_video(tmp_path / "cut.mp4")


def test_file_without_frames(tmp_path):
    # An AVI closed before any frame opens fine and reports zero frames.
    writer = cv2.VideoWriter(str(tmp_path / "zero.avi"), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10, (16, 16))
    writer.release()
    with pytest.raises(VideoReadError, match="zero.avi holds no decodable frames"):
        video_io.read_video(tmp_path / "zero.avi")


def test_skipping_everything(ten_frames):
    with pytest.raises(VideoReadError, match="has 10 frames: skipping the first 10 leaves none"):
        video_io.read_video(ten_frames, skip_first=10)


@pytest.mark.parametrize("kwargs", [dict(frame_stride=0), dict(max_frames=-1), dict(skip_first=-1),
                                    dict(size=(0, 8)), dict(size=(8,))])
def test_read_rejects_bad_arguments(ten_frames, kwargs):
    with pytest.raises(VideoError):
        video_io.read_video(ten_frames, **kwargs)


def test_saved_files_get_the_usual_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = tmp_path / "perm.mp4"
        video_io.write_mp4(torch.rand(2, 16, 16, 3), path, fps=10)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
