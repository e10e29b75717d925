"""The deep cache: a cached call is the full forward with the deep blocks' output given, and fewer blocks run."""

import types

import pytest
import torch

from exvideo_core import apply_exvideo, skip_stack
from exvideo_core.deep_cache import KEY, MAX_DEPTH, CacheRun, DeepCacheSettings, with_deep_cache
from exvideo_core.errors import InputError
from exvideo_harness.svd_models import apply_model_direct

from .test_skip_stack import OTHER_HOST, with_foreign_patches

pytestmark = pytest.mark.usefixtures("unload_after")

FRAMES = 4


@pytest.fixture
def block_calls(exvideo) -> list[str]:
    """The blocks of `exvideo`'s UNet as they run, recorded by their last layer (a block's own forward never runs)."""
    import comfy.model_management

    comfy.model_management.load_models_gpu([exvideo])  # the object patches in place: hook the layers that run
    unet, calls = exvideo.model.diffusion_model, []
    blocks = [(f"input {i}", b) for i, b in enumerate(unet.input_blocks)] + [("middle", unet.middle_block)]
    blocks += [(f"output {i}", b) for i, b in enumerate(unet.output_blocks)]
    hooks = [block[-1].register_forward_hook(lambda *_, name=name: calls.append(name)) for name, block in blocks]
    yield calls
    for hook in hooks:
        hook.remove()


def cached_calls(model, settings: DeepCacheSettings, sigmas: list[float], **kwargs) -> tuple[list, CacheRun]:
    """Outputs of consecutive model calls in one CacheRun, as one sampling run makes them."""
    cached = with_deep_cache(model, settings)
    run = cached.model_options["transformer_options"][KEY] = CacheRun(settings)
    return [apply_model_direct(cached, FRAMES, sigma=s, wrappers=True, **kwargs) for s in sigmas], run


@pytest.fixture(scope="module")
def exvideo(base, weights):
    return apply_exvideo(base, weights, frame_chunk=2)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_a_cached_call_on_the_same_input_is_the_full_call(exvideo, depth):
    (full, cached), run = cached_calls(exvideo, DeepCacheSettings(interval=2, depth=depth), [1.0, 1.0])
    assert (run.full_calls, run.cached_calls) == (1, 1)
    torch.testing.assert_close(cached, full, rtol=0, atol=1e-6)


def test_block_patches_and_the_host_stack_run_in_cached_calls(exvideo):
    patched = with_foreign_patches(exvideo)
    skip_stack.keep_on_host(patched.model_options, True, OTHER_HOST)
    (full, cached), _ = cached_calls(patched, DeepCacheSettings(interval=2, depth=2), [1.0, 1.0])
    torch.testing.assert_close(cached, full, rtol=0, atol=1e-6)
    reference = apply_model_direct(with_foreign_patches(exvideo), FRAMES, sigma=1.0)
    torch.testing.assert_close(full, reference, rtol=0, atol=1e-6)


def test_patches_in_the_shallow_end_see_the_full_calls_transformer_indices(exvideo):
    """Attention patches are keyed by (block, transformer_index): a cached call must count as a full one does."""
    seen = []

    def record(h, skip, options):
        seen.append((options["block"], options["transformer_index"]))
        return h, skip

    patched = exvideo.clone()
    patched.set_model_output_block_patch(record)
    depth = 2
    _, run = cached_calls(patched, DeepCacheSettings(interval=3, depth=depth), [1.0, 1.0, 1.0])
    outputs = len(exvideo.model.diffusion_model.output_blocks)
    full, first_cached, second_cached = seen[:outputs], seen[outputs:outputs + depth], seen[outputs + depth:]
    assert first_cached == second_cached == full[-depth:]
    assert run.transformers_before_shallow_end == full[-depth][1] > 0


