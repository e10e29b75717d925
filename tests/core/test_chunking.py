"""The frame-chunked forward equals the unchunked one, stays on the clone, and reports its own memory need."""

import pytest
import torch

import comfy.model_management

from exvideo_core import ExVideoError, apply_exvideo
from exvideo_core.chunk_policy import chunk_frames
from exvideo_core.video_resblock import ExVideoVideoResBlock
from exvideo_core.errors import InputError
from exvideo_core.temporal_block import ExVideoVideoTransformer
from exvideo_harness.svd_models import apply_model_direct

pytestmark = pytest.mark.usefixtures("unload_after")

FRAMES = 5  # a prime: no chunk size but 1 and 5 divides it


@pytest.fixture(scope="module")
def unchunked(base, weights):
    return apply_model_direct(apply_exvideo(base, weights, frame_chunk=0), FRAMES, videos=2, seed=4)


@pytest.mark.parametrize("chunk", [2, 7])
def test_chunked_equals_unchunked_with_cond_and_uncond_batched(base, weights, unchunked, chunk):
    # 7 chunks only the level-0 spatial layers (7 of the batch's 10 frames), 2 within a video too.
    chunked = apply_model_direct(apply_exvideo(base, weights, frame_chunk=chunk), FRAMES, videos=2, seed=4)
    assert (chunked - unchunked).abs().max() <= 1e-5


def test_chunking_really_runs_in_chunks(base, weights, monkeypatch):
    """The equality above must not come from every layer quietly running whole."""
    calls = {}
    real = ExVideoVideoTransformer.forward

    def counting(self, x, *args, **kwargs):
        calls.setdefault(self.chunk_level, chunk_frames(self.frame_chunk, self.chunk_level, x.shape[0], *x.shape[-2:]))
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(ExVideoVideoTransformer, "forward", counting)
    apply_model_direct(apply_exvideo(base, weights, frame_chunk=1), 8)
    # One frame's worth of the latent's tokens: 1 frame at level 0, 4 at level 1, whole below (8 frames).
    assert calls == {0: 1, 1: 4, 2: 0, 3: 0}


def test_two_frames_with_chunks_of_one(base, weights):
    whole = apply_model_direct(apply_exvideo(base, weights, frame_chunk=0), 2, seed=2)
    chunked = apply_model_direct(apply_exvideo(base, weights, frame_chunk=1), 2, seed=2)
    assert (chunked - whole).abs().max() <= 1e-5


def test_one_frame_is_the_same_clear_error_chunked_or_not(base, weights):
    for chunk in (0, 1):
        with pytest.raises(ExVideoError, match="at least 2 frames"):
            apply_model_direct(apply_exvideo(base, weights, frame_chunk=chunk), 1)


def test_automatic_chunk_runs_a_small_video_whole_and_a_long_one_in_chunks():
    assert chunk_frames(None, 0, 128, 16, 16) == 0  # 16x16 latent: 128 frames a chunk
    assert chunk_frames(None, 0, 128, 64, 64) == 8  # 512x512, level 0
    assert chunk_frames(None, 3, 128, 8, 8) == 0  # its deepest level
    assert chunk_frames(0, 0, 128, 64, 64) == 0
    assert chunk_frames(5, 0, 128, 2, 2) == 5 and chunk_frames(5, 1, 128, 2, 2) == 20


@pytest.mark.parametrize("bad", [-1, 2.5, True, "8"])
def test_a_bad_frame_chunk_is_a_clear_input_error(base, weights, bad):
    with pytest.raises(InputError, match="frame_chunk"):
        apply_exvideo(base, weights, frame_chunk=bad)


def test_the_unpatched_model_keeps_its_blocks_and_memory_estimate(base, weights):
    before = base.model.memory_required([50, 4, 64, 64])
    chunked = apply_exvideo(base, weights, frame_chunk=1)
    apply_model_direct(chunked, 3)
    assert "memory_required" in chunked.object_patches
    comfy.model_management.unload_all_models()
    assert not any(isinstance(m, (ExVideoVideoResBlock, ExVideoVideoTransformer)) for m in base.model.modules())
    assert base.model.memory_required.__func__ is type(base.model).memory_required
    assert base.model.memory_required([50, 4, 64, 64]) == before


def test_memory_required_of_the_clone_follows_the_chunk(base, weights):
    shape = [2 * 128, 4, 64, 64]  # cond and uncond of a 512x512x128 video
    native = base.model.memory_required(shape)
    estimate = {chunk: apply_exvideo(base, weights, frame_chunk=chunk).get_model_object("memory_required")(shape)
                for chunk in (0, 4, None)}
    assert estimate[4] < estimate[0] / 2
    assert estimate[None] < estimate[0] / 2
    # Once loaded, ComfyUI's own calls (the sampler's batching, ModelPatcher.memory_required) see the clone's.
    chunked = apply_exvideo(base, weights, frame_chunk=4)
    comfy.model_management.load_models_gpu([chunked])
    assert chunked.model.memory_required(shape, cond_shapes={}) == estimate[4]
    assert chunked.memory_required(shape) == estimate[4]
    comfy.model_management.unload_all_models()
    assert base.model.memory_required(shape) == native


def test_gradients_through_the_chunked_forward_equal_the_unchunked(base, weights):
    """A trainer's forward may chunk too (frame_chunk defaults to automatic): autograd must see the same function."""
    grads = []
    for chunk in (0, 1):
        patched = apply_exvideo(base, weights, frame_chunk=chunk)
        comfy.model_management.load_models_gpu([patched])
        conv = patched.get_model_object("diffusion_model.input_blocks.1.1").time_pos_conv.weight
        conv.requires_grad_(True)
        try:
            with torch.enable_grad():
                apply_model_direct.__wrapped__(patched, 3).square().mean().backward()
            grads.append(conv.grad.clone())
        finally:
            conv.requires_grad_(False)
            conv.grad = None
    assert grads[0].abs().max() > 0 and (grads[1] - grads[0]).abs().max() <= 1e-6
