"""The training nodes, called as ComfyUI calls them, on the small SVD model and the moving-square video."""

import importlib
import os
import re
import sys
import types

import pytest
import torch

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io
from comfy_execution.caching import to_hashable

from exvideo_core import load_exvideo
from exvideo_core.train import motion_bucket
from exvideo_core.train.dataset import MEASURE_MOTION
from exvideo_core.train.session import ResumeDataError
from exvideo_core.video_io import write_mp4
from exvideo_harness.pack import load_pack_nodes
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, build_svd_model
from exvideo_harness.train_data import CLIP_FRAMES, moving_square_video, tiny_clip_vision, tiny_vae


@pytest.fixture(scope="module")
def train_nodes():
    return importlib.import_module(f"{load_pack_nodes().__name__}.nodes_train")


@pytest.fixture
def comfy_dirs(tmp_path, monkeypatch):
    for name in ("output", "input"):
        (tmp_path / name).mkdir()
        monkeypatch.setattr(folder_paths, f"{name}_directory", str(tmp_path / name))
    return tmp_path


@pytest.fixture(scope="module")
def clips(train_nodes):
    with torch.inference_mode():  # as ComfyUI runs nodes
        out = train_nodes.ExVideoTrainingClips.execute(
            tiny_vae(), tiny_clip_vision(), "", CLIP_FRAMES, 128, 128, 1, MEASURE_MOTION,
            images=moving_square_video(16))
    return out.result[0]


def progress_texts(monkeypatch, node_cls, node_id: str) -> list[tuple[str, str]]:
    """The (text, node id) pairs the node sends as progress text, run as node `node_id` of a running server."""
    shown = []
    server = types.SimpleNamespace(send_progress_text=lambda text, sent_to: shown.append((text, sent_to)))
    monkeypatch.setitem(sys.modules, "server", types.SimpleNamespace(PromptServer=types.SimpleNamespace(
        instance=server)))
    monkeypatch.setattr(node_cls, "hidden", io.HiddenHolder.from_dict({io.Hidden.unique_id: node_id}))
    return shown


def test_clips_from_images(clips):
    assert len(clips) == 1 and clips[0].num_frames == CLIP_FRAMES


def test_motion_bucket_0_is_bucket_0_and_minus_1_measures(train_nodes, clips, caplog):
    """0 is SVD's bucket 0 here as in the samplers; workflows that used 0 to measure get a warning saying so."""
    assert clips[0].motion_bucket_id == motion_bucket(clips[0].motion_score) > 0
    with torch.inference_mode(), caplog.at_level("WARNING"):
        (fixed,) = train_nodes.ExVideoTrainingClips.execute(
            tiny_vae(), tiny_clip_vision(), "", CLIP_FRAMES, 128, 128, 1, 0, images=moving_square_video(16)).result[0]
    assert fixed.motion_bucket_id == 0
    assert f"motion_bucket_id 0 trains every clip at bucket 0, the stillest; {MEASURE_MOTION} measures" in caplog.text


@pytest.mark.parametrize("no_folder", ["(none)", ""])  # the list's first choice; "" as workflows saved it before
def test_clips_need_a_source(train_nodes, no_folder):
    with pytest.raises(ValueError, match="video_folder or an images input"):
        train_nodes.ExVideoTrainingClips.execute(tiny_vae(), tiny_clip_vision(), no_folder, 8, 128, 128, 1, 0)


def test_video_folder_lists_the_input_subfolders_as_native_dataset_nodes_do(train_nodes, comfy_dirs):
    from comfy_extras.nodes_dataset import LoadImageDataSetFromFolderNode

    for folder in ("videos/more", "other"):
        (comfy_dirs / "input" / folder).mkdir(parents=True)

    def options(node, name):
        (combo,) = [item for item in node.GET_SCHEMA().inputs if item.id == name]
        return combo.options

    native = options(LoadImageDataSetFromFolderNode, "folder")
    assert native == ["other", "videos", "videos/more"]
    assert options(train_nodes.ExVideoTrainingClips, "video_folder") == [train_nodes.NO_FOLDER, *native]
    # ComfyUI skips its in-the-list check for an input that validate_inputs takes: a typed path still runs.
    assert train_nodes.ExVideoTrainingClips.validate_inputs(video_folder="typed/not/listed") is True


