"""ExVideo Save Video and ExVideo Load Video, alone and with native ComfyUI video nodes."""

import importlib
import json
import os

import folder_paths
import pytest
import torch

import comfy.model_management
from comfy_api.v0_0_2 import io
from exvideo_core import video_io
from exvideo_core.errors import InputError, VideoError
from exvideo_core.frames import rgb_uint8
from exvideo_harness.pack import load_pack_nodes
from exvideo_harness.video_frames import MEAN_ERROR_BOUND, frame_indices, gray_levels, listing, moving_pattern, per_frame_error


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


def load(nodes_video, name, **options):
    """Load Video with VideoHelperSuite's defaults but for `options`."""
    defaults = dict(force_rate=0.0, custom_width=0, custom_height=0, frame_load_cap=0, skip_first_frames=0,
                    select_every_nth=1)
    return nodes_video.ExVideoLoadVideo.execute(name, **{**defaults, **options})


def tone(seconds: float, rate: int = 8000) -> dict:
    t = torch.arange(round(seconds * rate)) / rate
    return {"waveform": torch.sin(2 * torch.pi * 440 * t).expand(2, -1)[None].clone(), "sample_rate": rate}


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
    with pytest.raises(InputError, match="outside the output folder"):
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

    result = load(nodes_video, "levels.mp4", select_every_nth=2, frame_load_cap=3, skip_first_frames=1)
    frames, count, fps, audio, video = result.args
    assert frame_indices(frames) == [1, 3, 5] and count == 3 and fps == 10.0 and audio is None
    assert video.get_components().images is frames and video.get_frame_rate() == 10

    node = nodes_video.ExVideoLoadVideo
    assert node.validate_inputs("levels.mp4") is True
    assert "not found" in node.validate_inputs("missing.mp4")
    assert "outside" in node.validate_inputs("../output/x.mp4")
    assert "outside" in node.validate_inputs("/etc/passwd")


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
    frames = load(nodes_video, "levels.mp4").args[0]
    comfy_nodes.SaveImage().save_images(frames, filename_prefix="frames")
    assert sorted(p.name for p in output.glob("frames_*.png")) == [f"frames_{i:05}_.png" for i in (1, 2, 3)]


def test_load_node_resizes_keeps_aspect_and_returns_the_audio(nodes_video, comfy_dirs):
    _, inputs = comfy_dirs
    video_io.write_mp4(moving_pattern(10, 32, 64), inputs / "wide.mp4", 10, audio=tone(1.0))

    frames, count, fps, audio, video = load(nodes_video, "wide.mp4", custom_width=32, skip_first_frames=5).args
    assert frames.shape == (5, 16, 32, 3) and count == 5 and fps == 10.0  # height from the 2:1 aspect
    # The sound of frames 5..9: half a second from 0.5 s.
    assert audio["sample_rate"] == 8000 and audio["waveform"].shape == (1, 2, 4000)
    components = video.get_components()
    assert components.audio is audio and components.frame_rate == 10

    frames = load(nodes_video, "wide.mp4", custom_width=16, custom_height=16, force_rate=5).args[0]
    assert frames.shape == (5, 16, 16, 3)  # centre-cropped square, every other frame


def test_save_node_embeds_prompt_and_workflow_like_native_save_video(nodes_video, comfy_dirs):
    output, _ = comfy_dirs
    prompt = {"7": {"class_type": "ExVideoSaveMP4", "inputs": {"fps": 8.0}}}
    workflow = {"nodes": [{"id": 7, "type": "ExVideoSaveMP4"}], "links": []}
    node = nodes_video.ExVideoSaveMP4.PREPARE_CLASS_CLONE({io.Hidden.prompt: prompt, io.Hidden.extra_pnginfo: {"workflow": workflow}})
    node.execute(gray_levels(3), 8.0, "meta", False)
    tags = video_io.read_metadata(output / "meta_00001_.mp4")
    assert json.loads(tags["prompt"]) == prompt and json.loads(tags["workflow"]) == workflow

    nodes_video.ExVideoSaveMP4.execute(gray_levels(3), 8.0, "bare", False)  # outside the server: no hidden inputs
    assert not {"prompt", "workflow"} & set(video_io.read_metadata(output / "bare_00001_.mp4"))


def test_save_node_codec_crf_and_audio(nodes_video, comfy_dirs):
    output, _ = comfy_dirs
    frames = moving_pattern(6, 32, 32)
    nodes_video.ExVideoSaveMP4.execute(frames, 12.0, "q", False, codec="h264", crf=40, audio=tone(2.0))
    nodes_video.ExVideoSaveMP4.execute(frames, 12.0, "q", False, codec="h264_lossless")
    low, exact = output / "q_00001_.mp4", output / "q_00002_.mp4"
    assert video_io.read_audio(low)["waveform"].shape[2] == pytest.approx(4000, abs=1024)  # cut to 0.5 s
    assert video_io.read_audio(exact) is None
    expected = torch.from_numpy(torch.stack([torch.from_numpy(rgb_uint8(f)) for f in frames]).numpy()).float() / 255
    assert torch.equal(video_io.read_video(exact)[0], expected)
    assert per_frame_error(video_io.read_video(low)[0], frames).mean() > per_frame_error(expected, frames).mean()


def test_save_node_takes_a_native_video_with_its_rate_and_audio(nodes_video, comfy_dirs):
    from comfy_extras import nodes_video as native

    output, inputs = comfy_dirs
    video_io.write_mp4(gray_levels(6), inputs / "sound.mp4", 6, audio=tone(1.0))
    loaded = native.LoadVideo.execute("sound.mp4").args[0]  # native Load Video: a VideoFromFile
    nodes_video.ExVideoSaveMP4.execute(loaded, 30.0, "from_native", True)  # fps 30 is the IMAGE rate: unused
    saved = output / "from_native_00001_.mp4"
    frames, fps = video_io.read_video(saved)
    assert frame_indices(frames) == list(range(6)) and fps == 6.0
    assert video_io.read_audio(saved)["waveform"].shape[:2] == (1, 2)
    assert (output / "from_native_00001_.png").is_file()

    created = native.CreateVideo.execute(gray_levels(4), 4.0, tone(1.0)).args[0]  # native Create Video
    nodes_video.ExVideoSaveMP4.execute(created, 30.0, "created", False)
    assert video_io.read_video(output / "created_00001_.mp4")[1] == 4.0


def test_native_nodes_take_our_video_and_audio(nodes_video, comfy_dirs):
    from comfy_extras import nodes_video as native

    output, inputs = comfy_dirs
    video_io.write_mp4(gray_levels(4), inputs / "sound.mp4", 8, audio=tone(0.5))
    _, _, _, audio, video = load(nodes_video, "sound.mp4").args
    images, native_audio, fps = native.GetVideoComponents.execute(video).args
    assert frame_indices(images) == [0, 1, 2, 3] and fps == 8.0 and native_audio is audio
    node = native.SaveVideo.PREPARE_CLASS_CLONE({})
    node.execute(video, "native_save", "auto", "auto")
    assert frame_indices(video_io.read_video(output / "native_save_00001_.mp4")[0]) == [0, 1, 2, 3]


def test_save_node_refuses_what_is_not_frames(nodes_video, comfy_dirs):
    output, _ = comfy_dirs
    with pytest.raises(VideoError, match="images must be an IMAGE batch or a VIDEO, got dict"):
        nodes_video.ExVideoSaveMP4.execute({"samples": torch.zeros(1, 4, 8, 8)}, 8.0, "latent", False)
    assert listing(output) == []