def test_cached_calls_run_only_the_shallow_blocks(exvideo, block_calls):
    calls = block_calls
    outputs, run = cached_calls(exvideo, DeepCacheSettings(interval=3, depth=2), [4.0, 3.0, 2.0, 1.0])
    unet = exvideo.model.diffusion_model
    blocks = len(unet.input_blocks) + 1 + len(unet.output_blocks)
    shallow = ["input 0", "input 1", f"output {len(unet.output_blocks) - 2}", f"output {len(unet.output_blocks) - 1}"]
    full = [f"input {i}" for i in range(len(unet.input_blocks))] + ["middle"]
    full += [f"output {i}" for i in range(len(unet.output_blocks))]
    assert calls == full + shallow + shallow + full
    assert (run.full_calls, run.cached_calls) == (2, 2)
    assert run.block_ratio() == pytest.approx(4 * blocks / (2 * blocks + 8))
    # The cached calls are not the full ones at their sigma: they reuse the deep feature of sigma 4.
    uncached = apply_model_direct(exvideo, FRAMES, sigma=3.0)
    assert not torch.allclose(outputs[1], uncached, atol=1e-4)


def test_each_batch_keeps_its_own_feature(exvideo):
    """One video and two videos alternate, as cond and uncond do when they run apart: each is cached apart."""
    settings = DeepCacheSettings(interval=2)
    cached = with_deep_cache(exvideo, settings)
    run = cached.model_options["transformer_options"][KEY] = CacheRun(settings)
    one, two, one_again, two_again = (apply_model_direct(cached, FRAMES, videos=v, sigma=1.0, wrappers=True)
                                      for v in (1, 2, 1, 2))
    assert (run.full_calls, run.cached_calls, len(run.features)) == (2, 2, 2)
    torch.testing.assert_close(one_again, one, rtol=0, atol=1e-6)
    torch.testing.assert_close(two_again, two, rtol=0, atol=1e-6)


def test_off_is_the_model_itself(exvideo):
    assert with_deep_cache(exvideo, DeepCacheSettings()) is exvideo


@pytest.mark.parametrize("settings, message", [
    (dict(interval=0), "interval must be a whole number from 1"),
    (dict(interval=2.0), "interval must be a whole number from 1"),
    (dict(depth=0), "depth must be a whole number from 1"),
    (dict(depth=MAX_DEPTH + 1), "depth must be a whole number from 1"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(InputError, match=message):
        DeepCacheSettings(**settings)


def test_a_depth_past_a_smaller_unet_is_refused():
    unet = types.SimpleNamespace(input_blocks=[None] * 4, output_blocks=[None] * 4)
    model = types.SimpleNamespace(model=types.SimpleNamespace(diffusion_model=unet))
    with pytest.raises(InputError, match="can be at most 3"):
        with_deep_cache(model, DeepCacheSettings(interval=2, depth=4))


def test_keyframes_forward_and_reversed_passes_keep_their_own_features(exvideo, clip_vision, vae, monkeypatch):
    """Both passes of a step batch cond and uncond alike; only their conditionings tell them apart."""
    from exvideo_core import deep_cache
    from exvideo_core.keyframes import sample_between
    from exvideo_core.sampling import SamplingSettings, image_to_video_conditioning

    runs = []

    class RecordedRun(CacheRun):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            runs.append(self)

    monkeypatch.setattr(deep_cache, "CacheRun", RecordedRun)
    settings = SamplingSettings(steps=4, seed=1)
    images = torch.rand(2, 128, 128, 3, generator=torch.Generator().manual_seed(0))
    start, end = (image_to_video_conditioning(clip_vision, vae, images[i:i + 1], 128, 128, FRAMES, settings)
                  for i in range(2))
    cached = with_deep_cache(exvideo, DeepCacheSettings(interval=2))
    sample_between(cached, start[:2], end[:2], start[2], settings)
    (run,) = runs
    assert len(run.features) == 2 and (run.full_calls, run.cached_calls) == (4, 4)
