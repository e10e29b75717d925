"""Post-tuning end to end on the small SVD: it learns, it resumes exactly, it fails safely, it leaves the MODEL alone.

Each run trains on two 8-frame clips of the moving-square video. The held-out
measure is the denoising error at sigmas and noise the runs never draw.
"""

import dataclasses
import math
import types

import pytest
import torch

import comfy.lora
import comfy.model_management
import comfy.sd

from exvideo_core import apply_exvideo, new_exvideo
from exvideo_core.train import (DatasetError, TrainConfig, Trainer, TrainingDivergedError, denoising_error,
                                load_state, merge_lora)
from exvideo_core.train import trainer as trainer_module
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, apply_model_direct, build_svd_model
from exvideo_harness.train_data import CLIP_FRAMES

pytestmark = pytest.mark.usefixtures("unload_after")

HELD_OUT = {"sigmas": [0.3, 3.0], "seed": 1234}
FULL = TrainConfig(steps=4, learning_rate=1e-3, warmup_steps=2, ema_decay=0.9, gradient_checkpointing=False, seed=3)
LORA = TrainConfig(steps=4, mode="lora", lora_rank=4, lora_alpha=8.0, learning_rate=1e-2,
                   gradient_checkpointing=False, seed=3)


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.model.state_dict().items()}


def _same(snapshot: dict[str, torch.Tensor], model) -> bool:
    state = model.model.state_dict()
    return state.keys() == snapshot.keys() and all(torch.equal(state[k], v) for k, v in snapshot.items())


def _run(base, clips, config: TrainConfig):
    before = _snapshot(base)
    trainer = Trainer(base, clips, config)
    error_before = denoising_error(trainer.patched_model(), clips, **HELD_OUT)
    progress = []
    result = trainer.train(progress=lambda *args: progress.append(args))
    base_untouched = _same(before, base)  # checked before anything else loads the MODEL
    error_after = denoising_error(trainer.patched_model(), clips, **HELD_OUT)
    return types.SimpleNamespace(trainer=trainer, result=result, progress=progress, base_untouched=base_untouched,
                                 error_before=error_before, error_after=error_after)


@pytest.fixture(scope="module")
def full_run(base, clips):
    return _run(base, clips, FULL)


@pytest.fixture(scope="module")
def lora_run(base, clips):
    return _run(base, clips, LORA)


def _trained_output(trainer: Trainer) -> torch.Tensor:
    with trainer.training_model() as live:
        return apply_model_direct(live, CLIP_FRAMES)


# ---------------------------------------------------------------- learning


@pytest.mark.parametrize("run", ["full_run", "lora_run"])
def test_training_lowers_the_loss_and_the_held_out_error(request, run):
    run = request.getfixturevalue(run)
    losses = run.result.losses
    assert run.result.completed and run.result.step == 4 and len(losses) == 4
    assert max(losses[-2:]) < 0.6 * losses[0]
    assert run.error_after < 0.75 * run.error_before
    assert [p[:2] for p in run.progress] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [p[2] for p in run.progress] == losses


@pytest.mark.parametrize("run", ["full_run", "lora_run"])
def test_the_model_is_bit_identical_after_training(request, run):
    assert request.getfixturevalue(run).base_untouched


def test_only_the_trained_tensors_require_grad_while_training(base, full_run):
    trainer = full_run.trainer
    trained = {id(p) for p in trainer.parameters.values()}
    with trainer.training_model() as live:
        flags = [(id(p) in trained, p.requires_grad) for p in live.model.parameters()]
    assert all(requires_grad == is_trained for is_trained, requires_grad in flags)
    # Full mode: every trained tensor is the layer's own while training (the tables and convs in the blocks).
    assert sum(is_trained for is_trained, _ in flags) == len(trained) == 528
    assert all(p.requires_grad for p in trainer.parameters.values())


def test_full_export_computes_what_was_trained(base, full_run):
    trainer = full_run.trainer
    trained = _trained_output(trainer)
    exported = apply_model_direct(apply_exvideo(base, trainer.weights()), CLIP_FRAMES)
    assert torch.allclose(exported, trained, atol=1e-5)
    weights, ema = trainer.weights(), trainer.weights(ema=True)
    assert weights.metadata["exvideo.training_steps"] == "4" and ema.metadata["exvideo.ema"] == "true"
    start = new_exvideo(base, CLIP_FRAMES)
    key = "diffusion_model.middle_block.1.time_stack.0.attn1.to_v.weight"
    assert not torch.equal(weights.tensors[key], start.tensors[key])
    assert not torch.equal(ema.tensors[key], weights.tensors[key])


