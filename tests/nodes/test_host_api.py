"""The pack runs against a numbered, frozen version of ComfyUI's node API, never the moving `latest`."""

import importlib.util
import pathlib
import re

PACK = pathlib.Path(__file__).resolve().parents[2]
PINNED = "v0_0_2"  # the newest numbered comfy_api in ComfyUI 0.3.75, the pack's minimum


def test_every_pack_module_imports_the_pinned_api():
    imports = {}
    for path in [PACK / "__init__.py", *sorted((PACK / "nodes").rglob("*.py")), *sorted((PACK / "exvideo_core").rglob("*.py"))]:
        for version in re.findall(r"^\s*(?:from|import)\s+comfy_api\.(\w+)", path.read_text(), flags=re.M):
            imports.setdefault(version, []).append(path.relative_to(PACK).as_posix())
    assert set(imports) == {PINNED}, imports


def test_the_pinned_api_exists_in_the_host():
    assert importlib.util.find_spec(f"comfy_api.{PINNED}") is not None
