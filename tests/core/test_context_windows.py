"""ComfyUI's own Context Windows (Manual) on an ExVideo-patched MODEL (small random SVD)."""

import pytest
import torch

import comfy.model_management
import comfy.sample
from comfy_extras.nodes_context_windows import ContextWindowsManualNode

from exvideo_core import load_exvideo
from exvideo_core.context_windows import SvdFrameWindows, for_svd_frames
from exvideo_core.errors import FrameCountError
from exvideo_core.patch import apply_exvideo, check_video_length
from exvideo_harness.exvideo_files import SMALL, random_exvideo_state_dict
from exvideo_harness.svd_models import svd_conditioning

TABLE = 3  # rows of the extension; the videos here are twice as long


@pytest.fixture(scope="module")
def patched(base):
    return apply_exvideo(base, load_exvideo(random_exvideo_state_dict(TABLE, seed=1, **SMALL)))


def windowed(model, context_length=TABLE, overlap=0, schedule="batched", fuse="flat", dim=0):
    """The MODEL as the native node returns it."""
    return ContextWindowsManualNode.execute(model, context_length, overlap, schedule, 1, False, fuse, dim).result[0]


def sample(model, noise):
    positive, negative = svd_conditioning(noise.shape[0], SMALL["context_dim"])
    with torch.inference_mode():
        out = comfy.sample.sample(model, noise, 1, 1.0, "euler", "karras", positive, negative, torch.zeros_like(noise),
                                  disable_pbar=True, seed=0)
    comfy.model_management.unload_all_models()
    return out


def test_each_window_is_sampled_as_a_video_of_its_own(patched):
    """Windows side by side (no overlap): each equals that part sampled alone, i.e. with table rows 0..2."""
    noise = torch.randn(2 * TABLE, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    video = sample(windowed(patched), noise)
    alone = torch.cat([sample(patched, noise[:TABLE]), sample(patched, noise[TABLE:])])
    assert torch.allclose(video, alone, atol=1e-5)
    # The windows are fused into a video, not the last window's frames everywhere.
    assert (video[:TABLE] - video[TABLE:]).abs().max() > 1e-3


def test_a_video_longer_than_the_table_needs_windows_that_fit(patched):
    check_video_length(windowed(patched), 100)
    check_video_length(windowed(patched, context_length=2), 100)
    with pytest.raises(FrameCountError, match=rf"100 latent frames but .* covers only {TABLE}\."):
        check_video_length(patched, 100)
    with pytest.raises(FrameCountError, match=rf"{TABLE + 1} latent frames long \(context_length\) .* only {TABLE}: "
                                              rf".* at most {TABLE}\."):
        check_video_length(windowed(patched, context_length=TABLE + 1), 100)
    with pytest.raises(FrameCountError, match="dim 2, which is not SVD's frame axis"):
        check_video_length(windowed(patched, dim=2), 100)


def test_a_too_long_window_is_refused_before_sampling(patched):
    with pytest.raises(FrameCountError, match=r"context_length"):
        sample(windowed(patched, context_length=TABLE + 1), torch.zeros(2 * TABLE, 4, 16, 16))


def test_the_step_is_found_from_svd_per_frame_timesteps(patched):
    handler = windowed(patched, overlap=1, schedule="standard_uniform").model_options["context_handler"]
    options = {"context_handler": handler, "transformer_options": {"sample_sigmas": torch.tensor([14.6, 3.0, 0.5, 0.0])}}
    # ComfyUI 0.3.75's own handler compares every frame's timestep with the sigmas and fails.
    with pytest.raises(RuntimeError, match="must match the size"):
        handler.set_step(torch.full((8,), 3.0), options)
    for_svd_frames(options)
    windows = options["context_handler"]
    assert type(windows) is SvdFrameWindows and windows.context_length == TABLE and windows.context_overlap == 1
    windows.set_step(torch.full((8,), 3.0), options)
    assert windows._step == 1
    windows.set_step(torch.full((8,), 1.7), options)  # a multi-step sampler's sub-step: the last step's windows
    assert windows._step == 1


def test_a_host_that_reads_svd_steps_keeps_its_own_handler(patched, monkeypatch):
    """The class swap is decided by what the host's code does, not by its version."""
    from exvideo_core import context_windows

    def fixed_set_step(self, timestep, model_options):
        sigmas = model_options["transformer_options"]["sample_sigmas"]
        self._step = int(torch.nonzero(torch.isclose(sigmas, timestep.flatten()[0]))[0].item())

    assert not context_windows.host_reads_svd_steps()  # 0.3.75's handler
    context_windows.host_reads_svd_steps.cache_clear()
    monkeypatch.setattr(context_windows.IndexListContextHandler, "set_step", fixed_set_step)
    try:
        assert context_windows.host_reads_svd_steps()
        handler = windowed(patched).model_options["context_handler"]
        options = {"context_handler": handler}
        for_svd_frames(options)
        assert options["context_handler"] is handler
    finally:
        context_windows.host_reads_svd_steps.cache_clear()
