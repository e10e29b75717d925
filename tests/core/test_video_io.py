"""Video files in and out: exvideo_core.video_io and the Save Video (MP4) / Load Video (frames) nodes.

Clips are tiny (a few frames of at most 64x96) so the suite stays fast on a shared CPU.
"""

import errno
import importlib
import math
import os
import pathlib

import av
import cv2
import folder_paths
import numpy as np
import pytest
import torch
from PIL import Image

import comfy.model_management
from exvideo_core import atomic_file, video_io
from exvideo_core.video_io import VideoError, VideoReadError, VideoWriteError
from exvideo_harness.pack import load_pack_nodes

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


@pytest.fixture(scope="module")
def nodes_video():
    return importlib.import_module(f"{load_pack_nodes().__name__}.nodes_video")


@pytest.fixture
def comfy_dirs(tmp_path, monkeypatch):
    output, inputs = tmp_path / "output", tmp_path / "input"
    output.mkdir()
    inputs.mkdir()
    monkeypatch.setattr(folder_paths, "output_directory", str(output))
    monkeypatch.setattr(folder_paths, "input_directory", str(inputs))
    return output, inputs


def listing(folder: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


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
    images = [Image.fromarray(video_io._rgb_uint8(f)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


def write_with_opencv(fourcc):
    def write(path, frames):
        writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 10, (16, 16))
        assert writer.isOpened()
        for frame in frames:
            writer.write(cv2.cvtColor(video_io._rgb_uint8(frame), cv2.COLOR_RGB2BGR))
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


# ---------------------------------------------------------------- output names

def test_save_path_names_like_comfyui_and_counts_up(tmp_path):
    first = video_io.save_path(tmp_path, "ExVideo/video", ".mp4")
    assert first == video_io.OutputFile(str(tmp_path / "ExVideo" / "video_00001_.mp4"), "video_00001_.mp4", "ExVideo")
    pathlib.Path(first.path).write_bytes(b"x")
    assert video_io.save_path(tmp_path, "ExVideo/video", "mp4").filename == "video_00002_.mp4"


def test_trailing_slash_prefix_does_not_overwrite(tmp_path):
    # ComfyUI's counter misses existing files when the prefix ends with a slash.
    first = video_io.save_path(tmp_path, "ExVideo/video/", ".mp4")
    pathlib.Path(first.path).write_bytes(b"x")
    assert video_io.save_path(tmp_path, "ExVideo/video/", ".mp4").path != first.path


def test_taken_counter_is_skipped_for_every_extension(tmp_path, monkeypatch):
    (tmp_path / "v_00001_.mp4").write_bytes(b"x")
    (tmp_path / "v_00002_.png").write_bytes(b"x")
    # Whatever the listing-based counter says, taken names are never returned.
    monkeypatch.setattr(folder_paths, "get_save_image_path", lambda prefix, out, w, h: (str(tmp_path), "v", 1, "", prefix))
    assert video_io.save_path(tmp_path, "v", ".mp4").filename == "v_00002_.mp4"
    assert video_io.save_path(tmp_path, "v", ".mp4", companions=(".png",)).filename == "v_00003_.mp4"


@pytest.mark.parametrize("prefix", ["../x", "/abs/x", "a/../../x", "ExVideo/../../x", "..", "../"])
def test_prefix_escaping_the_output_folder_is_refused(tmp_path, prefix):
    output = tmp_path / "output"
    output.mkdir()
    with pytest.raises(VideoError, match="leads outside the output folder"):
        video_io.save_path(output, prefix, ".mp4")
    assert listing(tmp_path) == ["output"]


@pytest.mark.parametrize("prefix", ["", ".", "sub/.."])
def test_prefix_without_a_name_is_refused(tmp_path, prefix):
    with pytest.raises(VideoError, match="does not name a file"):
        video_io.save_path(tmp_path, prefix, ".mp4")


def test_prefix_variables_are_expanded(tmp_path):
    out = video_io.save_path(tmp_path, "clips/%width%x%height%", ".mp4", width=64, height=48)
    assert (out.subfolder, out.filename) == ("clips", "64x48_00001_.mp4")


# ---------------------------------------------------------------- contact sheet

def test_contact_sheet_picks_evenly_spaced_frames(tmp_path):
    sheet = video_io.contact_sheet(gray_levels(10, 4, 6), columns=4, max_frames=6)
    assert sheet.shape == (8, 24, 3) and sheet.dtype == np.uint8
    cells = [sheet[r * 4:(r + 1) * 4, c * 6:(c + 1) * 6] for r in range(2) for c in range(4)]
    assert [round(cell.mean() / 20) for cell in cells[:6]] == [0, 2, 4, 5, 7, 9]
    assert not cells[6].any() and not cells[7].any()  # unused cells stay black

    video_io.write_png(sheet, tmp_path / "sheet.png")
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(tmp_path / "sheet.png")), cv2.COLOR_BGR2RGB), sheet)
    assert listing(tmp_path) == ["sheet.png"]


