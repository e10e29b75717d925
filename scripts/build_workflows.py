"""Writes example_workflows/*.json (UI format) from the compact graphs below, and their thumbnails.

    .venv/bin/python -P scripts/build_workflows.py                 # templates and thumbnails
    .venv/bin/python -P scripts/build_workflows.py --templates     # templates only
    .venv/bin/python -P scripts/build_workflows.py --thumbnails    # thumbnails only (no server)

Starts the real ComfyUI with the pack to read /object_info, so sockets,
widget order and defaults come from the node definitions themselves; a
graph only names the widget values that differ from the defaults.

Each loader node also names the model files it selects, with where to get
them, in its `properties.models` (`name`, `url`, `directory`): the frontend
(1.32.9, `loadGraphData` in src/scripts/app.ts) offers every file listed there
that its model folder lacks in the missing-models dialog, but only if `name`
is one of the node's widget values, the url starts with https://huggingface.co/
or https://civitai.com/ and the name ends in .safetensors or .sft
(src/components/dialog/content/MissingModelsWarning.vue).

Every node carries `properties.cnr_id` and `ver`, as the frontend saves them and
ComfyUI-Manager reads them to install a missing pack: the pack's registry id
(pyproject `name`) and version for its nodes, "comfy-core" and the ComfyUI
version for native ones. Each template starts with a Markdown Note (the
frontend's `MarkdownNote`: one widget, the text) saying which model files go
where, the licence to accept first, the input files and what to change first.

The thumbnail the template browser shows is `<name>.jpg` beside the JSON
(`/api/workflow_templates/<pack>/<name>.jpg`), made here from the fitted-graph
screenshot docs/screenshots/<name>.png that scripts/screenshots.sh takes.
"""

import argparse
import io
import json
import math
import pathlib
import tempfile
import tomllib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
from exvideo_harness.browser import VIEWPORT
from exvideo_harness.comfy_server import start_comfy_server
from exvideo_harness.workflows import BYPASS_MODE, EXTRA_VALUE_OPTIONS, _ordered_inputs, has_control_widget, is_widget

OUT_DIR = REPO_ROOT / "example_workflows"
_PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
# ComfyUI-Manager finds a missing pack by its registry id: the pyproject `name` the registry publishes it under.
PACK_ID, PACK_VERSION = _PROJECT["name"], _PROJECT["version"]
CORE_ID = "comfy-core"  # the frontend's name for the nodes ComfyUI itself ships
NOTE_TYPE = "MarkdownNote"  # frontend-only: never queued, never in /object_info
NOTE_SIZE = (420, 640)
NODE_LEFT = 40 + NOTE_SIZE[0] + 40  # the graph starts right of the note
SAMPLE_IMAGE = "exvideo_example.png"
SVD = "svd_xt.safetensors"
EXVIDEO = "ExVideo-SVD-128f-v1.safetensors"
TRAINING_VIDEOS = "exvideo_training_videos"  # a folder in ComfyUI's input folder
SCREENSHOT_DIR = REPO_ROOT / "docs" / "screenshots"
THUMBNAIL_WIDTH, THUMBNAIL_QUALITY = 512, 85
# The canvas of a screenshot (CSS px of the browser's viewport) without the frontend's
# sidebar, tab and Run bars and zoom controls; the graph is looked for in there.
CANVAS_CSS_BOX = (60, 95, VIEWPORT["width"], 650)
THUMBNAIL_MARGIN_CSS = 24

# Where the files the loaders name come from, as the missing-models dialog reads them.
# The ExVideo release is DiffSynth-Studio's model.fp16.safetensors; `name` is what the
# workflows' loaders select (the desktop app saves the download under it in
# models/<directory>; a browser download keeps the url's file name, to be renamed).
MODEL_FILES = {
    SVD: {"name": SVD,
          "url": "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt/resolve/main/svd_xt.safetensors",
          "directory": "checkpoints"},
    EXVIDEO: {"name": EXVIDEO,
              "url": "https://huggingface.co/ECNU-CILab/ExVideo-SVD-128f-v1/resolve/main/model.fp16.safetensors",
              "directory": "exvideo"},
}

