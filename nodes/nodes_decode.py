"""Overlapped temporal VAE decode for long SVD videos."""

import comfy.utils
from comfy_api.v0_0_2 import io

from ..exvideo_core.temporal_decode import DEFAULT_OVERLAP, DEFAULT_TILE_OVERLAP, DEFAULT_WINDOW, temporal_decode


class ExVideoTemporalDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoTemporalDecode",
            display_name="ExVideo Temporal VAE Decode",
            category="ExVideo/latent",
            description="Decodes a long SVD video latent with SVD's temporal VAE in overlapping windows of frames, "
                        "blended with linear ramps (DiffSynth's decode_video), so there are no seams and memory does "
                        "not grow with the number of frames.",
            inputs=[
                io.Vae.Input("vae", tooltip="SVD's temporal-decoder VAE (from Image Only Checkpoint Loader)."),
                io.Latent.Input("samples", tooltip="A video latent, frames in the batch."),
                io.Int.Input("window_frames", default=DEFAULT_WINDOW, min=2, max=4096,
                             tooltip="Latent frames decoded together; more uses more memory. 8 in the reference."),
                io.Int.Input("overlap_frames", default=DEFAULT_OVERLAP, min=0, max=4095,
                             tooltip="Frames shared by neighbouring windows and cross-faded; must be less than "
                                     "window_frames. 4 in the reference."),
                io.Int.Input("tile_size", default=0, min=0, max=1024, step=8, optional=True,
                             tooltip="Spatial tile size in latent pixels (x8 in the image); 0 decodes whole frames. "
                                     "Tiles save memory on large frames."),
                io.Int.Input("tile_overlap", default=DEFAULT_TILE_OVERLAP, min=0, max=1023, optional=True,
                             tooltip="Overlap of neighbouring tiles in latent pixels; ignored when tile_size is 0."),
            ],
            outputs=[io.Image.Output(tooltip="The video frames.")],
        )

    @classmethod
    def execute(cls, vae, samples, window_frames, overlap_frames, tile_size=0,
                tile_overlap=DEFAULT_TILE_OVERLAP) -> io.NodeOutput:
        pbar = comfy.utils.ProgressBar(1)
        images = temporal_decode(vae, samples["samples"], window_frames, overlap_frames, tile_size, tile_overlap,
                                 callback=lambda done, total: pbar.update_absolute(done, total))
        return io.NodeOutput(images)


NODES = [ExVideoTemporalDecode]
