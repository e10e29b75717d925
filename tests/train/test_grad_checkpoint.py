"""Gradient checkpointing as object patches: same gradients, nothing left on the MODEL."""

import pytest
import torch

import comfy.model_management
import comfy.ops

from exvideo_core.train import TrainConfig, Trainer
from exvideo_core.train.grad_checkpoint import add_gradient_checkpointing, checkpointed, unet_layer_keys
from exvideo_core.train.objective import denoising_loss
from exvideo_harness.train_data import training_clips

pytestmark = pytest.mark.usefixtures("unload_after")


def test_checkpointed_copy_shares_the_modules_tensors():
    # ComfyUI's ops layers, as in the UNet; they skip weight init, so the test fills them.
    ops = comfy.ops.disable_weight_init
    module = torch.nn.Sequential(ops.Linear(3, 3), torch.nn.GELU(), ops.Linear(3, 1))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    copy = checkpointed(module)
    assert copy is not module and copy._modules is module._modules
    assert [id(p) for p in copy.parameters()] == [id(p) for p in module.parameters()]
    assert "forward" not in vars(module)
    x = torch.randn(4, 3, requires_grad=True)
    assert torch.equal(copy(x), module(x))


def test_every_unet_layer_is_checkpointed_on_the_clone_only(base):
    keys = list(unet_layer_keys(base))
    assert "diffusion_model.input_blocks.1.1" in keys and "diffusion_model.output_blocks.11.1" in keys
    clone = base.clone()
    add_gradient_checkpointing(clone)
    assert set(keys) <= clone.object_patches.keys() and not base.object_patches
    comfy.model_management.load_models_gpu([clone])
    assert "forward" in vars(clone.model.diffusion_model.input_blocks[1][0])
    comfy.model_management.unload_all_models()
    assert not any("forward" in vars(m) for m in base.model.modules())


def _gradients(base, checkpointing: bool) -> dict[str, torch.Tensor]:
    trainer = Trainer(base, training_clips(), TrainConfig(gradient_checkpointing=checkpointing))
    clip = trainer.clips[0]
    noise = torch.randn(clip.latents.shape, generator=torch.Generator().manual_seed(0))
    with trainer.training_model() as model:
        denoising_loss(model, clip, 1.5, noise, trainer.config).backward()
    return {name: p.grad for name, p in trainer.parameters.items()}


def test_same_gradients_with_and_without_checkpointing(base):
    plain, checkpointed_grads = _gradients(base, False), _gradients(base, True)
    assert len(plain) == 16 * 33
    # SVD's temporal cross-attention has one key (the image embedding): softmax makes its output the
    # value whatever the query, so the query path (norm2, to_q) and to_k get no gradient. All else does.
    query_path = ("attn2.to_q.weight", "attn2.to_k.weight", "norm2.weight", "norm2.bias")
    zero = {name for name, g in plain.items() if not g.abs().max() > 0}
    assert zero == {name for name in plain if name.endswith(query_path)}
    for name, grad in plain.items():
        assert torch.allclose(checkpointed_grads[name], grad, rtol=1e-5, atol=1e-8), name
