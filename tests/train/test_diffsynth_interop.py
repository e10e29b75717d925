"""A post-tuned extension, saved by Save ExVideo Extension in DiffSynth's layout, is loaded by DiffSynth-Studio
1.1.9 the way it loads ExVideo-SVD-128f-v1 and computes what our patched ComfyUI model computes.

Full-size random SVD-XT (fp32, CPU). The run starts from a random extension shaped like the released one
(128-row tables, fp16), so DiffSynth's ModelManager recognises the saved file by its key:shape hash and builds
`SVDUNet(add_positional_conv=128)` on its own; the clip is 4 frames of a 16x16 latent.

The optimizer step is AdamW's first step (p <- p(1 - lr wd) - lr g / (|g| + eps)), computed without AdamW's two
state tensors per parameter: for the 835M trained parameters they would take 6.7 GB, which does not fit beside
the model, the trainer's fp32 masters and the gradients on the 24 GB CPU machine the suite runs on.
Measured peaks (VmHWM) when the clip was 8 frames: training 16.3 GB, ComfyUI outputs 15.5 GB, DiffSynth loading
the file 19.1 GB. About 2 minutes on 2 CPU cores. Run it under the full-size lock.
"""

import ctypes
import gc
import importlib

import pytest
import torch

import comfy.model_management
import folder_paths

from exvideo_core import apply_exvideo, load_exvideo
from exvideo_core.layout import TABLE, TEMPORAL_BLOCKS
from exvideo_core.train import TrainConfig, Trainer
from exvideo_core.train.cache import EncodedClip
from exvideo_harness.diffsynth_reference import diffsynth_unet_forward, no_random_init
from exvideo_harness.exvideo_files import FULL, random_exvideo_state_dict
from exvideo_harness.pack import load_pack_nodes
from exvideo_harness.svd_checkpoint import full_size_svd_model
from exvideo_harness.unet_cases import AUGMENTATION, FPS, MOTION, TOLERANCE, case_inputs, comfy_outputs

pytestmark = pytest.mark.full_size

NUM_FRAMES = 128  # the released length, so DiffSynth detects the file as ExVideo by its key:shape hash
CLIP_FRAMES = 4
LATENT = 16  # as in exvideo_harness.unet_cases (case_inputs): the smallest size the reflect-padded conv admits
LEARNING_RATE = 1e-3
CASE_SEED = 2


def release() -> None:
    """Return freed memory to the OS between phases, so the next phase's peak starts from what is alive."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


class FirstAdamWStep(torch.optim.Optimizer):
    """torch's AdamW at step 1 (bias-corrected moments are g and g^2), holding no state."""

    def __init__(self, params, lr: float, weight_decay: float, eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.sub_(group["lr"] * p.grad / (p.grad.abs() + group["eps"]))


@pytest.fixture(scope="module")
def results(module_scratch):
    """Train, save, run ComfyUI; then load the file into DiffSynth and run it; one phase at a time for memory."""
    output = module_scratch / "output"
    output.mkdir()
    base = full_size_svd_model()
    start = load_exvideo(random_exvideo_state_dict(NUM_FRAMES, seed=1, dtype=torch.float16, **FULL))
    g = torch.Generator().manual_seed(0)
    clip = EncodedClip("random", torch.randn(CLIP_FRAMES, 4, LATENT, LATENT, generator=g),
                       torch.randn(1, 1024, generator=g), MOTION, 0.0)
    config = TrainConfig(steps=1, mode="full", learning_rate=LEARNING_RATE, gradient_checkpointing=True, fps=FPS)
    trainer = Trainer(base, [clip], config, weights=start)
    trainer.optimizer = FirstAdamWStep(trainer.parameters.values(), LEARNING_RATE, config.weight_decay)
    result = trainer.train()
    trained = trainer.weights()
    del trainer
    release()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(folder_paths, "output_directory", str(output))
        train_nodes = importlib.import_module(f"{load_pack_nodes().__name__}.nodes_train")
        train_nodes.ExVideoSaveExtension.execute(trained, "exvideo/trained", "diffsynth")
    (saved,) = (output / "exvideo").glob("trained_*.safetensors")

    change = {key: (value - start.tensors[key].float()).abs().max().item() for key, value in trained.tensors.items()}
    outputs = []
    for weights in (trained, start):
        outputs.append(comfy_outputs(apply_exvideo(base, weights), CLIP_FRAMES, 1, CASE_SEED)[0])
        comfy.model_management.unload_all_models()
    ours, untrained = outputs
    sgm = {"model." + k: v for k, v in base.model.state_dict().items() if k.startswith("diffusion_model.")}
    del base, start, trained
    release()

    reference, table_rows = diffsynth_from_file(sgm, saved)
    return result, change, ours, untrained, reference, table_rows


def diffsynth_from_file(sgm: dict, path):
    """DiffSynth's own route: the base UNet in its ModelManager, then the ExVideo file, detected by its hash."""
    from diffsynth.models.model_manager import ModelManager
    from diffsynth.models.svd_unet import SVDUNet

    manager = ModelManager(torch_dtype=torch.float32, device="cpu")
    manager.load_model_from_single_file(state_dict=sgm, model_names=["svd_unet"], model_classes=[SVDUNet],
                                        model_resource="civitai")
    sgm.clear()  # the base UNet was built on these tensors
    release()
    with no_random_init():  # the patch route builds a new SVDUNet, then loads every tensor over it
        manager.load_model(str(path))
    assert manager.model_name == ["svd_unet"], "the file patched the base UNet instead of loading beside it"
    unet = manager.fetch_model("svd_unet")
    samples, image_embs, timestep = case_inputs(CLIP_FRAMES, 1, CASE_SEED)
    out = diffsynth_unet_forward(unet, samples[0], timestep, image_embs[0], FPS, MOTION, AUGMENTATION)
    table_rows = unet.blocks[7].positional_embedding.embeddings.shape[0]
    del manager, unet
    release()
    return out, table_rows


def test_one_real_step_changed_every_trained_tensor(results):
    result, change, *_ = results
    assert result.step == 1 and len(result.losses) == 1
    # SVD's cross-attention sees one context token (softmax over one key is 1): its q and k, and norm2, which
    # feeds only q, get no gradient.
    frozen_by_design = {k for k in change if any(m in k for m in (".attn2.to_q.", ".attn2.to_k.", ".norm2."))}
    moved = {k for k, c in change.items() if c > 0.5 * LEARNING_RATE}
    assert moved == set(change) - frozen_by_design
    assert all(block.comfy_prefix + TABLE in moved for block in TEMPORAL_BLOCKS)


def test_diffsynth_loads_the_trained_file_as_exvideo(results):
    *_, table_rows = results
    assert table_rows == NUM_FRAMES


def test_diffsynth_output_equals_ours(results):
    _, _, ours, untrained, reference, _ = results
    assert 0.1 < reference.std() < 10, "outputs of order 1 keep the absolute tolerance meaningful"
    assert (ours - reference).abs().max() <= TOLERANCE
    assert (untrained - reference).abs().max() > 100 * TOLERANCE, "training must change the output"


def test_first_adamw_step_is_torchs_first_adamw_step():
    start = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    grad = torch.randn(6, 5, generator=torch.Generator().manual_seed(2))
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    ours.grad, theirs.grad = grad.clone(), grad.clone()
    FirstAdamWStep([ours], LEARNING_RATE, 0.01).step()
    torch.optim.AdamW([theirs], lr=LEARNING_RATE, weight_decay=0.01).step()
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-7)
    assert (ours - start).abs().min() > 0.5 * LEARNING_RATE
