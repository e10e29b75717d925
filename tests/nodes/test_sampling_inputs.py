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


def test_settings_are_values():
    with pytest.raises(TypeError):
        SamplingSettings(30, 127)  # keyword-only: two ints cannot be swapped unnoticed by position
