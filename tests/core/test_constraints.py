"""One size rule for every front end: nodes, the CLI, the dataset and the samplers refuse the same sizes."""

import ast
import collections
import importlib
import logging
import re

import pytest
import torch

from exvideo_core import constraints
from exvideo_core.constraints import MIN_PIXELS, InputError, check_training_size, check_video_size
from exvideo_core.errors import ExVideoError
from exvideo_core.sampling import image_to_video_conditioning
from exvideo_core.train import DatasetError, VideoClipDataset
from exvideo_core.train.cli import load_run_config
from exvideo_core.train.config import TrainConfigError
from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.pack import load_pack_nodes

# Defined in several modules on purpose, each its own: every node module's NODES (nodes/__init__.py joins them),
# and the hint on starting a new run, which the CLI and the Post-Tune node word for their own inputs.
PER_MODULE = {"NODES", "NEW_RUN_HINT"}


def test_the_scale_facts_have_distinct_names():
    assert constraints.SVD_LATENT_SCALE == 0.18215
    assert constraints.DIFFSYNTH_ENCODER_SCALE == 0.13025
    assert constraints.DIFFSYNTH_TO_NATIVE_RATIO == pytest.approx(0.715, abs=1e-3)


@pytest.mark.parametrize("width, height", [(132, 128), (128, 60)])
def test_sizes_off_the_vae_grid_are_refused(width, height):
    with pytest.raises(InputError, match="multiples of 8"):
        check_video_size(width, height)


def test_off_the_recommended_multiple_is_a_warning_not_an_error(caplog):
    with caplog.at_level(logging.WARNING):
        check_video_size(520, 512)
    assert "not a multiple of 64" in caplog.text and "512x512" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_video_size(512, 512)
    assert not caplog.text


def test_errors_are_the_packs_own_and_still_value_errors():
    with pytest.raises(ExVideoError):
        check_training_size(120, 128)
    with pytest.raises(ValueError):
        check_training_size(120, 128)


def test_sampling_refuses_with_the_same_rule():
    with pytest.raises(InputError, match="multiples of 8"):
        image_to_video_conditioning(None, None, torch.zeros(1, 8, 8, 3), 132, 128, 4)


def test_the_dataset_the_cli_and_the_node_agree_on_the_smallest_clip(tmp_path):
    """The Training Clips node used to accept 16 px that the Trainer refused only after encoding every clip."""
    with pytest.raises(DatasetError, match=f"at least {MIN_PIXELS}"):
        VideoClipDataset.from_images(torch.rand(8, 16, 16, 3), 4, MIN_PIXELS - 8, MIN_PIXELS)
    VideoClipDataset.from_images(torch.rand(8, 16, 16, 3), 4, MIN_PIXELS, MIN_PIXELS)
    config = tmp_path / "run.toml"
    config.write_text('[model]\ncheckpoint = "svd.safetensors"\n[data]\nvideos = "v"\n'
                      f'width = {MIN_PIXELS - 8}\nheight = {MIN_PIXELS}\n[output]\ndir = "out"\n')
    with pytest.raises(TrainConfigError, match=f"at least {MIN_PIXELS}"):
        load_run_config(config)
    nodes_train = importlib.import_module(f"{load_pack_nodes().__name__}.nodes_train")
    schema = nodes_train.ExVideoTrainingClips.define_schema()
    sizes = {i.id: i for i in schema.inputs if i.id in ("width", "height")}
    assert {name: spec.min for name, spec in sizes.items()} == {"width": MIN_PIXELS, "height": MIN_PIXELS}


def test_min_frames_and_feature_size_are_what_reflect_padding_needs():
    """The rule behind the limits: a reflect pad of 1 needs 2 samples along the axis it pads, and SVD's
    deepest temporal blocks run at the latent's size halved three times."""
    assert constraints.MIN_LATENT_SIZE == constraints.MIN_FEATURE_SIZE * 2 ** 3
    pad = (1, 1, 1, 1, 1, 1)
    smallest = torch.zeros(1, 1, constraints.MIN_FRAMES, constraints.MIN_FEATURE_SIZE, constraints.MIN_FEATURE_SIZE)
    assert torch.nn.functional.pad(smallest, pad, mode="reflect").shape[2:] == tuple(d + 2 for d in smallest.shape[2:])
    for axis in (2, 3, 4):
        short = list(smallest.shape)
        short[axis] -= 1
        with pytest.raises(RuntimeError):
            torch.nn.functional.pad(torch.zeros(short), pad, mode="reflect")


def test_each_check_takes_its_smallest_value_and_refuses_one_below():
    constraints.check_frame_count(constraints.MIN_FRAMES)
    with pytest.raises(InputError, match=f"at least {constraints.MIN_FRAMES}"):
        constraints.check_frame_count(constraints.MIN_FRAMES - 1)
    smallest = constraints.MIN_LATENT_SIZE
    constraints.check_latent_size(smallest, smallest, "clips")
    pixels = f"{smallest * constraints.VAE_DOWNSCALE}x{(smallest - 1) * constraints.VAE_DOWNSCALE} pixels"
    with pytest.raises(InputError, match=rf"{smallest}x{smallest - 1} latents \({pixels}\)"):
        constraints.check_latent_size(smallest, smallest - 1, "clips")
    feature = constraints.MIN_FEATURE_SIZE
    constraints.check_feature_map(constraints.MIN_FRAMES, feature, feature)
    for frames, height, width in [(constraints.MIN_FRAMES - 1, feature, feature), (2, feature - 1, feature),
                                  (2, feature, feature - 1)]:
        with pytest.raises(InputError, match="reflect padding"):
            constraints.check_feature_map(frames, height, width)


def test_video_latents_are_frames_of_four_channels():
    samples = torch.zeros(3, constraints.LATENT_CHANNELS, 16, 16)
    assert constraints.check_video_latent(samples) is samples
    for shape in [(1, 3, constraints.LATENT_CHANNELS, 16, 16), (3, 3, 16, 16), (3, 5, 16, 16),
                  (constraints.LATENT_CHANNELS, 16, 16)]:
        with pytest.raises(InputError, match="expected SVD video latents"):
            constraints.check_video_latent(torch.zeros(shape))


def _module_constants(path):
    for statement in ast.parse(path.read_text(), filename=str(path)).body:
        targets = (statement.targets if isinstance(statement, ast.Assign)
                   else [statement.target] if isinstance(statement, ast.AnnAssign) else [])
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name) and re.fullmatch(r"_?[A-Z][A-Z0-9_]+", node.id):
                    yield node.id


def test_every_constant_is_defined_in_one_module():
    """A copy of a constant (MIN_LATENT_SIZE in temporal_block.py, say) drifts from its rule unseen."""
    files = sorted((REPO_ROOT / "exvideo_core").rglob("*.py")) + sorted((REPO_ROOT / "nodes").rglob("*.py"))
    modules = collections.defaultdict(list)
    for path in files:
        for name in set(_module_constants(path)):
            modules[name].append(str(path.relative_to(REPO_ROOT)))
    assert "MIN_PIXELS" in modules, "the scan must see the constants"
    assert {name: paths for name, paths in modules.items() if len(paths) > 1 and name not in PER_MODULE} == {}
    assert all(len(modules[name]) > 1 for name in PER_MODULE), "an exception that no longer applies"