# What a user changes first in each template (the note's last part).
CHANGE_FIRST = {
    "exvideo_image_to_video": "The image in **Load Image**. Then, on **ExVideo Image to Video**: width and height "
                              "(multiples of 64), `frames` (at most 128 with this extension), `seed` and "
                              "`motion_bucket_id` (more motion when higher). **ExVideo Deep Cache** is bypassed: "
                              "un-bypass it (Ctrl+B) to sample faster at a small cost in quality.",
    "exvideo_image_to_video_native_nodes": "The image in **Load Image**; the size and `video_frames` (at most 128) "
                                           "on **SVD_img2vid_Conditioning**; the seed on **KSampler**. The same "
                                           "video as ExVideo Image to Video, from ComfyUI's own nodes.",
    "exvideo_two_pass_refine": "The image in **Load Image**. The first pass samples 512x512; **ExVideo Refine** "
                               "samples it again at 1024x1024 from `denoise` 0.5: lower its width and height if "
                               "memory runs short.",
    "exvideo_256_frames_continuation": "The image in **Load Image**. Each **ExVideo Continue Video** adds `frames` "
                                       "- `overlap_frames` (64) frames to the 128 of the first clip: chain more of "
                                       "them for a longer video, and give each its own `seed`.",
    "exvideo_256_frames_context_windows": "The image in **Load Image**, and `frames` (256) on **ExVideo Image to "
                                          "Video**: longer than the extension's 128, so **Context Windows "
                                          "(Manual)** samples it in windows of 128 (`context_length`).",
    "exvideo_keyframes": "The start image in the first **Load Image** and the end image in the second (both are "
                         "the example image until you change them). On **ExVideo Keyframes**: `frames` from start "
                         "to end (at most 128 with this extension) and `seed`. For more keyframes, batch more "
                         "images in order.",
    "exvideo_loop": "The image in **Load Image**. **ExVideo Keyframes** with `loop` on makes a video that starts "
                    "and ends at it and plays round without a jump; `frames` sets its length.",
    "exvideo_post_tuning": "`run_name` on **ExVideo Post-Tune** for every new set of videos (a run resumes only on "
                           "its own clips and settings), and its `steps`. Its resumable state (gigabytes in full "
                           "mode) goes to `output/exvideo_training`; **ExVideo Save Extension** writes to "
                           "`output/exvideo`, which the ExVideo loaders list.",
}

