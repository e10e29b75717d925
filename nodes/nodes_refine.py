"""Video-to-video refinement: DiffSynth's second ExVideo pass (upscale, partial re-noise, re-denoise)."""

import latent_preview
from comfy_api.v0_0_2 import io

from ..exvideo_core.refine import refine_video
from ..exvideo_core.sampling import SamplingSettings
from ..exvideo_core.video_io import video_frames

from .sampling_inputs import svd_sampling_inputs
from .size_inputs import video_size_inputs
from .video_inputs import frames_or_video


class ExVideoRefine(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoRefine",
            display_name="ExVideo Refine (video to video)",
            category="ExVideo/sampling",
            description="Upscales a video, VAE-encodes it and re-denoises it from part-way with SVD conditioning "
                        "and per-frame linear CFG on the native sampler. Defaults follow DiffSynth's ExVideo "
                        "example: a second pass at 1024x1024, denoise 0.5, 25 Euler steps on Karras sigmas.",
            inputs=[
                io.Model.Input("model", tooltip="SVD patched with ExVideo (ExVideo Apply Extension or ExVideo Load "
                                                "SVD + Extension)."),
                io.ClipVision.Input("clip_vision", tooltip="SVD's image encoder."),
                io.Vae.Input("vae", tooltip="SVD's VAE, to encode the frames and the conditioning image."),
                frames_or_video("images", tooltip="The video to refine, e.g. the decoded first pass; at most as "
                                                  "many frames as the extension's table (128 for ExVideo-SVD-128f)."),
                *video_size_inputs(1024, 1024,
                                   "Output width in pixels; frames are resized (bicubic) and centre-cropped.",
                                   "Output height in pixels; frames are resized (bicubic) and centre-cropped."),
                io.Float.Input("denoise", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="How much of the video is re-generated: 0 returns the encoded input, 1 "
                                       "ignores it. 0.5 in the reference."),
                *svd_sampling_inputs(steps=25, steps_tooltip="Denoising steps actually run; the schedule is that of "
                                                             "steps / denoise steps, started part-way.",
                                     seed_tooltip="Seed of the added noise and of the augmentation noise."),
                io.Boolean.Input("diffsynth_latent_scale", default=False,
                                 tooltip="Reproduce DiffSynth exactly: its VAE encoder scales by 0.13025 while its "
                                         "decoder uses 0.18215, so its video-to-video starts from latents 0.715x "
                                         "the real ones. Off: the native scale, the one the model was trained on."),
                io.Image.Input("image", optional=True,
                               tooltip="Conditioning image; the first frame of 'images' when not connected. The "
                                       "reference uses its original input image, sharper than a 512x512 first frame."),
            ],
            outputs=[io.Latent.Output(tooltip="The refined video latent; decode it with ExVideo Temporal VAE Decode.")],
        )

    @classmethod
    def execute(cls, model, clip_vision, vae, images, width, height, denoise, diffsynth_latent_scale, image=None,
                **sampling) -> io.NodeOutput:
        settings = SamplingSettings(**sampling)
        frames, _, _ = video_frames(images, "images")
        return io.NodeOutput(refine_video(
            model, clip_vision, vae, frames, settings, width=width, height=height, denoise=denoise,
            diffsynth_latent_scale=diffsynth_latent_scale, image=image,
            callback=latent_preview.prepare_callback(model, settings.steps)))


NODES = [ExVideoRefine]
