"""The sampling nodes' shared inputs are exactly the fields of SamplingSettings, in name and default."""

import dataclasses
import importlib

import pytest

from exvideo_core.sampling import SamplingSettings
from exvideo_harness.pack import load_pack_nodes

sampling_inputs = importlib.import_module(f"{load_pack_nodes().__name__}.sampling_inputs")
FIELDS = dataclasses.fields(SamplingSettings)


def test_one_input_per_field_with_the_fields_name_and_default():
    inputs = sampling_inputs.svd_sampling_inputs()
    assert [i.id for i in inputs] == [f.name for f in FIELDS]
    assert {i.id: i.default for i in inputs} == dataclasses.asdict(SamplingSettings())


def test_each_minimum_is_the_edge_of_what_the_model_takes():
    """The server refuses a value below a widget's minimum, for API prompts too: the minima are the only guard."""
    inputs = {i.id: i for i in sampling_inputs.svd_sampling_inputs()}
    assert inputs["fps"].min - 1 == 0, "SVD is conditioned on fps - 1, which must not go negative"
    assert inputs["steps"].min == 1 and inputs["seed"].min == 0 and inputs["motion_bucket_id"].min == 0
    assert inputs["min_cfg"].min == inputs["cfg"].min == inputs["augmentation_level"].min == 0.0
    assert all(i.max > i.default for i in inputs.values() if hasattr(i, "max") and i.max is not None)


@pytest.mark.parametrize("module, node", [("nodes_sampler", "ExVideoSampler"), ("nodes_refine", "ExVideoRefine"),
                                          ("nodes_continuation", "ExVideoContinue")])
def test_every_sampling_node_declares_them(module, node):
    cls = getattr(importlib.import_module(f"{load_pack_nodes().__name__}.{module}"), node)
    ids = [i.id for i in cls.define_schema().inputs]
    assert all(f.name in ids for f in FIELDS), set(f.name for f in FIELDS) - set(ids)


# Each input and the native node input it stands for: ComfyUI's SVD conditioning, its linear CFG guidance and
# KSampler. motion_bucket_id alone goes lower (0, the stillest bucket, which Training Clips measures too).
NATIVE = {"fps": ("SVD_img2vid_Conditioning", "fps"),
          "motion_bucket_id": ("SVD_img2vid_Conditioning", "motion_bucket_id"),
          "augmentation_level": ("SVD_img2vid_Conditioning", "augmentation_level"),
          "min_cfg": ("VideoLinearCFGGuidance", "min_cfg"), "cfg": ("KSampler", "cfg"),
          "steps": ("KSampler", "steps"), "seed": ("KSampler", "seed")}
OWN_MINIMUM = {"motion_bucket_id": 0}


def test_each_input_spans_what_its_native_counterpart_accepts():
    """A workflow moved from the native SVD nodes to ours (or back) keeps every value, and drags in the same steps."""
    import nodes
    from comfy_extras import nodes_video_model

    native_nodes = {"KSampler": nodes.KSampler, **{name: getattr(nodes_video_model, name) for name in (
        "SVD_img2vid_Conditioning", "VideoLinearCFGGuidance")}}
    ours = {i.id: i for i in sampling_inputs.svd_sampling_inputs()}
    assert set(NATIVE) == set(ours) - {"sampler_name", "scheduler"}
    for name, (node, native_name) in NATIVE.items():
        spec = native_nodes[node].INPUT_TYPES()["required"][native_name][1]
        item = ours[name]
        assert item.min == OWN_MINIMUM.get(name, spec["min"]), name
        assert (item.max, item.step, getattr(item, "round", None)) == (
            spec["max"], spec.get("step"), spec.get("round")), name


def test_settings_are_values():
    with pytest.raises(TypeError):
        SamplingSettings(30, 127)  # keyword-only: two ints cannot be swapped unnoticed by position
