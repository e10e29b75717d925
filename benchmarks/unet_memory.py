"""UNet activation memory against the frame count T: ours chunked and unchunked, native ComfyUI, DiffSynth.

Full-size SVD UNet (320 base channels) with random weights, one video of T
frames at a 16x16 latent (128x128 px, the smallest ExVideo admits), N = 128,
one forward each, every point in a fresh process, one at a time:

    .venv/bin/python benchmarks/unet_memory.py                       # T = 16 32 64 128, chunk 8, CPU
    .venv/bin/python benchmarks/unet_memory.py --frames 16 128 --sides chunked diffsynth
    .venv/bin/python benchmarks/unet_memory.py --where --frames 32   # also: which layers hold the peak

Peak memory is the activation peak above the loaded weights: in the process,
after the model is built, loaded and warmed up by a 2-frame forward, the
forward's high-water mark above the memory held at entry (on CUDA
`torch.cuda.max_memory_allocated`; on CPU the process's VmHWM, reset through
/proc/self/clear_refs at entry after returning freed heap to the system, see
common.PeakMemory). --where also records, per UNet layer (the children of
ComfyUI's TimestepEmbedSequential blocks, DiffSynth's `blocks`), the
high-water mark above that same entry level while the layer runs.
"""

import argparse
import json
import subprocess
import sys
import time

import torch

from common import REPO_ROOT, PeakMemory, _status_bytes, setup_paths

SIDES = ("chunked", "unchunked", "native", "diffsynth")
LABELS = {"chunked": "ours chunked", "unchunked": "ours unchunked", "native": "ComfyUI native",
          "diffsynth": "DiffSynth SVDUNet + ExVideo"}
TABLE = 128
SEED = 3


class LayerPeaks:
    """High-water mark above `start` while each hooked layer runs (CPU RSS; layers must not nest)."""

    def __init__(self, layers, start: int):
        self.start, self.peaks = start, {}
        self.handles = []
        for name, layer in layers:
            self.handles.append(layer.register_forward_pre_hook(self._reset))
            self.handles.append(layer.register_forward_hook(
                lambda _m, _i, _o, name=name: self._record(name)))

    @staticmethod
    def _reset(*_):
        PeakMemory(torch.device("cpu")).__enter__()  # a pre-hook returning non-None would replace the inputs

    def _record(self, name):
        peak = _status_bytes("VmHWM") - self.start
        self.peaks[name] = max(self.peaks.get(name, 0), peak)

    def top(self, count=6):
        return sorted(self.peaks.items(), key=lambda item: -item[1])[:count]


def _comfy_layers(model):
    from comfy.ldm.modules.diffusionmodules.openaimodel import TimestepEmbedSequential
    unet = model.model.diffusion_model
    return [(f"{name}.{index}", child) for name, block in unet.named_modules()
            if isinstance(block, TimestepEmbedSequential) for index, child in enumerate(block)]


def _side(side: str, chunk: int, dtype, small: bool):
    """(forward of a T-frame video, hookable layers) for one side, its weights built and loaded."""
    import comfy.model_management
    from exvideo_core import apply_exvideo, load_exvideo
    from exvideo_harness.diffsynth_reference import diffsynth_unet, diffsynth_unet_forward
    from exvideo_harness.exvideo_files import FULL, SMALL, random_exvideo_state_dict
    from exvideo_harness.svd_models import FULL_UNET_CONFIG, SMALL_UNET_CONFIG, apply_model_direct, build_svd_model
    from exvideo_harness.unet_cases import AUGMENTATION, FPS, MOTION, case_inputs, comfy_outputs

    base = build_svd_model(SMALL_UNET_CONFIG if small else FULL_UNET_CONFIG, seed=0, dtype=dtype)
    extension = random_exvideo_state_dict(TABLE, seed=1, **(SMALL if small else FULL), dtype=dtype)
    if side == "diffsynth":
        sgm = {"model." + k: v for k, v in base.model.state_dict().items() if k.startswith("diffusion_model.")}
        del base
        unet = diffsynth_unet(sgm, extension).to(dtype)

        def forward(frames):
            (sample,), (image_emb,), timestep = case_inputs(frames, 1, SEED)
            return diffsynth_unet_forward(unet, sample.to(dtype), timestep, image_emb.to(dtype), FPS, MOTION,
                                          AUGMENTATION)
        return forward, list(unet.blocks.named_children())
    model = base if side == "native" else apply_exvideo(base, load_exvideo(extension),
                                                        frame_chunk=chunk if side == "chunked" else 0)
    comfy.model_management.load_models_gpu([model])
    if small:
        return (lambda frames: apply_model_direct(model, frames, seed=SEED, context_dim=SMALL["context_dim"])), \
            _comfy_layers(model)
    return (lambda frames: comfy_outputs(model, frames, 1, SEED)[0]), _comfy_layers(model)


