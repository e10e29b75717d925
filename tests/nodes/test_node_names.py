"""What a user sees of the nodes beside ComfyUI's own: names that say whose each node is, ids that saved
workflows keep finding, a tooltip on every input and output."""

import asyncio
import logging

import pytest

import nodes as host_nodes  # ComfyUI's nodes.py

from exvideo_harness.pack import load_pack_nodes

# Saved workflows and API prompts name nodes by these; a display name may change, an id never.
NODE_IDS = {
    "ExVideoLoader", "ApplyExVideo", "ApplyExVideoWeights", "ExVideoCheckpointLoader", "ExVideoSampler",
    "ExVideoRefine", "ExVideoContinue", "ExVideoJoinLatents", "ExVideoLatentPostProcess", "ExVideoTemporalDecode",
    "ExVideoSaveMP4", "ExVideoLoadVideo", "ExVideoTrainingClips", "ExVideoTrain", "ExVideoLossPlot",
    "ExVideoSaveExtension", "ExVideoSaveLoRA", "ExVideoDeepCache",
    "ExVideoKeyframes",
}


@pytest.fixture(scope="module")
def schemas():
    return [node.GET_SCHEMA() for node in load_pack_nodes().NODES]


@pytest.fixture(scope="module")
def native_display_names() -> dict[str, str]:
    """Every node ComfyUI itself ships (nodes.py and comfy_extras), by the name its search shows."""
    logging.disable(logging.ERROR)  # comfy_extras modules whose optional packages are missing log and are skipped
    try:
        asyncio.run(host_nodes.init_builtin_extra_nodes())
    finally:
        logging.disable(logging.NOTSET)
    assert {"SaveVideo", "LoadVideo", "LossGraphNode", "SaveLoRA"} <= set(host_nodes.NODE_CLASS_MAPPINGS)
    return {node_id: host_nodes.NODE_DISPLAY_NAME_MAPPINGS.get(node_id, node_id)
            for node_id in host_nodes.NODE_CLASS_MAPPINGS if node_id not in NODE_IDS}


def test_node_ids_never_change(schemas):
    assert {schema.node_id for schema in schemas} == NODE_IDS


def test_every_display_name_says_exvideo_and_none_is_a_native_name(schemas, native_display_names):
    """'Save Video (MP4)' sat next to native 'Save Video' in search with nothing saying whose it was."""
    native = {name.casefold() for name in native_display_names.values()} | set(map(str.casefold, native_display_names))
    for schema in schemas:
        assert "ExVideo" in schema.display_name, schema.node_id
        assert schema.display_name.casefold() not in native, (schema.node_id, schema.display_name)


def test_every_display_name_follows_one_pattern(schemas):
    """'ExVideo <Thing>': the pack's nodes sort together in search, and no name mixes in 'Save ExVideo LoRA'."""
    for schema in schemas:
        first, _, thing = schema.display_name.partition(" ")
        assert first == "ExVideo" and thing[:1].isupper(), (schema.node_id, schema.display_name)
        assert "ExVideo" not in thing, (schema.node_id, schema.display_name)


def test_every_input_and_output_has_a_tooltip(schemas):
    missing = [f"{schema.node_id}.{kind}:{item.display_name or item.id or item.io_type}"
               for schema in schemas
               for kind, items in (("input", schema.inputs), ("output", schema.outputs))
               for item in items if not item.tooltip]
    assert missing == []
