"""One training session for the Post-Tune node and the CLI: the same LoRA files, the same resume rule, and
unloading the training clone through ComfyUI's own functions. On the small SVD with two 8-frame clips."""

import dataclasses
import importlib
import pathlib
import sys

import pytest
import torch

import comfy.model_management
import folder_paths

from exvideo_core import load_exvideo
from exvideo_core.errors import InputError
from exvideo_core.safetensors_io import load, save
from exvideo_core.train import TrainConfig, Trainer, VideoClipDataset, cli, encode_clips
from exvideo_core.train.cache import save_clip_cache
from exvideo_core.train.lora import REQUIRES, extension_fingerprint
from exvideo_core.train.session import (RESUMABLE_CHANGES, ResumeDataError, ResumeSettingsError, SessionStart,
                                        TrainingSession, changed_settings)
from exvideo_core.video_io import write_mp4
from exvideo_harness.pack import load_pack_nodes
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, build_svd_model
from exvideo_harness.train_data import moving_square_video, tiny_clip_vision, tiny_vae, training_clips

LORA = TrainConfig(steps=2, mode="lora", lora_rank=4, lora_alpha=8.0, learning_rate=1e-2,
                   gradient_checkpointing=False, seed=3)


@pytest.fixture(autouse=True)
def unload_after():
    yield
    comfy.model_management.unload_all_models()


def small_checkpoint(path: pathlib.Path, encoders: bool):
    assert not encoders, "the clip cache is written beforehand"
    return build_svd_model(SMALL_UNET_CONFIG, seed=0), None, None


