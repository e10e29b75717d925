"""Overlapped temporal VAE decode: DiffSynth's decode_video on ComfyUI's SVD VAE.

The oracle for window placement and blending is DiffSynth-Studio 1.1.9's own
`SVDVAEDecoder.decode_video`, run around the same decoder as ours: a cheap
window-dependent stand-in for the edge cases, the narrow real decoder for
tiles, and, at full size, DiffSynth's decoder against ComfyUI's.
"""

import types

import pytest
import torch
from einops import rearrange
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import comfy.model_management
import comfy.sd

from exvideo_core.errors import ExVideoError
from exvideo_core.temporal_decode import spans, temporal_decode
from exvideo_harness.svd_vae import build_image_vae, build_svd_vae, diffsynth_vae_decoder, window_dependent_decode

DIFFSYNTH_SCALE = 0.18215  # SVDVAEDecoder.scaling_factor: DiffSynth's latents are ComfyUI's times this


def latents(frames: int, height: int = 4, width: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(frames, 4, height, width, generator=torch.Generator().manual_seed(seed))


def diffsynth_reference(vae, decode, samples, window, overlap, tile_size=0, tile_overlap=0):
    """DiffSynth's `decode_video` (placement, masks, normalisation) around `decode`, then `vae.process_output`."""
    from diffsynth.models.svd_vae_decoder import SVDVAEDecoder

    _, _, height, width = samples.shape
    tile, tile_stride = (tile_size, tile_size - tile_overlap) if tile_size else (height + width, height + width)
    stand_in = types.SimpleNamespace(
        conv_in=types.SimpleNamespace(weight=samples),  # decode_video only reads its device
        forward=lambda s: rearrange(decode(rearrange(s, "c t h w -> t c h w")), "t c h w -> c t h w"),
        build_mask=lambda data, is_bound: SVDVAEDecoder.build_mask(None, data, is_bound),
    )
    with torch.no_grad():
        video = SVDVAEDecoder.decode_video(
            stand_in, samples, batch_time=window, stride_time=window - overlap,
            batch_height=tile, stride_height=tile_stride, batch_width=tile, stride_width=tile_stride)
    return rearrange(vae.process_output(rearrange(video, "c t h w -> t c h w")), "t c h w -> t h w c")


@pytest.mark.parametrize("frames, window, overlap, expected", [
    (16, 8, 4, [(0, 8), (4, 12), (8, 16)]),
    (13, 8, 4, [(0, 8), (4, 12), (8, 13)]),  # the last window is cut at the end, not shifted back
    (10, 8, 4, [(0, 8), (4, 10)]),
    (5, 8, 4, [(0, 5)]),
    (8, 8, 4, [(0, 8)]),
    (17, 8, 0, [(0, 8), (8, 16), (16, 17)]),
    (6, 4, 3, [(0, 4), (1, 5), (2, 6)]),
])
def test_window_placement(frames, window, overlap, expected):
    assert spans(frames, window, window - overlap) == expected


@pytest.mark.parametrize("frames, window, overlap", [
    (5, 8, 4),  # fewer frames than a window
    (8, 8, 4),
    (10, 8, 4),  # not a multiple of the stride
    (13, 8, 4),
    (16, 8, 4),
    (16, 8, 0),  # no overlap
    (17, 8, 0),  # a one-frame last window
    (12, 6, 5),  # stride 1
    (9, 2, 1),  # the smallest window
    (40, 16, 6),
])
def test_blending_equals_diffsynth(vae, decoder_calls, frames, window, overlap):
    samples = latents(frames)
    ours = temporal_decode(vae, samples, window, overlap)
    windows = spans(frames, window, window - overlap)
    assert decoder_calls == [(t1 - t0, 4, 4, 4) for t0, t1 in windows]
    # Same decoder, same float operations in the same order as DiffSynth: bit for bit.
    assert torch.equal(ours, diffsynth_reference(vae, window_dependent_decode, samples, window, overlap))


@pytest.mark.parametrize("height, width, tile_size, tile_overlap", [
    (8, 8, 3, 1),
    (7, 9, 5, 2),  # tiles cut at the edges
    (8, 8, 4, 0),
    (8, 8, 16, 4),  # one tile bigger than the frame: the same as no tiles
])
def test_tiled_blending_equals_diffsynth(vae, decoder_calls, height, width, tile_size, tile_overlap):
    samples = latents(10, height, width)
    ours = temporal_decode(vae, samples, 8, 4, tile_size, tile_overlap)
    reference = diffsynth_reference(vae, window_dependent_decode, samples, 8, 4, tile_size, tile_overlap)
    assert ours.shape == (10, 8 * height, 8 * width, 3)
    assert torch.equal(ours, reference)
    assert all(h <= tile_size and w <= tile_size for _, _, h, w in decoder_calls)


def test_tiles_of_the_real_decoder_equal_diffsynth(vae):
    """The narrow ComfyUI decoder itself, with tiles: the batch it gets is one clip, as in DiffSynth's forward."""
    samples = latents(10, 5, 5)
    ours = temporal_decode(vae, samples, 8, 4, tile_size=3, tile_overlap=1)
    reference = diffsynth_reference(vae, vae.first_stage_model.decode, samples, 8, 4, 3, 1)
    assert torch.equal(ours, reference)


def test_one_window_equals_native_decode(vae):
    """With all frames in one window the blend weights are flat: the result is ComfyUI's `VAE.decode`."""
    samples = latents(6)
    assert torch.equal(temporal_decode(vae, samples, window=8, overlap=4), vae.decode(samples))


class AllocationLog(TorchDispatchMode):
    """Size of every tensor storage the ops under it return, by storage address."""

    def __init__(self):
        super().__init__()
        self.storages: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
                storage = tensor.untyped_storage()
                self.storages[storage.data_ptr()] = max(storage.nbytes(), self.storages.get(storage.data_ptr(), 0))
        return out


def test_memory_does_not_grow_with_frames(vae, decoder_calls):
    """Proxy for peak memory (the benchmark measures it): only the output scales with the frame count.

    Every decoder call gets at most one window, and besides the output itself
    no allocation is larger for 128 frames than for 16.
    """
    largest_other = {}
    for frames in (16, 128):
        decoder_calls.clear()
        with AllocationLog() as log:
            image = temporal_decode(vae, latents(frames), window=8, overlap=4)
        output = image.untyped_storage()
        assert log.storages[output.data_ptr()] == output.nbytes() == image.numel() * 4
        largest_other[frames] = max(size for ptr, size in log.storages.items() if ptr != output.data_ptr())
        assert max(t for t, *_ in decoder_calls) == 8
        assert len(decoder_calls) == len(spans(frames, 8, 4))
    assert largest_other[128] == largest_other[16] < image.numel() * 4 * 16 / 128


def test_progress_reports_every_chunk(vae, decoder_calls):
    reports = []
    temporal_decode(vae, latents(10, 7, 9), 8, 4, tile_size=5, tile_overlap=2, callback=lambda *a: reports.append(a))
    total = 2 * 2 * 3  # windows (0-8, 4-10) x tile rows (0-5, 3-7) x tile columns (0-5, 3-8, 6-9)
    assert reports == [(done, total) for done in range(1, total + 1)]


def test_interrupt_stops_between_windows(vae, decoder_calls):
    def interrupt(done, total):
        comfy.model_management.interrupt_current_processing(True)

    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            temporal_decode(vae, latents(16), callback=interrupt)
        assert len(decoder_calls) == 1
        assert not comfy.model_management.processing_interrupted()  # ComfyUI clears the flag as it raises
    finally:
        comfy.model_management.interrupt_current_processing(False)


@pytest.mark.parametrize("shape, arguments, message", [
    ((10, 4, 4, 4), {"window": 1, "overlap": 0}, "window_frames must be at least 2"),
    ((10, 4, 4, 4), {"window": 8, "overlap": 8}, "overlap_frames must be"),
    ((10, 4, 4, 4), {"window": 8, "overlap": -1}, "overlap_frames must be"),
    ((10, 4, 4, 4), {"tile_size": 4, "tile_overlap": 4}, "tile_size must be 0"),
    ((10, 4, 4, 4), {"tile_size": -8}, "tile_size must be 0"),
    ((10, 16, 4, 4), {}, "expected SVD video latents"),
    ((1, 4, 10, 4, 4), {}, "expected SVD video latents"),
])
def test_bad_arguments(vae, decoder_calls, shape, arguments, message):
    with pytest.raises(ExVideoError, match=message):
        temporal_decode(vae, torch.zeros(shape), **arguments)
    assert decoder_calls == []


@pytest.mark.parametrize("make_vae", [lambda: build_image_vae(channels=32), lambda: comfy.sd.VAE(sd={})],
                         ids=["image-vae", "empty-vae"])
def test_other_vaes_are_refused_with_advice(make_vae):
    with pytest.raises(ExVideoError, match="Image Only Checkpoint Loader"):
        temporal_decode(make_vae(), latents(10))


@pytest.mark.full_size
def test_full_size_decode_equals_diffsynth():
    """ComfyUI's SVD VAE and DiffSynth's decoder on the same random full-size weights, default windows.

    10 frames make a full and a truncated window. The two decoders differ by
    about 4e-5 on raw outputs of magnitude 3 (conv and attention kernels),
    2e-5 after `process_output` halves them; blending adds no error
    (the tests above are exact), so 1e-4 bounds the image difference.
    """
    samples = latents(10)
    ours = temporal_decode(build_svd_vae(seed=0), samples)
    comfy.model_management.unload_all_models()
    decoder = diffsynth_vae_decoder(seed=0)
    with torch.no_grad():
        video = decoder.decode_video(DIFFSYNTH_SCALE * samples)
    reference = rearrange(((video + 1) / 2).clamp(0, 1), "c t h w -> t h w c")
    assert 0.1 < reference.std() < 0.5, "an image that is neither flat nor clipped keeps the tolerance meaningful"
    assert (ours - reference).abs().max() <= 1e-4
