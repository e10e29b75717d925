import torch

from exvideo_core import layout
from exvideo_harness.exvideo_files import FULL, exvideo_shapes, random_exvideo_state_dict

RELEASED_SIGNATURE = "9a4ab6869ac9b7d6e31f9854e397c867"  # ExVideo-SVD-128f-v1, as DiffSynth recognises it


def test_mapping_covers_528_tensors_both_ways():
    assert len(layout.DIFFSYNTH_TO_COMFY) == 16 * 33 == 528
    assert len(layout.COMFY_TO_DIFFSYNTH) == 528
    assert all(v.startswith("diffusion_model.") for v in layout.DIFFSYNTH_TO_COMFY.values())


def shaped_like(num_frames: int) -> dict[str, torch.Tensor]:
    return {k: torch.empty(shape, device="meta") for k, shape in exvideo_shapes(num_frames, **FULL).items()}


def test_fixture_layout_reproduces_the_released_key_signature():
    state_dict = shaped_like(128)
    assert len(state_dict) == 528
    assert layout.diffsynth_signature(state_dict) == RELEASED_SIGNATURE


def test_other_lengths_have_other_signatures():
    assert layout.diffsynth_signature(shaped_like(64)) != RELEASED_SIGNATURE


def test_detect_layout():
    diffsynth = random_exvideo_state_dict(8, model_channels=32, context_dim=64)
    assert layout.detect_layout(diffsynth) == "diffsynth"
    assert layout.detect_layout(layout.to_comfyui(diffsynth)) == "comfyui"
    assert layout.detect_layout(["model.diffusion_model.input_blocks.0.0.weight"]) is None


def test_foreign_files_are_described():
    svd = ["model.diffusion_model.x", "conditioner.embedders.0.open_clip.model.visual.proj"]
    assert "full SVD checkpoint" in layout.describe_foreign_keys(svd)
    assert "LoRA" in layout.describe_foreign_keys(["lora_unet_down_blocks_0.lora_down.weight"])
    assert "holds no tensors" in layout.describe_foreign_keys([])
