"""The ExVideo Temporal Decode node: its schema, and that it passes its inputs to exvideo_core.temporal_decode."""

import importlib

import pytest
import torch

from exvideo_core.temporal_decode import temporal_decode
from exvideo_harness.pack import load_pack_nodes


@pytest.fixture(scope="module")
def nodes_decode():
    return importlib.import_module(f"{load_pack_nodes().__name__}.nodes_decode")


def test_node_passes_its_inputs_to_the_core(nodes_decode, vae, decoder_calls):
    node = nodes_decode.ExVideoTemporalDecode
    schema = node.GET_SCHEMA()
    assert (schema.node_id, schema.category) == ("ExVideoTemporalDecode", "ExVideo/latent")
    assert all(item.tooltip for item in schema.inputs)
    samples = torch.randn(10, 4, 7, 9, generator=torch.Generator().manual_seed(0))
    output = node.execute(vae, {"samples": samples}, 8, 4, 5, 2)
    assert torch.equal(output.result[0], temporal_decode(vae, samples, 8, 4, 5, 2))
