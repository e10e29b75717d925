"""The product stands apart from its tests, and every process sees the right `nodes`.

ComfyUI has a top-level `nodes.py`; the pack has a `nodes/` package. A process
that imported ours as `nodes` would break ComfyUI's own imports, and a shipped
tool that imported the test tree would fail where pytest is not installed.
"""

import ast
import concurrent.futures
import importlib
import pathlib
import subprocess
import sys

import nodes as host_nodes

from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.comfy_server import comfyui_path
from exvideo_harness.pack import load_pack_nodes

SHIPPED = ["__init__.py", "exvideo_core", "nodes", "scripts", "benchmarks"]
TEST_ONLY = {"tests", "fixtures", "pytest", "_pytest", "hypothesis"}


def _imported_top_levels(path: pathlib.Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def test_no_shipped_module_imports_the_test_tree():
    files = [p for entry in SHIPPED for p in ([REPO_ROOT / entry] if entry.endswith(".py")
                                                else sorted((REPO_ROOT / entry).rglob("*.py")))]
    assert len(files) > 40, "the scan must see the whole pack"
    offenders = [f"{path.relative_to(REPO_ROOT)}:{line} imports {name}"
                 for path in files for line, name in _imported_top_levels(path) if name in TEST_ONLY]
    assert not offenders, offenders


def test_the_pack_imports_its_own_modules_relatively():
    """ComfyUI imports the pack as one package named after its folder: an absolute `exvideo_core` there works
    only with the pack's folder on sys.path, which makes its tests, scripts and benchmarks top-level names too
    (tests/server/test_server.py checks a real server). The training CLI's `python -m exvideo_core.train` is
    the core's own entry; inside the core every import is relative."""
    files = [REPO_ROOT / "__init__.py", *sorted((REPO_ROOT / "nodes").rglob("*.py")),
             *sorted((REPO_ROOT / "exvideo_core").rglob("*.py"))]
    own = {"exvideo_core", "tests", "scripts", "benchmarks", "exvideo_harness"}
    absolute = [f"{path.relative_to(REPO_ROOT)}:{line} imports {name}"
                for path in files for line, name in _imported_top_levels(path) if name in own]
    assert absolute == []


def test_the_packs_nodes_share_the_core_the_tests_import():
    """The harness loads the nodes as ComfyUI does, with their `..exvideo_core` being this process's
    `exvideo_core`: a second copy would make `pytest.raises(InputError)` miss the nodes' InputError."""
    import exvideo_core.errors

    nodes_video = importlib.import_module(f"{load_pack_nodes().__name__}.nodes_video")
    assert nodes_video.ExVideoError is exvideo_core.errors.ExVideoError
    assert sys.modules[nodes_video.__name__.rsplit(".", 2)[0] + ".exvideo_core"] is sys.modules["exvideo_core"]


def test_nodes_is_comfyuis_module_and_the_packs_nodes_load_under_their_own_name():
    assert pathlib.Path(host_nodes.__file__).resolve() == comfyui_path() / "nodes.py"
    pack_nodes = load_pack_nodes()
    assert pathlib.Path(pack_nodes.__file__).resolve() == REPO_ROOT / "nodes" / "__init__.py"
    assert pack_nodes.__name__ != "nodes"
    assert sys.modules["nodes"] is host_nodes


CPU = "import comfy.cli_args; comfy.cli_args.args.cpu = True; "


def _run(code: str, cwd: pathlib.Path, *flags: str) -> list[str]:
    done = subprocess.run([sys.executable, *flags, "-c", CPU + code], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_import_paths_do_not_depend_on_the_working_directory(tmp_path):
    """What scripts/test.sh, the demo and the benchmarks run (`python -P`) resolves the same modules anywhere."""
    probe = "import nodes, exvideo_core, exvideo_harness; print(nodes.__file__, exvideo_core.__file__, exvideo_harness.__file__)"
    # Both at once: each spends its ~13 s importing ComfyUI on one core.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        printed = list(pool.map(lambda cwd: _run(probe, cwd, "-P"), (REPO_ROOT, tmp_path)))
    for lines in printed:
        host, core, harness = map(pathlib.Path, lines)
        assert host == comfyui_path() / "nodes.py"
        assert core == REPO_ROOT / "exvideo_core" / "__init__.py"
        assert harness == REPO_ROOT / "scripts" / "exvideo_harness" / "__init__.py"


def test_the_training_cli_never_imports_a_nodes_module():
    """`python -m exvideo_core.train` runs from the repo root, where `nodes` would be the pack's package."""
    probe = ("import sys, exvideo_core.train.cli, exvideo_core.train.trainer, exvideo_core.refine, "
             "exvideo_core.continuation, exvideo_core.temporal_decode; print('nodes' in sys.modules)")
    assert _run(probe, REPO_ROOT) == ["False"]


def test_the_core_packages_import_no_comfy_until_a_name_is_used():
    """`python -m exvideo_core.train` chooses the device before comfy.model_management is imported, which
    fixes it (exvideo_core.lazy); every name the two packages export must still resolve."""
    probe = ("import sys, exvideo_core, exvideo_core.train; print('comfy.model_management' in sys.modules); "
             "[getattr(package, name) for package in (exvideo_core, exvideo_core.train) for name in package.__all__]; "
             "print('comfy.model_management' in sys.modules)")
    assert _run(probe, REPO_ROOT, "-P") == ["False", "True"]
