"""The pack declares exactly the third-party packages it imports, and keeps pyproject's Python promise.

A user's ComfyUI installs requirements.txt (ComfyUI-Manager, `comfy node
install`) and the Registry reads pyproject's `dependencies`: a module the pack
imports but neither declares works only where ComfyUI or another pack happens
to bring it. torch and ComfyUI's own modules are the host's and never declared
(requirements.txt's header says why).
"""

import ast
import importlib.metadata
import importlib.util
import pathlib
import re
import sys
import tomllib
import types

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.comfy_server import comfyui_path

# What ComfyUI's own install provides and the pack must not install over it.
HOST_DISTRIBUTIONS = {"torch", "torchvision", "torchaudio"}
# Import names whose distribution is named otherwise, for modules not installed here.
DISTRIBUTION_OF = {"PIL": "Pillow", "yaml": "PyYAML", "cv2": "opencv-python", "skimage": "scikit-image",
                   "sklearn": "scikit-learn"}
# Standard-library modules newer than some Python the pack may promise: (module, first version).
ADDED_TO_STDLIB = {"tomllib": (3, 11), "annotationlib": (3, 14), "compression": (3, 14)}


def pack_files() -> list[pathlib.Path]:
    """The Python files ComfyUI loads from the pack."""
    return [REPO_ROOT / "__init__.py",
            *(path for folder in ("nodes", "exvideo_core") for path in sorted((REPO_ROOT / folder).rglob("*.py"))
              if "__pycache__" not in path.parts)]


def absolute_imports(tree: ast.AST):
    """(node, top-level module name) of every absolute import in `tree`, wherever it sits."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node, node.module.split(".")[0]


def host_modules() -> set[str]:
    """ComfyUI's top-level modules (comfy, comfy_api, folder_paths, latent_preview, ...) and the pack's own."""
    def modules_in(folder: pathlib.Path) -> set[str]:
        # A folder imports as a (namespace) package: ComfyUI's comfy/ and comfy_api/ have no __init__.py.
        return {path.stem if path.suffix == ".py" else path.name for path in folder.iterdir()
                if path.suffix == ".py" or (path.is_dir() and path.name.isidentifier())}

    return modules_in(comfyui_path()) | (modules_in(REPO_ROOT) - {"__init__"})


def third_party_imports() -> dict[str, list[str]]:
    """{top-level module: ["path:line", ...]} of the pack's imports outside the standard library and the host."""
    host = host_modules()
    found: dict[str, list[str]] = {}
    for path in pack_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, name in absolute_imports(tree):
            if name not in sys.stdlib_module_names and name not in host:
                found.setdefault(name, []).append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return found


def distributions_of(module: str) -> set[str]:
    """The canonical names of the distributions that install `module`."""
    installed = importlib.metadata.packages_distributions().get(module)
    return {canonicalize_name(name) for name in installed or [DISTRIBUTION_OF.get(module, module)]}


def requirements_txt() -> list[Requirement]:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in (line.split(" #")[0].strip() for line in lines)
            if line and not line.startswith("#")]


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_the_scan_sees_the_pack_and_the_host():
    """Guards the next test against passing on an empty scan."""
    assert len(pack_files()) > 40
    assert {"comfy", "comfy_api", "folder_paths", "latent_preview", "exvideo_core"} <= host_modules()
    assert {"einops", "numpy", "safetensors"} <= set(third_party_imports())


def test_requirements_declare_exactly_the_third_party_packages_the_pack_imports():
    imported = {}
    for module, sites in third_party_imports().items():
        names = distributions_of(module)
        if not names & HOST_DISTRIBUTIONS:
            imported[module] = (names, sites)
    txt = requirements_txt()
    declared = {canonicalize_name(requirement.name) for requirement in txt}
    undeclared = {module: sites for module, (names, sites) in imported.items() if not names & declared}
    assert undeclared == {}, f"imported but not in requirements.txt: {undeclared}"
    unused = declared - {name for names, _ in imported.values() for name in names}
    assert unused == set(), f"in requirements.txt but never imported by the pack: {unused}"
    assert not declared & HOST_DISTRIBUTIONS, "torch comes from ComfyUI's install"
    # The Registry reads pyproject: the same requirements, markers and all.
    assert sorted(map(str, txt)) == sorted(str(Requirement(line)) for line in pyproject()["project"]["dependencies"])


def test_imports_newer_than_requires_python_fall_back_to_a_backport():
    """pyproject promises Python 3.10: a module added to the standard library later is imported in a try
    whose ModuleNotFoundError handler imports a stand-in under the same name (tomllib -> tomli)."""
    oldest = tuple(map(int, re.fullmatch(r">=\s*(\d+)\.(\d+)", pyproject()["project"]["requires-python"]).groups()))
    assert f"Programming Language :: Python :: {oldest[0]}.{oldest[1]}" in pyproject()["project"]["classifiers"]
    unguarded = []
    for path in pack_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        guarded = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try):
                continue
            for handler in node.handlers:
                caught = {ast.unparse(handler.type)} if handler.type is not None else {"ModuleNotFoundError"}
                caught = {name.strip("() ") for text in caught for name in text.split(",")}
                if not caught & {"ModuleNotFoundError", "ImportError"}:
                    continue
                stand_ins = {alias.asname or alias.name for statement in handler.body
                             if isinstance(statement, ast.Import) for alias in statement.names}
                guarded |= {id(statement) for statement in node.body if isinstance(statement, ast.Import)
                            and {alias.asname or alias.name for alias in statement.names} <= stand_ins}
        unguarded += [f"{path.relative_to(REPO_ROOT)}:{node.lineno} imports {name} (Python "
                      f"{'.'.join(map(str, ADDED_TO_STDLIB[name]))}+)"
                      for node, name in absolute_imports(tree)
                      if ADDED_TO_STDLIB.get(name, (0, 0)) > oldest and id(node) not in guarded]
    assert unguarded == []


def test_the_training_cli_reads_toml_with_tomli_where_there_is_no_tomllib(monkeypatch, tmp_path):
    """Python 3.10 has no tomllib: the CLI module imports, and reads its config file, with tomli
    (a stand-in here that hands this Python's tomllib the text and records it)."""
    read = []
    tomli = types.ModuleType("tomli")
    tomli.loads = lambda text: read.append(text) or tomllib.loads(text)
    tomli.TOMLDecodeError = tomllib.TOMLDecodeError
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` raises ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "tomli", tomli)
    name = "exvideo_core.train.cli_on_python_3_10"
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "exvideo_core" / "train" / "cli.py")
    cli = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, cli)
    spec.loader.exec_module(cli)
    assert cli.tomllib is tomli
    config = tmp_path / "run.toml"
    config.write_text("[model\n")
    with pytest.raises(cli.TrainConfigError, match="is not valid TOML"):
        cli.load_run_config(config)
    assert read == ["[model\n"]