def test_video_folder_must_stay_inside_the_input_folder(train_nodes, comfy_dirs):
    with pytest.raises(Exception, match="outside"):
        train_nodes.ExVideoTrainingClips.execute(tiny_vae(), tiny_clip_vision(), "../elsewhere", 8, 128, 128, 1, 0)


def test_clips_are_encoded_again_when_the_folders_videos_change(train_nodes, comfy_dirs):
    """ComfyUI reuses a node's output while its fingerprint stays: adding, rewriting or removing a video changes it."""
    folder = comfy_dirs / "input" / "videos"
    folder.mkdir()
    write_mp4(moving_square_video(12), folder / "a.mp4", fps=30, crf=0)
    node = train_nodes.ExVideoTrainingClips

    def fingerprint():
        return to_hashable(node.fingerprint_inputs(video_folder="videos", frames=8))

    prints = [fingerprint()]
    write_mp4(moving_square_video(12), folder / "b.mp4", fps=30, crf=0)
    prints.append(fingerprint())
    write_mp4(moving_square_video(10), folder / "b.mp4", fps=30, crf=0)
    os.utime(folder / "b.mp4", ns=(1, 1))  # a different mtime even on coarse-clock filesystems
    prints.append(fingerprint())
    (folder / "b.mp4").unlink()
    prints.append(fingerprint())
    assert len(set(prints[:3])) == 3 and prints[3] == prints[0]
    assert node.fingerprint_inputs(video_folder=train_nodes.NO_FOLDER) == ""
    assert node.fingerprint_inputs(video_folder="../elsewhere") == ""  # execute raises the error


def test_train_plot_and_save(train_nodes, clips, comfy_dirs, monkeypatch, caplog):
    model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
    previews = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: previews.append((value, total, preview)))
    shown = progress_texts(monkeypatch, train_nodes.ExVideoTrain, "7")
    with torch.inference_mode(), caplog.at_level("INFO"):
        patched, weights, loss_map, lora = train_nodes.ExVideoTrain.execute(
            model, clips, 2, "full", 1e-4, 4, 4.0, 1, True, 0, "node_run", True).result
    losses = loss_map["loss"]  # ComfyUI's LOSS_MAP, as Train LoRA gives it
    assert set(loss_map) == {"loss"} and len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    # The progress bar carries the loss curve as the node's preview, and the console the loss.
    assert [(value, total) for value, total, _ in previews] == [(1, 2), (2, 2)]
    kind, curve, _ = previews[-1][2]
    assert kind == "PNG" and curve.size == train_nodes.PREVIEW_SIZE
    assert f"step 2/2, loss {losses[1]:.5f}" in caplog.text
    # Before the first step, in the log and on the node: how large the state will be and where it goes.
    state = comfy_dirs / "output" / "exvideo_training" / "node_run.state.safetensors"
    (told,) = [r.getMessage() for r in caplog.records if "resumable state" in r.getMessage()]
    assert re.fullmatch(rf"ExVideo Post-Tune: the resumable state of this run takes ([0-9.]+) MiB and is written "
                        rf"to {re.escape(str(state))} at the end and when interrupted\.", told)
    # The tensors; the header (the tensor table and metadata) adds under a MiB.
    assert 0 < state.stat().st_size / 2**20 - float(told.split(" takes ")[1].split()[0]) < 1
    assert caplog.text.index(told) < caplog.text.index("step 1/2")
    assert shown == [(told, "7")]
    assert lora == {} and not lora  # full mode: everything trained is in the extension
    assert weights.num_frames == CLIP_FRAMES
    assert (comfy_dirs / "output" / "exvideo_training" / "node_run.state.safetensors").is_file()
    assert patched is not model

    (plot,) = train_nodes.ExVideoLossPlot.execute(loss_map, 256, 128, 10, False).result
    assert plot.shape == (1, 128, 256, 3) and 0 <= plot.min() and plot.max() <= 1
    # ComfyUI's own Plot Loss Graph draws it too (its preview goes to the temp folder).
    from comfy_extras.nodes_train import LossGraphNode

    monkeypatch.setattr(folder_paths, "temp_directory", str(comfy_dirs / "temp"))
    LossGraphNode.execute(loss_map, "loss_graph")
    assert len(list((comfy_dirs / "temp").glob("*.png"))) == 1

    train_nodes.ExVideoSaveExtension.execute(weights, "exvideo/custom", "diffsynth")
    (saved,) = (comfy_dirs / "output" / "exvideo").glob("custom_*.safetensors")
    reloaded = load_exvideo(saved)
    for key, value in weights.tensors.items():
        assert torch.equal(reloaded.tensors[key], value), key
    comfy.model_management.unload_all_models()


