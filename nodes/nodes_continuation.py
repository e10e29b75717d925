"""Long videos as a chain of clips: continue a video past one clip's frames, join clips."""

import latent_preview
from comfy_api.v0_0_2 import io

from ..exvideo_core.constraints import MIN_FRAMES
from ..exvideo_core.continuation import continue_video, join_clips
from ..exvideo_core.sampling import SamplingSettings
from ..exvideo_core.video_io import video_frames

from .sampling_inputs import svd_sampling_inputs
from .video_inputs import frames_or_video


class ExVideoContinue(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoContinue",
            display_name="ExVideo Continue Video",
            category="ExVideo/sampling",
            description="Generates the next clip of a video: it starts with the video's last frames, kept by the "
                        "sampler (a latent noise mask), so the motion goes on without a jump, and it is conditioned "
                        "on the video's last frame. Outputs the lengthened video and the new clip. Chain the video "
                        "output into another Continue for more clips.",
            inputs=[
                io.Model.Input("model", tooltip="SVD patched with ExVideo, as for the first clip."),
                io.ClipVision.Input("clip_vision", tooltip="SVD's image encoder."),
                io.Vae.Input("vae", tooltip="SVD's VAE, to encode the conditioning frame (and decode it if "
                                            "previous_images is not connected)."),
                io.Latent.Input("previous", tooltip="The video so far (a clip, or the video output of another "
                                                    "Continue), as sampled: before Latent Post-Process."),
                io.Int.Input("frames", default=128, min=MIN_FRAMES, max=4096,
                             tooltip="Frames of the new clip, carried ones included; at most the extension's table "
                                     "length. Each clip adds frames - overlap_frames to the video."),
                io.Int.Input("overlap_frames", default=8, min=1, max=4095,
                             tooltip="The video's last frames that the new clip starts with and keeps; more carries "
                                     "more motion over, fewer leaves more new frames. Less than frames."),
                *svd_sampling_inputs(seed=2, seed_tooltip="Seed of the initial noise and of the augmentation noise. "
                                                          "With the previous clip's seed, frame count and size the "
                                                          "new clip starts from the same noise."),
                io.Boolean.Input("anchor_colour", default=False, optional=True,
                                 tooltip="Give the new frames the colour and brightness statistics (per latent "
                                         "channel) of the video's first clip, against drift from clip to clip."),
                frames_or_video("previous_images", optional=True,
                                tooltip="The decoded video so far; its last image conditions the new clip. When "
                                        "not connected, the last frame is decoded here from the previous latent."),
                io.Image.Input("reference_image", optional=True,
                               tooltip="The video's original image: when connected, its CLIP embedding conditions "
                                       "the new clip (the last frame still gives the latent), anchoring the content "
                                       "to the start."),
            ],
            outputs=[
                io.Latent.Output("video", display_name="video",
                                 tooltip="The previous video followed by the new clip's new frames."),
                io.Latent.Output("clip", display_name="clip",
                                 tooltip="The new clip alone; its first overlap_frames are the previous video's last."),
            ],
        )

    @classmethod
    def execute(cls, model, clip_vision, vae, previous, frames, overlap_frames, anchor_colour=False,
                previous_images=None, reference_image=None, **sampling) -> io.NodeOutput:
        settings = SamplingSettings(**sampling)
        if previous_images is not None:
            previous_images, _, _ = video_frames(previous_images, "previous_images")
        clip = continue_video(model, clip_vision, vae, previous, frames, overlap_frames, settings,
                              previous_images=previous_images, reference_image=reference_image,
                              anchor=anchor_colour, callback=latent_preview.prepare_callback(model, settings.steps))
        return io.NodeOutput(join_clips(previous, clip, overlap_frames), clip)


class ExVideoJoinLatents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoJoinLatents",
            display_name="ExVideo Join Clips",
            category="ExVideo/latent",
            description="Concatenates two clips of one video, dropping the second clip's first overlap frames "
                        "(the first clip's last ones, carried over). For clips processed separately, e.g. each "
                        "refined on its own; Continue Video already outputs the joined video.",
            inputs=[
                io.Latent.Input("a", tooltip="The earlier clip or video."),
                io.Latent.Input("b", tooltip="The clip that continues it."),
                io.Int.Input("overlap_frames", default=8, min=0, max=4095,
                             tooltip="Frames b starts with that a ends with: the overlap_frames b was made with."),
            ],
            outputs=[io.Latent.Output(tooltip="The joined video latent.")],
        )

    @classmethod
    def execute(cls, a, b, overlap_frames) -> io.NodeOutput:
        return io.NodeOutput(join_clips(a, b, overlap_frames))


NODES = [ExVideoContinue, ExVideoJoinLatents]
