"""What a post-tuning run trains, and the clone it trains through (small random SVD)."""

import math

import pytest
import torch

import comfy.utils

from exvideo_core.errors import IncompatibleModelError
from exvideo_core.train import TrainConfig, Trainer
from exvideo_core.train.trainable import FullTemporal, TemporalLoRA
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, build_svd_model

pytestmark = pytest.mark.usefixtures("unload_after")


def test_training_installs_its_modules_through_the_same_seam_without_set_patches(base, weights):
    """No build-then-undo: full mode never adds the set patches its fp32 masters replace."""
    temporal = {key for key, _ in weights.temporal_tensors()}
    full = FullTemporal(weights, torch.device("cpu"))
    full_clone = full.patch(base)
    assert not temporal & full_clone.patches.keys()
    block = full_clone.object_patches["diffusion_model.middle_block.1"]
    assert block.time_pos_table is full.tables[next(b for b in full.tables if b.comfy_name == "middle_block.1")]
    lora_clone = TemporalLoRA(weights, torch.device("cpu"), rank=2, alpha=2.0, seed=0).patch(base)
    assert temporal <= lora_clone.patches.keys()
    assert full_clone.get_attachment("exvideo").num_frames == 32


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_full_mode_layers_compute_with_the_masters_themselves(clips, dtype):
    """No weight wrapper on a trained tensor: ComfyUI's ops copy every wrapped weight before the wrapper runs,
    which for the fp32 masters meant a copy of each temporal layer per forward, dropped unused."""
    model = build_svd_model(SMALL_UNET_CONFIG, seed=0, dtype=dtype)
    trainer = Trainer(model, clips, TrainConfig(steps=1, mode="full"))
    masters = trainer.trainable.masters
    with trainer.training_model() as patched:
        for key, master in masters.items():
            module = comfy.utils.get_attr(patched.model, key.rsplit(".", 1)[0])
            assert comfy.utils.get_attr(patched.model, key) is master and master.dtype == torch.float32, key
            assert not module.weight_function and not module.bias_function, key
            assert module.comfy_cast_weights == (dtype != torch.float32), key  # bf16: masters cast on the fly
    # Unloaded, the MODEL has its own tensors and casting flags back.
    for key, master in masters.items():
        layer_tensor = comfy.utils.get_attr(model.model, key)
        assert layer_tensor is not master and layer_tensor.dtype == dtype, key
        assert not comfy.utils.get_attr(model.model, key.rsplit(".", 1)[0]).comfy_cast_weights, key
    assert math.isfinite(trainer.train().losses[0])


def test_full_mode_refuses_a_model_with_patches_on_the_trained_tensors(base, weights, clips):
    key = next(key for key, _ in weights.temporal_tensors())
    lora_model = base.clone()
    lora_model.add_patches({key: ("diff", (torch.zeros_like(comfy.utils.get_attr(base.model, key)),))})
    with pytest.raises(IncompatibleModelError, match=f"weight patches .* on 1 of the temporal tensors .*{key}"):
        Trainer(lora_model, clips, TrainConfig(steps=1, mode="full"), weights=weights)
    Trainer(lora_model, clips, TrainConfig(steps=1, mode="lora"), weights=weights)  # LoRA mode adds on top
