"""Video files: save frames as MP4 in the output folder, load a video's frames from the input folder."""

import os

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import io, ui

from exvideo_core import frames as frame_images, video_io
from exvideo_core.errors import ExVideoError
from exvideo_core.paths import resolve_inside

from .output_paths import output_file


class ExVideoSaveMP4(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoSaveMP4",
            display_name="Save Video (MP4)",
            category="ExVideo/video",
            description="Writes the frames as an H.264 MP4 file (yuv420p, plays in browsers) in ComfyUI's output "
                        "folder. Odd sizes are padded to even.",
            inputs=[
                io.Image.Input("images", tooltip="The frames, in order (an IMAGE batch from any node)."),
                io.Float.Input("fps", default=30.0, min=0.01, max=1000.0, step=0.01,
                               tooltip="Playback frame rate; 30 in the ExVideo recipe."),
                io.String.Input("filename_prefix", default="ExVideo/video",
                                tooltip="File name inside the output folder; may hold subfolders and ComfyUI's "
                                        "%date% variables. A counter is appended, nothing is overwritten."),
                io.Boolean.Input("contact_sheet", default=False,
                                 tooltip="Also write a PNG grid of up to 32 evenly spaced frames beside the video."),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, fps, filename_prefix, contact_sheet) -> io.NodeOutput:
        companions = (".png",) if contact_sheet else ()
        target = output_file(filename_prefix, ".mp4", companions, width=images.shape[2], height=images.shape[1])
        bar = comfy.utils.ProgressBar(images.shape[0])

        def progress(written: int) -> None:
            # Writing hundreds of large frames takes a while: let the user cancel it.
            comfy.model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(written)

        video_io.write_mp4(images, target.path, fps, progress)
        if contact_sheet:
            frame_images.write_png(frame_images.contact_sheet(images), os.path.splitext(target.path)[0] + ".png")
        return io.NodeOutput(ui=ui.PreviewVideo([ui.SavedResult(target.filename, target.subfolder,
                                                                io.FolderType.output)]))


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
            display_name="Load Video (frames)",
            category="ExVideo/video",
            description="Reads a video file (mp4, webm, gif, mov, avi, mkv) from the input folder as an IMAGE batch.",
            inputs=[
                io.Combo.Input("video", options=_input_videos(), upload=io.UploadType.video,
                               tooltip="A video in ComfyUI's input folder; upload one with the button."),
                io.Int.Input("frame_stride", default=1, min=1, max=1000,
                             tooltip="Keep every n-th frame: 2 halves the frame rate."),
                io.Int.Input("max_frames", default=0, min=0, max=100000,
                             tooltip="Keep at most this many frames; 0 keeps all."),
                io.Int.Input("skip_first_frames", default=0, min=0, max=1000000,
                             tooltip="Drop this many frames from the start before keeping any."),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="The kept frames, RGB in [0, 1]."),
                io.Int.Output(display_name="frame_count", tooltip="How many frames were kept."),
                io.Float.Output(display_name="fps",
                                tooltip="Frame rate of the kept frames: the file's fps divided by frame_stride "
                                        "(0 when the file does not say)."),
            ],
        )

    @classmethod
    def execute(cls, video, frame_stride, max_frames, skip_first_frames) -> io.NodeOutput:
        frames, fps = video_io.read_video(_video_path(video), frame_stride, max_frames, skip_first_frames)
        return io.NodeOutput(frames, frames.shape[0], fps / frame_stride)

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
        # Re-read when the file changes; size and mtime avoid hashing a large video on every queue.
        try:
            stat = os.stat(_video_path(video))
        except (OSError, ExVideoError):
            return ""
        return f"{stat.st_mtime_ns}:{stat.st_size}"


NODES = [ExVideoSaveMP4, ExVideoLoadVideo]
