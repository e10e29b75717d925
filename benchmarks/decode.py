"""Time and peak memory of the overlapped temporal decode, DiffSynth's `decode_video` and ComfyUI's `VAE.decode`.

Full-size SVD VAE with random weights (scripts/exvideo_harness/svd_vae.py), window 8
and stride 4 for ours and DiffSynth's. Every measurement runs in a fresh
process, one at a time, after a 2-frame warm-up in that process.

    .venv/bin/python benchmarks/decode.py                                      # CPU: 32x32 pixels
    .venv/bin/python benchmarks/decode.py --height 512 --width 512 --frames 16 64 128   # real size, GPU

Peak memory is what the decode adds above the memory held before it (model,
inputs): on CUDA `torch.cuda.max_memory_allocated` (tensors the method leaves
on the CPU are not counted); on CPU the process's resident set high-water mark
(VmHWM, reset through /proc/self/clear_refs just before the decode; Linux
with glibc).
"""

import argparse
import json
import subprocess
import sys
import time

import torch

from common import REPO_ROOT, PeakMemory, setup_paths

METHODS = ("ours", "diffsynth", "native")
WINDOW, OVERLAP = 8, 4
DIFFSYNTH_SCALE = 0.18215  # DiffSynth's latents are ComfyUI's times its decoder's scaling factor


def _decoder(method: str, dtype, channels: int):
    """(decode function of latents (t 4 h w) in ComfyUI's scale, the device it computes on)."""

    import comfy.model_management
    from exvideo_core.temporal_decode import temporal_decode
    from exvideo_harness.svd_vae import build_svd_vae, diffsynth_vae_decoder

    device = comfy.model_management.get_torch_device()
    if method == "diffsynth":
        decoder = diffsynth_vae_decoder(seed=0).to(device=device, dtype=dtype)
        # As DiffSynth's pipeline does: latents on the compute device, so the output accumulates there too.
        return lambda samples: decoder.decode_video((DIFFSYNTH_SCALE * samples).to(device, dtype)), device
    vae = build_svd_vae(seed=0, channels=channels, dtype=dtype)
    if method == "ours":
        return lambda samples: temporal_decode(vae, samples, WINDOW, OVERLAP), device
    return vae.decode, device


def measure(method: str, frames: int, height: int, width: int, dtype_name: str, channels: int = 128) -> dict:
    """One measurement, in this process."""

    dtype = getattr(torch, dtype_name)
    decode, device = _decoder(method, dtype, channels)
    samples = torch.randn(frames, 4, height // 8, width // 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        decode(samples[:2])
        with PeakMemory(device) as memory:
            start = time.perf_counter()
            video = decode(samples)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
    # The output counts towards the peak only where it is measured.
    output_bytes = video.numel() * video.element_size() if video.device.type == device.type else 0
    return {"method": method, "frames": frames, "seconds": seconds, "peak_bytes": memory.peak,
            "output_bytes": output_bytes, "device": str(device)}


def _mib(size: float) -> str:
    return f"{size / 2**20:9.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=32, help="video height in pixels (multiple of 8)")
    parser.add_argument("--width", type=int, default=32, help="video width in pixels (multiple of 8)")
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--channels", type=int, default=128,
                        help="VAE base width (128: SVD's; a narrower one only checks that the script runs, "
                             "DiffSynth's decoder exists at 128 only)")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.channels != 128 and "diffsynth" in args.methods and not args.child:
        parser.error("DiffSynth's decoder exists only at --channels 128: leave diffsynth out of --methods")

    if args.child:
        setup_paths()
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.height, args.width, args.dtype, args.channels)))
        return

    results = {}
    for method in args.methods:
        for frames in args.frames:
            command = [sys.executable, __file__, "--child", method, str(frames), "--height", str(args.height),
                       "--width", str(args.width), "--dtype", args.dtype, "--channels", str(args.channels)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
            if done.returncode != 0:
                sys.exit(f"{method} {frames} frames failed:\n{done.stderr}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[method, frames] = result
            print(f"  {method:9} {frames:4} frames: {result['seconds']:7.2f} s, peak +{_mib(result['peak_bytes'])} MiB",
                  file=sys.stderr, flush=True)

    device = next(iter(results.values()))["device"]
    how = PeakMemory.method(torch.device(device)) + ", a fresh process per measurement"
    width = "full-size" if args.channels == 128 else f"toy ({args.channels}-channel)"
    print(f"\nSVD VAE decode, {width} random weights, {args.width}x{args.height} px, {args.dtype}, {device}; "
          f"ours and DiffSynth: window {WINDOW}, stride {WINDOW - OVERLAP}")
    print(f"peak memory: {how}\n")
    print(f"{'method':10} {'frames':>6} {'time s':>8} {'s/frame':>8} {'peak MiB':>9} {'output MiB':>10} "
          f"{'peak-output':>11}")
    for (method, frames), result in results.items():
        print(f"{method:10} {frames:6} {result['seconds']:8.2f} {result['seconds'] / frames:8.3f} "
              f"{_mib(result['peak_bytes'])} {_mib(result['output_bytes']):>10} "
              f"{_mib(result['peak_bytes'] - result['output_bytes']):>11}")

    print()
    for frames in args.frames:
        if ("ours", frames) in results and ("diffsynth", frames) in results:
            ratio = results["ours", frames]["seconds"] / results["diffsynth", frames]["seconds"]
            print(f"time ours / DiffSynth, {frames} frames: {ratio:.2f}")
    low, high = min(args.frames), max(args.frames)
    for method in args.methods:
        if (method, low) in results and (method, high) in results:
            peak = [results[method, n]["peak_bytes"] for n in (low, high)]
            work = [results[method, n]["peak_bytes"] - results[method, n]["output_bytes"] for n in (low, high)]
            print(f"peak memory {high} / {low} frames, {method}: {peak[1] / max(peak[0], 1):.2f}; "
                  f"without the output: {work[1] / max(work[0], 1):.2f}")


if __name__ == "__main__":
    main()
