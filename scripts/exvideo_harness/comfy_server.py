"""A real ComfyUI server with this pack installed, run as a subprocess, and an HTTP client for it.

The server is the ComfyUI that `scripts/setup.sh` prepared (or `$COMFYUI_PATH`),
with the pack loaded from its `custom_nodes/comfyui-exvideo` link, exactly as
a user runs it. Everything it writes (outputs, inputs, temp files, user data,
its database) lives under one scratch directory, and an extra model-paths file
makes `<root>/models/<folder>` the first place it looks for models, so a test
places a checkpoint with `server.install_model(...)` and nothing touches the
ComfyUI tree.

    def test_something(comfy_server):
        outputs = comfy_server.client.run(prompt, timeout=60)
        files = comfy_server.output_files(outputs)
"""

import ctypes
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

from .cache import REPO_ROOT

PACK_DIR_NAME = "comfyui-exvideo"
MODEL_FOLDERS = ("checkpoints", "exvideo", "loras")
HARNESS_PACK = pathlib.Path(__file__).resolve().parent / "server_pack"
STARTUP_TIMEOUT_S = 180
POLL_INTERVAL_S = 0.1
# What a server started with `custom_nodes=` logs for each file of the checkout it opens.
CHECKOUT_READ = "exvideo-harness: read from the checkout:"

