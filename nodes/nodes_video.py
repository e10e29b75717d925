"""Video files: save frames or a native VIDEO as MP4 in the output folder, load a video from the input folder."""

import os
from fractions import Fraction

import comfy.model_management
import comfy.utils
import folder_paths
from comfy.cli_args import args
from comfy_api.v0_0_2 import InputImpl, Types, io, ui
from nodes import MAX_RESOLUTION

from ..exvideo_core import frames as frame_images, video_io
from ..exvideo_core.constraints import VAE_DOWNSCALE
from ..exvideo_core.errors import ExVideoError
from ..exvideo_core.paths import file_identity, resolve_inside

from .output_paths import output_file
from .video_inputs import frames_or_video


class ExVideoSaveMP4(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoSaveMP4",
            display_name="ExVideo Save Video",
            category="ExVideo/video",
            description="Writes the frames (or a native VIDEO) as an MP4 file in ComfyUI's output folder, with "
                        "audio and with the prompt and workflow embedded as native Save Video embeds them: drop "
                        "the file onto ComfyUI to get the graph back. The file appears complete or not at all; "
                        "the write shows progress and can be cancelled. Odd sizes are padded to even (h264).",
            inputs=[
                frames_or_video("images", tooltip="The frames, in order (an IMAGE batch from any node), or a video."),
                io.Float.Input("fps", default=30.0, min=0.01, max=1000.0, step=0.01,
                               tooltip="Playback frame rate of IMAGE frames; 30 in the ExVideo recipe. A VIDEO "
                                       "keeps its own rate."),
                io.String.Input("filename_prefix", default="ExVideo/video",
                                tooltip="File name inside the output folder; may hold subfolders and ComfyUI's "
                                        "%date% variables. A counter is appended, nothing is overwritten."),
                io.Boolean.Input("contact_sheet", default=False,
                                 tooltip="Also write a PNG grid of up to 32 evenly spaced frames beside the video."),
                io.Combo.Input("codec", options=list(video_io.CODECS), default=video_io.DEFAULT_CODEC, optional=True,
                               tooltip="; ".join(f"{name}: {c.description}" for name, c in video_io.CODECS.items())),
                io.Int.Input("crf", default=video_io.DEFAULT_CRF, min=0, max=51, optional=True,
                             tooltip="h264 quality: 0 best (lossless, not browser-playable) to 51 smallest; 19 is "
                                     "close to visually lossless. Ignored by h264_lossless."),
                io.Audio.Input("audio", optional=True,
                               tooltip="Sound to put in the file (AAC), cut to the video's length; replaces a "
                                       "VIDEO's own audio, which is kept when this is not connected."),
            ],
            # codec and crf are optional only so that API prompts written before them still validate.
            outputs=[],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, fps, filename_prefix, contact_sheet, codec=video_io.DEFAULT_CODEC,
                crf=video_io.DEFAULT_CRF, audio=None) -> io.NodeOutput:
        frames, video_fps, video_audio = video_io.video_frames(images, "images")
        companions = (".png",) if contact_sheet else ()
        target = output_file(filename_prefix, ".mp4", companions, width=frames.shape[2], height=frames.shape[1])
        bar = comfy.utils.ProgressBar(frames.shape[0])

        def progress(written: int) -> None:
            # Writing hundreds of large frames takes a while: let the user cancel it.
            comfy.model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(written)

        video_io.write_mp4(frames, target.path, video_fps or fps, progress, crf, codec=codec,
                           audio=audio if audio is not None else video_audio, metadata=cls._metadata())
        if contact_sheet:
            frame_images.write_png(frame_images.contact_sheet(frames), os.path.splitext(target.path)[0] + ".png")
        return io.NodeOutput(ui=ui.PreviewVideo([ui.SavedResult(target.filename, target.subfolder,
                                                                io.FolderType.output)]))

    @classmethod
    def _metadata(cls) -> dict[str, str]:
        """The prompt and workflow, unless ComfyUI runs with --disable-metadata (as native Save Video)."""
        if args.disable_metadata or cls.hidden is None:
            return {}
        return video_io.metadata_tags(cls.hidden.prompt, cls.hidden.extra_pnginfo)


def _input_videos() -> list[str]:
    folder = folder_paths.get_input_directory()
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(video_io.VIDEO_EXTENSIONS) and os.path.isfile(os.path.join(folder, f)))


