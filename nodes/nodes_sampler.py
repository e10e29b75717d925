"""Image-to-video in one node: DiffSynth's ExVideo recipe on ComfyUI's native sampler."""

import latent_preview
from comfy_api.v0_0_2 import io

from ..exvideo_core.constraints import MIN_FRAMES
from ..exvideo_core.sampling import SamplingSettings, image_to_video_conditioning, sample_video

from .sampling_inputs import svd_sampling_inputs
from .size_inputs import video_size_inputs


class ExVideoSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoSampler",
            display_name="ExVideo Image to Video",
            category="ExVideo/sampling",
            description="Generates a long video latent from one image: SVD conditioning, per-frame linear CFG and "
                        "the native sampler. Defaults follow DiffSynth's ExVideo example (512x512, 128 frames, "
                        "Euler on Karras sigmas 700 -> 0.002, 50 steps, CFG 2).",
            inputs=[
                io.Model.Input("model", tooltip="SVD patched with ExVideo (ExVideo Apply Extension or ExVideo Load "
                                                "SVD + Extension)."),
                io.ClipVision.Input("clip_vision", tooltip="SVD's image encoder."),
                io.Vae.Input("vae", tooltip="SVD's VAE, to encode the image."),
                io.Image.Input("image", tooltip="The first frame; only the first image of a batch is used."),
                *video_size_inputs(512, 512, "Video width in pixels.", "Video height in pixels."),
                io.Int.Input("frames", default=128, min=MIN_FRAMES, max=4096,
                             tooltip="Number of frames; at most the extension's table length."),
                *svd_sampling_inputs(),
            ],
            outputs=[io.Latent.Output(tooltip="The video latent; decode it with ExVideo Temporal VAE Decode.")],
        )

    @classmethod
    def execute(cls, model, clip_vision, vae, image, width, height, frames, **sampling) -> io.NodeOutput:
        settings = SamplingSettings(**sampling)
        positive, negative, latent = image_to_video_conditioning(clip_vision, vae, image, width, height, frames,
                                                                 settings)
        callback = latent_preview.prepare_callback(model, settings.steps)
        return io.NodeOutput(sample_video(model, positive, negative, latent, settings, callback=callback))


NODES = [ExVideoSampler]
