"""The pack puts the templates' example image into ComfyUI's input folder on load, never over a user's file."""

import asyncio
import importlib
import logging
import os
import pathlib

import pytest

import folder_paths

from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.pack import load_pack_nodes

IMAGE = "exvideo_example.png"
SHIPPED = REPO_ROOT / "example_workflows" / IMAGE


@pytest.fixture(scope="module")
def pack():
    return load_pack_nodes()


@pytest.fixture(scope="module")
def example_inputs(pack):
    return importlib.import_module(f"{pack.__name__}.example_inputs")


@pytest.fixture
def input_dir(tmp_path, monkeypatch) -> pathlib.Path:
    folder = tmp_path / "input"
    folder.mkdir()
    monkeypatch.setattr(folder_paths, "input_directory", str(folder))
    return folder


def test_every_template_image_is_an_example_input(example_inputs):
    """What the templates' Load Image nodes name is what the pack installs."""
    import json

    named = {node["widgets_values"][0] for path in (REPO_ROOT / "example_workflows").glob("*.json")
             for node in json.loads(path.read_text())["nodes"] if node["type"] == "LoadImage"}
    assert named == set(example_inputs.EXAMPLE_INPUTS)
    assert all((REPO_ROOT / "example_workflows" / name).is_file() for name in named)


def test_loading_the_pack_copies_the_image_into_an_empty_input_folder(pack, input_dir):
    extension = asyncio.run(pack.comfy_entrypoint())
    assert asyncio.run(extension.get_node_list())
    assert (input_dir / IMAGE).read_bytes() == SHIPPED.read_bytes()


def test_an_existing_file_is_never_overwritten(example_inputs, input_dir):
    users = input_dir / IMAGE
    users.write_bytes(b"the user's own picture")
    before = users.stat().st_mtime_ns
    assert example_inputs.install_example_inputs() == []
    assert users.read_bytes() == b"the user's own picture"
    assert users.stat().st_mtime_ns == before


def test_a_link_of_that_name_is_left_alone_even_a_dangling_one(example_inputs, input_dir):
    (input_dir / IMAGE).symlink_to(input_dir / "gone.png")
    assert example_inputs.install_example_inputs() == []
    assert os.readlink(input_dir / IMAGE) == str(input_dir / "gone.png")
    assert not (input_dir / "gone.png").exists()


def test_a_second_load_changes_nothing(example_inputs, input_dir):
    assert example_inputs.install_example_inputs() == [IMAGE]
    assert example_inputs.install_example_inputs() == []
    assert (input_dir / IMAGE).read_bytes() == SHIPPED.read_bytes()


def test_a_missing_input_folder_is_created(example_inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(folder_paths, "input_directory", str(tmp_path / "not" / "yet"))
    assert example_inputs.install_example_inputs() == [IMAGE]
    assert (tmp_path / "not" / "yet" / IMAGE).is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_input_folder_only_warns(example_inputs, input_dir, caplog):
    input_dir.chmod(0o555)
    try:
        with caplog.at_level(logging.WARNING):
            assert example_inputs.install_example_inputs() == []
    finally:
        input_dir.chmod(0o755)
    assert not (input_dir / IMAGE).exists()
    assert any(IMAGE in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_read_only_file_system_only_warns(example_inputs, input_dir, monkeypatch, caplog):
    """As a read-only mount answers (simulated: root, who runs the suite in CI, may write anywhere)."""
    def read_only_open(path, mode="r", *args, **kwargs):
        if "x" in mode or "w" in mode:
            raise OSError(30, "Read-only file system", path)
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(example_inputs, "open", read_only_open, raising=False)
    with caplog.at_level(logging.WARNING):
        assert example_inputs.install_example_inputs() == []
    assert list(input_dir.iterdir()) == []
    assert any("Read-only file system" in r.getMessage() for r in caplog.records)


def test_an_unwritable_input_folder_only_warns_and_the_pack_still_loads(pack, example_inputs, tmp_path,
                                                                        monkeypatch, caplog):
    # Root ignores permission bits, so the folder is unwritable by being a file.
    blocked = tmp_path / "input"
    blocked.write_text("not a folder")
    monkeypatch.setattr(folder_paths, "input_directory", str(blocked))
    with caplog.at_level(logging.WARNING):
        assert example_inputs.install_example_inputs() == []
        extension = asyncio.run(pack.comfy_entrypoint())
    assert asyncio.run(extension.get_node_list())
    assert blocked.read_text() == "not a folder"
    assert [r for r in caplog.records if IMAGE in r.getMessage() and r.levelno == logging.WARNING]


def test_a_failed_copy_leaves_no_partial_file(example_inputs, input_dir, monkeypatch, caplog):
    def broken_copy(src, dst, *args, **kwargs):
        dst.write(src.read(100))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(example_inputs.shutil, "copyfileobj", broken_copy)
    with caplog.at_level(logging.WARNING):
        assert example_inputs.install_example_inputs() == []
    assert list(input_dir.iterdir()) == []
    assert any("No space left" in r.getMessage() for r in caplog.records)
