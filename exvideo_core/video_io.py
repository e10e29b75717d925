"""Video files in and out with PyAV (FFmpeg): IMAGE batches (and AUDIO) as MP4, any video's frames and audio.

Frames are ComfyUI IMAGE tensors, `(t, h, w, c)` float in [0, 1]; audio is ComfyUI's AUDIO dict,
`{"waveform": (1, channels, samples) float, "sample_rate": int}`. MP4 files are encoded as H.264
with FFmpeg's libx264, which browsers, and so ComfyUI's video preview, play, and carry the prompt
and workflow as ComfyUI's own SaveVideo writes them (MP4 metadata items, one JSON string per key),
so dropping the file onto ComfyUI restores its graph. Every read and write step is checked, and a
failure raises an error naming the file and the likely cause. Files appear under their final name
complete or not at all: they are written through `atomic_file` to a hidden temporary file in the
same folder, read back, and only then renamed. Output names (ComfyUI's counters and folders) are
the nodes' concern: nodes/output_paths.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
from fractions import Fraction
from typing import Any, Callable, Iterator

import av
import numpy as np
import torch

from . import atomic_file
from .constraints import VAE_DOWNSCALE
from .errors import VideoError, VideoReadError, VideoWriteError
from .frames import check_frames, resize_frames, rgb_uint8

VIDEO_EXTENSIONS = (".mp4", ".webm", ".gif", ".mov", ".avi", ".mkv", ".m4v")


@dataclasses.dataclass(frozen=True)
class Codec:
    encoder: str  # named, not "h264", which takes whichever H.264 encoder FFmpeg lists first
    pix_fmt: str
    lossless: bool  # crf is ignored: x264's lossless mode (qp 0)
    description: str


# PyAV's wheels from PyPI ship both encoders.
CODECS = {
    "h264": Codec("libx264", "yuv420p", False,
                  "H.264 4:2:0 at the given crf: plays in browsers and ComfyUI's preview."),
    "h264_lossless": Codec("libx264rgb", "rgb24", True,
                           "H.264 RGB, lossless: the exact frames back, larger files; most browsers do not play it."),
}
DEFAULT_CODEC = "h264"
DEFAULT_CRF = 19  # close to visually lossless
_MAX_CRF = 51  # x264's quality scale: 0 is lossless, 51 the smallest file
_AUDIO_ENCODER = "aac"  # FFmpeg's native AAC: in every build, and what browsers play in MP4
# Frame rates become fractions with at most this denominator: 29.97 stays 2997/100, 30000/1001 stays itself.
_MAX_FPS_DENOMINATOR = 100_000
# use_metadata_tags stores any key (prompt, workflow) as an MP4 metadata item, as ComfyUI's SaveVideo does;
# +faststart puts the index, those items included, before the frames: browsers start playing before the
# download ends, and ComfyUI's frontend, which reads a dropped file's first 64 MB only, finds the workflow.
_MOVFLAGS = "+faststart+use_metadata_tags"

# A corrupt header may claim any length, so preallocation trusts it only this far; beyond, the buffer grows.
_MAX_PREALLOCATED_FRAMES = 1024


# ---------------------------------------------------------------- audio

def check_audio(audio: Any) -> dict | None:
    """`audio` (ComfyUI's AUDIO dict) with a (1, channels, samples) waveform, or None; VideoError otherwise."""
    if audio is None:
        return None
    waveform = audio.get("waveform") if isinstance(audio, dict) else None
    rate = audio.get("sample_rate") if isinstance(audio, dict) else None
    if not isinstance(waveform, torch.Tensor) or waveform.ndim != 3 or not 1 <= waveform.shape[1] <= 8:
        shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise VideoError(f"Expected AUDIO with a waveform of shape (1, channels (1 to 8), samples), got {shape}.")
    if waveform.shape[0] != 1:
        raise VideoError(f"The AUDIO holds a batch of {waveform.shape[0]} clips; a video takes one.")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
        raise VideoError(f"The AUDIO's sample_rate must be a positive integer, got {rate!r}.")
    return audio


def _audio_layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels) or av.AudioLayout(channels).name


# ---------------------------------------------------------------- writing

def frame_rate(fps) -> Fraction:
    """fps as the fraction the stream's time base is made of."""
    if isinstance(fps, (int, float, Fraction)) and not isinstance(fps, bool) and math.isfinite(fps) and fps > 0:
        rate = Fraction(fps).limit_denominator(_MAX_FPS_DENOMINATOR)
        if rate > 0:
            return rate
    raise VideoError(f"fps must be a positive number (at least 1/{_MAX_FPS_DENOMINATOR}), got {fps!r}.")


