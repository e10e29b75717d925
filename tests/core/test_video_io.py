"""Video files in and out: exvideo_core.video_io (MP4 writing, reading any video's frames and audio).

Clips are tiny (a few frames of at most 64x96) so the suite stays fast on a shared CPU.
"""

import errno
import os
import pathlib

import json
from fractions import Fraction

import av
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
        # Tagged as the frames were converted, so browsers and FFmpeg agree on the colours.
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
    message = "2 of 6 frames" if silent else r"clip\.mp4: libx264 encoding failed: .*No space left on device"
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
    with pytest.raises(VideoWriteError, match=r"clip\.mp4: this PyAV build has no libx264 encoder"):
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


def write_with_pyav(codec, pix_fmt):
    def write(path, frames):
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream(codec, rate=10)
            stream.width, stream.height, stream.pix_fmt = 16, 16, pix_fmt
            container.start_encoding()  # the header, even with no frames
            for frame in frames:
                picture = av.VideoFrame.from_ndarray(rgb_uint8(frame), format="rgb24").reformat(format=pix_fmt)
                container.mux(stream.encode(picture))
            container.mux(stream.encode(None))
    return write


@pytest.mark.parametrize("name, write", [
    ("clip.gif", write_gif),
    ("clip.webm", write_with_pyav("libvpx-vp9", "yuv420p")),
    ("clip.avi", write_with_pyav("mjpeg", "yuvj420p")),
    ("clip.mov", write_with_pyav("mpeg4", "yuv420p")),
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
    write_with_pyav("mjpeg", "yuvj420p")(tmp_path / "zero.avi", [])
    with pytest.raises(VideoReadError, match="zero.avi holds no decodable frames"):
        video_io.read_video(tmp_path / "zero.avi")


def test_skipping_everything(ten_frames):
    with pytest.raises(VideoReadError, match="has 10 frames: skipping the first 10 leaves none"):
        video_io.read_video(ten_frames, skip_first=10)


@pytest.mark.parametrize("kwargs", [dict(frame_stride=0), dict(max_frames=-1), dict(skip_first=-1),
                                    dict(size=(0, 0)), dict(size=(-8, 8)), dict(size=(8,))])
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


# ---------------------------------------------------------------- codecs, audio, metadata

def tone(seconds: float, rate: int = 16000, channels: int = 2) -> dict:
    """ComfyUI AUDIO: a 440 Hz sine, the right channel at half the left's amplitude."""
    t = torch.arange(round(seconds * rate)) / rate
    wave = torch.sin(2 * torch.pi * 440 * t)
    return {"waveform": torch.stack([wave * 0.5 ** c for c in range(channels)])[None], "sample_rate": rate}


def test_lossless_codec_gives_the_exact_frames_back(tmp_path):
    frames = torch.from_numpy(np.stack([rgb_uint8(f) for f in moving_pattern(5, 33, 47)])).float() / 255
    assert video_io.write_mp4(frames, tmp_path / "exact.mp4", 10, codec="h264_lossless") == "h264"
    decoded, fps = video_io.read_video(tmp_path / "exact.mp4")
    assert decoded.shape == frames.shape and fps == 10.0  # odd sizes kept: RGB needs no even padding
    assert torch.equal(decoded, frames)
    # The default codec at the same settings is not exact: the option is what makes the difference.
    video_io.write_mp4(frames, tmp_path / "lossy.mp4", 10, crf=0)
    assert not torch.equal(video_io.read_video(tmp_path / "lossy.mp4")[0][:, :33, :47], frames)


def test_unknown_codec_is_refused(tmp_path):
    with pytest.raises(VideoError, match="codec must be one of h264, h264_lossless"):
        video_io.write_mp4(gray_levels(2), tmp_path / "a.mp4", 8, codec="vp9")
    assert listing(tmp_path) == []


def test_audio_round_trip(tmp_path):
    audio = tone(1.5)  # longer than the 1 s of video: cut as ComfyUI's SaveVideo cuts it
    video_io.write_mp4(gray_levels(10), tmp_path / "sound.mp4", 10, audio=audio)
    with av.open(str(tmp_path / "sound.mp4")) as container:
        (stream,) = container.streams.audio
        assert stream.codec_context.name == "aac" and stream.channels == 2 and stream.rate == 16000

    back = video_io.read_audio(tmp_path / "sound.mp4")
    assert back["sample_rate"] == 16000 and back["waveform"].shape[:2] == (1, 2)
    assert back["waveform"].shape[2] == pytest.approx(16000, abs=1024)  # 1 s, to an AAC frame
    # Same tone, same loudness per channel (AAC keeps a sine within a few percent).
    rms = back["waveform"][0, :, 2000:14000].pow(2).mean(dim=1).sqrt()
    assert rms.tolist() == pytest.approx([0.5 ** 0.5, 0.5 ** 1.5], rel=0.05)
    spectrum = torch.fft.rfft(back["waveform"][0, 0, 2000:14000]).abs()
    assert spectrum.argmax().item() * 16000 / 12000 == pytest.approx(440, abs=2)

    part = video_io.read_audio(tmp_path / "sound.mp4", start=0.25, duration=0.5)
    assert part["waveform"].shape == (1, 2, 8000)
    assert video_io.read_audio(_silent(tmp_path)) is None


def _silent(tmp_path):
    video_io.write_mp4(gray_levels(2), tmp_path / "silent.mp4", 8)
    return tmp_path / "silent.mp4"


@pytest.mark.parametrize("audio, message", [
    ({"waveform": torch.zeros(2, 3)}, "waveform of shape"),
    ({"waveform": torch.zeros(2, 1, 30), "sample_rate": 8000}, "batch of 2"),
    ({"waveform": torch.zeros(1, 1, 30), "sample_rate": 0}, "sample_rate"),
    ("loud", "waveform of shape"),
])
def test_bad_audio_is_refused(tmp_path, audio, message):
    with pytest.raises(VideoError, match=message):
        video_io.write_mp4(gray_levels(2), tmp_path / "a.mp4", 8, audio=audio)
    assert listing(tmp_path) == []


def test_prompt_and_workflow_are_embedded_as_comfyui_does(tmp_path):
    prompt = {"1": {"class_type": "ExVideoSaveMP4", "inputs": {"fps": 8.0}}}
    workflow = {"nodes": [{"id": 1, "type": "ExVideoSaveMP4"}], "links": [], "version": 0.4}
    tags = video_io.metadata_tags(prompt, {"workflow": workflow})
    video_io.write_mp4(gray_levels(2), tmp_path / "meta.mp4", 8, metadata=tags)

    with av.open(str(tmp_path / "meta.mp4")) as container:
        assert json.loads(container.metadata["prompt"]) == prompt
        assert json.loads(container.metadata["workflow"]) == workflow
    assert video_io.read_metadata(tmp_path / "meta.mp4").keys() >= {"prompt", "workflow"}
    # The frontend finds them in moov/udta/meta, which +faststart puts before the frames.
    data = (tmp_path / "meta.mp4").read_bytes()
    atoms = top_level_atoms(tmp_path / "meta.mp4")
    assert data.index(b"udta") < atoms[b"mdat"][0] and data.index(b"ilst") < atoms[b"mdat"][0]


def test_same_metadata_as_native_save_video(tmp_path):
    from comfy_api.v0_0_2 import InputImpl, Types

    prompt, extra = {"3": {"class_type": "X", "inputs": {}}}, {"workflow": {"nodes": []}}
    native = {"prompt": prompt, **extra}  # what SaveVideo.execute passes to save_to
    InputImpl.VideoFromComponents(Types.VideoComponents(images=gray_levels(2), frame_rate=Fraction(8))).save_to(
        str(tmp_path / "native.mp4"), metadata=native)
    video_io.write_mp4(gray_levels(2), tmp_path / "ours.mp4", 8, metadata=video_io.metadata_tags(prompt, extra))
    assert video_io.read_metadata(tmp_path / "ours.mp4") == video_io.read_metadata(tmp_path / "native.mp4")


# ---------------------------------------------------------------- VideoHelperSuite's frame selection

@pytest.mark.parametrize("force_rate, skip, nth, cap, expected, fps", [
    (10, 0, 1, 0, [0, 2, 4, 6, 8], 10.0),  # half the file's 20 fps: every other frame
    (40, 0, 1, 6, [0, 0, 1, 1, 2, 2], 40.0),  # double: each frame twice
    (10, 1, 2, 0, [2, 6], 10.0),  # skip and nth count resampled frames
    (0, 0, 1, 3, [0, 1, 2], 20.0),
])
def test_force_rate_resamples_before_skip_and_nth(ten_frames, force_rate, skip, nth, cap, expected, fps):
    frames, rate = video_io.read_video(ten_frames, nth, cap, skip, force_rate=force_rate)
    assert frame_indices(frames) == expected and rate == fps


def test_bad_force_rate_is_refused(ten_frames):
    with pytest.raises(VideoError, match="force_rate >= 0"):
        video_io.read_video(ten_frames, force_rate=-1)


# ---------------------------------------------------------------- ComfyUI's VIDEO

def test_video_frames_of_native_video_objects(tmp_path, ten_frames):
    from comfy_api.v0_0_2 import InputImpl, Types

    frames, fps, audio = video_io.video_frames(InputImpl.VideoFromFile(str(ten_frames)))
    assert frame_indices(frames) == list(range(10)) and fps == 20.0 and audio is None

    built = InputImpl.VideoFromComponents(Types.VideoComponents(images=gray_levels(3), frame_rate=Fraction(12),
                                                                audio=tone(0.25)))
    frames, fps, audio = video_io.video_frames(built)
    assert frame_indices(frames) == [0, 1, 2] and fps == 12.0 and audio["sample_rate"] == 16000

    images = gray_levels(2)
    assert video_io.video_frames(images) == (images, 0.0, None)
    with pytest.raises(VideoError, match="images must be an IMAGE batch or a VIDEO, got str"):
        video_io.video_frames("clip.mp4", "images")
    (tmp_path / "bad.mp4").write_bytes(b"junk" * 100)
    with pytest.raises(VideoReadError, match="The images VIDEO could not be decoded"):
        video_io.video_frames(InputImpl.VideoFromFile(str(tmp_path / "bad.mp4")), "images")


@pytest.mark.parametrize("size, expected", [((32, 0), (32, 16)), ((0, 8), (16, 8)), ((20, 0), (20, 8)),
                                            ((16, 16), (16, 16))])
def test_a_zero_size_follows_the_aspect_ratio_in_multiples_of_8(tmp_path, size, expected):
    video_io.write_mp4(moving_pattern(2, 32, 64), tmp_path / "wide.mp4", 10)
    assert video_io.target_size(64, 32, size) == expected
    assert video_io.read_video(tmp_path / "wide.mp4", size=size, crop=True)[0].shape == (2, expected[1], expected[0], 3)
