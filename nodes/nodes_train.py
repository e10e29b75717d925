"""Post-tuning from the graph: training clips, the trainer, its loss curve, and saving the extension."""

import logging
import os

import numpy as np
import torch

import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io, ui

from ..exvideo_core import save_exvideo
from ..exvideo_core.constraints import MIN_FRAMES
from ..exvideo_core.train import DatasetError, TrainConfig, VideoClipDataset, encode_clips
from ..exvideo_core.errors import ExVideoError
from ..exvideo_core.train.dataset import MEASURE_MOTION, folder_identity
from ..exvideo_core.paths import resolve_inside
from ..exvideo_core.train.lora import LORA_DTYPES, check_lora, merge_lora, save_lora
from ..exvideo_core.train.loss_plot import loss_plot, loss_values
from ..exvideo_core.train.session import SessionStart, TrainingSession
from ..exvideo_core.train.state import state_file
from ..exvideo_core.video_io import video_frames

from . import model_folders
from .node_text import show_text
from .output_paths import output_file
from .size_inputs import video_size_inputs
from .types import ExVideo
from .video_inputs import frames_or_video

TrainingClips = io.Custom("EXVIDEO_CLIPS")
STATE_FOLDER = "exvideo_training"
PREVIEW_SIZE = (512, 256)  # the loss curve shown on Post-Tune while it trains
NO_FOLDER = "(none)"  # video_folder's first choice; "" (this input's old default) means the same
NEW_RUN_HINT = "turn 'resume' off to start over (overwriting the saved state), or choose another run_name"
# The frontend's control-after-generate modes. Post-Tune's seed had that widget until it was fixed; in a workflow
# saved then, its mode is one more widget value, which now lands in run_name.
SEED_CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")


def _input_folder(video_folder: str) -> str:
    return resolve_inside(folder_paths.get_input_directory(), video_folder, error=DatasetError)


class ExVideoTrainingClips(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoTrainingClips",
            display_name="ExVideo Training Clips",
            category="ExVideo/training",
            description="Cuts videos into clips of consecutive frames (resized and centre-cropped) and encodes "
                        "them once: VAE latents, the first frame's CLIP embedding and its motion bucket.",
            inputs=[
                io.Vae.Input("vae", tooltip="SVD's VAE."),
                io.ClipVision.Input("clip_vision", tooltip="SVD's image encoder."),
                io.Combo.Input("video_folder", options=[NO_FOLDER, *folder_paths.get_input_subfolders()],
                               default=NO_FOLDER,
                               tooltip="A folder of videos (mp4, webm, gif, mov) in ComfyUI's input folder, listed "
                                       "as Load Image Dataset from Folder lists them (refresh after adding one); "
                                       f"{NO_FOLDER} trains on the images input instead. A path typed into an API "
                                       "prompt or a saved workflow is accepted too, if it stays inside input/."),
                io.Int.Input("frames", default=128, min=MIN_FRAMES, max=4096,
                             tooltip="Frames per clip: the length the extension learns (128 in the reference). "
                                     "Shorter videos are skipped with a warning."),
                *video_size_inputs(512, 512, "Clip width in pixels.", "Clip height in pixels."),
                io.Int.Input("frame_stride", default=1, min=1, max=100, tooltip="Take every n-th frame."),
                io.Int.Input("motion_bucket_id", default=MEASURE_MOTION, min=MEASURE_MOTION, max=1023,
                             tooltip=f"{MEASURE_MOTION} measures each clip's motion and trains the clip at its "
                                     f"bucket (0 to 127), as the reference does; 0 or more trains every clip at that "
                                     f"bucket, as motion_bucket_id means in the samplers. Workflows saved before "
                                     f"used 0 to measure: set them to {MEASURE_MOTION}."),
                frames_or_video("images", optional=True,
                                tooltip="Frames of one video, used when no video_folder is chosen."),
            ],
            outputs=[TrainingClips.Output(display_name="clips",
                                          tooltip="The encoded clips (latents, CLIP embedding, motion bucket), "
                                                  "for ExVideo Post-Tune.")],
        )

    @classmethod
    def validate_inputs(cls, video_folder) -> bool:
        # Declaring video_folder here makes ComfyUI skip its combo check for it: a folder typed into an API
        # prompt, or saved by a workflow before this input was a list, still runs; execute confines it.
        return True

    @classmethod
    def fingerprint_inputs(cls, video_folder, **_):
        # The folder's name alone would let ComfyUI reuse the clips of its last run after videos were added to,
        # removed from or written again in the folder.
        if video_folder in ("", NO_FOLDER):
            return ""
        try:
            return folder_identity(_input_folder(video_folder))
        except ExVideoError:
            return ""  # execute names the problem

    @classmethod
    def execute(cls, vae, clip_vision, video_folder, frames, width, height, frame_stride, motion_bucket_id,
                images=None) -> io.NodeOutput:
        if video_folder not in ("", NO_FOLDER):
            folder = _input_folder(video_folder)
            dataset = VideoClipDataset.from_folder(folder, frames, width, height, frame_stride)
        elif images is not None:
            dataset = VideoClipDataset.from_images(video_frames(images, "images")[0], frames, width, height,
                                                   frame_stride)
        else:
            raise DatasetError("ExVideo Training Clips needs a video_folder or an images input.")
        # An upper bound: videos too short for a clip are skipped while encoding.
        bar = comfy.utils.ProgressBar(len(dataset.sources) * dataset.clips_per_video)
        if motion_bucket_id == 0:
            logging.warning("ExVideo Training Clips: motion_bucket_id 0 trains every clip at bucket 0, the "
                            "stillest; %d measures each clip's motion (workflows saved before used 0 for that)",
                            MEASURE_MOTION)
        clips = encode_clips(dataset, vae, clip_vision, motion_bucket_id,
                             progress=lambda done: bar.update_absolute(done))
        return io.NodeOutput(clips)


