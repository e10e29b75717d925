"""What the shipped templates carry for the frontend: a thumbnail each, the model files their loaders need, the
pack each node comes from (for ComfyUI-Manager) and a note on what to do before the first run.

The frontend (comfyui-frontend-package 1.32.9) shows
`/api/workflow_templates/<pack>/<name>.jpg` as a custom template's thumbnail,
and offers a loader's missing files for download from its `properties.models`
entries, keeping only entries whose `name` is one of the node's widget values,
whose url starts with https://huggingface.co/ or https://civitai.com/ and whose
name ends in .safetensors or .sft (see scripts/build_workflows.py).
"""

import io
import json
import tomllib

import numpy as np
import pytest
from comfyui_version import __version__ as COMFYUI_VERSION  # the host's, as its /system_stats reports it
from PIL import Image

import build_workflows
from exvideo_harness import workflows
from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.pack import load_pack_nodes

WORKFLOW_DIR = REPO_ROOT / "example_workflows"
TEMPLATES = sorted(p.stem for p in WORKFLOW_DIR.glob("*.json"))
# Loader node -> the model folders of the files it selects.
LOADERS = {
    "ExVideoCheckpointLoader": {"checkpoints", "exvideo"},
    "ImageOnlyCheckpointLoader": {"checkpoints"},
    "ApplyExVideo": {"exvideo"},
}
DOWNLOAD_HOSTS = ("https://huggingface.co/", "https://civitai.com/")  # MissingModelsWarning.vue's allowedSources
MODEL_SUFFIXES = (".safetensors", ".sft")  # ... and its allowedSuffixes


def load(name: str) -> dict:
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text())


def graph_nodes(name: str) -> list[dict]:
    """The template's nodes that run, without its note."""
    return [n for n in load(name)["nodes"] if n["type"] not in workflows.FRONTEND_ONLY]


def test_there_are_templates():
    assert len(TEMPLATES) >= 5


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_has_a_jpg_thumbnail_of_its_graph(name):
    path = WORKFLOW_DIR / f"{name}.jpg"
    assert path.is_file(), f"{path.name} missing: run scripts/build_workflows.py --thumbnails"
    with Image.open(path) as image:
        assert image.format == "JPEG"
        assert image.width == build_workflows.THUMBNAIL_WIDTH and 0 < image.height <= image.width
        shipped = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert path.stat().st_size < 100_000
    # Made from the current screenshot (not a stale or another template's one).
    with Image.open(io.BytesIO(build_workflows.thumbnail(
            build_workflows.SCREENSHOT_DIR / f"{name}.png"))) as fresh:
        assert np.abs(np.asarray(fresh.convert("RGB"), dtype=np.float32) - shipped).mean() < 1.0


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_loader_names_its_model_files_with_a_download_location(name):
    loaders = [n for n in load(name)["nodes"] if n["type"] in LOADERS]
    assert loaders, f"{name} has no model loader"
    for node in loaders:
        entries = node["properties"].get("models")
        assert entries, f"node {node['id']} ({node['type']}) has no properties.models"
        assert {e["directory"] for e in entries} == LOADERS[node["type"]], node["id"]
        for entry in entries:
            assert set(entry) >= {"name", "url", "directory"}
            # The frontend drops entries that no widget of the node selects.
            assert entry["name"] in node["widgets_values"], (node["id"], entry["name"])
            assert entry["url"].startswith(DOWNLOAD_HOSTS), entry["url"]
            assert entry["name"].endswith(MODEL_SUFFIXES) and entry["url"].endswith(MODEL_SUFFIXES)
            assert entry["directory"] and "/" not in entry["directory"]
            # Generated, not hand-edited: the same entry everywhere, from build_workflows.MODEL_FILES.
            assert entry == build_workflows.MODEL_FILES[entry["name"]]


def test_no_other_node_claims_model_files():
    for name in TEMPLATES:
        for node in load(name)["nodes"]:
            if node["type"] not in LOADERS:
                assert "models" not in node.get("properties", {}), (name, node["id"], node["type"])


