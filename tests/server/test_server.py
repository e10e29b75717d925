"""The pack loads into a real ComfyUI server, and the test client drives that server."""

import asyncio
import importlib.util
import json
import os
import re
import sys
import time
import uuid

import pytest
from PIL import Image

from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.comfy_server import (
    MODEL_FOLDERS,
    PACK_DIR_NAME,
    ExecutionFailed,
    ExecutionInterrupted,
    PromptRejected,
    comfyui_path,
    installed_pack_dir,
    start_comfy_server,
)

pytestmark = pytest.mark.server

PACK_MODULE = f"custom_nodes.{PACK_DIR_NAME}"  # object_info's python_module for the pack's nodes


def pack_node_ids() -> set[str]:
    """The node ids the pack registers, found the way ComfyUI's `load_custom_node` finds them."""
    spec = importlib.util.spec_from_file_location(
        "exvideo_pack_under_test", REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    # ComfyUI takes NODE_CLASS_MAPPINGS when a pack exports both APIs.
    if getattr(module, "NODE_CLASS_MAPPINGS", None) is not None:
        return set(module.NODE_CLASS_MAPPINGS)

    async def v3_node_ids():
        extension = await module.comfy_entrypoint()
        return {node.GET_SCHEMA().node_id for node in await extension.get_node_list()}

    return asyncio.run(v3_node_ids())


def pack_import_problems(log: str) -> list[str]:
    """Log lines that show the pack failing to load: ComfyUI's own messages, or traceback frames in our code."""
    link = str(installed_pack_dir())
    failure = re.compile(r"Cannot import|IMPORT FAILED|comfy_entrypoint|^Skip ")
    problems = [line for line in log.splitlines() if link in line and failure.search(line)]
    outside = (str(comfyui_path()), os.path.realpath(sys.prefix))
    for frame in re.findall(r'File "([^"]+)", line \d+', log):
        real = os.path.realpath(frame)
        if os.path.isabs(frame) and real.startswith(str(REPO_ROOT) + os.sep) and not real.startswith(outside):
            problems.append(f"traceback through {frame}")
    return problems


def save_image_prompt(prefix: str, color: int = 0) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 16, "batch_size": 1, "color": color}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def test_pack_imports_cleanly(comfy_server):
    # Only the startup: later tests may make pack nodes raise on purpose.
    startup = comfy_server.log_text().split("\nStarting server", 1)[0]
    assert "Import times for custom nodes:" in startup, comfy_server.log_tail()
    import_times = startup.split("Import times for custom nodes:", 1)[1].split("\n\n", 1)[0]
    ours = [line for line in import_times.splitlines() if line.rstrip().endswith(os.sep + PACK_DIR_NAME)]
    assert len(ours) == 1, import_times
    assert "IMPORT FAILED" not in ours[0]
    assert pack_import_problems(startup) == []


# The pack's top-level folders (and the harness in scripts/): in a clone they sit beside the pack's code.
PACK_FOLDERS = ("exvideo_core", "tests", "scripts", "benchmarks", "exvideo_harness")
# A node whose one input offers a report of what the server process can import (real paths, resolved in its
# working directory), made when /object_info asks: after every pack has loaded, in whatever order.
IMPORT_PROBE = """
import importlib.util, json, os, sys

class ExVideoImportProbe:
    CATEGORY = "probe"
    RETURN_TYPES = ()
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        found = {}
        for name in NAMES:
            spec = importlib.util.find_spec(name)
            places = [] if spec is None else [*(spec.submodule_search_locations or []), spec.origin]
            found[name] = [os.path.realpath(place) for place in places if place]
        path = [os.path.realpath(entry) for entry in sys.path if entry]
        return {"required": {"report": ([json.dumps({"sys.path": path, "found": found})],)}}

NODE_CLASS_MAPPINGS = {"ExVideoImportProbe": ExVideoImportProbe}
"""


