"""Shared measurement helpers: wall time and peak memory of one call, the same way on CPU and CUDA."""

from __future__ import annotations

import ctypes
import gc
import pathlib
import time

import torch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def setup_paths() -> None:
    """Makes ComfyUI CPU-only without a GPU, before anything imports comfy.model_management.

    The import paths themselves come from the venv (scripts/setup.sh writes them once).
    """
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True


def _status_bytes(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class PeakMemory:
    """Peak memory above the level at entry: CUDA allocator statistics, or the process's RSS high-water mark.

    On a CPU the kernel's VmHWM is reset to the current RSS at entry (Linux
    `/proc/self/clear_refs`), after returning freed heap pages to the system,
    which would otherwise hide the measured call's own allocations.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
        else:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            self._start = _status_bytes("VmRSS")
            pathlib.Path("/proc/self/clear_refs").write_text("5")
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._start
        else:
            self.peak = _status_bytes("VmHWM") - self._start

    @staticmethod
    def method(device: torch.device) -> str:
        return ("torch.cuda.max_memory_allocated above the allocation at entry" if device.type == "cuda"
                else "process RSS high-water mark (VmHWM, reset at entry) above RSS at entry")


def timed(fn, device: torch.device, repeats: int = 2):
    """(best wall seconds, peak bytes above entry) over `repeats` calls; the first call also warms up."""
    best, peak = float("inf"), 0
    for _ in range(repeats):
        with PeakMemory(device) as memory:
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
        best, peak = min(best, elapsed), max(peak, memory.peak)
    return best, peak


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"
