"""Reliability on the small SVD, in-process: the failures of the server sweep (test_reliability_server.py) that
must hold without the full-size model too.

A MODEL that produces NaN before training starts, and saves onto a read-only
or full filesystem (a tmpfs, when this process may mount one).
"""

import pytest
import torch

import comfy.model_management

from exvideo_core import SaveError, load_exvideo, save_exvideo
from exvideo_core.train import TrainConfig, Trainer, TrainingDivergedError, load_state
from exvideo_harness.exvideo_files import SMALL, random_exvideo_state_dict
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, build_svd_model
from exvideo_harness.train_data import training_clips


def test_nan_model_stops_at_step_1_naming_the_inputs(tmp_path):
    """A NaN weight patch on a spatial layer (what a diverged LoRA does): the first loss is NaN, before any update."""
    model = build_svd_model(SMALL_UNET_CONFIG, seed=0).clone()
    key = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    weight = model.model.state_dict()[key]
    model.add_patches({key: ("set", (torch.full_like(weight, float("nan")),))})
    trainer = Trainer(model, list(training_clips()), TrainConfig(steps=2, gradient_checkpointing=False))
    with pytest.raises(TrainingDivergedError, match="loss is nan before any update") as error:
        trainer.train(state_path=tmp_path / "run.state.safetensors")
    assert error.value.step == 1 and "MODEL" in str(error.value) and "learning rate" not in str(error.value)
    assert load_state(tmp_path / "run.state.safetensors").step == 0
    comfy.model_management.unload_all_models()


def fill(folder) -> None:
    with open(folder / "filler.bin", "wb", buffering=0) as f:  # unbuffered: the close cannot fail
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def files_in(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("options, reason", [("ro,size=1m", "Read-only file system"),
                                             ("size=256k", "No space left on device")])
def test_save_onto_a_read_only_or_full_disk_leaves_nothing(tmpfs, options, reason):
    folder = tmpfs(options)
    if "ro" not in options.split(","):
        fill(folder)
    before = files_in(folder)
    weights = load_exvideo(random_exvideo_state_dict(4, seed=0, **SMALL))
    for target in (folder / "ext.safetensors", folder / "sub" / "ext.safetensors"):
        with pytest.raises(SaveError, match=reason) as error:
            save_exvideo(weights, target)
        assert "Nothing was written" in str(error.value) and isinstance(error.value, OSError)
    assert files_in(folder) == before  # (an empty subfolder may remain, as ComfyUI's own saves leave)