def test_lora_export_loads_through_comfys_lora_loader_and_computes_what_was_trained(base, lora_run):
    trainer = lora_run.trainer
    trained = _trained_output(trainer)
    lora = trainer.lora_state_dict()
    patched = apply_exvideo(base, trainer.weights())
    with_lora = patched.clone()
    loaded = comfy.lora.load_lora(lora, comfy.lora.model_lora_keys_unet(patched.model, {}))
    assert len(with_lora.add_patches(loaded)) == 224
    assert torch.allclose(apply_model_direct(with_lora, CLIP_FRAMES), trained, atol=1e-5)
    # What 'LoraLoaderModelOnly' does with the file.
    node_path, _ = comfy.sd.load_lora_for_models(patched, None, lora, 1.0, 0)
    assert torch.allclose(apply_model_direct(node_path, CLIP_FRAMES), trained, atol=1e-5)
    merged = apply_exvideo(base, merge_lora(trainer.weights(), lora))
    assert torch.allclose(apply_model_direct(merged, CLIP_FRAMES), trained, atol=1e-5)
    assert (apply_model_direct(patched, CLIP_FRAMES) - trained).abs().max() > 1e-3


def test_lora_mode_keeps_the_temporal_tensors_and_trains_table_and_conv(base, lora_run):
    start, trained = new_exvideo(base, CLIP_FRAMES), lora_run.trainer.weights()
    for key, value in start.temporal_tensors():
        assert torch.equal(trained.tensors[key], value), key
    for block in ("input_blocks.1.1", "output_blocks.11.1"):
        for name in ("time_pos_table.weight", "time_pos_conv.weight"):
            key = f"diffusion_model.{block}.{name}"
            assert not torch.equal(trained.tensors[key], start.tensors[key]), key
    # attn2's to_q and to_k get no gradient (one-key cross-attention, see test_train_grad_checkpoint).
    ups = {k: v for k, v in lora_run.trainer.lora_state_dict().items() if k.endswith("lora_up.weight")}
    assert {k for k, up in ups.items() if not up.abs().max() > 0} == {
        k for k in ups if ".attn2.to_q." in k or ".attn2.to_k." in k}


def test_draws_are_seeded_and_each_epoch_visits_every_clip_once(base, clips):
    trainer = Trainer(base, clips, FULL)
    draws = [trainer.draw(k) for k in range(6)]
    for epoch in range(3):
        assert {draws[2 * epoch][0].name, draws[2 * epoch + 1][0].name} == {c.name for c in clips}
    again = Trainer(base, clips, FULL).draw(3)
    assert again[0].name == draws[3][0].name and again[1] == draws[3][1] and torch.equal(again[2], draws[3][2])
    assert not torch.equal(draws[2][2], draws[3][2])
    other_seed = Trainer(base, clips, dataclasses.replace(FULL, seed=4)).draw(3)
    assert not torch.equal(other_seed[2], draws[3][2])


# ---------------------------------------------------------------- resuming


def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(base, clips, full_run, tmp_path):
    path = tmp_path / "run.safetensors"

    def interrupt_after_step_2(step, total, loss):
        if step == 2:
            raise comfy.model_management.InterruptProcessingException()

    with pytest.raises(comfy.model_management.InterruptProcessingException):
        Trainer(base, clips, FULL).train(progress=interrupt_after_step_2, state_path=path)
    resumed = Trainer.resume(base, clips, path)
    assert resumed.step == 2
    result = resumed.train()
    assert result.losses == full_run.result.losses
    for name, value in full_run.trainer.parameters.items():
        assert torch.equal(resumed.parameters[name], value), name
        assert torch.equal(resumed.ema.values[name], full_run.trainer.ema.values[name]), name


def test_interrupt_before_the_first_step_saves_a_resumable_state(base, clips, tmp_path):
    before = _snapshot(base)
    trainer = Trainer(base, clips, FULL)
    comfy.model_management.interrupt_current_processing(True)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        trainer.train(state_path=tmp_path / "run.safetensors")
    assert not comfy.model_management.processing_interrupted()
    assert load_state(tmp_path / "run.safetensors").step == 0 and trainer.step == 0
    assert _same(before, base)


def test_should_stop_ends_the_session_cleanly(base, clips, tmp_path):
    result = Trainer(base, clips, FULL).train(should_stop=lambda: True, state_path=tmp_path / "run.safetensors")
    assert not result.completed and result.step == 0 and result.losses == []
    assert load_state(tmp_path / "run.safetensors").step == 0


# ---------------------------------------------------------------- failing safely