def test_resume_continues_the_saved_run(train_nodes, clips, comfy_dirs):
    model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
    args = (model, clips, 1, "full", 1e-4, 4, 4.0, 1, False, 0, "resumed", True)
    with torch.inference_mode():
        first = train_nodes.ExVideoTrain.execute(*args).result[2]["loss"]
        more = train_nodes.ExVideoTrain.execute(model, clips, 2, *args[3:]).result[2]["loss"]
    assert len(first) == 1 and len(more) == 2 and more[0] == first[0]
    comfy.model_management.unload_all_models()


def test_resume_on_other_clips_is_refused_naming_the_run_and_how_to_start_over(train_nodes, clips, comfy_dirs):
    """A new dataset under the run name of an old run (the default name, resume on) does not continue it."""
    model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
    with torch.inference_mode():
        other = train_nodes.ExVideoTrainingClips.execute(
            tiny_vae(), tiny_clip_vision(), "", CLIP_FRAMES, 128, 128, 1, MEASURE_MOTION,
            images=moving_square_video(16, square=48)).result[0]
        args = (1, "full", 1e-4, 4, 4.0, 1, False, 0, "exvideo_run", True)
        train_nodes.ExVideoTrain.execute(model, clips, *args)
        with pytest.raises(ResumeDataError) as refused:
            train_nodes.ExVideoTrain.execute(model, other, *args)
        message = str(refused.value)
        assert "exvideo_run.state.safetensors holds a run trained on other clips than these" in message
        assert message.endswith(train_nodes.NEW_RUN_HINT + ".")
        # As the message says: resume off starts the run over on the new clips.
        assert len(train_nodes.ExVideoTrain.execute(model, other, *args[:-1], False).result[2]["loss"]) == 1
    comfy.model_management.unload_all_models()


def test_resume_with_other_settings_is_refused_naming_them_as_the_cli_does(train_nodes, clips, comfy_dirs):
    from exvideo_core.train import TrainConfigError

    model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
    args = (model, clips, 1, "full", 1e-4, 4, 4.0, 1, False, 0, "changed", True)
    with torch.inference_mode():
        first = train_nodes.ExVideoTrain.execute(*args).result[2]["loss"]
        with pytest.raises(TrainConfigError, match=r"other settings \(mode, learning_rate;.*choose another run_name"):
            train_nodes.ExVideoTrain.execute(model, clips, 2, "lora", 1e-3, *args[5:])
        # resume off starts the run over with the new settings.
        again = train_nodes.ExVideoTrain.execute(model, clips, 1, "full", 1e-3, *args[5:11], False).result[2]["loss"]
    assert len(first) == len(again) == 1
    comfy.model_management.unload_all_models()