# Runs ComfyUI's main.py (argv[1]) as `python main.py` would, minus the checkout: the venv's .pth puts the
# repository and its scripts/ on every process's sys.path, so a pack copied elsewhere could still import
# exvideo_core, tests or the harness from here. Those entries are dropped before anything is imported,
# and an audit hook logs every file the server opens inside the checkout, outside ComfyUI, the venv and
# the server's own folders ($EXVIDEO_CHECKOUT: those paths, the checkout's first).
_MAIN_WITHOUT_CHECKOUT = f"""
import os, runpy, sys
checkout, *allowed = os.environ.pop("EXVIDEO_CHECKOUT").split(os.pathsep)
def inside(path, folder):
    return path == folder or path.startswith(folder + os.sep)
def in_checkout(path):
    path = os.path.realpath(path)
    return inside(path, checkout) and not any(inside(path, folder) for folder in allowed)
sys.path[:] = [entry for entry in sys.path if entry and not in_checkout(entry)]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
reported = set()
def audit(event, args):
    if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    try:  # an audit hook that raises would fail the open
        path = os.path.abspath(os.fsdecode(args[0]))
        if inside(path, checkout) and path not in reported and in_checkout(path):
            reported.add(path)
            sys.stderr.write({CHECKOUT_READ!r} + " " + path + "\\n")
    except Exception:
        pass
sys.addaudithook(audit)
sys.argv = [os.path.abspath(sys.argv[1]), *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def comfyui_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get("COMFYUI_PATH", REPO_ROOT / ".comfyui")).resolve()


class ComfyError(RuntimeError):
    """ComfyUI refused a request, or did not run a prompt to the end."""


class PromptRejected(ComfyError):
    """`POST /prompt` refused the prompt: validation failed before anything ran."""

    def __init__(self, error: dict, node_errors: dict):
        self.error = error
        self.node_errors = node_errors
        lines = [f"prompt rejected: {error.get('message', error)}"]
        for node_id, problem in node_errors.items():
            for detail in problem.get("errors", []):
                lines.append(f"  node {node_id} ({problem.get('class_type')}): "
                             f"{detail.get('message')}: {detail.get('details')}")
        super().__init__("\n".join(lines))


class ExecutionFailed(ComfyError):
    """A node raised while the prompt ran."""

    def __init__(self, report: dict):
        self.node_id = report.get("node_id")
        self.node_type = report.get("node_type")
        self.exception_type = report.get("exception_type")
        self.exception_message = report.get("exception_message")
        self.traceback = "".join(report.get("traceback", []))
        super().__init__(
            f"node {self.node_id} ({self.node_type}) raised {self.exception_type}: {self.exception_message}\n"
            f"{self.traceback}"
        )


class ExecutionInterrupted(ComfyError):
    """The prompt was interrupted (`POST /interrupt`) before it finished."""


class ComfyClient:
    """ComfyUI's HTTP API, polled rather than followed over the websocket."""

    def __init__(self, url: str):
        self.url = url
        self.client_id = uuid.uuid4().hex

    def request(self, method: str, path: str, payload=None, timeout: float = 30):
        """(HTTP status, decoded JSON body or None); error statuses are returned, not raised."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        if body and body.lstrip()[:1] in (b"{", b"["):
            return status, json.loads(body)
        return status, None

    def _get(self, path: str):
        status, body = self.request("GET", path)
        if status != 200:
            raise ComfyError(f"GET {path} answered {status}: {body}")
        return body

    def _post(self, path: str, payload: dict) -> None:
        status, body = self.request("POST", path, payload)
        if status != 200:
            raise ComfyError(f"POST {path} answered {status}: {body}")

    def system_stats(self) -> dict:
        return self._get("/system_stats")

    def object_info(self, node_class: str | None = None) -> dict:
        """Every registered node's description, or only `node_class`'s ({} if unknown)."""
        return self._get("/object_info" + (f"/{node_class}" if node_class else ""))

    def models(self, folder: str) -> list[str]:
        """The files ComfyUI lists for a model folder, as a loader node's dropdown shows them."""
        return self._get(f"/models/{folder}")

    def queue_state(self) -> dict:
        """`{"queue_running": [...], "queue_pending": [...]}`."""
        return self._get("/queue")

    def history(self, prompt_id: str) -> dict | None:
        """The finished prompt's history entry, None while it is queued or running."""
        return self._get(f"/history/{prompt_id}").get(prompt_id)

    def queue_prompt(self, prompt: dict, extra_data: dict | None = None) -> str:
        """Queues an API-format prompt and returns its id; raises PromptRejected if it does not validate.

        `extra_data` is sent as the frontend sends it: {"extra_pnginfo": {"workflow": <UI graph>}} makes
        the saving nodes embed that workflow."""
        payload = {"prompt": prompt, "client_id": self.client_id}
        if extra_data is not None:
            payload["extra_data"] = extra_data
        status, body = self.request("POST", "/prompt", payload)
        if status == 400 and isinstance(body, dict):
            raise PromptRejected(body.get("error", {}), body.get("node_errors", {}))
        if status != 200:
            raise ComfyError(f"POST /prompt answered {status}: {body}")
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float) -> dict:
        """The outputs of a queued prompt once it has run; on timeout the prompt is cancelled."""
        deadline = time.monotonic() + timeout
        while (entry := self.history(prompt_id)) is None:
            if time.monotonic() > deadline:
                self.cancel(prompt_id)
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s (cancelled)")
            time.sleep(POLL_INTERVAL_S)
        messages = dict(entry["status"]["messages"])
        if "execution_error" in messages:
            raise ExecutionFailed(messages["execution_error"])
        if "execution_interrupted" in messages:
            report = messages["execution_interrupted"]
            raise ExecutionInterrupted(f"prompt {prompt_id} interrupted at node {report.get('node_id')} "
                                       f"({report.get('node_type')})")
        if entry["status"]["status_str"] != "success":
            raise ComfyError(f"prompt {prompt_id} ended with status {entry['status']}")
        return entry["outputs"]

    def run(self, prompt: dict, timeout: float = 120, extra_data: dict | None = None) -> dict:
        """Queues the prompt and waits for it: `{node_id: ui output}` of its output nodes."""
        return self.wait(self.queue_prompt(prompt, extra_data), timeout)

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stops the running prompt (only if it is `prompt_id`, when given)."""
        self._post("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def cancel(self, prompt_id: str) -> None:
        """Drops the prompt from the queue, or interrupts it if it is running."""
        self._post("/queue", {"delete": [prompt_id]})
        self.interrupt(prompt_id)

    def free_memory(self, unload_models: bool = True) -> None:
        """Asks the server to unload models and drop its caches (done between prompts)."""
        self._post("/free", {"unload_models": unload_models, "free_memory": True})


class ComfyServer:
    """A running ComfyUI subprocess and the scratch directories it uses."""

    def __init__(self, root: pathlib.Path, process: subprocess.Popen, port: int, log_path: pathlib.Path):
        self.root = root
        self.process = process
        self.port = port
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self.client = ComfyClient(self.url)
        self.output_dir = root / "output"
        self.input_dir = root / "input"
        self.temp_dir = root / "temp"  # ComfyUI appends "temp" to --temp-directory
        self.user_dir = root / "user"
        self.models_dir = root / "models"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def install_model(self, folder: str, source: pathlib.Path, name: str | None = None) -> str:
        """Links `source` into `models/<folder>/` and returns the name a loader node takes."""
        if folder not in MODEL_FOLDERS:
            raise ValueError(f"the server only searches {MODEL_FOLDERS} under {self.models_dir}; "
                             f"add {folder!r} to MODEL_FOLDERS")
        source = pathlib.Path(source).resolve()
        target = self.models_dir / folder / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(source)
        return target.name

    def output_files(self, outputs: dict) -> list[pathlib.Path]:
        """The files that output nodes reported (`{"filename", "subfolder", "type"}` items)."""
        roots = {"output": self.output_dir, "input": self.input_dir, "temp": self.temp_dir}
        return [
            roots[item["type"]] / item.get("subfolder", "") / item["filename"]
            for ui in outputs.values()
            for items in ui.values()
            if isinstance(items, list)
            for item in items
            if isinstance(item, dict) and "filename" in item and item.get("type") in roots
        ]

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.is_running():
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def installed_pack_dir() -> pathlib.Path:
    """ComfyUI's link to this repository; the server loads the pack through it."""
    link = comfyui_path() / "custom_nodes" / PACK_DIR_NAME
    if link.resolve() != REPO_ROOT.resolve():
        problem = f"points at {link.resolve()}" if link.exists() else "does not exist"
        raise RuntimeError(f"{link} should link to this repository ({REPO_ROOT}) but {problem}: run scripts/setup.sh")
    return link


