"""The example workflows in the real ComfyUI frontend (headless Chromium): load, check, run, cancel.

Each workflow is opened the way a user finds it: the Templates sidebar, the
pack's entry, its card (which shows the template's thumbnail). Then no node may
be missing or marked with errors, no dialog may ask for models that are
installed, the example image the pack put into input/ shows in Load Image, the
graph is fitted to view and photographed, test-sized widget values are typed
into the loaded graph, and Run must take the prompt through to the end, with
the outputs each template promises. No test puts the example image into
input/: the server starts with an empty one and the pack puts it there when it
loads, as for a user who has just installed it. This is the one end-to-end run
of every shipped template but post-tuning (an API-only run of each would
prove a subset); tests/server/shared/test_workflows.py runs that one.

    EXVIDEO_SCREENSHOT_DIR=docs/screenshots   also writes the fitted-graph PNGs
                                              there (scripts/screenshots.sh)
"""

import copy
import os
import pathlib

import pytest

from exvideo_core.video_io import read_video
from exvideo_harness import workflows
from exvideo_harness.workflows import FRAMES, SIZE, SMALL
from exvideo_harness.browser import save_png
from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.comfy_server import PACK_DIR_NAME, ExecutionInterrupted

pytestmark = [pytest.mark.server, pytest.mark.full_size, pytest.mark.browser]

WORKFLOW_DIR = REPO_ROOT / "example_workflows"
WORKFLOWS = sorted(p.stem for p in WORKFLOW_DIR.glob("*.json"))
THUMBNAIL_WIDTH = 512  # scripts/build_workflows.py
# A workflow is queued here only if, with SMALL applied, none of the widgets
# that multiply the work is above test size: at shipped values a CPU run takes hours.
TEST_SIZE_LIMITS = {"steps": 8, "frames": 16, "video_frames": 16, "length": 16}
SAMPLE_IMAGE = "exvideo_example.png"
# Run end to end elsewhere. Post-tuning trains the full-size UNet: after this module's runs, beside the
# browser, its server outgrew 24 GB (killed by the OOM killer in CI), so tests/server/shared/test_workflows.py
# runs it through the API on the shared server, with no browser.
RUN_ELSEWHERE = {"exvideo_post_tuning"}
# Frames of the video each template writes with SMALL applied.
_CONTINUE = SMALL["ExVideoContinue"]
EXPECTED_FRAMES = {"exvideo_256_frames_continuation":
                   FRAMES + 2 * (_CONTINUE["frames"] - _CONTINUE["overlap_frames"]),
                   "exvideo_loop": FRAMES - 1}  # a loop's last frame, its first again, is dropped
# A line of the server's log each template's run must write.
EXPECTED_LOG = {"exvideo_256_frames_context_windows": f"Using context windows 2 for {FRAMES} frames"}
RUN_TIMEOUT_S = 900
SCREENSHOT_DIR = os.environ.get("EXVIDEO_SCREENSHOT_DIR")


def problems(nodes: list[dict]) -> list[str]:
    """Nodes the frontend could not create or marks red."""
    return [f"node {n['id']} {n['type']!r}: " + ("type not registered (missing node)" if not n["registered"]
                                                 else "marked with errors")
            for n in nodes if not n["registered"] or n["has_errors"]]


def misplaced_values(nodes: list[dict], prompt: dict) -> list[str]:
    """Widgets of the page whose value is not the one the workflow saved for that input name."""
    return [f"node {n['id']} {n['type']}: widget {name!r} shows {n['widgets'].get(name)!r}, saved {value!r}"
            for n in nodes if str(n["id"]) in prompt  # a note or a bypassed node is not queued
            for name, value in prompt[str(n["id"])]["inputs"].items()
            if not isinstance(value, list) and n["widgets"].get(name) != value]  # lists are links


def oversized(nodes: list[dict]) -> list[str]:
    """Widgets still above test size, as "type.widget=value"."""
    return sorted({f"{n['type']}.{name}={value}" for n in nodes for name, value in n["widgets"].items()
                   if isinstance(value, (int, float)) and value > TEST_SIZE_LIMITS.get(name, float("inf"))})