def _picture(frame: torch.Tensor, pad_h: int, pad_w: int, codec: Codec) -> av.VideoFrame:
    rgb = rgb_uint8(frame)
    if pad_h or pad_w:
        rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    if codec.pix_fmt == "rgb24":
        return picture
    # BT.709 limited range, as the stream is tagged: players then show the same colours.
    return picture.reformat(format=codec.pix_fmt, dst_colorspace="ITU709")


def _add_video_stream(container, codec: Codec, rate: Fraction, width: int, height: int, crf: float):
    stream = container.add_stream(codec.encoder, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, codec.pix_fmt
    if codec.lossless:
        stream.options = {"qp": "0"}
    else:
        stream.options = {"crf": str(crf), "colorspace": "bt709", "color_range": "tv"}
    return stream


def _add_audio_stream(container, audio: dict):
    channels = audio["waveform"].shape[1]
    return container.add_stream(_AUDIO_ENCODER, rate=audio["sample_rate"], layout=_audio_layout(channels))


def _mux_audio(container, stream, audio: dict, seconds: float) -> None:
    """Encodes the audio, cut to the video's length as ComfyUI's SaveVideo cuts it."""
    rate, waveform = audio["sample_rate"], audio["waveform"][0]
    waveform = waveform[:, :math.ceil(rate * seconds)].detach().float().cpu().contiguous()
    frame = av.AudioFrame.from_ndarray(waveform.numpy(), format="fltp", layout=_audio_layout(waveform.shape[0]))
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    container.mux(stream.encode(frame))  # PyAV cuts it into the encoder's frame size
    container.mux(stream.encode(None))


def _encode(frames: torch.Tensor, tmp: pathlib.Path, rate: Fraction, codec: Codec, crf: float,
            audio: dict | None, metadata: dict[str, str], progress: Callable[[int], None] | None) -> None:
    """Encodes `frames` (and `audio`) into `tmp`; FFmpeg failures surface as av.FFmpegError."""
    # 4:2:0 video needs even sizes: the last row and column are repeated rather than cropped or left to FFmpeg.
    even = codec.pix_fmt == "yuv420p"
    height, width = frames.shape[1] + even * (frames.shape[1] % 2), frames.shape[2] + even * (frames.shape[2] % 2)
    pad_h, pad_w = height - frames.shape[1], width - frames.shape[2]
    container = av.open(str(tmp), mode="w", format="mp4", options={"movflags": _MOVFLAGS})
    try:
        container.metadata.update(metadata)  # before any stream: the muxer writes them with the header
        stream = _add_video_stream(container, codec, rate, width, height, crf)
        # Every stream before the first packet: the muxer writes the header then.
        audio_stream = _add_audio_stream(container, audio) if audio is not None else None
        for i, frame in enumerate(frames):
            container.mux(stream.encode(_picture(frame, pad_h, pad_w, codec)))
            if progress is not None:
                progress(i + 1)
        container.mux(stream.encode(None))  # the frames x264 still holds for lookahead
        if audio_stream is not None:
            _mux_audio(container, audio_stream, audio, frames.shape[0] / rate)
    except BaseException:
        with contextlib.suppress(av.FFmpegError):  # the temporary file is deleted anyway: keep the first error
            container.close()
        raise
    container.close()  # writes the index; a full disk shows here at the latest


def _verify_written(tmp: pathlib.Path, expected: int, audio: bool, path: pathlib.Path) -> str:
    """Reads the container header back, so a short or unreadable file is never kept; returns its video codec."""
    try:
        with av.open(str(tmp)) as container:
            stream = container.streams.video[0]
            count, codec = stream.frames, stream.codec_context.name
            has_audio = bool(container.streams.audio)
    except (av.FFmpegError, IndexError):
        count, codec, has_audio = -1, None, False
    if count != expected:
        found = "an unreadable file" if count < 0 else f"{count} of {expected} frames"
        raise VideoWriteError(f"Writing {path} failed: the encoder produced {found} (is the disk full?).")
    if audio and not has_audio:
        raise VideoWriteError(f"Writing {path} failed: the audio stream is missing (is the disk full?).")
    return codec


def metadata_tags(prompt: dict | None = None, extra_pnginfo: dict | None = None) -> dict[str, str]:
    """The container tags ComfyUI's SaveVideo writes: each extra_pnginfo key (the workflow) and the prompt, as JSON."""
    tags = {key: json.dumps(value) for key, value in (extra_pnginfo or {}).items()}
    if prompt is not None:
        tags["prompt"] = json.dumps(prompt)
    return tags


def write_mp4(frames: torch.Tensor, path: str | os.PathLike, fps: float,
              progress: Callable[[int], None] | None = None, crf: float = DEFAULT_CRF, *,
              codec: str = DEFAULT_CODEC, audio: dict | None = None, metadata: dict[str, str] | None = None) -> str:
    """Writes an IMAGE batch (and AUDIO) as an MP4 file, atomically; returns the codec read back ('h264').

    `codec` is a key of CODECS. "h264": yuv420p, BT.709, index at the front (+faststart), plays in browsers
    and ComfyUI's preview; odd widths/heights are padded to even by repeating the last row/column. `crf`
    is x264's constant rate factor, 0 (lossless, not playable in most browsers) to 51 (smallest); 19 is
    close to visually lossless. "h264_lossless" ignores crf and keeps the exact RGB frames.
    `audio` (ComfyUI's AUDIO) is encoded as AAC, cut to the video's length. `metadata` are string tags
    (`metadata_tags` makes ComfyUI's prompt/workflow ones).
    `progress(frames_written)` is called after every frame; an exception it raises
    (such as ComfyUI's interrupt) aborts the write and leaves no file behind.
    """
    frames = check_frames(frames)
    rate = frame_rate(fps)
    if codec not in CODECS:
        raise VideoError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}.")
    spec = CODECS[codec]
    if not (isinstance(crf, (int, float)) and not isinstance(crf, bool) and 0 <= crf <= _MAX_CRF):
        raise VideoError(f"crf must be a number from 0 to {_MAX_CRF}, got {crf!r}.")
    audio = check_audio(audio)
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise VideoError("metadata must map strings to strings (metadata_tags makes ComfyUI's).")
    path = pathlib.Path(path)
    if path.suffix.lower() != ".mp4":
        raise VideoError(f"write_mp4 writes .mp4 files, not {path.name!r}.")
    for encoder in (spec.encoder, *((_AUDIO_ENCODER,) if audio is not None else ())):
        if encoder not in av.codecs_available:
            raise VideoWriteError(f"Cannot write {path}: this PyAV build has no {encoder} encoder; "
                                  f"install PyAV's wheel from PyPI (pip install av).")

    def write(tmp: pathlib.Path) -> str:
        try:
            _encode(frames, tmp, rate, spec, crf, audio, metadata or {}, progress)
        except av.FFmpegError as e:
            raise VideoWriteError(f"Cannot write {path}: {spec.encoder} encoding failed: {e}.") from e
        return _verify_written(tmp, frames.shape[0], audio is not None, path)

    return atomic_file.write_file(path, write, error=VideoWriteError, make_folder=False)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """A video file's container tags (for an MP4 from write_mp4: the prompt and workflow JSON)."""
    try:
        with av.open(str(path)) as container:
            return dict(container.metadata)
    except av.FFmpegError as e:
        raise VideoReadError(f"{pathlib.Path(path).name} could not be opened as a video: {e}.") from e


