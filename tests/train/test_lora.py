"""LoRA adapters on the temporal linears: ComfyUI file format, loading, merging."""

import pytest
import torch

import comfy.lora
import comfy.model_management

from exvideo_core import CheckpointError, apply_exvideo, load_exvideo
from exvideo_core.train import lora_state_dict, merge_lora
from exvideo_core.train.lora import (LORA_MODULES, adapters_from_state_dict, check_lora, extension_fingerprint,
                                     factors, lora_targets, lora_values, new_adapter, new_adapters)
from exvideo_harness.exvideo_files import SMALL, random_exvideo_state_dict
from exvideo_harness.svd_models import apply_model_direct

pytestmark = pytest.mark.usefixtures("unload_after")

RANK, ALPHA = 4, 2.0


@pytest.fixture(scope="module")
def weights():
    return load_exvideo(random_exvideo_state_dict(8, seed=1, **SMALL))


@pytest.fixture(scope="module")
def lora(weights):
    """A LoRA with random (non-zero) factors, as after training."""
    adapters = new_adapters(weights, RANK, ALPHA, seed=0, device=torch.device("cpu"))
    values = {}
    for index, (name, factor) in enumerate(factors(adapters).items()):
        values[name] = 0.05 * torch.randn(factor.shape, generator=torch.Generator().manual_seed(index))
    return lora_state_dict(values, ALPHA)


def test_file_uses_comfys_generic_lora_keys(lora, weights):
    assert len(lora_targets()) == 16 * len(LORA_MODULES) == 224 and len(lora) == 3 * 224
    path = "diffusion_model.input_blocks.1.1.time_stack.0.attn2.to_k"
    out_features, in_features = weights.tensors[path + ".weight"].shape
    assert lora[path + ".lora_up.weight"].shape == (out_features, RANK)
    assert lora[path + ".lora_down.weight"].shape == (RANK, in_features)
    assert lora[path + ".alpha"].item() == ALPHA and lora[path + ".alpha"].ndim == 0


def test_fresh_adapters_are_a_no_op(weights):
    fresh = lora_state_dict(factors(new_adapters(weights, RANK, ALPHA, 0, torch.device("cpu"))), ALPHA)
    merged = merge_lora(weights, fresh)
    assert all(torch.equal(merged.tensors[k], v) for k, v in weights.tensors.items())


def test_fresh_adapters_are_seeded(weights):
    first = factors(new_adapters(weights, RANK, ALPHA, 3, torch.device("cpu")))
    again = factors(new_adapters(weights, RANK, ALPHA, 3, torch.device("cpu")))
    other = factors(new_adapters(weights, RANK, ALPHA, 4, torch.device("cpu")))
    name = next(n for n in first if n.endswith("lora_down.weight"))
    assert torch.equal(first[name], again[name]) and not torch.equal(first[name], other[name])


def test_merge_adds_alpha_over_rank_times_up_down(weights, lora):
    merged = merge_lora(weights, lora)
    path = "diffusion_model.middle_block.1.time_stack.0.ff.net.2"
    delta = ALPHA / RANK * lora[path + ".lora_up.weight"] @ lora[path + ".lora_down.weight"]
    assert torch.allclose(merged.tensors[path + ".weight"], weights.tensors[path + ".weight"] + delta, atol=1e-6)
    norm = "diffusion_model.middle_block.1.time_stack.0.norm1.weight"
    assert torch.equal(merged.tensors[norm], weights.tensors[norm])


def test_comfys_loader_applies_every_adapter_as_the_merge_does(base, weights, lora):
    patched = apply_exvideo(base, weights)
    loaded = comfy.lora.load_lora(lora, comfy.lora.model_lora_keys_unet(patched.model, {}))
    with_lora = patched.clone()
    assert len(with_lora.add_patches(loaded)) == 224
    merged = apply_exvideo(base, merge_lora(weights, lora))
    out = apply_model_direct(with_lora, 8)
    assert torch.allclose(out, apply_model_direct(merged, 8), atol=1e-5)
    assert (out - apply_model_direct(patched, 8)).abs().max() > 1e-3


