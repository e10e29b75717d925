"""The skip stack in host memory: the same output, the stack really held apart, on the clone only, refused with a ControlNet."""

import pytest
import torch

import comfy.controlnet
import comfy.model_management
import comfy.sample

from exvideo_core import apply_exvideo
from exvideo_core import skip_stack, unet_map
from exvideo_core.memory_model import memory_required
from exvideo_core.errors import InputError
from exvideo_harness.svd_models import apply_model_direct, svd_conditioning

pytestmark = pytest.mark.usefixtures("unload_after")

FRAMES = 4
# On a CPU-only machine the skips have nowhere else to go, and the stack
# skips its copies when they would land on the device they come from. This
# device is another one to the stack but allocates on the CPU, so every
# copy, hand-back and move back runs for real.
OTHER_HOST = torch.device("cpu", 0)


def scale_input(h, transformer_options):
    return h * 1.25


def shift_after_skip(h, transformer_options):
    return h + 0.5


def halve_skip(h, skip, transformer_options):
    return h, skip * 0.5


def with_foreign_patches(model):
    """A clone with another pack's block patches (a Deep Shrink or FreeU stand-in), each changing the result."""
    model = model.clone()
    model.set_model_input_block_patch(scale_input)
    model.set_model_input_block_patch_after_skip(shift_after_skip)
    model.set_model_output_block_patch(halve_skip)
    return model


def host_stack(model, host=OTHER_HOST):
    model = model.clone()
    skip_stack.keep_on_host(model.model_options, True, host)
    return model


@pytest.fixture(scope="module")
def reference(base, weights):
    return apply_model_direct(apply_exvideo(base, weights), FRAMES, videos=2, seed=3)


def spy_on_stack(monkeypatch) -> list[dict]:
    """Per input block, what the stack was given, the copy it handed the UNet, what it resumed with and restored."""
    blocks = []
    store, resume, restore = (skip_stack.HostSkipStack.store, skip_stack.HostSkipStack.resume,
                              skip_stack.HostSkipStack.restore)

    def spy_store(self, h, options):
        blocks.append({"given": h, "copy": store(self, h, options)})
        return blocks[-1]["copy"]

    def spy_resume(self, h, options):
        blocks[-1]["resumed"] = resume(self, h, options)
        return blocks[-1]["resumed"]

    def spy_restore(self, h, skip, options):
        next(b for b in reversed(blocks) if "restored" not in b)["restored"] = skip
        return restore(self, h, skip, options)

    for name, spy in (("store", spy_store), ("resume", spy_resume), ("restore", spy_restore)):
        monkeypatch.setattr(skip_stack.HostSkipStack, name, spy)
    return blocks


def test_the_same_output_with_the_whole_stack_held_apart(base, weights, reference, monkeypatch):
    blocks = spy_on_stack(monkeypatch)
    out = apply_model_direct(host_stack(apply_exvideo(base, weights)), FRAMES, videos=2, seed=3)
    assert torch.equal(out, reference)
    assert len(blocks) == len(base.model.diffusion_model.input_blocks)
    for block in blocks:
        # The stack holds a copy of its own; the next block goes on with the tensor the stack was given;
        # what the decoder pops is that copy (last in, first out).
        assert block["copy"].data_ptr() != block["given"].data_ptr()
        assert torch.equal(block["copy"], block["given"])
        assert block["resumed"] is block["given"]
        assert block["restored"] is block["copy"]


@pytest.mark.parametrize("order", ["foreign patches first", "foreign patches last"])
def test_other_packs_block_patches_keep_their_effect(base, weights, order):
    if order == "foreign patches first":
        plain = apply_exvideo(with_foreign_patches(base), weights)
        held = apply_exvideo(host_stack(with_foreign_patches(base)), weights)
    else:
        plain = with_foreign_patches(apply_exvideo(base, weights))
        held = with_foreign_patches(host_stack(apply_exvideo(base, weights)))
    expected = apply_model_direct(plain, FRAMES, seed=5)
    assert not torch.allclose(expected, apply_model_direct(apply_exvideo(base, weights), FRAMES, seed=5))
    assert torch.allclose(apply_model_direct(held, FRAMES, seed=5), expected, atol=1e-6)


