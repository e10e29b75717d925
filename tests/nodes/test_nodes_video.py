"""The Save Video (MP4) / Load Video (frames) nodes."""

import importlib
import os

import folder_paths
import pytest

import comfy.model_management
from exvideo_core import video_io
from exvideo_core.errors import InputError
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
