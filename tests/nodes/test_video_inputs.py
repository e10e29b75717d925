"""Refine, Continue and Training Clips take native VIDEO wherever they take IMAGE frames.

The nodes' core calls are replaced by recorders: what is checked is that a VIDEO reaches the core as
the same frames its IMAGE batch would (video_io.video_frames itself is tested in tests/core/test_video_io.py).
"""

import importlib
from fractions import Fraction

import pytest
import torch

from comfy_api.v0_0_2 import InputImpl, Types
from comfy_execution.validation import validate_node_input
from exvideo_harness.pack import load_pack_nodes
from exvideo_harness.video_frames import gray_levels

FRAMES = gray_levels(4)
VIDEO = InputImpl.VideoFromComponents(Types.VideoComponents(images=FRAMES, frame_rate=Fraction(8)))


def node_module(name):
    return importlib.import_module(f"{load_pack_nodes().__name__}.{name}")


def recorder(calls: list, result=None):
    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return result
    return record


def sampling_defaults(schema) -> dict:
    skip = {"model", "clip_vision", "vae", "images", "previous", "previous_images", "image"}
    return {i.id: i.default for i in schema.inputs if i.id not in skip and not i.optional}


@pytest.mark.parametrize("module, node, input_id", [
    ("nodes_refine", "ExVideoRefine", "images"),
    ("nodes_continuation", "ExVideoContinue", "previous_images"),
    ("nodes_train", "ExVideoTrainingClips", "images"),
    ("nodes_video", "ExVideoSaveMP4", "images"),
])
def test_input_accepts_image_and_video_links(module, node, input_id):
    schema = getattr(node_module(module), node).define_schema()
    (socket,) = [i for i in schema.inputs if i.id == input_id]
    # The server's own link check, for links from native IMAGE and VIDEO outputs.
    assert validate_node_input("IMAGE", socket.get_io_type())
    assert validate_node_input("VIDEO", socket.get_io_type())
    assert not validate_node_input("LATENT", socket.get_io_type())
    assert "VIDEO" in socket.tooltip


@pytest.mark.parametrize("given", [FRAMES, VIDEO], ids=["image", "video"])
def test_refine_gets_the_frames(monkeypatch, given):
    module, calls = node_module("nodes_refine"), []
    monkeypatch.setattr(module, "refine_video", recorder(calls, {"samples": torch.zeros(1)}))
    monkeypatch.setattr(module.latent_preview, "prepare_callback", lambda *a: None)
    settings = sampling_defaults(module.ExVideoRefine.define_schema())
    module.ExVideoRefine.execute(None, None, None, given, **settings)
    assert torch.equal(calls[0][0][3], FRAMES)


@pytest.mark.parametrize("given", [FRAMES, VIDEO], ids=["image", "video"])
def test_continue_gets_the_frames(monkeypatch, given):
    module, calls = node_module("nodes_continuation"), []
    monkeypatch.setattr(module, "continue_video", recorder(calls, {"samples": torch.zeros(4, 4, 2, 2)}))
    monkeypatch.setattr(module, "join_clips", lambda previous, clip, overlap: clip)
    monkeypatch.setattr(module.latent_preview, "prepare_callback", lambda *a: None)
    settings = sampling_defaults(module.ExVideoContinue.define_schema())
    module.ExVideoContinue.execute(None, None, None, {"samples": torch.zeros(4, 4, 2, 2)},
                                   previous_images=given, **settings)
    assert torch.equal(calls[0][1]["previous_images"], FRAMES)


@pytest.mark.parametrize("given", [FRAMES, VIDEO], ids=["image", "video"])
def test_training_clips_get_the_frames(monkeypatch, given):
    module, calls = node_module("nodes_train"), []
    dataset = type("Dataset", (), {"sources": [FRAMES], "clips_per_video": 1})()
    monkeypatch.setattr(module.VideoClipDataset, "from_images", recorder(calls, dataset))
    monkeypatch.setattr(module, "encode_clips", lambda *a, **k: ["clip"])
    schema = module.ExVideoTrainingClips.define_schema()
    values = {i.id: i.default for i in schema.inputs if i.id not in ("vae", "clip_vision", "images")}
    values["video_folder"] = ""  # no folder: the images input is used
    module.ExVideoTrainingClips.execute(None, None, images=given, **values)
    assert torch.equal(calls[0][0][0], FRAMES)


@pytest.mark.parametrize("module, node, input_id, optional", [
    ("nodes_refine", "ExVideoRefine", "images", False),
    ("nodes_video", "ExVideoSaveMP4", "images", False),
    ("nodes_continuation", "ExVideoContinue", "previous_images", True),
    ("nodes_train", "ExVideoTrainingClips", "images", True),
])
def test_frames_are_required_where_the_node_has_nothing_else_to_work_on(module, node, input_id, optional):
    (spec,) = [i for i in getattr(node_module(module), node).define_schema().inputs if i.id == input_id]
    assert bool(spec.optional) is optional