def test_the_download_locations_are_the_public_releases():
    urls = {e["name"]: e["url"] for e in build_workflows.MODEL_FILES.values()}
    assert urls == {
        "svd_xt.safetensors":
            "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt/resolve/main/svd_xt.safetensors",
        # DiffSynth-Studio's release of the 128-frame extension, saved under the name the loaders select.
        "ExVideo-SVD-128f-v1.safetensors":
            "https://huggingface.co/ECNU-CILab/ExVideo-SVD-128f-v1/resolve/main/model.fp16.safetensors",
    }


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_node_names_its_pack_and_version_for_comfyui_manager(name):
    """ComfyUI-Manager offers to install a missing node's pack by `cnr_id` (the registry id: pyproject's name)
    at `ver`; the frontend writes "comfy-core" and the ComfyUI version for native nodes."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    ours = {node.GET_SCHEMA().node_id for node in load_pack_nodes().NODES}
    for node in graph_nodes(name):
        expected = ((project["name"], project["version"]) if node["type"] in ours
                    else ("comfy-core", COMFYUI_VERSION))
        assert (node["properties"].get("cnr_id"), node["properties"].get("ver")) == expected, (name, node["type"])


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_starts_with_a_note_on_what_to_do_first(name):
    """The models and their folders (the ExVideo release renamed), the licence, the inputs, what to change."""
    notes = [n for n in load(name)["nodes"] if n["type"] in workflows.FRONTEND_ONLY]
    assert [n["type"] for n in notes] == ["MarkdownNote"]
    (note,) = notes
    (text,) = note["widgets_values"]  # the frontend's MarkdownNote has one widget, its text
    assert note["inputs"] == note["outputs"] == [] and "cnr_id" not in note["properties"]
    assert text.startswith("## Before you run")
    for entry in (m for n in graph_nodes(name) for m in n["properties"].get("models", [])):
        assert f"`{entry['name']}` into `models/{entry['directory']}`" in text, entry
        if entry["directory"] == "exvideo":
            assert "as `model.fp16.safetensors`" in text and "rename the file" in text
        if entry["directory"] == "checkpoints":
            assert "gated on Hugging Face" in text and "accept its licence" in text
    for node in graph_nodes(name):
        if node["type"] == "LoadImage":
            assert f"`{node['widgets_values'][0]}` is copied into ComfyUI's `input` folder" in text
        if node["type"] == "ExVideoTrainingClips":
            assert f"Create `input/{node['widgets_values'][0]}` and put the training videos in it" in text
    assert "**Change first:** " in text


def test_the_frontend_queues_no_note():
    """Notes are the frontend's own nodes: not in /object_info, so a prompt made from a template leaves them out
    as the frontend's graphToPrompt does."""
    workflow = {"nodes": [{"id": 1, "type": "EmptyImage", "widgets_values": [8, 8, 1, 0]},
                          {"id": 2, "type": "MarkdownNote", "widgets_values": ["## Read me"]},
                          {"id": 3, "type": "Note", "widgets_values": ["plain"]}],
                "links": []}
    object_info = {"EmptyImage": {"name": "EmptyImage", "input": {"required": {
        name: ["INT", {}] for name in ("width", "height", "batch_size", "color")}}}}
    assert workflows.ui_to_api(workflow, object_info) == {"1": {"class_type": "EmptyImage", "inputs": {
        "width": 8, "height": 8, "batch_size": 1, "color": 0}}}


def test_a_bypassed_node_is_routed_around_as_the_frontend_does():
    """Loader -> Deep Cache (bypassed) -> sampler queues as loader -> sampler; un-bypassed, through the cache."""
    def node(node_id, node_type, inputs=(), outputs=(), mode=0):
        return {"id": node_id, "type": node_type, "mode": mode, "widgets_values": [],
                "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
                "outputs": [{"name": t.lower(), "type": t} for t in outputs]}

    workflow = {"nodes": [node(1, "Loader", outputs=["MODEL", "VAE"]),
                          node(2, "Cache", [("model", "MODEL", 1)], ["MODEL"], mode=workflows.BYPASS_MODE),
                          node(3, "Sampler", [("model", "MODEL", 2), ("vae", "VAE", 3)])],
                "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "MODEL"], [3, 1, 1, 3, 1, "VAE"]]}
    object_info = {"Loader": {"input": {"required": {}}},
                   "Cache": {"input": {"required": {"model": ["MODEL"]}}},
                   "Sampler": {"input": {"required": {"model": ["MODEL"], "vae": ["VAE"]}}}}
    assert workflows.ui_to_api(workflow, object_info)["3"]["inputs"] == {"model": ["1", 0], "vae": ["1", 1]}
    workflow["nodes"][1]["mode"] = 0
    prompt = workflows.ui_to_api(workflow, object_info)
    assert prompt["3"]["inputs"]["model"] == ["2", 0] and prompt["2"]["inputs"] == {"model": ["1", 0]}


def test_image_to_video_shows_the_deep_cache_bypassed():
    (cache,) = [n for n in load("exvideo_image_to_video")["nodes"] if n["type"] == "ExVideoDeepCache"]
    assert cache["mode"] == workflows.BYPASS_MODE