class _NaNGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite value whose gradients are not."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def _corrupt_loss(monkeypatch, on_call: int, corrupt):
    real, calls = trainer_module.denoising_loss, []

    def loss(*args, **kwargs):
        calls.append(1)
        value = real(*args, **kwargs)
        return corrupt(value) if len(calls) == on_call else value

    monkeypatch.setattr(trainer_module, "denoising_loss", loss)


def test_clips_too_small_for_the_positional_conv_are_refused_before_training(base, clips):
    small = [dataclasses.replace(clip, latents=clip.latents[..., :8, :8]) for clip in clips]
    with pytest.raises(DatasetError, match=r"8x8 latents \(64x64 pixels\).*128x128 pixels or larger"):
        Trainer(base, small, FULL)


def test_nan_loss_stops_and_keeps_the_last_good_weights(base, clips, tmp_path, monkeypatch):
    _corrupt_loss(monkeypatch, 2, lambda loss: loss * float("nan"))
    trainer = Trainer(base, clips, dataclasses.replace(FULL, steps=3))
    after_step_1 = {}
    progress = lambda step, total, loss: after_step_1.update({k: v.clone() for k, v in trainer.parameters.items()})
    with pytest.raises(TrainingDivergedError, match="diverged at step 2: the loss is nan") as error:
        trainer.train(progress=progress, state_path=tmp_path / "run.safetensors")
    assert error.value.step == 2 and trainer.step == 1
    weights = trainer.weights()  # validation refuses non-finite tensors
    assert all(torch.equal(trainer.parameters[k], v) for k, v in after_step_1.items())
    saved = load_state(tmp_path / "run.safetensors")
    assert saved.step == 1 and all(torch.equal(saved.weights.tensors[k], v) for k, v in weights.tensors.items())


def test_nan_gradients_stop_before_the_update(base, clips, monkeypatch):
    trainer = Trainer(base, clips, FULL)
    table = trainer.parameters["diffusion_model.middle_block.1.time_pos_table.weight"]
    _corrupt_loss(monkeypatch, 1, lambda loss: loss + 0 * _NaNGradient.apply(table).sum())
    with pytest.raises(TrainingDivergedError, match="diverged at step 1: the gradients are not finite"):
        trainer.train()
    start, weights = new_exvideo(base, CLIP_FRAMES), trainer.weights()
    assert all(torch.equal(weights.tensors[k], v) for k, v in start.tensors.items())
    assert all(p.grad is None for p in trainer.parameters.values())


# ---------------------------------------------------------------- hosts and precisions


def test_trains_a_model_loaded_in_inference_mode_as_inside_a_node(clips):
    with torch.inference_mode():
        model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
        node_clips = [dataclasses.replace(c, latents=c.latents.clone(), image_embeds=c.image_embeds.clone())
                      for c in clips]
        before = _snapshot(model)
        result = Trainer(model, node_clips, dataclasses.replace(FULL, steps=1, gradient_checkpointing=True)).train()
    assert result.completed and math.isfinite(result.losses[0])
    assert _same(before, model)


@pytest.mark.parametrize("autocast", ["bf16", "fp16"])
def test_mixed_precision_steps(base, clips, autocast):
    trainer = Trainer(base, clips, dataclasses.replace(FULL, steps=1, autocast=autocast))
    result = trainer.train()
    assert math.isfinite(result.losses[0])
    assert all(torch.isfinite(p).all() for p in trainer.parameters.values())
    assert (trainer.scaler is not None) == (autocast == "fp16")


def test_a_half_precision_model_trains_fp32_master_tensors(clips):
    model = build_svd_model(SMALL_UNET_CONFIG, seed=0, dtype=torch.bfloat16)
    before = _snapshot(model)
    trainer = Trainer(model, clips, dataclasses.replace(FULL, steps=1))
    result = trainer.train()
    assert math.isfinite(result.losses[0]) and _same(before, model)
    assert all(p.dtype == torch.float32 for p in trainer.parameters.values())
    key = "diffusion_model.middle_block.1.time_stack.0.attn1.to_v.weight"
    start = new_exvideo(model, CLIP_FRAMES).tensors[key]
    # A step of lr 5e-4 (warm-up) moves weights by less than bf16 resolves; the fp32 masters keep it.
    assert 0 < (trainer.weights().tensors[key] - start).abs().max() < 2e-3


def test_single_process_group_runs_the_same_step(base, clips, full_run, tmp_path):
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1)
    try:
        result = Trainer(base, clips, dataclasses.replace(FULL, steps=1)).train()
    finally:
        torch.distributed.destroy_process_group()
    assert result.losses == full_run.result.losses[:1]
