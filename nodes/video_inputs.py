"""The one input that takes frames either way: an IMAGE batch, or ComfyUI's native VIDEO (Load Video, Create Video)."""

from comfy_api.v0_0_2 import io


def frames_or_video(id: str, tooltip: str, optional: bool = False) -> io.MultiType.Input:
    """An input socket that accepts IMAGE and VIDEO links; exvideo_core.video_io.video_frames reads either."""
    return io.MultiType.Input(id, types=[io.Image, io.Video], optional=optional,
                              tooltip=f"{tooltip} An IMAGE batch or a native VIDEO.")