def test_loading_the_pack_puts_none_of_its_folders_on_the_import_path(tmp_path):
    """A clone in custom_nodes holds tests/, scripts/ and benchmarks/ beside the pack: once its folder is on
    sys.path they are top-level names of the ComfyUI process, shadowing or shadowed by any other pack's. The
    server runs without the checkout on its import path (the venv's .pth puts it there for the tests)."""
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    (custom_nodes / PACK_DIR_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
    (custom_nodes / "exvideo_import_probe.py").write_text(f"NAMES = {PACK_FOLDERS!r}\n{IMPORT_PROBE}")
    with start_comfy_server(tmp_path / "server", custom_nodes=custom_nodes) as server:
        info = server.client.object_info()
    assert pack_node_ids() <= {node_id for node_id, node in info.items() if node.get("python_module") == PACK_MODULE}
    report = json.loads(info["ExVideoImportProbe"]["input"]["required"]["report"][0][0])

    def inside(path, folder):
        return path == folder or path.startswith(folder + os.sep)

    def in_pack(path):  # ComfyUI (its tests/, say) and the venv lie inside the checkout too
        return inside(path, str(REPO_ROOT)) and not any(
            inside(path, os.path.realpath(other)) for other in (comfyui_path(), sys.prefix))

    assert [entry for entry in report["sys.path"] if in_pack(entry)] == []
    assert {name: [path for path in paths if in_pack(path)] for name, paths in report["found"].items()} \
        == {name: [] for name in PACK_FOLDERS}


def test_loading_the_pack_created_models_exvideo(comfy_server):
    # Before test_installed_models_are_listed links a file there. The harness makes every other model
    # folder; this one only the pack does.
    assert (comfy_server.models_dir / "exvideo").is_dir()


def test_object_info_lists_every_pack_node(comfy_server):
    expected = pack_node_ids()
    info = comfy_server.client.object_info()
    served = {node_id for node_id, node in info.items() if node.get("python_module") == PACK_MODULE}
    # An id that collides with a core node is silently dropped by ComfyUI: it
    # shows up here with the core node's module instead of ours.
    assert served == expected
    # /object_info leaves out (and only logs) a node whose description raises.
    log = comfy_server.log_text()
    assert [node_id for node_id in expected if f"retrieving information for the '{node_id}' node" in log] == []


def test_native_prompt_saves_an_image(comfy_server):
    prefix = f"client_check_{uuid.uuid4().hex[:8]}"
    outputs = comfy_server.client.run(save_image_prompt(prefix, color=0x3366CC), timeout=60)
    (saved,) = comfy_server.output_files(outputs)
    assert saved.parent == comfy_server.output_dir and saved.name.startswith(prefix)
    with Image.open(saved) as image:
        assert image.size == (32, 16)
        assert image.convert("RGB").getpixel((5, 5)) == (0x33, 0x66, 0xCC)


def test_idle_interrupt_and_free_leave_the_server_usable(comfy_server):
    comfy_server.client.interrupt()
    comfy_server.client.free_memory()
    outputs = comfy_server.client.run(save_image_prompt(f"after_interrupt_{uuid.uuid4().hex[:8]}"), timeout=60)
    (saved,) = comfy_server.output_files(outputs)
    assert saved.is_file()


def test_invalid_prompt_raises_with_the_node_error(comfy_server):
    prompt = save_image_prompt("never_written")
    prompt["1"]["inputs"]["width"] = 0
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.client.run(prompt, timeout=60)
    assert set(rejected.value.node_errors) == {"1"}
    assert "width" in str(rejected.value)


def test_failing_node_raises_with_its_exception(comfy_server):
    # SaveImage refuses to write outside the output folder, at run time.
    with pytest.raises(ExecutionFailed) as failed:
        comfy_server.client.run(save_image_prompt("../escape"), timeout=60)
    assert failed.value.node_id == "2" and failed.value.node_type == "SaveImage"
    assert "outside the output folder" in failed.value.exception_message
    assert comfy_server.client.queue_state() == {"queue_running": [], "queue_pending": []}


def test_timeout_cancels_the_running_prompt(comfy_server):
    client = comfy_server.client
    # A chain of wide blurs, slow on a CPU; ComfyUI checks for an interrupt
    # before every node, so the chain stops at the next one.
    prompt = save_image_prompt("never_written")
    prompt["1"]["inputs"].update(width=256, height=256)
    previous = "1"
    for node_id in ("3", "4", "5", "6"):
        prompt[node_id] = {"class_type": "ImageBlur", "inputs": {"image": [previous, 0], "blur_radius": 31, "sigma": 10.0}}
        previous = node_id
    prompt["2"]["inputs"]["images"] = [previous, 0]
    prompt_id = client.queue_prompt(prompt)
    while not any(item[1] == prompt_id for item in client.queue_state()["queue_running"]):
        assert client.history(prompt_id) is None, "finished before it could be interrupted"
        time.sleep(0.02)
    with pytest.raises(TimeoutError):
        client.wait(prompt_id, timeout=0.1)
    with pytest.raises(ExecutionInterrupted):
        client.wait(prompt_id, timeout=60)
    assert client.history(prompt_id)["outputs"] == {}


@pytest.mark.parametrize("folder", MODEL_FOLDERS)
def test_installed_models_are_listed(comfy_server, tmp_path, folder):
    # For `exvideo` this also checks that the pack registers its folder
    # without dropping the paths extra_model_paths.yaml gave it.
    model = tmp_path / f"listed_{uuid.uuid4().hex[:8]}.safetensors"
    model.write_bytes(b"")
    name = comfy_server.install_model(folder, model)
    assert name in comfy_server.client.models(folder)


def test_shipped_templates_are_what_build_workflows_writes(comfy_server):
    """A node whose inputs changed needs its templates rebuilt (scripts/build_workflows.py): a stale one shifts
    widget values in the frontend. Checked here against the server's /object_info, before any browser runs."""
    import json

    import build_workflows

    object_info = comfy_server.client.object_info()
    version = comfy_server.client.system_stats()["system"]["comfyui_version"]
    stale = [name for name, graph in build_workflows.GRAPHS.items()
             if json.loads((build_workflows.OUT_DIR / f"{name}.json").read_text())
             != build_workflows.build(name, graph, object_info, version)]
    assert stale == [], f"run scripts/build_workflows.py: {stale} differ from what the nodes define now"


# ------------------------------------------------------------------ as a user's ComfyUI shows the pack


def test_every_node_is_named_exvideo_and_every_output_has_a_tooltip(comfy_server):
    """As the frontend's node search and sockets show them: no name of ours equals a native node's."""
    info = comfy_server.client.object_info()
    ours = {node_id: node for node_id, node in info.items() if node.get("python_module") == PACK_MODULE}
    others = {node["display_name"] for node in info.values() if node.get("python_module") != PACK_MODULE}
    assert ours
    for node_id, node in ours.items():
        assert "ExVideo" in node["display_name"] and node["display_name"] not in others, node_id
        tooltips = node.get("output_tooltips") or []
        assert len(tooltips) == len(node["output"]) and all(tooltips), (node_id, tooltips)


def test_training_clips_lists_the_input_subfolders(comfy_server):
    (comfy_server.input_dir / "my_training_videos").mkdir()
    (node,) = comfy_server.client.object_info("ExVideoTrainingClips").values()
    inputs = {**node["input"].get("required", {}), **node["input"].get("optional", {})}
    kind, *options = inputs["video_folder"]
    choices = options[0]["options"] if kind == "COMBO" else kind
    assert choices[0] == "(none)" and "my_training_videos" in choices