# name -> (title, [(id, node type, {widget: value}, {input: (source id, output slot)})])
GRAPHS = {
    "exvideo_image_to_video": [
        (1, "LoadImage", {"image": SAMPLE_IMAGE}, {}),
        (2, "ExVideoCheckpointLoader", {"ckpt_name": SVD, "exvideo_name": EXVIDEO}, {}),
        (7, "ExVideoDeepCache", {}, {"model": (2, 0)}),
        (3, "ExVideoSampler", {}, {"model": (7, 0), "clip_vision": (2, 1), "vae": (2, 2), "image": (1, 0)}),
        (4, "ExVideoLatentPostProcess", {}, {"samples": (3, 0)}),
        (5, "ExVideoTemporalDecode", {}, {"vae": (2, 2), "samples": (4, 0)}),
        (6, "ExVideoSaveMP4", {"filename_prefix": "ExVideo/image_to_video"}, {"images": (5, 0)}),
    ],
    # From one image to another; ImageBatch puts the keyframes in order (resizing the second to the first).
    "exvideo_keyframes": [
        (1, "LoadImage", {"image": SAMPLE_IMAGE}, {}),
        (2, "LoadImage", {"image": SAMPLE_IMAGE}, {}),
        (3, "ImageBatch", {}, {"image1": (1, 0), "image2": (2, 0)}),
        (4, "ExVideoCheckpointLoader", {"ckpt_name": SVD, "exvideo_name": EXVIDEO}, {}),
        (5, "ExVideoKeyframes", {}, {"model": (4, 0), "clip_vision": (4, 1), "vae": (4, 2), "keyframes": (3, 0)}),
        (6, "ExVideoLatentPostProcess", {}, {"samples": (5, 0)}),
        (7, "ExVideoTemporalDecode", {}, {"vae": (4, 2), "samples": (6, 0)}),
        (8, "ExVideoSaveMP4", {"filename_prefix": "ExVideo/keyframes"}, {"images": (7, 0)}),
    ],
    "exvideo_loop": [
        (1, "LoadImage", {"image": SAMPLE_IMAGE}, {}),
        (2, "ExVideoCheckpointLoader", {"ckpt_name": SVD, "exvideo_name": EXVIDEO}, {}),
        (3, "ExVideoKeyframes", {"loop": True},
         {"model": (2, 0), "clip_vision": (2, 1), "vae": (2, 2), "keyframes": (1, 0)}),
        (4, "ExVideoLatentPostProcess", {}, {"samples": (3, 0)}),
        (5, "ExVideoTemporalDecode", {}, {"vae": (2, 2), "samples": (4, 0)}),
        (6, "ExVideoSaveMP4", {"filename_prefix": "ExVideo/loop"}, {"images": (5, 0)}),
    ],
    "exvideo_image_to_video_native_nodes": [
        (1, "LoadImage", {"image": SAMPLE_IMAGE}, {}),
        (2, "ImageOnlyCheckpointLoader", {"ckpt_name": SVD}, {}),
        (3, "ApplyExVideo", {"exvideo_name": EXVIDEO}, {"model": (2, 0)}),
        (4, "VideoLinearCFGGuidance", {"min_cfg": 2.0}, {"model": (3, 0)}),
        (5, "SVD_img2vid_Conditioning",
         {"width": 512, "height": 512, "video_frames": 128, "fps": 30, "motion_bucket_id": 127,
          "augmentation_level": 0.02},
         {"clip_vision": (2, 1), "init_image": (1, 0), "vae": (2, 2)}),
        (6, "KSampler", {"seed": 1, "steps": 50, "cfg": 2.0, "sampler_name": "euler", "scheduler": "karras"},
         {"model": (4, 0), "positive": (5, 0), "negative": (5, 1), "latent_image": (5, 2)}),
        (7, "ExVideoLatentPostProcess", {}, {"samples": (6, 0)}),
        (8, "ExVideoTemporalDecode", {}, {"vae": (2, 2), "samples": (7, 0)}),
        # Saved the native way: the frames become a VIDEO, which native Save Video writes with the workflow.
        (9, "CreateVideo", {"fps": 30.0}, {"images": (8, 0)}),
        (10, "SaveVideo", {"filename_prefix": "ExVideo/native_nodes"}, {"video": (9, 0)}),
    ],
    "exvideo_two_pass_refine": [
        (1, "LoadImage", {"image": SAMPLE_IMAGE}, {}),
        (2, "ExVideoCheckpointLoader", {"ckpt_name": SVD, "exvideo_name": EXVIDEO}, {}),
        (3, "ExVideoSampler", {}, {"model": (2, 0), "clip_vision": (2, 1), "vae": (2, 2), "image": (1, 0)}),
        (4, "ExVideoLatentPostProcess", {}, {"samples": (3, 0)}),
        (5, "ExVideoTemporalDecode", {}, {"vae": (2, 2), "samples": (4, 0)}),
        (6, "ExVideoRefine", {}, {"model": (2, 0), "clip_vision": (2, 1), "vae": (2, 2), "images": (5, 0),
                                  "image": (1, 0)}),
        (7, "ExVideoLatentPostProcess", {}, {"samples": (6, 0)}),
        (8, "ExVideoTemporalDecode", {}, {"vae": (2, 2), "samples": (7, 0)}),
        (9, "ExVideoSaveMP4", {"filename_prefix": "ExVideo/refined"}, {"images": (8, 0)}),
    ],
    # 128 + 2 x (72 - 8) = 256 frames from a 128-frame extension.
    "exvideo_256_frames_continuation": [
        (1, "LoadImage", {"image": SAMPLE_IMAGE}, {}),
        (2, "ExVideoCheckpointLoader", {"ckpt_name": SVD, "exvideo_name": EXVIDEO}, {}),
        (3, "ExVideoSampler", {}, {"model": (2, 0), "clip_vision": (2, 1), "vae": (2, 2), "image": (1, 0)}),
        (4, "ExVideoContinue", {"frames": 72, "overlap_frames": 8, "seed": 2},
         {"model": (2, 0), "clip_vision": (2, 1), "vae": (2, 2), "previous": (3, 0)}),
        (5, "ExVideoContinue", {"frames": 72, "overlap_frames": 8, "seed": 3},
         {"model": (2, 0), "clip_vision": (2, 1), "vae": (2, 2), "previous": (4, 0)}),
        (6, "ExVideoLatentPostProcess", {}, {"samples": (5, 0)}),
        (7, "ExVideoTemporalDecode", {}, {"vae": (2, 2), "samples": (6, 0)}),
        (8, "ExVideoSaveMP4", {"filename_prefix": "ExVideo/256_frames"}, {"images": (7, 0)}),
    ],
    # 256 frames in one sampling: native Context Windows (Manual) runs the 128-frame extension over
    # overlapping 128-frame windows, fused at every step (README: Continue Video or native context windows).
    "exvideo_256_frames_context_windows": [
        (1, "LoadImage", {"image": SAMPLE_IMAGE}, {}),
        (2, "ExVideoCheckpointLoader", {"ckpt_name": SVD, "exvideo_name": EXVIDEO}, {}),
        (3, "ContextWindowsManual", {"context_length": 128, "context_overlap": 32, "dim": 0}, {"model": (2, 0)}),
        (4, "ExVideoSampler", {"frames": 256},
         {"model": (3, 0), "clip_vision": (2, 1), "vae": (2, 2), "image": (1, 0)}),
        (5, "ExVideoLatentPostProcess", {}, {"samples": (4, 0)}),
        (6, "ExVideoTemporalDecode", {}, {"vae": (2, 2), "samples": (5, 0)}),
        (7, "ExVideoSaveMP4", {"filename_prefix": "ExVideo/256_frames_windows"}, {"images": (6, 0)}),
    ],
    # Post-tune on the videos in input/exvideo_training_videos, save the extension, then sample with it.
    "exvideo_post_tuning": [
        (1, "ImageOnlyCheckpointLoader", {"ckpt_name": SVD}, {}),
        (2, "ExVideoTrainingClips", {"video_folder": TRAINING_VIDEOS}, {"vae": (1, 2), "clip_vision": (1, 1)}),
        (3, "ExVideoTrain", {"steps": 1000, "run_name": "my_extension"}, {"model": (1, 0), "clips": (2, 0)}),
        (4, "ExVideoLossPlot", {}, {"loss": (3, 2)}),
        (5, "PreviewImage", {}, {"images": (4, 0)}),
        (6, "ExVideoSaveExtension", {"filename_prefix": "exvideo/my_extension"}, {"exvideo": (3, 1), "lora": (3, 3)}),
        (7, "LoadImage", {"image": SAMPLE_IMAGE}, {}),
        (8, "ExVideoSampler", {}, {"model": (3, 0), "clip_vision": (1, 1), "vae": (1, 2), "image": (7, 0)}),
        (9, "ExVideoLatentPostProcess", {}, {"samples": (8, 0)}),
        (10, "ExVideoTemporalDecode", {}, {"vae": (1, 2), "samples": (9, 0)}),
        (11, "ExVideoSaveMP4", {"filename_prefix": "ExVideo/post_tuned"}, {"images": (10, 0)}),
    ],
}