# ---------------------------------------------------------------- reading

@dataclasses.dataclass(frozen=True)
class FrameSelection:
    """Which frames a read keeps, in VideoHelperSuite's terms and order.

    `force_rate` (0: the file's) first resamples the video in time, dropping or repeating frames;
    of that, the first `skip_first` are dropped, then every `every_nth` is kept, at most `cap` (0: all).
    """
    force_rate: float = 0.0
    skip_first: int = 0
    every_nth: int = 1
    cap: int = 0

    def __post_init__(self):
        rate_ok = isinstance(self.force_rate, (int, float)) and math.isfinite(self.force_rate) \
            and self.force_rate >= 0
        if self.every_nth < 1 or self.cap < 0 or self.skip_first < 0 or not rate_ok:
            raise VideoError(f"Need frame_stride/select_every_nth >= 1, max_frames/frame_load_cap >= 0, "
                             f"skip_first_frames >= 0 and force_rate >= 0 (got {self.every_nth}, {self.cap}, "
                             f"{self.skip_first}, {self.force_rate}).")

    def rate(self, file_fps: float) -> float:
        """Frames per second of the resampled video (before every_nth)."""
        return float(self.force_rate) if self.force_rate else file_fps

    def repeats(self, file_fps: float) -> Iterator[int]:
        """How many times each source frame appears once resampled to force_rate (1 each without it)."""
        if not self.force_rate or not file_fps:
            while True:
                yield 1
        # Resampled frame k is the source frame on screen at time k / force_rate: source frame i is shown
        # by every k in [i * ratio, (i + 1) * ratio). Exact fractions: no drift over long videos.
        ratio = Fraction(self.force_rate).limit_denominator(_MAX_FPS_DENOMINATOR) / \
            Fraction(file_fps).limit_denominator(_MAX_FPS_DENOMINATOR)
        index = 0
        while True:
            yield math.ceil((index + 1) * ratio) - math.ceil(index * ratio)
            index += 1


