"""Writes example_workflows/*.json (UI format) from the compact graphs below.

    .venv/bin/python scripts/build_workflows.py

Starts the real ComfyUI with the pack to read /object_info, so sockets,
widget order and defaults come from the node definitions themselves; a
graph only names the widget values that differ from the defaults.
"""

import json
import pathlib
import tempfile

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
from exvideo_harness.comfy_server import start_comfy_server
from exvideo_harness.workflows import EXTRA_VALUE_OPTIONS, _ordered_inputs, has_control_widget, is_widget

OUT_DIR = REPO_ROOT / "example_workflows"
SAMPLE_IMAGE = "exvideo_example.png"
SVD = "svd_xt.safetensors"
EXVIDEO = "ExVideo-SVD-128f-v1.safetensors"
TRAINING_VIDEOS = "exvideo_training_videos"  # a folder in ComfyUI's input folder

# name -> (title, [(id, node type, {widget: value}, {input: (source id, output slot)})])
GRAPHS = {
    "exvideo_image_to_video": [
        (1, "LoadImage", {"image": SAMPLE_IMAGE}, {}),
        (2, "ExVideoCheckpointLoader", {"ckpt_name": SVD, "exvideo_name": EXVIDEO}, {}),
        (3, "ExVideoSampler", {}, {"model": (2, 0), "clip_vision": (2, 1), "vae": (2, 2), "image": (1, 0)}),
        (4, "ExVideoLatentPostProcess", {}, {"samples": (3, 0)}),
        (5, "ExVideoTemporalDecode", {}, {"vae": (2, 2), "samples": (4, 0)}),
        (6, "ExVideoSaveMP4", {"filename_prefix": "ExVideo/image_to_video"}, {"images": (5, 0)}),
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
        (9, "ExVideoSaveMP4", {"filename_prefix": "ExVideo/native_nodes"}, {"images": (8, 0)}),
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


def sockets(info: dict) -> list[tuple[str, str]]:
    return [(name, spec[0]) for name, spec in _ordered_inputs(info) if not is_widget(spec)]


def build(graph, object_info: dict) -> dict:
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
        nodes.append({
            "id": node_id, "type": node_type, "pos": [40 + 380 * column, 60 + 420 * row], "size": [340, 300],
            "flags": {}, "order": order, "mode": 0, "inputs": node_inputs, "outputs": outputs,
            "properties": {"Node name for S&R": node_type}, "widgets_values": widget_values(info, overrides),
        })
    ui_links = []
    for link_id, src, slot, dst, name in links:
        dst_node = next(n for n in nodes if n["id"] == dst)
        dst_slot = next(i for i, s in enumerate(dst_node["inputs"]) if s["name"] == name)
        ui_links.append([link_id, src, slot, dst, dst_slot, dst_node["inputs"][dst_slot]["type"]])
    return {
        "last_node_id": max(n["id"] for n in nodes), "last_link_id": len(ui_links),
        "nodes": nodes, "links": ui_links, "groups": [], "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, start_comfy_server(pathlib.Path(scratch)) as server:
        object_info = server.client.object_info()
    for name, graph in GRAPHS.items():
        path = OUT_DIR / f"{name}.json"
        path.write_text(json.dumps(build(graph, object_info), indent=1) + "\n")
        print(f"wrote {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
