"""The Registry package: what `comfy node pack` / `comfy node publish` zip, and that package alone in ComfyUI.

comfy-cli (1.23.0) zips the git-tracked files minus what `.comfyignore`
matches, plus `[tool.comfy] includes`. The package is built here by
comfy-cli's own code, as its `pack` command does, then unpacked into a fresh
custom_nodes/ folder as `comfy node install` unpacks a Registry download, and
loaded by a real ComfyUI that runs without this checkout on its import path
(start_comfy_server's `custom_nodes`): a package that lacks a file the pack
needs, or a pack that still reaches into the repository (tests/, the harness
in scripts/), fails here and not on a user's machine. No model is loaded.
"""

import ast
import os
import re
import subprocess
import sys
import zipfile

import pytest

from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.comfy_server import CHECKOUT_READ, PACK_DIR_NAME, start_comfy_server

pytestmark = pytest.mark.server

# What ComfyUI loads and a user reads; a trailing / is a folder that must hold files.
PRODUCT = ["__init__.py", "nodes/", "exvideo_core/", "example_workflows/", "requirements.txt", "pyproject.toml",
           "LICENSE", "README.md"]
# Development only: tests, the harness and its trained small-world weights, benchmarks, docs, CI, tool configs.
DEV_ONLY_FOLDERS = ("tests/", "scripts/", "benchmarks/", "docs/", ".ci/", ".github/")
DEV_ONLY_FILES = {"comfy-test.toml", ".gitignore", ".comfyignore"}

# comfy-cli's `pack` command, writing to argv[1] instead of ./node.zip. comfy-cli makes
# ~/.config/comfy-cli/tmp when imported, so HOME is a scratch folder (argv[2]) while it is imported, and the
# user's again for git, which reads the user's config (safe.directory) when zip_files lists the tracked files.
PACK = """
import os, sys
home = os.environ.get("HOME")
os.environ["HOME"] = sys.argv[2]
from comfy_cli.file_utils import zip_files
from comfy_cli.registry import extract_node_configuration
if home is None:
    del os.environ["HOME"]
else:
    os.environ["HOME"] = home
config = extract_node_configuration()
zip_files(sys.argv[1], includes=config.tool_comfy.includes)
"""


def pinned_node_ids() -> set[str]:
    """tests/nodes/test_node_names.py's NODE_IDS (read, not imported: it loads the checkout's nodes)."""
    source = REPO_ROOT / "tests" / "nodes" / "test_node_names.py"
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and [ast.unparse(target) for target in node.targets] == ["NODE_IDS"]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"no NODE_IDS in {source}")


