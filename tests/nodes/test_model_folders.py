"""models/exvideo: registered with ComfyUI and created when the pack loads, never failing the load; and
output/exvideo, where ExVideo Save Extension writes, registered after it so the loaders list saved files."""

import logging
import sys

import pytest

import folder_paths

from exvideo_harness.pack import import_pack_nodes

FRESH = "exvideo_pack_nodes_fresh_load"


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """ComfyUI's folder registry as at start-up, with models/ and output/ in a temporary folder (not created yet)."""
    models = tmp_path / "models"
    monkeypatch.setattr(folder_paths, "models_dir", str(models))
    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path / "output"))
    registry = {name: value for name, value in folder_paths.folder_names_and_paths.items() if name != "exvideo"}
    monkeypatch.setattr(folder_paths, "folder_names_and_paths", registry)
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    return models


def saved_folder(models_dir) -> str:
    return str(models_dir.parent / "output" / "exvideo")


def load_pack_afresh():
    """The pack's nodes package imported anew, as ComfyUI does on start-up, then dropped again."""
    try:
        return import_pack_nodes(FRESH)
    finally:
        for name in [n for n in sys.modules if n == FRESH or n.startswith(FRESH + ".")]:
            del sys.modules[name]


def test_loading_the_pack_creates_models_exvideo(models_dir):
    pack = load_pack_afresh()
    assert folder_paths.get_folder_paths("exvideo") == [str(models_dir / "exvideo"), saved_folder(models_dir)]
    assert (models_dir / "exvideo").is_dir() and pack.NODES


def test_an_extra_model_paths_folder_listed_first_is_the_one_created(models_dir, tmp_path):
    mine = tmp_path / "shared" / "exvideo"
    folder_paths.add_model_folder_path("exvideo", str(mine), is_default=True)  # as extra_model_paths.yaml does
    load_pack_afresh()
    assert folder_paths.get_folder_paths("exvideo") == [str(mine), str(models_dir / "exvideo"),
                                                        saved_folder(models_dir)]
    assert mine.is_dir()


def test_a_folder_that_cannot_be_made_only_warns_and_the_pack_loads(models_dir, caplog):
    models_dir.write_text("a file where models/ should be")
    with caplog.at_level(logging.WARNING):
        pack = load_pack_afresh()
    assert pack.NODES and folder_paths.get_folder_paths("exvideo") == [str(models_dir / "exvideo"),
                                                                       saved_folder(models_dir)]
    assert [r for r in caplog.records if "could not create the model folder" in r.getMessage()]


def saved(pack, weights, prefix: str) -> str:
    """ExVideo Save Extension of `weights` under `prefix`; the text it shows on the node."""
    result = pack.nodes_train.ExVideoSaveExtension.execute(weights, prefix, "diffsynth")
    (text,) = result.ui.as_dict()["text"]
    return text


def test_a_saved_extension_is_listed_by_the_loaders_without_moving_it(models_dir, weights):
    """It used to go to output/exvideo, which no loader read: the user had to find and move the file."""
    pack = load_pack_afresh()
    text = saved(pack, weights, "exvideo/custom")
    path = models_dir.parent / "output" / "exvideo" / "custom_00001_.safetensors"
    assert path.is_file()
    assert "custom_00001_.safetensors" in pack.model_folders.extension_names()
    assert text == (f"Saved {path}. The ExVideo loaders list it as custom_00001_.safetensors (press R to refresh "
                    f"the lists).")


def test_a_model_saved_outside_the_model_folders_is_said_to_be_unlisted(models_dir, weights):
    pack = load_pack_afresh()
    text = saved(pack, weights, "elsewhere/custom")
    path = models_dir.parent / "output" / "elsewhere" / "custom_00001_.safetensors"
    assert path.is_file() and pack.model_folders.extension_names() == []
    assert text == (f"Saved {path}. No exvideo model folder holds it, so the ExVideo loaders do not list it: move it "
                    f"to {models_dir / 'exvideo'}, or save with a filename_prefix starting with exvideo/.")