def _video_path(name: str) -> str:
    """The file a combo value names: in the input folder, or `[output]` / `[temp]` ones, never outside them."""
    relative, folder = folder_paths.annotated_filepath(name)
    return resolve_inside(folder or folder_paths.get_input_directory(), relative)


class ExVideoLoadVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoLoadVideo",
            display_name="ExVideo Load Video",
            category="ExVideo/video",
            description="Reads a video file (mp4, webm, gif, mov, avi, mkv) from the input folder as an IMAGE batch, "
                        "with its audio, choosing frames with VideoHelperSuite's options.",
            inputs=[
                io.Combo.Input("video", options=_input_videos(), upload=io.UploadType.video,
                               tooltip="A video in ComfyUI's input folder; upload one with the button."),
                io.Float.Input("force_rate", default=0.0, min=0.0, max=1000.0, step=0.01,
                               tooltip="Resample to this frame rate first, dropping or repeating frames; 0 keeps "
                                       "the file's."),
                io.Int.Input("custom_width", default=0, min=0, max=MAX_RESOLUTION, step=VAE_DOWNSCALE,
                             tooltip="Resize to this width; 0 keeps the width, or follows the aspect ratio when "
                                     "custom_height is set. With both set the centre is cropped to their aspect."),
                io.Int.Input("custom_height", default=0, min=0, max=MAX_RESOLUTION, step=VAE_DOWNSCALE,
                             tooltip="Resize to this height; 0 keeps the height, or follows the aspect ratio when "
                                     "custom_width is set."),
                io.Int.Input("frame_load_cap", default=0, min=0, max=100000,
                             tooltip="Keep at most this many frames; 0 keeps all."),
                io.Int.Input("skip_first_frames", default=0, min=0, max=1000000,
                             tooltip="Drop this many frames from the start (after force_rate) before keeping any."),
                io.Int.Input("select_every_nth", default=1, min=1, max=1000,
                             tooltip="Keep every n-th frame: 2 halves the frame rate."),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="The kept frames, RGB in [0, 1]."),
                io.Int.Output(display_name="frame_count", tooltip="How many frames were kept."),
                io.Float.Output(display_name="fps",
                                tooltip="Frame rate of the kept frames: force_rate (or the file's fps) divided by "
                                        "select_every_nth (0 when the file does not say)."),
                io.Audio.Output(display_name="audio",
                                tooltip="The file's sound for the kept frames' time span; None when it has none."),
                io.Video.Output(display_name="video",
                                tooltip="The kept frames, fps and audio as a native VIDEO, for native video nodes."),
            ],
        )

    @classmethod
    def execute(cls, video, force_rate, custom_width, custom_height, frame_load_cap, skip_first_frames,
                select_every_nth) -> io.NodeOutput:
        path = _video_path(video)
        size = (custom_width, custom_height) if custom_width or custom_height else None
        frames, rate = video_io.read_video(path, select_every_nth, frame_load_cap, skip_first_frames, size=size,
                                           crop=True, force_rate=force_rate)
        fps = rate / select_every_nth
        # The sound under the kept frames: from the first kept one to the end of the last one's stretch.
        audio = video_io.read_audio(path, skip_first_frames / rate, frames.shape[0] * select_every_nth / rate) \
            if rate else video_io.read_audio(path)
        # ComfyUI's own fallback for a file without a rate (VideoFromFile) is 1 fps.
        native = InputImpl.VideoFromComponents(Types.VideoComponents(
            images=frames, frame_rate=video_io.frame_rate(fps) if fps else Fraction(1), audio=audio))
        return io.NodeOutput(frames, frames.shape[0], fps, audio, native)

    @classmethod
    def validate_inputs(cls, video):
        # Defining this skips ComfyUI's "value in list" check (so [output] files can be named): check the path here.
        try:
            path = _video_path(video)
        except ExVideoError as e:
            return str(e)
        return True if os.path.isfile(path) else f"Video file not found: {video}"

    @classmethod
    def fingerprint_inputs(cls, video, **_):
        # Re-read when the file changes.
        try:
            return file_identity(_video_path(video))
        except ExVideoError:
            return ""


NODES = [ExVideoSaveMP4, ExVideoLoadVideo]
