"""Headless Chromium driving the real ComfyUI frontend, as a user's browser would.

Playwright's Python package drives Debian's `chromium` (both installed by
`scripts/setup.sh --test`); Playwright never downloads a browser of its own.
Every test gets a new browser context, i.e. a fresh profile: no local storage,
no restored workflow tabs.

    def test_something(comfy_server, comfy_page):
        comfy_page.open()
        comfy_page.load_template("exvideo_image_to_video")
        prompt_id = comfy_page.queue()

Environment:
    EXVIDEO_CHROMIUM    the browser binary (default /usr/bin/chromium)
    EXVIDEO_NO_BROWSER  =1 skips the browser tests with a message; without it a
                        missing browser or Playwright is a test failure
"""

import json
import os
import pathlib

from .comfy_server import PACK_DIR_NAME, ComfyServer

CHROMIUM = pathlib.Path(os.environ.get("EXVIDEO_CHROMIUM", "/usr/bin/chromium"))
# The machines this runs on have no route out: without these Chromium keeps
# dialling Google services, and each refused connection costs time.
LAUNCH_ARGS = [
    "--no-sandbox",  # the suite runs as root in CI
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often give /dev/shm only 64 MB
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 720}
# Twice the pixels, so that node titles stay legible when a whole graph is fitted to view.
DEVICE_SCALE_FACTOR = 2
APP_TIMEOUT_MS = 120_000

# Frontend settings, stored by the server per user. They keep the first-run
# tour and the minimap out of the way and let LiteGraph draw text at the zoom
# a fitted graph needs (it drops text below a minimum font size by default).
UI_SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,
    "Comfy.Notification.ShowVersionUpdates": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 1,
    "LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.1,
}
# Kept in the browser's local storage rather than in the settings.
LOCAL_STORAGE = {"vueNodesBannerDismissed": "true"}

# Records the server events the page receives, to see what the user sees.
EVENT_RECORDER = """() => {
    window.__exvideoEvents = [];
    for (const type of ["execution_start", "executing", "progress", "execution_success",
                        "execution_error", "execution_interrupted", "execution_cached"]) {
        window.app.api.addEventListener(type, (event) => window.__exvideoEvents.push({type, detail: event.detail}));
    }
}"""

GRAPH_NODES = """() => window.app.graph.nodes.map((node) => ({
    id: node.id,
    type: node.type,
    title: node.title,
    registered: node.type in LiteGraph.registered_node_types,
    has_errors: !!node.has_errors,
    widgets: Object.fromEntries((node.widgets || []).map((w) => [w.name, w.value])),
}))"""