def wait_for_load_image_previews(comfy_page) -> None:
    """Every Load Image shows its image: the file it names is in input/ and decodes."""
    comfy_page.page.wait_for_function("""() => window.app.graph.nodes.filter((n) => n.type === "LoadImage")
        .every((n) => n.imgs?.length && n.imgs[0].complete && n.imgs[0].naturalWidth > 0)""", timeout=30_000)


def shrink(comfy_page, nodes: list[dict]) -> None:
    for node_type in sorted({n["type"] for n in nodes} & set(SMALL)):
        comfy_page.set_widgets(node_type, SMALL[node_type])


def test_loading_the_pack_put_the_example_image_into_the_empty_input_folder(comfy_server):
    # First in the module: before any run writes into input/.
    assert sorted(p.name for p in comfy_server.input_dir.iterdir()) == [SAMPLE_IMAGE]
    assert (comfy_server.input_dir / SAMPLE_IMAGE).read_bytes() == (WORKFLOW_DIR / SAMPLE_IMAGE).read_bytes()
    assert f"put the example input {SAMPLE_IMAGE} into" in comfy_server.log_text()
    assert SAMPLE_IMAGE in comfy_server.client.object_info("LoadImage")["LoadImage"]["input"]["required"]["image"][0]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_template_loads_with_every_node_known(comfy_server, comfy_page, models, tmp_path, name):
    comfy_page.open()
    comfy_page.load_template(name)
    nodes = comfy_page.nodes()
    workflow = workflows.load(WORKFLOW_DIR / f"{name}.json")
    assert {n["id"]: n["type"] for n in nodes} == {n["id"]: n["type"] for n in workflow["nodes"]}
    assert problems(nodes) == []
    # e.g. "missing node types", or missing models: the templates name their files
    # (properties.models), and the dialog lists those its model folders lack.
    assert comfy_page.dialogs() == []
    # Every saved value shows in the widget of its name: the frontend assigns
    # widgets_values by position, and adds widgets of its own (a seed's
    # "control after generate"), so a miscounted workflow shifts values.
    assert misplaced_values(nodes, workflows.ui_to_api(workflow, comfy_server.client.object_info())) == []
    assert comfy_page.page_errors == []
    wait_for_load_image_previews(comfy_page)

    comfy_page.fit_view()
    shot = comfy_page.screenshot(tmp_path / f"{name}.png")
    if SCREENSHOT_DIR:
        save_png(shot, pathlib.Path(SCREENSHOT_DIR) / f"{name}.png")


