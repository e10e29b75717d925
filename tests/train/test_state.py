"""The resumable state file: everything a run needs, exactly, and nothing pickled."""

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from exvideo_core import CheckpointError, ExVideoError
from exvideo_core.errors import VideoError
from exvideo_core.safetensors_io import read_header, save
from exvideo_core.train import TrainConfig, Trainer, TrainStateError, load_state, state_file
from exvideo_harness.train_data import training_clips


def _fake_step(trainer: Trainer, seed: int) -> None:
    """An optimizer step on random gradients: exercises the state without running the model."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in trainer.parameters.values():
        parameter.grad = 1e-3 * torch.randn(parameter.shape, generator=generator)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    if trainer.ema is not None:
        trainer.ema.update(trainer.parameters)
    trainer.step += 1
    trainer.losses.append(0.25 * seed)


def _assert_same_run(a: Trainer, b: Trainer) -> None:
    assert (a.step, a.losses) == (b.step, b.losses)
    assert a.parameters.keys() == b.parameters.keys()
    for name in a.parameters:
        assert torch.equal(a.parameters[name], b.parameters[name]), name
        state_a, state_b = a.optimizer.state[a.parameters[name]], b.optimizer.state[b.parameters[name]]
        assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)
        assert torch.equal(a.ema.values[name], b.ema.values[name])


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_resumed_state_equals_the_saved_run(base, tmp_path, mode):
    config = TrainConfig(mode=mode, lora_rank=2, ema_decay=0.9, learning_rate=1e-3, steps=10)
    trainer = Trainer(base, training_clips(), config)
    for seed in (1, 2):
        _fake_step(trainer, seed)
    trainer.save_state(tmp_path / "state.safetensors")
    resumed = Trainer.resume(base, training_clips(), tmp_path / "state.safetensors")
    _assert_same_run(resumed, trainer)
    # Step counts and moments are restored, so the next update is the same too.
    _fake_step(trainer, 3)
    _fake_step(resumed, 3)
    _assert_same_run(resumed, trainer)
    assert resumed.config == config


def test_state_holds_tensors_and_json_only(base, tmp_path):
    trainer = Trainer(base, training_clips(), TrainConfig(mode="lora", lora_rank=2))
    _fake_step(trainer, 1)
    path = tmp_path / "state.safetensors"
    trainer.save_state(path)
    header, metadata = read_header(path)
    assert {name.split(".")[0] for name in header} == {"exvideo", "lora", "optim"}
    assert metadata["format"] == "exvideo_train_state/1"
    state = load_state(path)
    assert state.step == 1 and state.losses == [0.25] and state.config.mode == "lora"
    assert set(state.optimizer["diffusion_model.middle_block.1.time_pos_table.weight"]) == {
        "step", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize("mode, ema", [("full", None), ("full", 0.9), ("lora", None), ("lora", 0.9)])
def test_the_state_size_is_known_before_the_state_is_written(base, tmp_path, mode, ema):
    """Told before training (a full-size full-mode state is about 9 GiB): the tensors save_state writes."""
    trainer = Trainer(base, training_clips(), TrainConfig(mode=mode, lora_rank=2, ema_decay=ema))
    expected = trainer.state_bytes()
    _fake_step(trainer, 1)  # AdamW's moments exist from the first step on
    trainer.save_state(tmp_path / "state.safetensors")
    header, _ = read_header(tmp_path / "state.safetensors")
    written = sum(math.prod(entry["shape"]) * 4 for entry in header.values())
    assert {entry["dtype"] for entry in header.values()} == {"F32"}
    assert written == expected


def test_lora_mode_saves_the_starting_temporal_tensors(base, tmp_path):
    trainer = Trainer(base, training_clips(), TrainConfig(mode="lora", lora_rank=2))
    start = trainer.weights()
    _fake_step(trainer, 1)
    trainer.save_state(tmp_path / "state.safetensors")
    resumed = Trainer.resume(base, training_clips(), tmp_path / "state.safetensors", steps=50)
    assert resumed.config.steps == 50
    weights = resumed.weights()
    assert all(torch.equal(weights.tensors[key], value) for key, value in start.temporal_tensors())
    assert weights.metadata["exvideo.training_steps"] == "1"


def test_other_files_are_refused(tmp_path):
    save({"x": torch.zeros(1)}, tmp_path / "other.safetensors", {"format": "something else"})
    with pytest.raises(CheckpointError, match="not an ExVideo training state"):
        load_state(tmp_path / "other.safetensors")


def test_damaged_metadata_is_a_clear_error(base, tmp_path):
    trainer = Trainer(base, training_clips(), TrainConfig())
    path = tmp_path / "state.safetensors"
    trainer.save_state(path)
    _, metadata = read_header(path)
    save_file(load_file(path), path, {**metadata, "progress": "{not json"})
    with pytest.raises(CheckpointError, match="damaged ExVideo training state"):
        load_state(path)


@pytest.mark.parametrize("run_name", ["../escape", "/abs/run", "sub/../../x", "", "sub/.."])
def test_a_bad_state_path_is_a_state_error(tmp_path, run_name):
    with pytest.raises(TrainStateError, match="training state|leads outside") as error:
        state_file(tmp_path, run_name)
    assert isinstance(error.value, ExVideoError) and not isinstance(error.value, VideoError)
    assert list(tmp_path.iterdir()) == []


def test_state_file_names_the_run_inside_the_folder(tmp_path):
    assert state_file(tmp_path, "sub/run") == str(tmp_path / "sub" / "run.state.safetensors")
