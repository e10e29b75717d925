"""The Apply ExVideo nodes pass their memory inputs to apply_exvideo, and prompts saved without them still run."""

import importlib
import inspect

import pytest

from exvideo_core import apply_exvideo
from exvideo_core.patch import ATTACHMENT
from exvideo_core.skip_stack import installed_stacks
from exvideo_harness.pack import load_pack_nodes

loaders = importlib.import_module(f"{load_pack_nodes().__name__}.nodes_loaders")
APPLY_NODES = [loaders.ApplyExVideo, loaders.ApplyExVideoWeights, loaders.ExVideoCheckpointLoader]


@pytest.mark.parametrize("node", APPLY_NODES, ids=lambda node: node.__name__)
def test_memory_inputs_are_optional_with_apply_exvideos_defaults(node):
    inputs = {i.id: i for i in node.define_schema().inputs}
    defaults = inspect.signature(apply_exvideo).parameters
    assert inputs["frame_chunk"].optional and inputs["frame_chunk"].default == -1  # -1: None, automatic
    assert defaults["frame_chunk"].default is None
    assert inputs["skips_on_host"].optional and inputs["skips_on_host"].default is defaults["skips_on_host"].default
    assert inputs["skips_on_host"].tooltip


def test_skips_on_host_reaches_the_patched_model(base, weights):
    (held,) = loaders.ApplyExVideoWeights.execute(base, weights, frame_chunk=3, skips_on_host=True).result
    assert held.get_attachment(ATTACHMENT).skips_on_host and len(installed_stacks(held.model_options)) == 1
    (plain,) = loaders.ApplyExVideoWeights.execute(base, weights).result  # an API prompt saved before the option
    assert not plain.get_attachment(ATTACHMENT).skips_on_host and not installed_stacks(plain.model_options)


@pytest.mark.parametrize("node_value, reaches_blocks", [(-1, None), (0, 0), (3, 3)])
def test_frame_chunk_reaches_the_blocks_as_the_core_reads_it(base, weights, node_value, reaches_blocks):
    """-1 is automatic (None), 0 is off, K is K: chunking gives the same outputs either way, so only the
    setting the blocks hold shows a wrong translation."""
    (patched,) = loaders.ApplyExVideoWeights.execute(base, weights, frame_chunk=node_value).result
    blocks = [patch for key, patch in patched.object_patches.items() if key.startswith("diffusion_model.")]
    assert blocks and all(block.frame_chunk == reaches_blocks for block in blocks)