def test_adapters_reload_from_the_file(lora):
    reloaded = lora_state_dict(factors(adapters_from_state_dict(lora, torch.device("cpu"))), ALPHA)
    assert reloaded.keys() == lora.keys() and all(torch.equal(reloaded[k], lora[k]) for k in lora)


def test_a_lora_for_other_weights_is_refused(weights):
    foreign = {"diffusion_model.input_blocks.1.0.in_layers.2.lora_up.weight": torch.zeros(32, 4),
               "diffusion_model.input_blocks.1.0.in_layers.2.lora_down.weight": torch.zeros(4, 32)}
    with pytest.raises(CheckpointError, match="does not fit the ExVideo extension"):
        merge_lora(weights, foreign)


def test_a_lora_with_stray_tensors_beside_fitting_ones_is_refused(weights, lora):
    """Half a fit is no fit: the stray tensors would be dropped without a word."""
    with pytest.raises(CheckpointError, match="1 of its tensors name no temporal weight"):
        merge_lora(weights, {**lora, "diffusion_model.out.2.lora_up.weight": torch.zeros(4, 4)})
    with pytest.raises(CheckpointError, match="does not fit the ExVideo extension"):
        merge_lora(weights, {})


def test_adapters_of_different_alphas_are_refused(lora):
    from exvideo_core.train.lora import adapters_alpha

    adapters = adapters_from_state_dict({k: v.clone() for k, v in lora.items()}, torch.device("cpu"))
    assert adapters_alpha(adapters) == ALPHA
    first = next(iter(adapters.values()))
    first.alpha.fill_(ALPHA + 1)
    with pytest.raises(CheckpointError, match="different alphas"):
        adapters_alpha(adapters)


def test_the_state_size_counts_every_value_the_file_holds(weights):
    """Post-Tune shows the resumable state's size before training from this count."""
    values = factors(new_adapters(weights, RANK, ALPHA, seed=0, device=torch.device("cpu")))
    assert lora_values(values) == sum(t.numel() for t in lora_state_dict(values, ALPHA).values())


def test_the_file_tensors_are_copies_that_training_on_leaves_alone(weights):
    values = {name: factor.detach() for name, factor in
              factors(new_adapters(weights, RANK, ALPHA, seed=0, device=torch.device("cpu"))).items()}
    saved = lora_state_dict(values, ALPHA)
    before = {name: tensor.clone() for name, tensor in saved.items()}
    for value in values.values():
        value.add_(1.0)  # what an optimizer step does to the factors
    assert all(torch.equal(saved[name], before[name]) for name in saved)


@pytest.mark.parametrize("change", ["one missing", "one unknown"])
def test_an_incomplete_or_padded_lora_is_refused_before_saving(lora, change):
    """Either alone is enough: a missing factor would save a LoRA that ComfyUI loads without that layer."""
    check_lora(lora)
    broken = dict(lora)
    if change == "one missing":
        broken.pop(next(iter(broken)))
    else:
        broken["diffusion_model.out.2.lora_up.weight"] = torch.zeros(4, 4)
    with pytest.raises(CheckpointError, match="not a LoRA of ExVideo's temporal layers"):
        check_lora(broken)


def test_the_extension_fingerprint_in_a_loras_metadata_tells_extensions_apart(weights):
    same = load_exvideo(random_exvideo_state_dict(8, seed=1, **SMALL))
    other = load_exvideo(random_exvideo_state_dict(8, seed=2, **SMALL))
    assert extension_fingerprint(weights) == extension_fingerprint(same) != extension_fingerprint(other)
    assert len(extension_fingerprint(weights)) == 16  # the metadata's format: 16 hex digits


def test_a_fresh_down_factor_is_uniform_within_one_over_root_fan_in():
    """Kaiming-uniform with a = sqrt(5), as torch.nn.Linear and peft initialise it: the bound is 1 / sqrt(in)."""
    fan_in = 256
    adapter = new_adapter(torch.zeros(64, fan_in), 64, ALPHA, torch.Generator().manual_seed(0), torch.device("cpu"))
    largest = adapter.lora_down.weight.abs().max().item() * fan_in ** 0.5
    assert 0.99 < largest <= 1.0
    assert not adapter.lora_up.weight.any()

