"""One atomic writer for every save: exvideo_core.atomic_file.

MP4 videos, contact sheets, extensions, LoRA files, training states and clip
caches all go through `atomic_file.write_file`, so each leaves no partial or
temporary file when its write fails midway, and names the failure the same way.
"""

import os

import pytest
import torch

from exvideo_core import atomic_file, frames, safetensors_io, save_exvideo, video_io
from exvideo_core.errors import ExVideoError, SaveError, VideoWriteError
from exvideo_core.train import TrainConfig, lora_state_dict
from exvideo_core.train.lora import factors, new_adapters, save_lora
from exvideo_core.train.state import TrainState, save_state
from exvideo_harness.video_frames import gray_levels, listing


def test_a_write_lands_complete_and_replaces_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic_file.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    assert atomic_file.write_file(target, lambda tmp: tmp.write_bytes(b"new") and "result") == "result"
    assert target.read_bytes() == b"new" and listing(tmp_path) == ["out.bin"] and len(synced) == 1


def test_write_file_makes_the_folder_or_requires_it(tmp_path):
    atomic_file.write_file(tmp_path / "a" / "b.bin", lambda tmp: tmp.write_bytes(b"x"))
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"x"
    with pytest.raises(VideoWriteError, match="missing is not an existing folder"):
        atomic_file.write_file(tmp_path / "missing" / "c.bin", lambda tmp: None, error=VideoWriteError,
                               make_folder=False)
    assert not (tmp_path / "missing").exists()


def test_pack_errors_from_the_writer_pass_through(tmp_path):
    def write(tmp):
        raise SaveError("already named")

    with pytest.raises(SaveError, match="^already named$"):
        atomic_file.write_file(tmp_path / "x.bin", write, error=VideoWriteError)
    assert listing(tmp_path) == []


def _save_state(weights, path):
    save_state(TrainState(TrainConfig(steps=1), 0, [], weights, None, {}, None, None, "data"), path)


def _save_lora(weights, path):
    adapters = new_adapters(weights, 4, 2.0, seed=0, device=torch.device("cpu"))
    save_lora(lora_state_dict(factors(adapters), 2.0), path)


WRITERS = {  # name: (file name, error, write(weights, path))
    "mp4": ("clip.mp4", VideoWriteError, lambda _, path: video_io.write_mp4(gray_levels(2), path, 8)),
    "contact sheet": ("sheet.png", VideoWriteError,
                      lambda _, path: frames.write_png(frames.contact_sheet(gray_levels(2)), path)),
    "safetensors": ("t.safetensors", SaveError, lambda _, path: safetensors_io.save({"a": torch.ones(4)}, path)),
    "extension": ("ext.safetensors", SaveError, lambda weights, path: save_exvideo(weights, path)),
    "training state": ("run.state.safetensors", SaveError, _save_state),
    "lora": ("lora.safetensors", SaveError, _save_lora),
}


@pytest.mark.parametrize("name", WRITERS)
def test_every_writer_leaves_nothing_when_the_write_fails_midway(weights, tmp_path, monkeypatch, name):
    """The disk fills up as the written file is flushed: the temp file is gone, the old file intact."""
    filename, error, write = WRITERS[name]
    target = tmp_path / filename
    target.write_bytes(b"previous")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_file.os, "fsync", full_disk)
    with pytest.raises(error, match=f"{filename}: No space left on device. Nothing was written") as raised:
        write(weights, target)
    assert isinstance(raised.value, ExVideoError)
    assert listing(tmp_path) == [filename] and target.read_bytes() == b"previous"