# Options a template shows but leaves off: bypassed nodes (the frontend's mode 4), which the frontend routes
# around when it queues, so a user turns one on with Ctrl+B.
BYPASSED = {"exvideo_image_to_video": {7}}


def widget_values(info: dict, overrides: dict) -> list:
    values = []
    unknown = set(overrides)
    for name, spec in _ordered_inputs(info):
        if not is_widget(spec):
            continue
        options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        if name in overrides:
            value = overrides[name]
            unknown.discard(name)
        elif "default" in options:
            value = options["default"]
        elif isinstance(spec[0], list):
            value = spec[0][0] if spec[0] else ""
        else:
            value = options.get("options", [""])[0] if spec[0] == "COMBO" else ""
        values.append(value)
        if has_control_widget(name, spec):
            values.append("fixed")
        if any(options.get(o) for o in EXTRA_VALUE_OPTIONS[1:]):
            values.append("image")
    if unknown:
        raise KeyError(f"{info['name']} has no widget {sorted(unknown)}")
    return values


def model_entries(values: list) -> list[dict]:
    """The MODEL_FILES a node selects in its widgets, in widget order."""
    return [dict(MODEL_FILES[v]) for v in values if isinstance(v, str) and v in MODEL_FILES]


def node_source(info: dict, comfyui_version: str) -> dict:
    """`cnr_id` and `ver` of a node, from where /object_info says its class lives (as the frontend's
    getNodeSource reads `python_module`)."""
    package = info["python_module"].split(".")[0]
    if package == "custom_nodes":
        return {"cnr_id": PACK_ID, "ver": PACK_VERSION}
    if package in ("nodes", "comfy_extras", "comfy_api_nodes"):
        return {"cnr_id": CORE_ID, "ver": comfyui_version}
    raise ValueError(f"{info['name']} comes from {info['python_module']!r}, neither ComfyUI nor this pack")


