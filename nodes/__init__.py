"""Node classes: thin translations of node inputs into `exvideo_core` calls."""

from typing_extensions import override

from comfy_api.v0_0_2 import ComfyExtension, io

from . import (example_inputs, model_folders, nodes_cache, nodes_continuation, nodes_decode, nodes_keyframes,
               nodes_latent, nodes_loaders, nodes_refine, nodes_sampler, nodes_train, nodes_video)

model_folders.register()

NODES: list[type[io.ComfyNode]] = [
    *nodes_loaders.NODES,
    *nodes_sampler.NODES,
    *nodes_keyframes.NODES,
    *nodes_refine.NODES,
    *nodes_cache.NODES,
    *nodes_continuation.NODES,
    *nodes_latent.NODES,
    *nodes_decode.NODES,
    *nodes_video.NODES,
    *nodes_train.NODES,
]


class ExVideoExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> ExVideoExtension:
    # Here rather than in ComfyExtension.on_load: ComfyUI 0.3.75 never calls on_load.
    example_inputs.install_example_inputs()
    return ExVideoExtension()