def measure(side: str, frames: int, chunk: int, dtype_name: str, where: bool, small: bool = False) -> dict:
    """One point, in this process."""
    import comfy.model_management

    dtype = getattr(torch, dtype_name)
    device = comfy.model_management.get_torch_device()
    forward, layers = _side(side, chunk, dtype, small)
    with torch.no_grad():
        forward(2)
        with PeakMemory(device) as memory:
            peaks = LayerPeaks(layers, memory._start) if where and device.type == "cpu" else None
            start = time.perf_counter()
            forward(frames)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
    result = {"side": side, "frames": frames, "seconds": seconds, "peak_bytes": memory.peak, "device": str(device)}
    if peaks is not None:
        # The layer hooks reset the high-water mark, so the forward's peak is the highest layer's.
        result["peak_bytes"] = max(memory.peak, *peaks.peaks.values())
        result["layers"] = peaks.top()
    return result


def _mib(size: float) -> str:
    return f"{size / 2**20:9.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--chunk", type=int, default=8, help="frame_chunk of the chunked side (default 8)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    parser.add_argument("--where", action="store_true", help="also print the layers with the highest peaks (CPU)")
    parser.add_argument("--small", action="store_true",
                        help="the tests' 32-channel UNet instead of the full size, ComfyUI sides only (a smoke run)")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        setup_paths()
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.chunk, args.dtype, args.where, args.small)))
        return
    if args.small and "diffsynth" in args.sides:
        sys.exit("DiffSynth's SVDUNet has SVD's full widths only: leave diffsynth out of --sides with --small")

    results = {}
    for frames in args.frames:
        for side in args.sides:
            command = [sys.executable, __file__, "--child", side, str(frames), "--chunk", str(args.chunk),
                       "--dtype", args.dtype] + (["--where"] if args.where else []) + (["--small"] if args.small else [])
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
            if done.returncode != 0:
                sys.exit(f"{side} {frames} frames failed:\n{done.stderr}")
            results[side, frames] = result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {LABELS[side]:28} T={frames:4}: {result['seconds']:7.2f} s, peak +{_mib(result['peak_bytes'])} MiB",
                  file=sys.stderr, flush=True)
            for name, peak in result.get("layers", []):
                print(f"      {name:40} +{_mib(peak)} MiB", file=sys.stderr, flush=True)

    device = next(iter(results.values()))["device"]
    width = "the tests' small (32-channel) UNet" if args.small else "full-size"
    print(f"\nSVD UNet forward, {width} random weights, one video, latent 16x16, N = {TABLE}, {args.dtype}, "
          f"{device}, {torch.get_num_threads()} threads; ours chunked: frame_chunk = {args.chunk}")
    print(f"peak memory: {PeakMemory.method(torch.device(device))}, above the loaded weights, "
          f"a fresh process per point\n")
    print(f"{'side':28} {'T':>4} {'time s':>8} {'peak MiB':>9} {'KiB/frame':>10}")
    for (side, frames), result in sorted(results.items(), key=lambda item: (SIDES.index(item[0][0]), item[0][1])):
        print(f"{LABELS[side]:28} {frames:4} {result['seconds']:8.2f} {_mib(result['peak_bytes'])} "
              f"{result['peak_bytes'] / frames / 1024:10.0f}")

    def ratio(a, b, what="peak_bytes"):
        return results[a][what] / max(results[b][what], 1e-9) if a in results and b in results else float("nan")

    low, high = min(args.frames), max(args.frames)
    print()
    for side in args.sides:
        print(f"peak({high}) / peak({low}), {LABELS[side]:28}: {ratio((side, high), (side, low)):.2f}"
              + ("  (goal <= 3)" if side == "chunked" else ""))
    print(f"peak chunked / unchunked at T={high}: {ratio(('chunked', high), ('unchunked', high)):.2f}  (goal <= 0.5)")
    print(f"peak chunked / DiffSynth at T={high}: {ratio(('chunked', high), ('diffsynth', high)):.2f}  (goal <= 0.5)")
    print(f"time chunked / unchunked at T={high}: {ratio(('chunked', high), ('unchunked', high), 'seconds'):.2f}"
          f"  (goal <= 1.10)")


if __name__ == "__main__":
    main()
