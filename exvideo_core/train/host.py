"""Readies the host ComfyUI for a process that runs outside ComfyUI's server: the training CLI.

ComfyUI's own `main.py` does this from its command line before anything
imports `comfy.model_management`, which fixes the device at import: it puts
ComfyUI on `sys.path` and chooses the CPU (`--cpu`) or a GPU. Under torchrun
each process takes the GPU of its LOCAL_RANK, as DistributedDataParallel
expects.
"""

from __future__ import annotations

import os
import pathlib
import sys

import torch

from ..errors import HostNotFoundError

PACK_ROOT = pathlib.Path(__file__).resolve().parents[2]


def comfyui_candidates() -> list[pathlib.Path]:
    """Where ComfyUI may be: $COMFYUI_PATH, the ComfyUI this pack is installed in, scripts/setup.sh's copy."""
    candidates = [PACK_ROOT.parent.parent, PACK_ROOT / ".comfyui"]
    if os.environ.get("COMFYUI_PATH"):
        candidates.insert(0, pathlib.Path(os.environ["COMFYUI_PATH"]))
    return candidates


def prepare_host(cpu: bool = False) -> torch.device:
    """Make `comfy` importable and choose this process's device; returns it.

    Inside a process that already imported comfy.model_management (ComfyUI
    itself, a test) the device it chose stands.
    """
    if "comfy.model_management" in sys.modules:
        return sys.modules["comfy.model_management"].get_torch_device()
    try:
        import comfy.cli_args  # noqa: F401  (already importable: a ComfyUI process or PYTHONPATH)
    except ImportError:
        found = next((path for path in comfyui_candidates() if (path / "comfy" / "model_management.py").is_file()),
                     None)
        if found is None:
            raise HostNotFoundError(
                "ComfyUI was not found (looked in: " + ", ".join(map(str, comfyui_candidates())) + "). Set "
                "COMFYUI_PATH to your ComfyUI folder, or run scripts/setup.sh to install one beside the pack.")
        sys.path.insert(0, str(found))
    import comfy.cli_args

    if cpu or not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
        return torch.device("cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(device)
    return device
