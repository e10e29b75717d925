"""Package attributes imported on first use (PEP 562).

ComfyUI chooses its device when `comfy.model_management` is first imported.
Packages whose modules import comfy export their names lazily, so that a
launcher such as `python -m exvideo_core.train` runs before any of comfy is
imported and can still choose the device (a CPU, one GPU per torchrun rank).
Eager, `import exvideo_core.train` would import ComfyUI's model code, and on
a machine without a GPU fail, before the CLI has read `--cpu`.
"""

from __future__ import annotations

import importlib
from typing import Callable, Mapping, Sequence


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]) -> tuple[Callable[[str], object], list[str]]:
    """(`__getattr__`, `__all__`) of `package`, whose public names `exports` lists once, by the module (relative
    to `package`) each is imported from when first used."""
    modules = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(modules[name], package), name)
        vars(importlib.import_module(package))[name] = value
        return value

    return __getattr__, sorted(modules)