def _open(path: pathlib.Path):
    if not path.is_file():
        raise VideoReadError(f"{path} does not exist or is not a file.")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise VideoReadError(f"{path.name} could not be opened as a video: it is empty, truncated, corrupt, or in "
                             f"a format FFmpeg cannot decode ({e}).") from e
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path.name} holds no video stream.")
    return container


def _decoded(container, name: str) -> Iterator[av.VideoFrame]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    index = 0
    try:
        for frame in container.decode(stream):
            yield frame
            index += 1
    except av.FFmpegError as e:
        raise VideoReadError(f"{name}: frame {index} could not be decoded ({e}); the file may be corrupt.") from e


def _kept_frames(frames: Iterator[av.VideoFrame], repeats: Iterator[int], selection: FrameSelection
                 ) -> Iterator[av.VideoFrame]:
    """The frames kept; the others are decoded (FFmpeg must) but never converted or stored."""
    index = kept = 0  # index counts resampled frames
    for frame, times in zip(frames, repeats):
        for _ in range(times):
            if selection.cap and kept >= selection.cap:
                return
            if index >= selection.skip_first and (index - selection.skip_first) % selection.every_nth == 0:
                kept += 1
                yield frame
            index += 1


def _capacity(total: int, repeat_ratio: float, selection: FrameSelection) -> int:
    """How many frames to preallocate, from the container's (possibly missing or wrong) frame count."""
    resampled = math.ceil(total * repeat_ratio)
    expected = math.ceil(max(resampled - selection.skip_first, 0) / selection.every_nth) if total > 0 \
        else _MAX_PREALLOCATED_FRAMES
    if selection.cap:
        expected = min(expected, selection.cap)
    return max(1, min(expected, _MAX_PREALLOCATED_FRAMES))


def _stack(frames: Iterator[av.VideoFrame], capacity: int, size: tuple[int, int] | None,
           crop: bool) -> torch.Tensor | None:
    out, count, previous, previous_rgb = None, 0, None, None
    for frame in frames:
        if frame is not previous:  # a frame repeated by force_rate is converted once
            rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).float().div_(255)
            if size is not None and 0 in size:
                size = target_size(rgb.shape[1], rgb.shape[0], size)
            if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
                rgb = resize_frames(rgb[None], *size, crop=crop)[0]
            previous, previous_rgb = frame, rgb
        if out is None:
            out = torch.empty((capacity, *previous_rgb.shape), dtype=torch.float32)
        elif count == out.shape[0]:  # the container under-reported its length
            out = torch.cat([out, torch.empty_like(out)])
        out[count].copy_(previous_rgb)
        count += 1
    # A view: when the header over-reported, the unused tail was never touched, so it holds no real memory.
    return None if out is None else out[:count]


def _check_size(size) -> None:
    if size is not None and (len(size) != 2 or min(size) < 0 or max(size) < 1):
        raise VideoError(f"size must be (width, height), both >= 0 and not both 0, got {size!r}.")


def target_size(width: int, height: int, size: tuple[int, int]) -> tuple[int, int]:
    """`size` for a width x height video, a 0 in it taken from the video's aspect ratio, rounded to a
    multiple of the VAE's 8 pixels (as VideoHelperSuite rounds it)."""
    def derived(value: float) -> int:
        return max(VAE_DOWNSCALE, round(value / VAE_DOWNSCALE) * VAE_DOWNSCALE)

    new_w, new_h = size
    if not new_h:
        return new_w, derived(height * new_w / width)
    if not new_w:
        return derived(width * new_h / height), new_h
    return new_w, new_h


