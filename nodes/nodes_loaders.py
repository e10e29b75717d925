"""Loading ExVideo extensions and applying them to SVD models."""

import comfy.sd
import folder_paths
from comfy_api.v0_0_2 import io

from ..exvideo_core import apply_exvideo, load_exvideo

from . import model_folders
from .types import ExVideo

EXTENSION_TOOLTIP = ("The extension file, e.g. ExVideo-SVD-128f-v1.safetensors, in models/exvideo, or one ExVideo "
                     "Save Extension wrote to output/exvideo.")

FRAMES_TOOLTIP = ("Length of the position table in latent frames (= video frames). 0 keeps the extension's own "
                  "length (128 for ExVideo-SVD-128f-v1). A larger value extends the table with DiffSynth's "
                  "ping-pong initialisation; quality beyond the trained length needs post-tuning.")


FRAME_CHUNK_TOOLTIP = ("Frames per chunk of the UNet's memory-saving forward: -1 picks it by the video size "
                       "(chunks where memory, not the weights, sets the peak; small videos run whole), 0 runs "
                       "every layer on all frames at once, a positive number forces that many frames a chunk. "
                       "The output is the same; only memory and speed change.")


SKIPS_ON_HOST_TOOLTIP = ("Keep the UNet's skip connections in CPU memory while it runs on the GPU: about 5 copies "
                         "of the first level's feature map less GPU memory (1.7 GB a video at 512x512, 128 frames, "
                         "fp16), for two transfers of each a step. The output is the same. Not with a ControlNet; "
                         "no effect when the model runs on the CPU.")


def _memory_inputs():
    # Optional, so workflows and API prompts saved before the options still run.
    return [io.Int.Input("frame_chunk", default=-1, min=-1, max=4096, optional=True, tooltip=FRAME_CHUNK_TOOLTIP),
            io.Boolean.Input("skips_on_host", default=False, optional=True, tooltip=SKIPS_ON_HOST_TOOLTIP)]


def _memory_options(frame_chunk: int, skips_on_host: bool) -> dict:
    """apply_exvideo's memory keywords from the node inputs (frame_chunk -1: automatic)."""
    return {"frame_chunk": None if frame_chunk < 0 else frame_chunk, "skips_on_host": skips_on_host}


def _load_extension(name: str, frames: int):
    weights = load_exvideo(model_folders.extension_path(name))
    if frames and frames != weights.num_frames:
        weights = weights.extend(frames)
    return weights


class ExVideoLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoLoader",
            display_name="ExVideo Load Extension",
            category="ExVideo/loaders",
            description="Loads an ExVideo extension (.safetensors, DiffSynth's released layout or ours) from "
                        "models/exvideo or output/exvideo.",
            inputs=[
                io.Combo.Input("exvideo_name", options=model_folders.extension_names(),
                               tooltip=EXTENSION_TOOLTIP),
                io.Int.Input("frames", default=0, min=0, max=4096, tooltip=FRAMES_TOOLTIP),
            ],
            outputs=[ExVideo.Output(display_name="exvideo",
                                    tooltip="The extension's tensors, for ExVideo Apply Extension (weights), ExVideo "
                                            "Post-Tune or ExVideo Save Extension.")],
        )

    @classmethod
    def execute(cls, exvideo_name, frames) -> io.NodeOutput:
        return io.NodeOutput(_load_extension(exvideo_name, frames))


class ApplyExVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ApplyExVideo",
            display_name="ExVideo Apply Extension",
            category="ExVideo/loaders",
            description="Patches an SVD model with an ExVideo extension so it generates long videos. "
                        "The input MODEL is left as it was.",
            inputs=[
                io.Model.Input("model", tooltip="An SVD / SVD-XT image-to-video model (Image Only Checkpoint Loader)."),
                io.Combo.Input("exvideo_name", options=model_folders.extension_names(),
                               tooltip=EXTENSION_TOOLTIP),
                io.Int.Input("frames", default=0, min=0, max=4096, tooltip=FRAMES_TOOLTIP),
                *_memory_inputs(),
            ],
            outputs=[io.Model.Output(tooltip="The SVD model running ExVideo's temporal layers.")],
        )

    @classmethod
    def execute(cls, model, exvideo_name, frames, frame_chunk=-1, skips_on_host=False) -> io.NodeOutput:
        return io.NodeOutput(apply_exvideo(model, _load_extension(exvideo_name, frames),
                                           **_memory_options(frame_chunk, skips_on_host)))


class ApplyExVideoWeights(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ApplyExVideoWeights",
            display_name="ExVideo Apply Extension (weights)",
            category="ExVideo/loaders",
            description="Patches an SVD model with ExVideo weights coming from another node (a loader or the trainer).",
            inputs=[
                io.Model.Input("model", tooltip="An SVD / SVD-XT image-to-video model."),
                ExVideo.Input("exvideo", tooltip="ExVideo weights from ExVideo Load Extension or a trainer."),
                *_memory_inputs(),
            ],
            outputs=[io.Model.Output(tooltip="The SVD model running ExVideo's temporal layers.")],
        )

    @classmethod
    def execute(cls, model, exvideo, frame_chunk=-1, skips_on_host=False) -> io.NodeOutput:
        return io.NodeOutput(apply_exvideo(model, exvideo, **_memory_options(frame_chunk, skips_on_host)))


class ExVideoCheckpointLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoCheckpointLoader",
            display_name="ExVideo Load SVD + Extension",
            category="ExVideo/loaders",
            description="Loads an SVD checkpoint and applies an ExVideo extension in one step.",
            inputs=[
                io.Combo.Input("ckpt_name", options=folder_paths.get_filename_list("checkpoints"),
                               tooltip="The SVD-XT checkpoint (svd_xt.safetensors) in models/checkpoints."),
                io.Combo.Input("exvideo_name", options=model_folders.extension_names(),
                               tooltip=EXTENSION_TOOLTIP),
                io.Int.Input("frames", default=0, min=0, max=4096, tooltip=FRAMES_TOOLTIP),
                *_memory_inputs(),
            ],
            outputs=[
                io.Model.Output(tooltip="SVD running ExVideo."),
                io.ClipVision.Output(tooltip="SVD's image encoder (for the conditioning)."),
                io.Vae.Output(tooltip="SVD's temporal VAE."),
            ],
        )

    @classmethod
    def execute(cls, ckpt_name, exvideo_name, frames, frame_chunk=-1, skips_on_host=False) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("checkpoints", ckpt_name)
        model, _, vae, clip_vision = comfy.sd.load_checkpoint_guess_config(
            path, output_vae=True, output_clip=False, output_clipvision=True,
            embedding_directory=folder_paths.get_folder_paths("embeddings"))[:4]
        return io.NodeOutput(apply_exvideo(model, _load_extension(exvideo_name, frames),
                                           **_memory_options(frame_chunk, skips_on_host)), clip_vision, vae)


NODES = [ExVideoLoader, ApplyExVideo, ApplyExVideoWeights, ExVideoCheckpointLoader]