def test_cli_and_node_write_the_same_lora_file_for_the_same_training(tmp_path, monkeypatch):
    clips = list(training_clips())
    # The CLI, in-process, on clips already in its cache (named after the folder's videos, which it lists).
    (tmp_path / "videos").mkdir()
    write_mp4(moving_square_video(8), tmp_path / "videos" / "square.mp4", fps=30)
    run = cli.RunConfig(checkpoint=tmp_path / "svd.safetensors", videos=tmp_path / "videos",
                        output=tmp_path / "run", train=LORA, data=dict(cli.DATA_DEFAULTS))
    run.output.mkdir()
    save_clip_cache(clips, run.cache_path)
    assert cli.train(run, torch.device("cpu"), load_checkpoint=small_checkpoint)
    cli_tensors, cli_metadata = load(run.output / "lora.safetensors")

    # The node: Post-Tune with the same settings, then Save ExVideo LoRA with its exvideo output.
    (tmp_path / "output").mkdir()
    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path / "output"))
    train = importlib.import_module(f"{load_pack_nodes().__name__}.nodes_train")
    with torch.inference_mode():
        _, exvideo, _, lora = train.ExVideoTrain.execute(
            build_svd_model(SMALL_UNET_CONFIG, seed=0), clips, LORA.steps, LORA.mode, LORA.learning_rate,
            LORA.lora_rank, LORA.lora_alpha, LORA.grad_accumulation, LORA.gradient_checkpointing, LORA.seed,
            "same", False).result
    train.ExVideoSaveLoRA.execute(lora, "loras/same", "fp32", exvideo)
    (node_file,) = (tmp_path / "output" / "loras").glob("same_*.safetensors")
    node_tensors, node_metadata = load(node_file)

    assert set(cli_tensors) == set(node_tensors)
    assert set(cli_metadata) == set(node_metadata)  # one schema: no 'exvideo.apply_after' any more
    assert cli_metadata["exvideo.requires"] == REQUIRES and cli_metadata["exvideo.kind"] == "lora"
    assert cli_metadata["exvideo.extension_fingerprint"] == extension_fingerprint(
        load_exvideo(run.output / "exvideo.safetensors"))
    for key in ("exvideo.lora_rank", "exvideo.lora_alpha", "exvideo.lora_dtype", "exvideo.format_version",
                "exvideo.extension_num_frames", "exvideo.extension_training_steps"):
        assert cli_metadata[key] == node_metadata[key], key
    for key, value in cli_tensors.items():
        torch.testing.assert_close(node_tensors[key], value, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run saved before its first step: enough to resume."""
    path = tmp_path_factory.mktemp("session") / "state.safetensors"
    Trainer(build_svd_model(SMALL_UNET_CONFIG, seed=0), training_clips(), LORA).save_state(path)
    return path


def test_what_may_change_on_resume_is_defined_once():
    assert RESUMABLE_CHANGES == {"steps", "save_every"}
    assert changed_settings(LORA, dataclasses.replace(LORA, steps=9, save_every=3)) == []
    assert changed_settings(LORA, dataclasses.replace(LORA, seed=4, learning_rate=1e-3)) == ["learning_rate",
                                                                                               "seed"]


def test_resume_with_other_settings_is_refused_naming_them(saved_run):
    model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
    wanted = dataclasses.replace(LORA, seed=4, lora_rank=8)
    with pytest.raises(ResumeSettingsError, match=r"other settings \(lora_rank, seed;.*Restore them, or start "
                                                  r"afresh") as error:
        TrainingSession.open(model, training_clips(), wanted, saved_run, new_run_hint="start afresh")
    assert error.value.changed == ["lora_rank", "seed"]
    assert "seed: saved 3, now 4" in str(error.value)
    # resume off: a new run, whatever the saved one holds.
    assert not TrainingSession.open(model, training_clips(), wanted, saved_run, resume=False).resumed


def other_video_clips() -> list:
    """The saved run's clips by name, size, bucket and motion score, holding the frames of another video."""
    dataset = VideoClipDataset.from_images(moving_square_video(16, square=48), 8, 128, 128, clips_per_video=2)
    with torch.no_grad():
        other = encode_clips(dataset, tiny_vae(), tiny_clip_vision())
    return [dataclasses.replace(mine, latents=theirs.latents) for mine, theirs in zip(training_clips(), other)]


@pytest.mark.parametrize("clips, difference", [
    (lambda: training_clips()[:1], "2 clip(s) then, 1 now"),
    (lambda: [dataclasses.replace(c, name=f"new_{c.name}") for c in training_clips()],
     "clip 'new_images0@0' where 'images0@0' was"),
    (lambda: [dataclasses.replace(c, motion_bucket_id=0) for c in training_clips()],
     "clip 'images0@0' has motion bucket 0, 45 then"),
    (other_video_clips, "clip 'images0@0' holds other frames under the same name and size"),
    (lambda: [dataclasses.replace(c, latents=c.latents.flip(0)) for c in training_clips()],
     "clip 'images0@0' holds other frames under the same name and size"),
], ids=["fewer", "renamed", "other bucket", "other video", "reversed"])
def test_resume_on_other_clips_is_refused_naming_the_run_the_difference_and_the_way_out(saved_run, clips,
                                                                                         difference):
    model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
    with pytest.raises(ResumeDataError) as error:
        TrainingSession.open(model, clips(), LORA, saved_run, new_run_hint="start afresh")
    assert str(error.value) == (f"{saved_run} holds a run trained on other clips than these ({difference}); "
                                f"resuming would go on training it on a different dataset. Give it its own clips, "
                                f"or start afresh.")
    assert isinstance(error.value, InputError)
    # resume off: a new run on these clips.
    assert not TrainingSession.open(model, clips(), LORA, saved_run, resume=False).resumed


def test_the_same_video_encoded_again_resumes_another_does_not(saved_run):
    """Encoding a video again gives its numbers up to rounding (another device or precision): the run resumes;
    another video's frames under the same clip names do not."""
    model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
    again = [dataclasses.replace(c, latents=c.latents * (1 + 1e-4), motion_score=c.motion_score * (1 - 1e-5))
             for c in training_clips()]
    assert TrainingSession.open(model, again, LORA, saved_run).resumed
    with pytest.raises(ResumeDataError, match="holds other frames"):
        TrainingSession.open(model, other_video_clips(), LORA, saved_run)


def test_a_state_saved_before_clip_records_is_checked_by_its_fingerprint(saved_run, tmp_path):
    tensors, metadata = load(saved_run)
    assert "clips" in metadata
    del metadata["clips"]
    old = tmp_path / "old.safetensors"
    save(tensors, old, metadata)
    model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
    assert TrainingSession.open(model, training_clips(), LORA, old).resumed
    with pytest.raises(ResumeDataError, match=r"other clips than these \(other names, sizes or motion buckets\)"):
        TrainingSession.open(model, training_clips()[:1], LORA, old)


def test_resume_takes_more_steps_and_another_save_every(saved_run):
    wanted = dataclasses.replace(LORA, steps=7, save_every=2)
    session = TrainingSession.open(build_svd_model(SMALL_UNET_CONFIG, seed=0), training_clips(), wanted, saved_run,
                                   start=SessionStart(weights=None))
    assert session.resumed and session.config == wanted and session.trainer.step == 0


class _RecordingList(list):
    """ComfyUI's list of loaded models, noting which module edits it."""

    edits: list[str]

    def _edit(name):
        def edit(self, *args, **kwargs):
            self.edits.append(sys._getframe(1).f_globals.get("__name__", "?"))
            return getattr(list, name)(self, *args, **kwargs)
        return edit

    for _name in ("pop", "remove", "insert", "append", "clear", "__delitem__", "__setitem__"):
        locals()[_name] = _edit(_name)
    del _name, _edit


def test_unloading_the_clone_goes_through_comfyui_and_restores_the_model(monkeypatch):
    base = build_svd_model(SMALL_UNET_CONFIG, seed=0)
    other = build_svd_model(SMALL_UNET_CONFIG, seed=1)  # another model the user has loaded: it stays
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    loaded = _RecordingList(comfy.model_management.current_loaded_models)
    loaded.edits = []
    monkeypatch.setattr(comfy.model_management, "current_loaded_models", loaded)
    comfy.model_management.load_models_gpu([other])
    trainer = Trainer(base, training_clips(), LORA)
    with trainer.training_model() as patched:
        assert patched in comfy.model_management.loaded_models()
        loaded.edits.clear()
    assert loaded.edits and all(name == "comfy.model_management" for name in loaded.edits), loaded.edits
    models = comfy.model_management.loaded_models()
    assert patched not in models and other in models
    assert all(entry.model is not None and entry.real_model is not None for entry in loaded)  # no stale entry
    state = base.model.state_dict()
    assert state.keys() == before.keys() and all(torch.equal(state[k], v) for k, v in before.items())