def _file_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    return fps if math.isfinite(fps) and fps > 0 else 0.0


def read_video(path: str | os.PathLike, frame_stride: int = 1, max_frames: int = 0, skip_first: int = 0,
               size: tuple[int, int] | None = None, crop: bool = False, force_rate: float = 0.0
               ) -> tuple[torch.Tensor, float]:
    """Frames of a video file (mp4, webm, gif, mov, avi, ...) as an IMAGE batch, and the file's fps.

    Keeps frames skip_first, skip_first + frame_stride, ... up to max_frames of them (0: all), counted
    after resampling to `force_rate` frames per second (0: the file's rate; see FrameSelection).
    `size=(width, height)` resizes every kept frame as it is decoded, so only the small frames
    are ever held (a 0 in it keeps the aspect ratio: `target_size`); `crop` first cuts the centre to that aspect ratio instead of stretching. The fps
    returned is the file's own (or force_rate), not divided by the stride; 0.0 when the container does not say.
    """
    selection = FrameSelection(force_rate, skip_first, frame_stride, max_frames)
    _check_size(size)
    path = pathlib.Path(path)
    with contextlib.closing(_open(path)) as container:
        stream = container.streams.video[0]
        fps, total = _file_fps(stream), stream.frames
        if selection.force_rate and not fps:
            raise VideoReadError(f"{path.name} does not say its frame rate, so it cannot be resampled to "
                                 f"force_rate {selection.force_rate}; set force_rate to 0.")
        ratio = selection.force_rate / fps if selection.force_rate else 1.0
        kept = _kept_frames(_decoded(container, path.name), selection.repeats(fps), selection)
        frames = _stack(kept, _capacity(total, ratio, selection), size, crop)
    if frames is None:
        if total > 0 and skip_first >= math.ceil(total * ratio):
            raise VideoReadError(f"{path.name} has {total} frames: skipping the first {skip_first} leaves none.")
        raise VideoReadError(f"{path.name} holds no decodable frames.")
    return frames, selection.rate(fps)


def read_audio(path: str | os.PathLike, start: float = 0.0, duration: float | None = None) -> dict | None:
    """The first audio stream of a video file as ComfyUI's AUDIO, from `start` seconds for `duration`
    (None: to the end); None when the file has no audio."""
    path = pathlib.Path(path)
    with contextlib.closing(_open(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.rate or stream.codec_context.sample_rate
        layout = stream.layout.name if stream.layout else _audio_layout(stream.channels)
        # Planar float whatever the file holds, so every frame is (channels, samples).
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks, first_time = [], None
        try:
            for frame in container.decode(stream):
                if first_time is None and frame.pts is not None and frame.time_base is not None:
                    first_time = float(frame.pts * frame.time_base)
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except av.FFmpegError as e:
            raise VideoReadError(f"{path.name}: the audio could not be decoded ({e}); the file may be corrupt.") from e
    if not chunks:
        return None
    waveform = torch.from_numpy(np.concatenate(chunks, axis=1))
    begin = max(0, round((start - (first_time or 0.0)) * rate))
    end = waveform.shape[1] if duration is None else begin + round(duration * rate)
    return {"waveform": waveform[None, :, begin:end].contiguous(), "sample_rate": int(rate)}


# ---------------------------------------------------------------- ComfyUI's VIDEO type

def video_frames(video: Any, name: str = "video") -> tuple[torch.Tensor, float, dict | None]:
    """(frames, fps, audio) of an IMAGE batch (fps 0, no audio) or a ComfyUI VIDEO (comfy_api's VideoInput:
    native Load Video, Create Video, ...). The one conversion the nodes that take either use."""
    if isinstance(video, torch.Tensor):
        return check_frames(video), 0.0, None
    if not callable(getattr(video, "get_components", None)):
        raise VideoError(f"{name} must be an IMAGE batch or a VIDEO, got {type(video).__name__}.")
    try:
        components = video.get_components()
    except (av.FFmpegError, ValueError, OSError) as e:
        raise VideoReadError(f"The {name} VIDEO could not be decoded: {e}.") from e
    frames = components.images
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[0] == 0:
        raise VideoReadError(f"The {name} VIDEO holds no frames.")
    rate = components.frame_rate
    fps = float(rate) if rate and math.isfinite(float(rate)) and rate > 0 else 0.0
    audio = components.audio
    return check_frames(frames), fps, (check_audio(dict(audio)) if audio is not None else None)