def tracked_files() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    return {name for name in listed.decode().split("\0") if name}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """(node.zip as comfy-cli builds it from this checkout, the names it holds)."""
    root = tmp_path_factory.mktemp("package")
    (root / "home").mkdir()
    archive = root / "node.zip"
    done = subprocess.run([sys.executable, "-P", "-c", PACK, str(archive), str(root / "home")], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    # Without a git answer comfy-cli zips the whole folder (.venv, .comfyui, caches) minus .comfyignore.
    assert "Not in a git repository" not in done.stdout, done.stdout
    with zipfile.ZipFile(archive) as opened:
        return archive, set(opened.namelist())


@pytest.fixture(scope="module")
def installed_server(package, tmp_path_factory):
    """A ComfyUI whose only custom node is the unpacked package, in custom_nodes/comfyui-exvideo (the
    Registry's node id, pyproject's project name, which comfy-cli unpacks into)."""
    root = tmp_path_factory.mktemp("installed")
    custom_nodes = root / "custom_nodes"
    with zipfile.ZipFile(package[0]) as opened:
        opened.extractall(custom_nodes / PACK_DIR_NAME)
    with start_comfy_server(root / "server", custom_nodes=custom_nodes) as server:
        yield server, custom_nodes / PACK_DIR_NAME


def test_the_package_is_the_product_alone(package):
    _, names = package
    dev_only = sorted(name for name in names if name.startswith(DEV_ONLY_FOLDERS) or name in DEV_ONLY_FILES)
    assert dev_only == [], f"development files in the package: {dev_only}"
    missing = [entry for entry in PRODUCT
               if not (any(name.startswith(entry) for name in names) if entry.endswith("/") else entry in names)]
    assert missing == [], f"missing from the package: {missing}"
    tracked = tracked_files()
    # Every tracked file of the code and templates ships; nothing ships that git does not track.
    product = {name for name in tracked if name.startswith(("nodes/", "exvideo_core/", "example_workflows/"))}
    assert product - names == set()
    assert names - tracked == set()


def test_the_package_alone_registers_every_node_in_a_fresh_comfyui(installed_server):
    server, pack = installed_server
    startup = server.log_text().split("\nStarting server", 1)[0]
    assert "Import times for custom nodes:" in startup, server.log_tail()
    import_times = startup.split("Import times for custom nodes:", 1)[1].split("\n\n", 1)[0]
    loaded = [line for line in import_times.splitlines() if line.strip()]
    assert len(loaded) == 1 and loaded[0].endswith(f": {pack}"), import_times  # the copy, once, nothing else
    assert "IMPORT FAILED" not in loaded[0]
    assert "Unable to parse pyproject.toml" not in startup  # ComfyUI's comfy_config reads the package's
    info = server.client.object_info()
    ours = {node_id for node_id, node in info.items() if node["python_module"] == f"custom_nodes.{PACK_DIR_NAME}"}
    assert ours == pinned_node_ids()


def test_the_installed_pack_reads_nothing_from_the_checkout(installed_server):
    """No import of tests/ or the harness, no file of the repository (nor a traceback through the copy)."""
    server, pack = installed_server
    log = server.log_text()
    assert [line for line in log.splitlines() if CHECKOUT_READ in line] == []
    failures = [line for line in log.splitlines()
                if str(pack) in line and re.search(r"Cannot import|IMPORT FAILED|No module named", line)]
    assert failures == [], server.log_tail()
    frames = [frame for frame in re.findall(r'File "([^"]+)", line \d+', log)
              if os.path.realpath(frame).startswith(str(pack) + os.sep)]
    assert frames == [], server.log_tail()


def test_the_installed_pack_serves_its_workflow_templates(installed_server, package):
    server, _ = installed_server
    status, templates = server.client.request("GET", "/workflow_templates")
    assert status == 200
    shipped = {name[len("example_workflows/"):-len(".json")] for name in package[1]
               if re.fullmatch(r"example_workflows/[^/]+\.json", name)}
    assert len(shipped) >= 5
    assert sorted(templates.get(PACK_DIR_NAME, [])) == sorted(shipped)


PROBE_PACK = '''
import sys
for name in ("exvideo_core", "exvideo_harness"):
    try:
        __import__(name)
        print("probe: imported", name, file=sys.stderr)
    except ModuleNotFoundError:
        print("probe: no module", name, file=sys.stderr)
open(sys.argv[0]).close()  # ComfyUI's main.py: read freely
open(READ_FROM_THE_CHECKOUT).close()
NODE_CLASS_MAPPINGS = {}
'''


def test_the_package_server_hides_the_checkout_and_reports_what_a_pack_reads_from_it(tmp_path):
    """The checks above could fail: a pack that imports from the checkout, or reads its files, shows."""
    custom_nodes = tmp_path / "custom_nodes"
    (custom_nodes / "probe").mkdir(parents=True)
    readme = REPO_ROOT / "README.md"
    (custom_nodes / "probe" / "__init__.py").write_text(f"READ_FROM_THE_CHECKOUT = {str(readme)!r}\n{PROBE_PACK}")
    with start_comfy_server(tmp_path / "server", custom_nodes=custom_nodes) as server:
        log = server.log_text()
    assert "probe: no module exvideo_core" in log and "probe: no module exvideo_harness" in log, log
    assert [line.strip() for line in log.splitlines() if CHECKOUT_READ in line] == [f"{CHECKOUT_READ} {readme}"]
