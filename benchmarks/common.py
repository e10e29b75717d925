"""Shared measurement helpers: wall time and peak memory of one call, the same way on CPU and CUDA."""

from __future__ import annotations

import gc
import os
import pathlib
import sys
import threading
import time

import torch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def setup_paths() -> None:
    """Makes ComfyUI, the pack and the test fixtures importable, and ComfyUI CPU-only without a GPU."""
    comfy = pathlib.Path(os.environ.get("COMFYUI_PATH", REPO_ROOT / ".comfyui"))
    for path in (comfy, REPO_ROOT, REPO_ROOT / "tests"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory above the level at entry: CUDA allocator statistics, or sampled RSS on a CPU."""

    def __init__(self, device: torch.device, interval_s: float = 0.002):
        self.device, self.interval_s = device, interval_s
        self.peak = 0

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
        else:
            self._start = _rss_bytes()
            self._high = self._start
            self._running = True
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self._high = max(self._high, _rss_bytes())
            time.sleep(self.interval_s)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._start
        else:
            self._running = False
            self._thread.join()
            self.peak = max(self._high, _rss_bytes()) - self._start

    @staticmethod
    def method(device: torch.device) -> str:
        return "torch.cuda.max_memory_allocated" if device.type == "cuda" else "sampled RSS (2 ms)"


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
