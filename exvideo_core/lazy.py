"""Package attributes imported on first use (PEP 562).

ComfyUI chooses its device when `comfy.model_management` is first imported.
Packages whose modules import comfy export their names lazily, so that a
launcher such as `python -m exvideo_core.train` runs before any of comfy is
imported and can still choose the device (a CPU, one GPU per torchrun rank).
"""

from __future__ import annotations

import importlib
from typing import Callable, Mapping


def lazy_attributes(package: str, modules: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` that imports `name` from the module `modules[name]` (relative to `package`)."""

    def __getattr__(name: str):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(modules[name], package), name)
        vars(importlib.import_module(package))[name] = value
        return value

    return __getattr__