class ExVideoTrain(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoTrain",
            display_name="ExVideo Post-Tune",
            category="ExVideo/training",
            description="Post-tunes SVD's temporal modules on the clips (the ExVideo recipe: AdamW, Karras sigmas, "
                        "x0 loss). The MODEL itself is not changed. Interrupting saves a resumable state under "
                        "output/exvideo_training/<run_name>; before training, the node shows how large that state "
                        "will be (gigabytes in full mode) and where it goes.",
            inputs=[
                io.Model.Input("model", tooltip="SVD (Image Only Checkpoint Loader); not an ExVideo-patched one."),
                TrainingClips.Input("clips", tooltip="From ExVideo Training Clips."),
                io.Int.Input("steps", default=100, min=1, max=10_000_000, tooltip="Optimizer steps in all."),
                io.Combo.Input("mode", options=["full", "lora"], default="full",
                               tooltip="full: every temporal tensor (the reference); lora: low-rank adapters on "
                                       "the temporal linears, with the position table and conv trained fully."),
                io.Float.Input("learning_rate", default=1e-5, min=1e-8, max=1.0, step=1e-6, round=1e-8,
                               tooltip="AdamW learning rate; 1e-5 in the reference (full mode)."),
                io.Int.Input("lora_rank", default=16, min=1, max=1024, tooltip="LoRA rank (lora mode)."),
                io.Float.Input("lora_alpha", default=16.0, min=0.01, max=1024.0, step=0.5, tooltip="LoRA alpha."),
                io.Int.Input("grad_accumulation", default=1, min=1, max=1024, tooltip="Clips per optimizer step."),
                io.Boolean.Input("gradient_checkpointing", default=True,
                                 tooltip="Recompute activations in the backward pass: far less memory, ~30% slower."),
                # Fixed, not the frontend's "randomize" for a seed: a new seed each queue would make the saved
                # run refuse to resume (the seed is one of its settings).
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=False,
                             tooltip="Seed of the clip order, sigmas and noise; a setting of the run, so a saved "
                                     "run resumes only with its own seed."),
                io.String.Input("run_name", default="exvideo_run",
                                tooltip="Name of the resumable state file; an existing state of this name is "
                                        "resumed when 'resume' is on."),
                io.Boolean.Input("resume", default=True,
                                 tooltip="Continue the saved run of this name if there is one: only with its own "
                                         "settings and clips (other ones are refused, saying what differs). Off "
                                         "starts the run over, overwriting its saved state."),
                ExVideo.Input("exvideo", optional=True,
                              tooltip="An extension to start from; default: a fresh one from the model."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The model with the trained extension applied."),
                ExVideo.Output(display_name="exvideo",
                               tooltip="The trained extension. In lora mode it holds the trained position tables "
                                       "and convs but not the LoRA: apply it first, then the lora output."),
                io.LossMap.Output(display_name="loss",
                                  tooltip="The loss of every step, as ComfyUI's LOSS_MAP: for Plot Loss Graph or "
                                          "ExVideo Loss Plot (running mean, log scale)."),
                io.LoraModel.Output(display_name="lora",
                                    tooltip="lora mode: the trained LoRA, for ExVideo Save LoRA or Save LoRA Weights, "
                                            "or Load LoRA Model on the model patched with the exvideo output. Full "
                                            "mode trains no LoRA: those nodes fail saying so, ExVideo Save "
                                            "Extension ignores it."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, run_name) -> bool | str:
        if run_name in SEED_CONTROL_VALUES:
            return (f"run_name is {run_name!r}, the mode of a seed's control widget: this ExVideo Post-Tune comes "
                    f"from a workflow saved when its seed had that widget, and its later values moved one place "
                    f"(run_name into resume). Set run_name and resume again, then save the workflow.")
        return True

    @classmethod
    def execute(cls, model, clips, steps, mode, learning_rate, lora_rank, lora_alpha, grad_accumulation,
                gradient_checkpointing, seed, run_name, resume, exvideo=None) -> io.NodeOutput:
        state_dir = os.path.join(folder_paths.get_output_directory(), STATE_FOLDER)
        state_path = state_file(state_dir, run_name)
        os.makedirs(state_dir, exist_ok=True)
        config = TrainConfig(steps=steps, mode=mode, learning_rate=learning_rate, lora_rank=lora_rank,
                             lora_alpha=lora_alpha, grad_accumulation=grad_accumulation,
                             gradient_checkpointing=gradient_checkpointing, seed=seed)
        # The CLI's rules: a saved run resumes only with its own settings (else refused, naming them).
        session = TrainingSession.open(model, clips, config, state_path, resume=resume,
                                       start=SessionStart(weights=exvideo), new_run_hint=NEW_RUN_HINT)
        trainer = session.trainer
        show_text(cls, f"ExVideo Post-Tune: the resumable state of this run takes {_size(trainer.state_bytes())} "
                       f"and is written to {state_path} at the end and when interrupted.")
        result = session.run(progress=_loss_progress(steps, trainer.losses))
        lora = session.lora()
        return io.NodeOutput(trainer.patched_model(), trainer.weights(), {"loss": list(result.losses)}, lora)


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def _loss_progress(steps: int, losses: list[float]):
    """Progress with the loss: a line in the console and the loss curve as the node's preview image."""
    bar, losses = comfy.utils.ProgressBar(steps), list(losses)

    def report(step: int, total: int, loss: float) -> None:
        losses.append(loss)
        logging.info("ExVideo Post-Tune: step %d/%d, loss %.5f", step, total, loss)
        curve = loss_plot(losses, *PREVIEW_SIZE)
        bar.update_absolute(step, total, ("PNG", curve, max(PREVIEW_SIZE)))

    return report


class ExVideoLossPlot(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoLossPlot",
            display_name="ExVideo Loss Plot",
            category="ExVideo/training",
            description="Draws a LOSS_MAP (ExVideo Post-Tune's or Train LoRA's loss) as an image, for a Preview "
                        "Image node. Unlike Plot Loss Graph it draws the running mean over the noisy per-step "
                        "loss, can use a log axis, and draws a run of one step or a constant loss (where Plot "
                        "Loss Graph divides by zero).",
            inputs=[
                io.LossMap.Input("loss", tooltip="The loss output of ExVideo Post-Tune (or of Train LoRA)."),
                io.Int.Input("width", default=768, min=128, max=4096, tooltip="Plot width in pixels."),
                io.Int.Input("height", default=384, min=96, max=4096, tooltip="Plot height in pixels."),
                # Optional: API prompts and workflows saved before these existed leave them out.
                io.Int.Input("mean_window", default=10, min=1, max=10_000, optional=True,
                             tooltip="Steps averaged by the running mean (blue); 1 draws no mean."),
                io.Boolean.Input("log_scale", default=False, optional=True,
                                 tooltip="A log loss axis, for a loss that falls by orders of magnitude."),
            ],
            outputs=[io.Image.Output(tooltip="The plot as an IMAGE (1 h w 3): losses grey, running mean blue.")],
        )

    @classmethod
    def execute(cls, loss, width, height, mean_window=10, log_scale=False) -> io.NodeOutput:
        image = loss_plot(loss_values(loss), width, height, mean_window, log_scale)
        return io.NodeOutput(torch.from_numpy(np.asarray(image)).float()[None] / 255.0)


class ExVideoSaveExtension(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoSaveExtension",
            display_name="ExVideo Save Extension",
            category="ExVideo/training",
            description="Saves an extension as .safetensors in the output folder (a counter is appended, nothing "
                        "is overwritten) and shows where. Under exvideo/ it lands in output/exvideo, an exvideo "
                        "model folder: the ExVideo loaders list it (refresh the page's node lists with R).",
            inputs=[
                ExVideo.Input("exvideo", tooltip="The trained extension."),
                io.String.Input("filename_prefix", default="exvideo/ExVideo-custom",
                                tooltip="Name inside the output folder; may hold subfolders. Starting with "
                                        "exvideo/, the file is listed by the ExVideo loaders; elsewhere, move it "
                                        "to models/exvideo to load it."),
                io.Combo.Input("layout", options=["diffsynth", "comfyui"], default="diffsynth",
                               tooltip="diffsynth: the released layout, loadable by DiffSynth-Studio too; "
                                       "comfyui: ComfyUI's tensor names."),
                io.LoraModel.Input("lora", optional=True,
                                   tooltip="The lora output of the same lora-mode run, merged into the saved "
                                           "extension so the file stands alone (e.g. for DiffSynth-Studio). "
                                           "Leave it unconnected to save the LoRA separately."),
            ],
            outputs=[],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, exvideo, filename_prefix, layout, lora=None) -> io.NodeOutput:
        if lora:  # a full-mode run's lora output is empty: nothing to merge
            exvideo = merge_lora(exvideo, lora)
        target = output_file(filename_prefix, ".safetensors")
        save_exvideo(exvideo, target.path, layout=layout)
        return _saved(cls, target.path, model_folders.FOLDER, "the ExVideo loaders")


class ExVideoSaveLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoSaveLoRA",
            display_name="ExVideo Save LoRA",
            category="ExVideo/training",
            description="Saves the LoRA of a lora-mode post-tuning run as a ComfyUI LoRA .safetensors in the output "
                        "folder (a counter is appended, nothing is overwritten) and shows where. Under loras/ it "
                        "lands in output/loras, which ComfyUI lists as a loras folder: LoraLoaderModelOnly applies "
                        "it on top of the extension saved from the same run.",
            inputs=[
                io.LoraModel.Input("lora", tooltip="The lora output of ExVideo Post-Tune (mode 'lora')."),
                io.String.Input("filename_prefix", default="loras/ExVideo-lora",
                                tooltip="Name inside the output folder; may hold subfolders. Starting with "
                                        "loras/, ComfyUI's LoRA loaders list the file; elsewhere, move it to "
                                        "models/loras to load it."),
                io.Combo.Input("dtype", options=list(LORA_DTYPES), default="fp32",
                               tooltip="Precision of the LoRA factors: fp32 reproduces the trained model exactly; "
                                       "fp16 and bf16 halve the file and round the factors."),
                ExVideo.Input("exvideo", optional=True,
                              tooltip="The exvideo output of the same run: its length, steps and fingerprint are "
                                      "recorded in the file's metadata so the pair can be matched."),
            ],
            outputs=[],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, lora, filename_prefix, dtype, exvideo=None) -> io.NodeOutput:
        check_lora(lora)  # before any folder is made for it
        target = output_file(filename_prefix, ".safetensors")
        save_lora(lora, target.path, dtype, extension=exvideo)
        return _saved(cls, target.path, "loras", "the LoRA loaders")


def _saved(node_cls, path: str, model_folder: str, loaders: str) -> io.NodeOutput:
    """Where a saved model went and whether `loaders` list it, on the node and as its UI output."""
    name = model_folders.listed_name(model_folder, path)
    if name is not None:
        text = f"Saved {path}. {loaders[0].upper()}{loaders[1:]} list it as {name} (press R to refresh the lists)."
    else:
        text = (f"Saved {path}. No {model_folder} model folder holds it, so {loaders} do not list it: move it to "
                f"{folder_paths.get_folder_paths(model_folder)[0]}")
        if model_folders.listed_name(model_folder, os.path.join(folder_paths.get_output_directory(), model_folder,
                                                                 "file")):
            text += f", or save with a filename_prefix starting with {model_folder}/"
        text += "."
    show_text(node_cls, text)
    return io.NodeOutput(ui=ui.PreviewText(text))


NODES = [ExVideoTrainingClips, ExVideoTrain, ExVideoLossPlot, ExVideoSaveExtension, ExVideoSaveLoRA]
