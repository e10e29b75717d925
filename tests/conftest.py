"""Puts the pack and the host ComfyUI on sys.path, the way ComfyUI itself runs it."""

import ctypes
import gc
import os
import pathlib
import sys

import pytest
import torch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
COMFYUI_PATH = pathlib.Path(os.environ.get("COMFYUI_PATH", REPO_ROOT / ".comfyui")).resolve()

if not (COMFYUI_PATH / "comfy").is_dir():
    raise RuntimeError(f"No ComfyUI at {COMFYUI_PATH}: run scripts/setup.sh --test or set COMFYUI_PATH")

for path in (str(COMFYUI_PATH), str(REPO_ROOT), str(REPO_ROOT / "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

import comfy.cli_args  # noqa: E402

# ComfyUI picks its device when comfy.model_management is first imported;
# without a GPU it must be told to use the CPU, as `main.py --cpu` would.
if not torch.cuda.is_available():
    comfy.cli_args.args.cpu = True

from fixtures.comfy_server import comfy_server  # noqa: E402,F401


@pytest.fixture(autouse=True, scope="module")
def _release_models_after_module():
    """Full-size modules load several GB in-process; the next module must start without them.

    ComfyUI keeps every model it loaded in its model-management list until
    unloaded, and glibc keeps freed heap pages unless trimmed.
    """
    yield
    import comfy.model_management

    comfy.model_management.unload_all_models()
    gc.collect()
    comfy.model_management.soft_empty_cache()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