def test_template_cards_show_their_thumbnails(comfy_page):
    """The template browser fetches <name>.jpg beside each template and shows it (not its placeholder)."""
    page = comfy_page.page
    fetched = {}
    page.on("response", lambda r: fetched.__setitem__(r.url.rsplit("/", 1)[-1], r.status)
            if f"/workflow_templates/{PACK_DIR_NAME}/" in r.url and r.url.endswith(".jpg") else None)
    comfy_page.open()
    page.get_by_role("button", name="Templates", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(PACK_DIR_NAME, exact=True).click()
    for name in WORKFLOWS:
        card = dialog.get_by_test_id(f"template-workflow-{name}")
        card.scroll_into_view_if_needed()
        image = card.locator("img").first
        image.wait_for()
        image.evaluate("(img) => img.complete || new Promise((done) => { img.onload = img.onerror = done; })")
        assert card.locator("img[src$='default-template.png']").count() == 0, f"{name}: placeholder shown"
        assert image.evaluate("(img) => img.naturalWidth") == THUMBNAIL_WIDTH, name
    assert fetched == {f"{name}.jpg": 200 for name in WORKFLOWS}


def test_missing_models_are_offered_for_download(comfy_page):
    """The dialog's check can fail: files the loaders name that no model folder has are listed with their
    download, and the frontend accepts the templates' hosts and folders (no "not allowed", no "invalid
    directory"). The template's entries are kept but for the file names, which nothing installs."""
    workflow = copy.deepcopy(workflows.load(WORKFLOW_DIR / "exvideo_image_to_video.json"))
    (loader,) = [n for n in workflow["nodes"] if n["properties"].get("models")]
    renamed = {}
    for entry in loader["properties"]["models"]:
        renamed[entry["name"]] = entry["name"].replace(".safetensors", "-not-installed.safetensors")
        entry["name"] = renamed[entry["name"]]
    loader["widgets_values"] = [renamed.get(v, v) for v in loader["widgets_values"]]
    comfy_page.open()
    comfy_page.load_graph(workflow)
    dialog = comfy_page.page.get_by_role("dialog")
    dialog.get_by_text("exvideo / ExVideo-SVD-128f-v1-not-installed.safetensors").wait_for()
    (text,) = comfy_page.dialogs()
    for entry in loader["properties"]["models"]:
        assert f"{entry['directory']} / {entry['name']}" in text
    for refusal in ("not allowed", "Invalid directory", "Only allowed suffixes"):
        assert refusal not in text
    downloads = dialog.get_by_role("button").filter(has_text="Download").all()  # "Download (<size>)"
    assert len(downloads) == 2 and all(button.is_enabled() for button in downloads)


def test_missing_node_is_reported(comfy_page):
    """The checks above can fail: a node type no pack provides is reported missing."""
    comfy_page.open()
    workflow = workflows.load(WORKFLOW_DIR / f"{WORKFLOWS[0]}.json")
    workflow["nodes"][0]["type"] = "ExVideoNoSuchNode"
    comfy_page.load_graph(workflow)
    assert [p for p in problems(comfy_page.nodes()) if "ExVideoNoSuchNode" in p]
    assert any("ExVideoNoSuchNode" in text for text in comfy_page.dialogs())


def test_cancel_from_the_ui_interrupts_the_run(comfy_server, comfy_page, models):
    client = comfy_server.client
    comfy_page.open()
    comfy_page.load_template("exvideo_image_to_video")
    shrink(comfy_page, comfy_page.nodes())
    comfy_page.set_widgets("ExVideoSampler", {"steps": 50})  # long enough to be caught sampling

    prompt_id = comfy_page.queue()
    comfy_page.wait_for_event(prompt_id, "progress", timeout_s=RUN_TIMEOUT_S)
    comfy_page.cancel_current_run()
    with pytest.raises(ExecutionInterrupted):
        client.wait(prompt_id, timeout=RUN_TIMEOUT_S)
    assert comfy_page.wait_for_event(prompt_id, "execution_interrupted", "execution_success",
                                     timeout_s=60) == "execution_interrupted"
    # Healthy: idle and answering. The runs below use the same server.
    assert client.queue_state() == {"queue_running": [], "queue_pending": []}
    assert client.system_stats()["system"]["comfyui_version"]
    assert comfy_server.is_running()


def loader_types(name: str) -> list[str]:
    return sorted(n["type"] for n in workflows.load(WORKFLOW_DIR / f"{name}.json")["nodes"] if "Loader" in n["type"])


# Templates that load the checkpoint the same way run one after another, so the host's cache serves them.
RUN_ORDER = sorted((name for name in WORKFLOWS if name not in RUN_ELSEWHERE), key=lambda name: (loader_types(name), name))


@pytest.mark.parametrize("name", RUN_ORDER)
def test_template_runs_from_the_run_button(comfy_server, comfy_page, models, tmp_path, name):
    client = comfy_server.client
    comfy_page.open()
    comfy_page.load_template(name)
    shrink(comfy_page, comfy_page.nodes())
    # Every shipped template runs here, so one without test-sized values fails rather than skips.
    assert not (too_big := oversized(comfy_page.nodes())), (
        f"{name} has no test-sized values for {too_big}: add them to SMALL in scripts/exvideo_harness/workflows.py")

    prompt_id = comfy_page.queue()
    outputs = client.wait(prompt_id, timeout=RUN_TIMEOUT_S)
    assert comfy_page.wait_for_event(prompt_id, "execution_success", "execution_error", "execution_interrupted",
                                     timeout_s=60) == "execution_success"
    files = comfy_server.output_files(outputs)
    assert files and all(f.is_file() for f in files), outputs
    (video,) = [f for f in files if f.suffix == ".mp4"]
    frames, fps = read_video(video)
    assert frames.shape == (EXPECTED_FRAMES.get(name, FRAMES), SIZE, SIZE, 3)
    assert fps == pytest.approx(30)
    assert EXPECTED_LOG.get(name, "") in comfy_server.log_text()
    # What ran is what the graph in the page said, test sizes included.
    ran = client.history(prompt_id)["prompt"][2]
    for node in ran.values():
        for key, value in SMALL.get(node["class_type"], {}).items():
            assert node["inputs"][key] == value, (node["class_type"], key)
    assert problems(comfy_page.nodes()) == []
    comfy_page.fit_view()
    comfy_page.screenshot(tmp_path / f"{name}-finished.png")
    # No /free: as for a user who runs one template after another, the host keeps the loaders' outputs cached,
    # and only a template with another loader (or other files in it) loads the checkpoint again.


# Builds a two-node graph in the page as a user would: Empty Image -> ExVideo's Save Video.
BUILD_SAVE_GRAPH = """(prefix) => {
    const graph = window.app.graph;
    graph.clear();
    const image = LiteGraph.createNode("EmptyImage");
    image.pos = [60, 60];
    graph.add(image);
    for (const [name, value] of [["width", 32], ["height", 32], ["batch_size", 3]]) {
        image.widgets.find((w) => w.name === name).value = value;
    }
    const save = LiteGraph.createNode("ExVideoSaveMP4");
    save.pos = [420, 60];
    graph.add(save);
    save.widgets.find((w) => w.name === "filename_prefix").value = prefix;
    image.connect(0, save, 0);
    graph.setDirtyCanvas(true, true);
}"""
# Drops a file onto the canvas: the frontend's own drop handler reads it (app.handleFile).
DROP_FILE = """async ([name, type, base64]) => {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type}));
    document.querySelector("canvas").dispatchEvent(
        new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""


def test_dropping_a_saved_mp4_restores_its_graph(comfy_server, comfy_page):
    """Run from the page, Save Video embeds the workflow the frontend sent; dropping the mp4 onto an empty
    canvas makes the frontend read it back (its ISOBMFF metadata parser) and load the graph."""
    import base64
    import json

    from exvideo_core.video_io import read_metadata

    comfy_page.open()
    comfy_page.page.evaluate(BUILD_SAVE_GRAPH, "frontend/dropped")
    prompt_id = comfy_page.queue()
    (video,) = comfy_server.output_files(comfy_server.client.wait(prompt_id, timeout=120))
    assert video.suffix == ".mp4"
    sent = comfy_server.client.history(prompt_id)["prompt"][3]["extra_pnginfo"]["workflow"]
    assert json.loads(read_metadata(video)["workflow"]) == sent

    comfy_page.page.evaluate("() => window.app.graph.clear()")
    assert comfy_page.nodes() == []
    comfy_page.page.evaluate(DROP_FILE, [video.name, "video/mp4", base64.b64encode(video.read_bytes()).decode()])
    comfy_page.page.wait_for_function("() => window.app.graph.nodes.length === 2", timeout=30_000)
    nodes = {n["type"]: n for n in comfy_page.nodes()}
    assert set(nodes) == {"EmptyImage", "ExVideoSaveMP4"} and problems(list(nodes.values())) == []
    assert nodes["ExVideoSaveMP4"]["widgets"]["filename_prefix"] == "frontend/dropped"
    assert nodes["EmptyImage"]["widgets"]["batch_size"] == 3
    links = comfy_page.page.evaluate("() => { const links = window.app.graph.links;"
                                     " return links instanceof Map ? links.size : Object.keys(links).length; }")
    assert links == 1
    assert comfy_page.page_errors == []
