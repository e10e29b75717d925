"""What a post-tuning run trains, and the clone it trains through (small random SVD)."""

import pytest
import torch

from exvideo_core.train.trainable import FullTemporal, MasterWeight, TemporalLoRA

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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_master_weight_is_fp32_and_computes_in_the_layers_dtype(dtype):
    value = torch.randn(3, 3, dtype=dtype)
    master = MasterWeight(value)
    assert master.weight.dtype == torch.float32 and master.weight.requires_grad
    out = master(torch.zeros(3, 3, dtype=dtype))
    assert out.dtype == dtype and torch.equal(out, value)
    assert master.passive_memory_usage() == 9 * 4