def note_text(name: str, graph) -> str:
    """The template's Markdown Note: model files and where they go, the licence, the inputs, what to change."""
    selected = {value for _, _, overrides, _ in graph for value in overrides.values() if value in MODEL_FILES}
    lines = ["## Before you run", "", "**Models** (in ComfyUI's `models` folder):", ""]
    if SVD in selected:
        lines.append(f"- `{SVD}` into `models/{MODEL_FILES[SVD]['directory']}`. SVD-XT is gated on Hugging "
                     f"Face: sign in and accept its licence on "
                     f"[its page](https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt) first, "
                     f"then download it.")
    if EXVIDEO in selected:
        lines.append(f"- `{EXVIDEO}` into `models/{MODEL_FILES[EXVIDEO]['directory']}`. DiffSynth-Studio publishes "
                     f"it as `model.fp16.safetensors` on [its page](https://huggingface.co/ECNU-CILab/"
                     f"ExVideo-SVD-128f-v1): rename the file after downloading.")
    lines += ["", "Restart ComfyUI or press R afterwards, so the loaders list the files.", "", "**Inputs:**", ""]
    if any(node_type == "LoadImage" for _, node_type, _, _ in graph):
        lines.append(f"- `{SAMPLE_IMAGE}` is copied into ComfyUI's `input` folder when the pack loads; upload "
                     f"your own image in Load Image.")
    if any(overrides.get("video_folder") == TRAINING_VIDEOS for _, _, overrides, _ in graph):
        lines.append(f"- Create `input/{TRAINING_VIDEOS}` and put the training videos in it (mp4, webm, gif or "
                     f"mov, each at least 128 frames long); press R so ExVideo Training Clips lists the folder.")
    lines += ["", "**Change first:** " + CHANGE_FIRST[name]]
    return "\n".join(lines)


def note(node_id: int, order: int, text: str) -> dict:
    """A Markdown Note as the frontend saves one: no sockets, its text as the one widget value."""
    return {"id": node_id, "type": NOTE_TYPE, "pos": [40, 60], "size": list(NOTE_SIZE), "flags": {}, "order": order,
            "mode": 0, "inputs": [], "outputs": [], "title": "Read me first", "properties": {},
            "widgets_values": [text], "color": "#432", "bgcolor": "#653"}


def sockets(info: dict) -> list[tuple[str, str]]:
    return [(name, spec[0]) for name, spec in _ordered_inputs(info) if not is_widget(spec)]


