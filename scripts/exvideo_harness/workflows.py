"""UI-format workflows (what the frontend saves and loads) <-> API-format prompts.

`ui_to_api` does what the frontend's graphToPrompt does when a user presses
Queue: widget values are matched to the node's widget inputs in declaration
order (as /object_info lists them), links become `[node_id, slot]` inputs,
and the extra values the frontend keeps for some widgets (the
control-after-generate mode of a seed, the upload button of a file combo)
are skipped, as are the frontend's own notes, which it never queues. A
bypassed node is left out and its links routed through it, from its input
of the output's type, as the frontend routes them.
"""

import json
import pathlib

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Node types the frontend defines itself (virtual nodes): not in /object_info, left out of the prompt.
FRONTEND_ONLY = {"Note", "MarkdownNote"}
# Widgets followed by one more serialised value in widgets_values.
EXTRA_VALUE_OPTIONS = ("control_after_generate", "image_upload", "video_upload", "audio_upload")
BYPASS_MODE = 4  # LiteGraph's mode of a bypassed node (Ctrl+B); 2 is muted


FRAMES, SIZE, STEPS = 4, 128, 1  # one sampling or training step already runs every node of a graph
# Test-sized settings per node type; everything else runs as shipped.
SMALL = {
    "ExVideoSampler": {"width": SIZE, "height": SIZE, "frames": FRAMES, "steps": STEPS},
    "SVD_img2vid_Conditioning": {"width": SIZE, "height": SIZE, "video_frames": FRAMES},
    "KSampler": {"steps": STEPS},
    "ExVideoRefine": {"width": SIZE, "height": SIZE, "steps": STEPS},
    "ExVideoKeyframes": {"width": SIZE, "height": SIZE, "frames": FRAMES, "steps": STEPS},
    # Each clip adds one frame: every frame costs seconds in the full-size VAE, which decodes the last frame
    # of the video so far (with its context) before each clip and the whole video at the end.
    "ExVideoContinue": {"frames": FRAMES - 1, "overlap_frames": FRAMES - 2, "steps": STEPS},
    "ExVideoTrainingClips": {"frames": FRAMES, "width": SIZE, "height": SIZE},
    "ExVideoTrain": {"steps": STEPS, "mode": "lora", "lora_rank": 4},
    # Windows shorter than the test video, so that they really run: [0, 1], [1, 2], [2, 3].
    "ContextWindowsManual": {"context_length": 2, "context_overlap": 1},
}


def load(path: pathlib.Path) -> dict:
    return json.loads(pathlib.Path(path).read_text())


def _ordered_inputs(info: dict):
    order = info.get("input_order") or {k: list(v) for k, v in info["input"].items()}
    for group in ("required", "optional"):
        for name in order.get(group, []):
            yield name, info["input"][group][name]


def is_widget(spec) -> bool:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def has_control_widget(name: str, spec) -> bool:
    """Whether the frontend gives this widget a "control after generate" widget (one more saved value).

    It does so for an INT named seed or noise_seed even when the node does not ask
    (`control_after_generate ?? ["seed", "noise_seed"].includes(name)` in its INT widget).
    """
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    control = options.get("control_after_generate")
    if control is None:
        return spec[0] == "INT" and name in ("seed", "noise_seed")
    return bool(control)


def widget_names(info: dict) -> list[tuple[str, int]]:
    """(input name, number of serialised values) for each widget of a node, in order."""
    names = []
    for name, spec in _ordered_inputs(info):
        if is_widget(spec):
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            uploads = sum(bool(options.get(o)) for o in EXTRA_VALUE_OPTIONS[1:])
            names.append((name, 1 + has_control_widget(name, spec) + uploads))
    return names


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """The API prompt the frontend would queue for `workflow`; raises on unknown nodes or bad widget counts."""
    links = {link[0]: link for link in workflow["links"]}
    nodes = {node["id"]: node for node in workflow["nodes"]}

    def source(origin: int, slot: int) -> list | None:
        """[node id, slot] that feeds a link from (origin, slot), through bypassed nodes; None if nothing does."""
        while nodes[origin].get("mode", 0) == BYPASS_MODE:
            kind = nodes[origin]["outputs"][slot]["type"]
            fed = [s for s in nodes[origin].get("inputs", []) if s["type"] == kind and s.get("link") is not None]
            if not fed:
                return None
            _, origin, slot, *_ = links[fed[0]["link"]]
        return [str(origin), slot]

    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) != 0 or node["type"] in FRONTEND_ONLY:  # muted, bypassed or a note
            continue
        if node["type"] not in object_info:
            raise KeyError(f"node {node['id']} has unknown type {node['type']!r} (missing node pack?)")
        info = object_info[node["type"]]
        inputs = {}
        values = list(node.get("widgets_values") or [])
        widgets = widget_names(info)
        expected = sum(count for _, count in widgets)
        if len(values) != expected:
            raise ValueError(f"node {node['id']} ({node['type']}) has {len(values)} widget values, "
                             f"expected {expected} for {[n for n, _ in widgets]}")
        for name, count in widgets:
            inputs[name] = values[0]
            values = values[count:]
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                _, origin, origin_slot, *_ = links[socket["link"]]
                if (fed_by := source(origin, origin_slot)) is not None:
                    inputs[socket["name"]] = fed_by
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def set_inputs(prompt: dict, class_type: str, **values) -> dict:
    """Overrides widget values of every node of `class_type` (e.g. smaller sizes for tests)."""
    found = False
    for node in prompt.values():
        if node["class_type"] == class_type:
            node["inputs"].update(values)
            found = True
    if not found:
        raise KeyError(f"no {class_type} node in the prompt")
    return prompt
