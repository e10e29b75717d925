"""The sampling nodes' shared inputs are exactly the fields of SamplingSettings, in name and default."""

import dataclasses
import importlib

import pytest

from exvideo_core.sampling import SamplingSettings
from exvideo_harness.pack import load_pack_nodes

sampling_inputs = importlib.import_module(f"{load_pack_nodes().__name__}.sampling_inputs")
FIELDS = dataclasses.fields(SamplingSettings)


def test_one_input_per_field_with_the_fields_name_and_default():
    inputs = sampling_inputs.svd_sampling_inputs(steps=50, seed=1)
    assert [i.id for i in inputs] == [f.name for f in FIELDS]
    assert {i.id: i.default for i in inputs} == dataclasses.asdict(SamplingSettings())


@pytest.mark.parametrize("module, node", [("nodes_sampler", "ExVideoSampler"), ("nodes_refine", "ExVideoRefine"),
                                          ("nodes_continuation", "ExVideoContinue")])
def test_every_sampling_node_declares_them(module, node):
    cls = getattr(importlib.import_module(f"{load_pack_nodes().__name__}.{module}"), node)
    ids = [i.id for i in cls.define_schema().inputs]
    assert all(f.name in ids for f in FIELDS), set(f.name for f in FIELDS) - set(ids)


def test_settings_are_values():
    with pytest.raises(TypeError):
        SamplingSettings(30, 127)  # keyword-only: two ints cannot be swapped unnoticed by position
