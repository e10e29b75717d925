"""Keyframes and loops: videos that start at one image and end at another (or at the same one)."""

import latent_preview
from comfy_api.v0_0_2 import io

from ..exvideo_core.keyframes import MIN_SEGMENT_FRAMES, KeyframeVideo, keyframe_video
from ..exvideo_core.sampling import SamplingSettings

from .sampling_inputs import svd_sampling_inputs
from .size_inputs import video_size_inputs


class ExVideoKeyframes(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoKeyframes",
            display_name="ExVideo Keyframes (start and end image)",
            category="ExVideo/sampling",
            description="Generates a video through keyframes: from the first image of the batch to the second, "
                        "then on to the next, each segment pinned at both ends (Time Reversal Fusion: each step "
                        "fuses a forward pass conditioned on the start image with a reversed pass conditioned on "
                        "the end image, frame by frame). With loop on it returns to the first image and plays "
                        "round seamlessly. Costs two model calls a step.",
            inputs=[
                io.Model.Input("model", tooltip="SVD patched with ExVideo (ExVideo Apply Extension or ExVideo Load "
                                                "SVD + Extension)."),
                io.ClipVision.Input("clip_vision", tooltip="SVD's image encoder."),
                io.Vae.Input("vae", tooltip="SVD's VAE, to encode the keyframes."),
                io.Image.Input("keyframes", tooltip="The keyframes in order, as one batch (e.g. two Load Image "
                                                    "nodes into Batch Images): start, then end. One image with "
                                                    "loop on makes a loop of it."),
                io.Boolean.Input("loop", default=False,
                                 tooltip="Return to the first keyframe at the end, for a video that loops without "
                                         "a jump (its last frame, the first again, is dropped)."),
                *video_size_inputs(512, 512, "Video width in pixels.", "Video height in pixels."),
                io.Int.Input("frames", default=128, min=MIN_SEGMENT_FRAMES, max=4096,
                             tooltip="Frames of each segment, both its keyframes included; at most the "
                                     "extension's table length."),
                *svd_sampling_inputs(),
            ],
            outputs=[io.Latent.Output(tooltip="The video latent; decode it with ExVideo Temporal VAE Decode.")],
        )

    @classmethod
    def execute(cls, model, clip_vision, vae, keyframes, loop, width, height, frames, **sampling) -> io.NodeOutput:
        settings = SamplingSettings(**sampling)
        callback = latent_preview.prepare_callback(model, settings.steps)
        return io.NodeOutput(keyframe_video(model, clip_vision, vae, keyframes, width, height,
                                            KeyframeVideo(frames, loop), settings, callback))


NODES = [ExVideoKeyframes]
