"""Output names the ComfyUI way: nodes/output_paths.py (through folder_paths)."""

import importlib
import pathlib

import folder_paths
import pytest

from exvideo_core.errors import InputError, SaveError
from exvideo_harness.pack import load_pack_nodes
from exvideo_harness.video_frames import listing


@pytest.fixture(scope="module")
def output_paths():
    return importlib.import_module(f"{load_pack_nodes().__name__}.output_paths")


# ---------------------------------------------------------------- output names

def test_save_path_names_like_comfyui_and_counts_up(output_paths, tmp_path):
    first = output_paths.save_path(tmp_path, "ExVideo/video", ".mp4")
    assert first == output_paths.OutputFile(str(tmp_path / "ExVideo" / "video_00001_.mp4"), "video_00001_.mp4", "ExVideo")
    pathlib.Path(first.path).write_bytes(b"x")
    assert output_paths.save_path(tmp_path, "ExVideo/video", "mp4").filename == "video_00002_.mp4"


def test_trailing_slash_prefix_does_not_overwrite(output_paths, tmp_path):
    # ComfyUI's counter misses existing files when the prefix ends with a slash.
    first = output_paths.save_path(tmp_path, "ExVideo/video/", ".mp4")
    pathlib.Path(first.path).write_bytes(b"x")
    assert output_paths.save_path(tmp_path, "ExVideo/video/", ".mp4").path != first.path


def test_taken_counter_is_skipped_for_every_extension(output_paths, tmp_path, monkeypatch):
    (tmp_path / "v_00001_.mp4").write_bytes(b"x")
    (tmp_path / "v_00002_.png").write_bytes(b"x")
    # Whatever the listing-based counter says, taken names are never returned.
    monkeypatch.setattr(folder_paths, "get_save_image_path", lambda prefix, out, w, h: (str(tmp_path), "v", 1, "", prefix))
    assert output_paths.save_path(tmp_path, "v", ".mp4").filename == "v_00002_.mp4"
    assert output_paths.save_path(tmp_path, "v", ".mp4", companions=(".png",)).filename == "v_00003_.mp4"


@pytest.mark.parametrize("prefix", ["../x", "/abs/x", "a/../../x", "ExVideo/../../x", "..", "../"])
def test_prefix_escaping_the_output_folder_is_refused(output_paths, tmp_path, prefix):
    output = tmp_path / "output"
    output.mkdir()
    with pytest.raises(InputError, match="leads outside the output folder"):
        output_paths.save_path(output, prefix, ".mp4")
    assert listing(tmp_path) == ["output"]


@pytest.mark.parametrize("prefix", ["", ".", "sub/.."])
def test_prefix_without_a_name_is_refused(output_paths, tmp_path, prefix):
    with pytest.raises(InputError, match="does not name a file"):
        output_paths.save_path(tmp_path, prefix, ".mp4")


def test_prefix_variables_are_expanded(output_paths, tmp_path):
    out = output_paths.save_path(tmp_path, "clips/%width%x%height%", ".mp4", width=64, height=48)
    assert (out.subfolder, out.filename) == ("clips", "64x48_00001_.mp4")


def test_output_subfolder_on_a_read_only_disk(output_paths, tmpfs):
    folder = tmpfs("ro,size=1m")
    with pytest.raises(SaveError, match="Read-only file system. Nothing was written"):
        output_paths.save_path(folder, "videos/clip", ".mp4")
    assert list(folder.iterdir()) == []