class ComfyPage:
    """One ComfyUI tab: load workflows through the template browser, queue, cancel, screenshot."""

    def __init__(self, page, server: ComfyServer):
        self.page = page
        self.server = server
        self.page_errors: list[str] = []
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def open(self) -> None:
        """Loads the frontend and waits until the node definitions are registered."""
        self.page.goto(self.server.url)
        self.page.wait_for_function(
            "window.app?.vueAppReady && window.app.graph && window.LiteGraph"
            " && 'ExVideoSampler' in LiteGraph.registered_node_types",
            timeout=APP_TIMEOUT_MS)
        self.page.evaluate(EVENT_RECORDER)

    def command(self, command_id: str) -> None:
        """Runs a frontend command, as its keybinding or menu entry would."""
        self.page.evaluate("(id) => window.app.extensionManager.command.execute(id)", command_id)

    def load_template(self, name: str, pack: str = PACK_DIR_NAME) -> None:
        """Templates sidebar button -> the pack's entry -> the workflow's card, then waits for the graph."""
        self.page.get_by_role("button", name="Templates", exact=True).click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_text(pack, exact=True).click()
        dialog.get_by_test_id(f"template-workflow-{name}").click()
        dialog.wait_for(state="detached")
        self.page.wait_for_function(
            "(name) => window.app.extensionManager.workflow.activeWorkflow?.filename === name"
            " && window.app.graph.nodes.length > 0", arg=name)

    def load_graph(self, workflow: dict) -> None:
        """Loads a workflow as a dropped or opened file is loaded."""
        self.page.evaluate("(workflow) => window.app.loadGraphData(workflow)", workflow)

    def nodes(self) -> list[dict]:
        """Every node of the open graph: id, type, title, registered, has_errors, widgets {name: value}."""
        return self.page.evaluate(GRAPH_NODES)

    def dialogs(self) -> list[str]:
        """The text of every dialog that is open (a missing-node or error report is one)."""
        return [d.inner_text() for d in self.page.get_by_role("dialog").all()]

    def set_widgets(self, node_type: str, values: dict) -> int:
        """Sets widget values on every node of `node_type`, as typing into them would; returns how many nodes."""
        return self.page.evaluate("""([type, values]) => {
            const nodes = window.app.graph.nodes.filter((node) => node.type === type);
            for (const node of nodes) {
                for (const [name, value] of Object.entries(values)) {
                    const widget = node.widgets.find((w) => w.name === name);
                    if (!widget) throw new Error(`${type} has no widget ${name}`);
                    widget.value = value;
                    widget.callback?.(value);
                }
            }
            window.app.graph.setDirtyCanvas(true, true);
            return nodes.length;
        }""", [node_type, values])

    def fit_view(self) -> None:
        self.command("Comfy.Canvas.FitView")
        self.page.wait_for_timeout(500)  # let the canvas redraw at the new zoom

    def screenshot(self, path: pathlib.Path) -> pathlib.Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path

    def queue(self) -> str:
        """Presses Run and returns the id of the prompt the server accepted."""
        with self.page.expect_response(
                lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as answer:
            self.page.get_by_role("button", name="Run", exact=True).click()
        response = answer.value
        body = response.json()
        if response.status != 200:
            raise AssertionError(f"the server refused the queued prompt ({response.status}): {json.dumps(body)}")
        return body["prompt_id"]

    def cancel_current_run(self) -> None:
        self.page.get_by_role("button", name="Cancel current run", exact=True).click()

    def events(self, prompt_id: str | None = None) -> list[dict]:
        """Server events the page received, for `prompt_id` only if given."""
        events = self.page.evaluate("() => window.__exvideoEvents")
        if prompt_id is None:
            return events
        return [e for e in events if (e["detail"] or {}).get("prompt_id") == prompt_id]

    def wait_for_event(self, prompt_id: str, *types: str, timeout_s: float) -> str:
        """Waits until the page received one of `types` for the prompt; returns which."""
        handle = self.page.wait_for_function("""([id, types]) => window.__exvideoEvents.find(
            (e) => types.includes(e.type) && e.detail?.prompt_id === id)?.type""",
            arg=[prompt_id, list(types)], timeout=timeout_s * 1000, polling=250)
        return handle.json_value()


class BrowserUnavailable(RuntimeError):
    """Playwright or Chromium is missing; the message says how to install them."""


INSTALL_HINT = "run scripts/setup.sh --test, or set EXVIDEO_NO_BROWSER=1 to skip the browser tests"


def sync_playwright():
    """Playwright's sync API entry point, or BrowserUnavailable naming what is missing."""
    try:
        from playwright.sync_api import sync_playwright as playwright
    except ImportError as error:
        raise BrowserUnavailable(f"Playwright is not installed: {INSTALL_HINT}") from error
    if not CHROMIUM.is_file():
        raise BrowserUnavailable(f"no Chromium at {CHROMIUM} (set EXVIDEO_CHROMIUM to use another): {INSTALL_HINT}")
    return playwright


def launch(playwright):
    """Headless Chromium with a fresh temporary profile."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)


def new_page(browser, server: ComfyServer) -> tuple[object, ComfyPage]:
    """(context, page) in a fresh browser context: no local storage, no restored tabs. Close the context after."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=DEVICE_SCALE_FACTOR)
    context.add_init_script(
        "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});" for k, v in LOCAL_STORAGE.items()))
    return context, ComfyPage(context.new_page(), server)


def save_png(source: pathlib.Path, dest: pathlib.Path, colors: int = 256) -> pathlib.Path:
    """Writes a palette PNG of a screenshot: the UI has few colours, so it is a fraction of the size."""
    from PIL import Image

    dest.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) \
            .save(dest, optimize=True)
    return dest