def build(template: str, graph, object_info: dict, comfyui_version: str) -> dict:
    depth = {}
    for node_id, _, _, inputs in graph:  # graphs are listed in dependency order
        depth[node_id] = 1 + max((depth[src] for src, _ in inputs.values()), default=-1)
    rows = {}
    links, nodes = [], []
    outgoing = {}
    for node_id, node_type, _, inputs in graph:
        for name, (src, slot) in inputs.items():
            link_id = len(links) + 1
            links.append([link_id, src, slot, node_id, name])
            outgoing.setdefault((src, slot), []).append(link_id)
    for order, (node_id, node_type, overrides, inputs) in enumerate(graph):
        info = object_info[node_type]
        column = depth[node_id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        node_inputs = []
        for name, kind in sockets(info):
            link = next((l[0] for l in links if l[3] == node_id and l[4] == name), None)
            node_inputs.append({"name": name, "type": kind, "link": link})
        outputs = [
            {"name": out_name, "type": kind, "links": outgoing.get((node_id, slot)) or None, "slot_index": slot}
            for slot, (kind, out_name) in enumerate(zip(info["output"], info["output_name"]))
        ]
        values = widget_values(info, overrides)
        properties = {**node_source(info, comfyui_version), "Node name for S&R": node_type}
        if models := model_entries(values):
            properties["models"] = models
        nodes.append({
            "id": node_id, "type": node_type, "pos": [NODE_LEFT + 380 * column, 60 + 420 * row], "size": [340, 300],
            "flags": {}, "order": order, "mode": BYPASS_MODE if node_id in BYPASSED.get(template, ()) else 0,
            "inputs": node_inputs, "outputs": outputs,
            "properties": properties, "widgets_values": values,
        })
    ui_links = []
    for link_id, src, slot, dst, name in links:
        dst_node = next(n for n in nodes if n["id"] == dst)
        dst_slot = next(i for i, s in enumerate(dst_node["inputs"]) if s["name"] == name)
        # A link carries its output's type, as the frontend saves it: an input may take several (IMAGE,VIDEO).
        src_node = next(n for n in nodes if n["id"] == src)
        ui_links.append([link_id, src, slot, dst, dst_slot, src_node["outputs"][slot]["type"]])
    nodes.append(note(max(n["id"] for n in nodes) + 1, len(nodes), note_text(template, graph)))
    return {
        "last_node_id": max(n["id"] for n in nodes), "last_link_id": len(ui_links),
        "nodes": nodes, "links": ui_links, "groups": [], "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
    }


def graph_box(image) -> tuple[int, int, int, int]:
    """The screenshot's box around the graph: what differs from the canvas background, outside the UI chrome."""
    import numpy as np

    scale = image.width / VIEWPORT["width"]  # the screenshots are taken at the device scale factor
    left, top, right, bottom = (round(v * scale) for v in CANVAS_CSS_BOX)
    canvas = np.asarray(image.crop((left, top, right, bottom)), dtype=np.int32)
    packed = (canvas[..., 0] << 16) | (canvas[..., 1] << 8) | canvas[..., 2]
    commonest = np.bincount(packed.ravel()).argmax()  # the canvas colour
    background = np.array([commonest >> 16, (commonest >> 8) & 255, commonest & 255])
    ys, xs = np.nonzero(np.abs(canvas - background).max(axis=-1) > 24)
    if not len(xs):
        return 0, 0, image.width, image.height
    margin = round(THUMBNAIL_MARGIN_CSS * scale)
    return (max(0, left + xs.min() - margin), max(0, top + ys.min() - margin),
            min(image.width, left + xs.max() + 1 + margin), min(image.height, top + ys.max() + 1 + margin))


def thumbnail(screenshot: pathlib.Path) -> bytes:
    """The JPEG thumbnail of a screenshot: the graph without the UI around it, padded to 16:9 with the
    canvas colour, THUMBNAIL_WIDTH wide, no metadata; the same bytes for the same PNG."""
    from PIL import Image

    with Image.open(screenshot) as shot:
        shot = shot.convert("RGB")
        x0, y0, x1, y1 = graph_box(shot)
        graph = shot.crop((x0, y0, x1, y1))
    width = max(graph.width, math.ceil(graph.height * 16 / 9))
    height = math.ceil(width * 9 / 16)
    canvas = Image.new("RGB", (width, height), graph.getpixel((0, 0)))
    canvas.paste(graph, ((width - graph.width) // 2, (height - graph.height) // 2))
    small = canvas.resize((THUMBNAIL_WIDTH, round(THUMBNAIL_WIDTH * 9 / 16)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return out.getvalue()


def write_thumbnails(names) -> None:
    for name in names:
        path = OUT_DIR / f"{name}.jpg"
        path.write_bytes(thumbnail(SCREENSHOT_DIR / f"{name}.png"))
        print(f"wrote {path.relative_to(REPO_ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--thumbnails", action="store_true",
                      help=f"only write the thumbnails, from {SCREENSHOT_DIR.relative_to(REPO_ROOT)}/<name>.png")
    only.add_argument("--templates", action="store_true", help="only write the templates, not the thumbnails")
    args = parser.parse_args()
    if not args.thumbnails:
        with tempfile.TemporaryDirectory() as scratch, start_comfy_server(pathlib.Path(scratch)) as server:
            object_info = server.client.object_info()
            comfyui_version = server.client.system_stats()["system"]["comfyui_version"]
        for name, graph in GRAPHS.items():
            path = OUT_DIR / f"{name}.json"
            path.write_text(json.dumps(build(name, graph, object_info, comfyui_version), indent=1) + "\n")
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    if not args.templates:
        write_thumbnails(GRAPHS)


if __name__ == "__main__":
    main()
