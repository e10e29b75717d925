"""ExVideo on ComfyUI's SVD UNet equals DiffSynth-Studio 1.1.9's SVDUNet.

Same random full-size weights (fp32, CPU) on both sides. One ComfyUI forward
may hold several videos (cond and uncond are batched), so one case runs two
different videos in one forward against two DiffSynth forwards.
"""

import gc

import pytest
import torch

import comfy.model_management

from exvideo_core import apply_exvideo, load_exvideo
from exvideo_harness.diffsynth_reference import diffsynth_unet, diffsynth_unet_forward
from exvideo_harness.exvideo_files import FULL, random_exvideo_state_dict
from exvideo_harness.svd_checkpoint import full_size_svd_model
from exvideo_harness.unet_cases import AUGMENTATION, FPS, MOTION, TOLERANCE, case_inputs, comfy_outputs

pytestmark = pytest.mark.full_size

NUM_FRAMES = 26  # N: the T = N case is also the T > 25 case

# (case name, extension applied?, frames per video, videos in one ComfyUI forward, input seed).
# Video 0 of a seed has the same inputs in every case (unet_cases.case_inputs), so "base" and the first video
# of "exvideo-T4x2" differ only by the extension.
CASES = [
    ("base", False, 4, 1, 0),
    ("exvideo-T4x2", True, 4, 2, 0),
    ("exvideo-T26", True, NUM_FRAMES, 1, 1),
]
# Chunking on the first video of the 4-frame case (two chunks at level 0): tests/core/test_chunking.py checks
# it on two videos in one forward at small size, and each full-size frame costs a second a forward on CI.
CHUNK = 2
CHUNKED = f"exvideo-T4-chunk{CHUNK}"


@pytest.fixture(scope="module")
def outputs():
    """Both implementations on every case, one after the other to bound peak memory."""
    extension = random_exvideo_state_dict(NUM_FRAMES, seed=1, **FULL)
    base = full_size_svd_model()
    patched = apply_exvideo(base, load_exvideo(extension))
    ours = {}
    for name, use_exvideo, frames, videos, seed in CASES:
        ours[name] = comfy_outputs(patched if use_exvideo else base, frames, videos, seed)
    chunked = apply_exvideo(base, load_exvideo(extension), frame_chunk=CHUNK)
    ours[CHUNKED] = comfy_outputs(chunked, 4, 1, 0)
    comfy.model_management.unload_all_models()
    sgm = {"model." + k: v for k, v in base.model.state_dict().items() if k.startswith("diffusion_model.")}
    del base, patched, chunked
    gc.collect()

    reference = {}
    for use_exvideo in (False, True):
        unet = diffsynth_unet(sgm, extension if use_exvideo else None)
        for name, case_exvideo, frames, videos, seed in CASES:
            if case_exvideo != use_exvideo:
                continue
            samples, image_embs, timestep = case_inputs(frames, videos, seed)
            reference[name] = [
                diffsynth_unet_forward(unet, sample, timestep, emb, FPS, MOTION, AUGMENTATION)
                for sample, emb in zip(samples, image_embs)
            ]
        del unet
        gc.collect()
    reference[CHUNKED] = reference["exvideo-T4x2"][:1]
    return ours, reference


@pytest.mark.parametrize("name", [case[0] for case in CASES] + [CHUNKED])
def test_unet_output_matches_diffsynth(outputs, name):
    ours, reference = outputs
    assert len(ours[name]) == len(reference[name])
    for mine, theirs in zip(ours[name], reference[name]):
        assert 0.1 < theirs.std() < 10, "outputs of order 1 keep the absolute tolerance meaningful"
        assert (mine - theirs).abs().max() <= TOLERANCE


def test_videos_in_one_forward_stay_independent(outputs):
    ours, _ = outputs
    first, second = ours["exvideo-T4x2"]
    assert (first - second).abs().max() > 0.1


def test_extension_changes_the_output(outputs):
    """The perturbed extension must matter, or the parity above would prove little."""
    ours, reference = outputs
    assert torch.equal(case_inputs(4, 1, 0)[0][0], case_inputs(4, 2, 0)[0][0])
    base_t4, exvideo_t4 = reference["base"][0], reference["exvideo-T4x2"][0]  # same inputs
    assert (exvideo_t4 - base_t4).abs().max() > 0.1