def test_the_option_through_apply_exvideo(base, weights, reference):
    """On a CPU the option installs its patches and changes nothing: the skips are in host memory already."""
    patched = apply_exvideo(base, weights, skips_on_host=True)
    (stack,) = skip_stack.installed_stacks(patched.model_options)
    patches = patched.model_options["transformer_options"]["patches"]
    assert [patches[name] for name in skip_stack.PATCH_LISTS] == [[stack.store], [stack.resume], [stack.restore]]
    assert torch.equal(apply_model_direct(patched, FRAMES, videos=2, seed=3), reference)
    assert "patches" not in base.model_options["transformer_options"]


def test_patching_again_decides_anew(base, weights):
    held = apply_exvideo(base, weights, skips_on_host=True)
    again = apply_exvideo(held, weights)
    assert not again.model_options["transformer_options"].get("patches")
    twice = apply_exvideo(with_foreign_patches(held), weights, skips_on_host=True)
    patches = twice.model_options["transformer_options"]["patches"]
    assert patches["input_block_patch"][0] is scale_input and len(patches["input_block_patch"]) == 2
    assert len(skip_stack.installed_stacks(twice.model_options)) == 1


def test_a_bad_value_is_a_clear_input_error(base, weights):
    with pytest.raises(InputError, match="skips_on_host"):
        apply_exvideo(base, weights, skips_on_host="yes")


def test_skip_copies_is_what_the_stack_holds(base, weights, monkeypatch):
    blocks = spy_on_stack(monkeypatch)
    apply_model_direct(host_stack(apply_exvideo(base, weights)), FRAMES, latent_hw=16)
    unet = base.model.diffusion_model
    level_0_map = FRAMES * 16 * 16 * unet.model_channels
    # SVD's widths (1, 2, 4, 4), two ResBlocks a level: 3 copies at level 0, (1 + 2 + 2) / 4 at level 1,
    # (2 + 4 + 4) / 16 at level 2, 3 * 4 / 64 at level 3.
    assert unet_map.skip_copies(unet) == 5.0625
    assert sum(block["copy"].numel() for block in blocks) == unet_map.skip_copies(unet) * level_0_map


def test_the_memory_estimate_leaves_out_the_skip_stack(base):
    shape = [128, 8, 64, 64]
    held = memory_required(base.model, None)(shape) - memory_required(base.model, None, skips_on_host=True)(shape)
    unet = base.model.diffusion_model
    level_0_map = shape[0] * 64 * 64 * unet.model_channels * comfy.model_management.dtype_size(base.model_dtype())
    assert held == pytest.approx(unet_map.skip_copies(unet) * level_0_map, rel=1e-6)


def test_sampling_with_a_controlnet_is_refused_before_loading(base, weights, monkeypatch):
    patched = apply_exvideo(base, weights, skips_on_host=True)
    loads = []
    monkeypatch.setattr(comfy.model_management, "load_models_gpu", lambda *a, **k: loads.append(a))
    positive, negative = svd_conditioning(FRAMES, context_dim=64)
    # What Apply ControlNet puts into the conditioning (every ControlNet type derives from it).
    positive = [[positive[0][0], {**positive[0][1], "control": comfy.controlnet.ControlBase()}]]
    latent = torch.zeros(FRAMES, 4, 16, 16)
    with pytest.raises(InputError, match="ControlNet"):
        comfy.sample.sample(patched, torch.randn_like(latent), 1, 2.0, "euler", "karras", positive, negative,
                            latent, disable_pbar=True, seed=0)
    assert not loads
