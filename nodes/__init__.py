"""Node classes: thin translations of node inputs into `exvideo_core` calls."""

from typing_extensions import override

from comfy_api.latest import ComfyExtension, io

NODES: list[type[io.ComfyNode]] = []


class ExVideoExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> ExVideoExtension:
    return ExVideoExtension()
