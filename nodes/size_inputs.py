"""The width and height widgets of every node that samples or trains at a video size, bounded as the core is."""

from comfy_api.v0_0_2 import io
from nodes import MAX_RESOLUTION  # ComfyUI's, the bound of its own size widgets (SVD's conditioning's too)

from ..exvideo_core.constraints import MIN_PIXELS, RECOMMENDED_MULTIPLE, VAE_DOWNSCALE


def video_size_inputs(width: int, height: int, width_tooltip: str, height_tooltip: str) -> list[io.Int.Input]:
    """`width` and `height` from MIN_PIXELS up in steps of the VAE's multiple: the frontend offers only sizes
    the core accepts, and the server refuses a smaller one before anything runs."""
    advice = f" Multiples of {RECOMMENDED_MULTIPLE} recommended."
    return [io.Int.Input("width", default=width, min=MIN_PIXELS, max=MAX_RESOLUTION, step=VAE_DOWNSCALE,
                         tooltip=width_tooltip + advice),
            io.Int.Input("height", default=height, min=MIN_PIXELS, max=MAX_RESOLUTION, step=VAE_DOWNSCALE,
                         tooltip=height_tooltip + advice)]
