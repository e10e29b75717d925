"""One map of the SVD UNet, read by chunking, the skip stack, checkpointing and the layout's table."""

import pytest
import torch

from exvideo_core import unet_map
from exvideo_core.layout import TEMPORAL_BLOCKS
from exvideo_harness.svd_models import FULL_UNET_CONFIG, SMALL_UNET_CONFIG, svd_model_config


@pytest.fixture(scope="module", params=[FULL_UNET_CONFIG, SMALL_UNET_CONFIG], ids=["full", "small"])
def unet(request):
    with torch.device("meta"):
        return svd_model_config(request.param).get_model({}).diffusion_model


def test_the_layouts_temporal_blocks_are_the_maps(unet):
    transformers = [layer for layer in unet_map.unet_map(unet) if layer.kind == unet_map.TEMPORAL_TRANSFORMER]
    assert [(layer.name, layer.channels) for layer in transformers] == \
        [(block.comfy_name, block.channel_mult * unet.model_channels) for block in TEMPORAL_BLOCKS]


def test_every_layer_is_named_once_in_the_order_the_unet_runs(unet):
    layers = unet_map.unet_map(unet)
    names = [layer.name for layer in layers]
    assert len(names) == len(set(names)) == 45
    assert all(isinstance(unet.get_submodule(name), torch.nn.Module) for name in names)
    assert names[0] == "input_blocks.0.0" and names[-1] == "output_blocks.11.1"


def test_levels_follow_the_resampling_layers(unet):
    layers = {layer.name: layer for layer in unet_map.unet_map(unet)}
    assert layers["input_blocks.3.0"].kind == unet_map.DOWNSAMPLE
    assert (layers["input_blocks.2.1"].level, layers["input_blocks.3.0"].out_level) == (0, 1)
    assert layers["middle_block.1"].level == 3
    assert layers["output_blocks.2.1"].kind == unet_map.UPSAMPLE and layers["output_blocks.2.1"].out_level == 2
    assert layers["output_blocks.11.1"].level == 0


def test_the_skip_stack_is_every_input_blocks_output(unet):
    layers = unet_map.unet_map(unet)
    pushed = [layer for layer in layers if layer.pushes_skip]
    popped = [layer for layer in layers if layer.pops_skip]
    assert len(pushed) == len(unet.input_blocks) and len(popped) == len(unet.output_blocks)
    assert all(layer.name.startswith("input_blocks.") for layer in pushed)
    # 3 level-0 maps (320 ch), 3 at level 1 (320, 640, 640 ch), 3 at level 2 (640, 1280, 1280), 3 at level 3.
    assert unet_map.skip_copies(unet) == pytest.approx(3 + (1 + 2 + 2) / 4 + (2 + 4 + 4) / 16 + 3 * 4 / 64)