def test_contact_sheet_of_a_short_gray_clip():
    sheet = video_io.contact_sheet(torch.full((2, 4, 4, 1), 0.5))
    assert sheet.shape == (4, 8, 3) and (sheet == 128).all()


# ---------------------------------------------------------------- nodes

def test_save_node_writes_mp4_and_contact_sheet(nodes_video, comfy_dirs):
    output, _ = comfy_dirs
    frames = moving_pattern(5, 32, 48)
    result = nodes_video.ExVideoSaveMP4.execute(frames, 12.0, "ExVideo/clip", True)

    assert result.ui.as_dict() == {
        "images": [{"filename": "clip_00001_.mp4", "subfolder": "ExVideo", "type": "output"}], "animated": (True,)}
    assert listing(output) == ["ExVideo", "ExVideo/clip_00001_.mp4", "ExVideo/clip_00001_.png"]
    decoded, fps = video_io.read_video(output / "ExVideo" / "clip_00001_.mp4")
    assert decoded.shape == frames.shape and fps == 12.0

    nodes_video.ExVideoSaveMP4.execute(frames, 12.0, "ExVideo/clip", False)
    assert listing(output / "ExVideo") == ["clip_00001_.mp4", "clip_00001_.png", "clip_00002_.mp4"]


def test_save_node_refuses_escaping_prefix(nodes_video, comfy_dirs):
    with pytest.raises(VideoError, match="outside the output folder"):
        nodes_video.ExVideoSaveMP4.execute(gray_levels(2), 8.0, "../escape", False)


def test_save_node_can_be_interrupted(nodes_video, comfy_dirs):
    output, _ = comfy_dirs
    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            nodes_video.ExVideoSaveMP4.execute(gray_levels(4), 8.0, "clip", False)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert listing(output) == []


def test_load_node_lists_reads_and_validates(nodes_video, comfy_dirs):
    _, inputs = comfy_dirs
    video_io.write_mp4(gray_levels(10), inputs / "levels.mp4", 20)
    (inputs / "notes.txt").write_text("")
    schema = nodes_video.ExVideoLoadVideo.define_schema()
    assert schema.inputs[0].options == ["levels.mp4"]
    assert all(i.tooltip for i in schema.inputs)

    result = nodes_video.ExVideoLoadVideo.execute("levels.mp4", 2, 3, 1)
    frames, count, fps = result.args
    assert frame_indices(frames) == [1, 3, 5] and count == 3 and fps == 10.0

    load = nodes_video.ExVideoLoadVideo
    assert load.validate_inputs("levels.mp4") is True
    assert "not found" in load.validate_inputs("missing.mp4")
    assert "outside" in load.validate_inputs("../output/x.mp4")
    assert "outside" in load.validate_inputs("/etc/passwd")


def test_load_node_fingerprint_follows_the_file(nodes_video, comfy_dirs):
    _, inputs = comfy_dirs
    path = inputs / "clip.mp4"
    video_io.write_mp4(gray_levels(2), path, 8)
    before = nodes_video.ExVideoLoadVideo.fingerprint_inputs("clip.mp4", frame_stride=1)
    video_io.write_mp4(gray_levels(3), path, 8)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-clock filesystems
    assert nodes_video.ExVideoLoadVideo.fingerprint_inputs("clip.mp4", frame_stride=1) != before


def test_native_nodes_interoperate(nodes_video, comfy_dirs):
    import nodes as comfy_nodes  # ComfyUI's nodes.py: the pack's package is not on this name

    output, inputs = comfy_dirs
    empty = comfy_nodes.EmptyImage().generate(width=24, height=16, batch_size=3, color=0xFF8000)[0]
    nodes_video.ExVideoSaveMP4.execute(empty, 8.0, "native", False)
    decoded, _ = video_io.read_video(output / "native_00001_.mp4")
    assert per_frame_error(decoded, empty).max() < MEAN_ERROR_BOUND

    video_io.write_mp4(gray_levels(3), inputs / "levels.mp4", 8)
    frames = nodes_video.ExVideoLoadVideo.execute("levels.mp4", 1, 0, 0).args[0]
    comfy_nodes.SaveImage().save_images(frames, filename_prefix="frames")
    assert sorted(p.name for p in output.glob("frames_*.png")) == [f"frames_{i:05}_.png" for i in (1, 2, 3)]


def test_saved_files_get_the_usual_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = tmp_path / "perm.mp4"
        video_io.write_mp4(torch.rand(2, 16, 16, 3), path, fps=10)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