def start_comfy_server(root: pathlib.Path, extra_args=(), timeout: float = STARTUP_TIMEOUT_S,
                       cpu: bool = True, harness_nodes: bool = False,
                       custom_nodes: pathlib.Path | None = None, env: dict[str, str] | None = None) -> ComfyServer:
    """Starts ComfyUI on a free loopback port with scratch directories under `root`; returns once it answers.

    `harness_nodes`: also load `exvideo_harness/server_pack` (a small random SVD MODEL node), from a
    custom-node folder of this server's own, so the shared custom_nodes/ stays what a user has.

    `custom_nodes`: a folder of installed packs (an unpacked Registry package, say) that the server loads
    instead of ComfyUI's own custom_nodes/ (which links this checkout). Its every default folder is under
    `root` (--base-directory), it runs without the checkout on sys.path, and it logs a CHECKOUT_READ line
    for each file of the checkout it opens (ComfyUI's and the venv's aside): a pack that works only beside
    its repository shows.

    `env`: variables set in the server's environment, on top of this process's."""
    if custom_nodes is None:
        installed_pack_dir()
    root.mkdir(parents=True, exist_ok=True)
    # ComfyUI reads --input-directory while importing nodes and refuses a missing --user-directory.
    # models/exvideo is left to the pack, which creates it when it loads (tests/server/test_server.py).
    for folder in ("output", "input", "user", *(f"models/{name}" for name in MODEL_FOLDERS if name != "exvideo")):
        (root / folder).mkdir(parents=True, exist_ok=True)
    model_paths = root / "extra_model_paths.yaml"
    # JSON is YAML, and quotes whatever the scratch path holds.
    paths = {"exvideo_tests": {"base_path": str(root / "models"), "is_default": True,
                               **{name: name for name in MODEL_FOLDERS}}}
    if harness_nodes:
        packs = root / "harness_custom_nodes"
        packs.mkdir(exist_ok=True)
        link = packs / "exvideo_harness_nodes"
        if not link.is_symlink():
            link.symlink_to(HARNESS_PACK, target_is_directory=True)
        paths["exvideo_harness"] = {"custom_nodes": str(packs)}
    env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    main = ["main.py"]
    if custom_nodes is not None:
        (root / "custom_nodes").mkdir(exist_ok=True)  # ComfyUI lists <base directory>/custom_nodes
        # Spelled as ComfyUI spells --base-directory's folder, so that root/custom_nodes is listed once.
        paths["exvideo_packs"] = {"custom_nodes": os.path.normpath(os.path.abspath(custom_nodes))}
        extra_args = ("--base-directory", str(root), *extra_args)
        main = ["-c", _MAIN_WITHOUT_CHECKOUT, "main.py"]
        allowed = (comfyui_path(), pathlib.Path(sys.prefix), root, pathlib.Path(custom_nodes))
        env["EXVIDEO_CHECKOUT"] = os.pathsep.join(os.path.realpath(path) for path in (REPO_ROOT, *allowed))
    model_paths.write_text(json.dumps(paths))
    port = _free_port()
    command = [
        sys.executable, *main,
        "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
        "--output-directory", str(root / "output"),
        "--input-directory", str(root / "input"),
        "--temp-directory", str(root),
        "--user-directory", str(root / "user"),
        "--database-url", f"sqlite:///{root / 'comfyui.db'}",
        "--extra-model-paths-config", str(model_paths),
        # Network-backed partner nodes: irrelevant here, and they slow the start.
        "--disable-api-nodes",
        # The suite is sized for a CPU, and on a GPU machine a session-long
        # server would hold device memory that the in-process tests need.
        *(["--cpu"] if cpu else []),
        *extra_args,
    ]
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=comfyui_path(), stdout=log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    server = ComfyServer(root, process, port, log_path)
    try:
        _wait_until_answering(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_answering(server: ComfyServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not server.is_running():
            raise RuntimeError(f"ComfyUI exited with status {server.process.returncode} while starting; "
                               f"log {server.log_path} ends with:\n{server.log_tail()}")
        try:
            server.client.system_stats()
            return
        except (OSError, ComfyError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"ComfyUI did not answer on {server.url} within {timeout} s; "
                               f"log {server.log_path} ends with:\n{server.log_tail()}")
        time.sleep(0.25)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child: a killed test run must not leave a server holding GBs of RAM."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)
