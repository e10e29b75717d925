"""One UNet forward: ExVideo-patched ComfyUI SVD vs DiffSynth's SVDUNet, same weights, T, size and threads.

    .venv/bin/python benchmarks/unet_step.py                      # CPU-sized defaults
    .venv/bin/python benchmarks/unet_step.py --frames 128 --latent 64 --dtype float16   # the real recipe on a GPU

Prints time and peak memory of each forward and two ratios:
  patched ComfyUI / DiffSynth(add_positional_conv=N)       (goal <= 0.8)
  overhead of the patch (patched / native ComfyUI) next to DiffSynth's own
  (add_positional_conv=N / plain SVDUNet)                  (goal: no worse)
"""

import argparse
import gc

import torch

from common import PeakMemory, gib, setup_paths, timed

setup_paths()

import comfy.model_management  # noqa: E402

from exvideo_core import apply_exvideo, load_exvideo  # noqa: E402
from exvideo_harness.diffsynth_reference import diffsynth_unet  # noqa: E402
from exvideo_harness.exvideo_files import FULL, random_exvideo_state_dict  # noqa: E402
from exvideo_harness.svd_models import FULL_UNET_CONFIG, build_svd_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16, help="T, frames in the forward (default 16)")
    parser.add_argument("--table", type=int, default=128, help="N, the extension's table length (default 128)")
    parser.add_argument("--latent", type=int, default=16, help="latent height = width (default 16: 128 px)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    device = comfy.model_management.get_torch_device()
    T, hw = args.frames, args.latent

    g = torch.Generator().manual_seed(0)
    sample = torch.randn(T, 8, hw, hw, generator=g)
    image_emb = torch.randn(1, 1024, generator=g)
    extension = random_exvideo_state_dict(args.table, seed=1, **FULL)
    print(f"device {device}, dtype {args.dtype}, T={T}, latent {hw}x{hw}, N={args.table}, "
          f"threads {torch.get_num_threads()}, memory: {PeakMemory.method(device)}")

    results = {}
    base = build_svd_model(FULL_UNET_CONFIG, seed=0, dtype=dtype)
    y = base.model.encode_adm(fps=30, motion_bucket_id=127, augmentation_level=0.02)

    def comfy_forward(model):
        comfy.model_management.load_models_gpu([model])

        @torch.no_grad()
        def run():
            model.model.diffusion_model(
                sample.to(device, dtype), torch.full((T,), 0.5, device=device),
                context=image_emb.to(device, dtype).expand(T, 1, 1024), y=y.to(device, dtype).expand(T, -1),
                num_video_frames=T, image_only_indicator=torch.zeros(1, T, device=device),
                transformer_options=model.model_options["transformer_options"])
        return run

    results["ComfyUI native"] = timed(comfy_forward(base), device, args.repeats)
    patched = apply_exvideo(base, load_exvideo(extension))
    results["ComfyUI + ExVideo"] = timed(comfy_forward(patched), device, args.repeats)
    comfy.model_management.unload_all_models()
    sgm = {"model." + k: v.float() for k, v in base.model.state_dict().items() if k.startswith("diffusion_model.")}
    del base, patched
    gc.collect()

    for name, ext in (("DiffSynth SVDUNet", None), ("DiffSynth SVDUNet + ExVideo", extension)):
        unet = diffsynth_unet(sgm, ext).to(device=device, dtype=dtype)
        add_time_id = torch.tensor([[29, 127, 0.02]], device=device)

        @torch.no_grad()
        def run():
            unet(sample.to(device, dtype), 0.5, image_emb.to(device, dtype), add_time_id)

        results[name] = timed(run, device, args.repeats)
        del unet
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print(f"\n{'forward':32s} {'time':>9s} {'peak memory':>12s}")
    for name, (seconds, peak) in results.items():
        print(f"{name:32s} {seconds:8.2f}s {gib(peak):>12s}")
    ours, theirs = results["ComfyUI + ExVideo"], results["DiffSynth SVDUNet + ExVideo"]
    print(f"\nratio time   ComfyUI+ExVideo / DiffSynth+ExVideo: {ours[0] / theirs[0]:.2f}  (goal <= 0.8)")
    print(f"ratio memory ComfyUI+ExVideo / DiffSynth+ExVideo: {ours[1] / max(theirs[1], 1):.2f}")
    our_overhead = ours[0] / results["ComfyUI native"][0]
    their_overhead = theirs[0] / results["DiffSynth SVDUNet"][0]
    print(f"patch overhead: ours {our_overhead:.2f}x (patched / native), "
          f"DiffSynth's {their_overhead:.2f}x (add_positional_conv / plain)")


if __name__ == "__main__":
    main()
