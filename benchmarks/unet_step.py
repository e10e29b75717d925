"""One UNet step, like for like: ExVideo-patched ComfyUI SVD vs DiffSynth's SVDUNet (and native ComfyUI).

    .venv/bin/python benchmarks/unet_step.py                       # CPU: T=16, latent 16x16, fp32
    .venv/bin/python benchmarks/unet_step.py --frames 128 --latent 64 --dtype float16 \\
        --attention sdpa --frame-chunk auto 0                         # the recipe's step on a GPU
    .venv/bin/python benchmarks/unet_step.py --toy                 # small random UNet: checks the script runs

Every side computes with the same random full-size weights (on a CPU in fp32
DiffSynth's UNets hold ComfyUI's very tensors, so three UNets fit in RAM), the
same T, size, dtype and threads. ComfyUI's attention is chosen per row through
its own hook, `transformer_options["optimized_attention_override"]` (honoured
by `wrap_attn` in comfy/ldm/modules/attention.py), on the native and the
patched MODEL alike:

  sdpa            attention_pytorch: what ComfyUI runs on an NVIDIA GPU and DiffSynth always runs
  sub-quadratic   attention_sub_quad: ComfyUI's default on a CPU

ComfyUI sides call `BaseModel.apply_model` as its samplers do, with the
MODEL's wrappers (so TorchCompileModel applies). A round runs every side once,
interleaved (ours, DiffSynth, native, ...). A side's time and peak are medians
over the rounds; each ratio is the median of the per-round ratios, so load
from other jobs that slows one round slows both sides of its ratio.

Options that try what the host offers (each keeps parity, see tests/core):
  --batched        cond and uncond as one forward of two videos, as ComfyUI batches them;
                   DiffSynth runs one video a forward, so it is compared with two of those
  --channels-last  after the main rounds, ComfyUI's conv weights in channels_last(_3d) and
                   its input channels_last, then rounds against DiffSynth again
  --compile        native TorchCompileModel (inductor) on the patched MODEL, as one more side
  --frame-chunk    ours at these chunk sizes (auto: apply_exvideo's default; 0: unchunked)
  --skips-on-host  ours (first chunk size) with the UNet's skip stack in host memory, as one more side
  --profile        after the rounds, where the time goes (benchmarks/profile_unet.py)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass, field
from typing import Callable

import torch

from common import PeakMemory, gib, setup_paths, timed

setup_paths()

import comfy.model_management  # noqa: E402
from comfy.ldm.modules import attention  # noqa: E402

from exvideo_core import apply_exvideo, load_exvideo  # noqa: E402
from exvideo_core.memory_model import memory_required  # noqa: E402
from exvideo_harness.exvideo_files import FULL, SMALL, random_exvideo_state_dict  # noqa: E402
from exvideo_harness.svd_models import FULL_UNET_CONFIG, SMALL_UNET_CONFIG, build_svd_model  # noqa: E402

FPS, MOTION, AUGMENTATION = 30, 127, 0.02
SIGMA = math.exp(2.0)  # EDM timestep 0.25 * log(sigma) = 0.5 for both sides
GOAL_TIME, GOAL_PEAK = 0.8, 1.0
SIDES = ("ours", "DiffSynth+ExVideo", "DiffSynth", "native")
NOT_RUN = "n/a (side not run)"


def _override(func):
    def override(_default, *args, **kwargs):
        return func(*args, **kwargs)
    return override


# Module-level functions, so a compiled forward sees the same object every call.
ATTENTION = {"sdpa": _override(attention.attention_pytorch),
             "sub-quadratic": _override(attention.attention_sub_quad)}


@dataclass
class Side:
    name: str
    run: Callable[[], object]
    prepare: Callable[[], None] = lambda: None
    warm_up: bool = False  # one untimed call first (torch.compile compiles there)
    predicted: int | None = None  # ours: the activation bytes the patched MODEL reports to ComfyUI
    times: list = field(default_factory=list)
    peaks: list = field(default_factory=list)

    def median(self, values_of: str) -> float:
        return statistics.median(getattr(self, values_of))


@dataclass(frozen=True)
class Inputs:
    x: torch.Tensor        # (t 4 h w) noisy latent
    concat: torch.Tensor   # (t 4 h w) the image latent
    image_emb: torch.Tensor  # (1 d)

    @property
    def frames(self) -> int:
        return self.x.shape[0]


def make_inputs(frames: int, latent: int, context_dim: int) -> Inputs:
    g = torch.Generator().manual_seed(0)
    return Inputs(SIGMA * torch.randn(frames, 4, latent, latent, generator=g),
                  torch.randn(frames, 4, latent, latent, generator=g), torch.randn(1, context_dim, generator=g))


def comfy_step(patcher, inputs: Inputs, attention_name: str, device, videos: int = 1,
               memory_format=torch.contiguous_format) -> Callable[[], torch.Tensor]:
    """One `apply_model` call on `videos` copies of the video: the step a ComfyUI sampler takes."""
    t, count = inputs.frames, inputs.frames * videos
    x = inputs.x.repeat(videos, 1, 1, 1).to(device).contiguous(memory_format=memory_format)
    concat = inputs.concat.repeat(videos, 1, 1, 1).to(device).contiguous(memory_format=memory_format)
    context = inputs.image_emb.to(device)[None].repeat_interleave(count, 0)
    y = patcher.model.encode_adm(fps=FPS, motion_bucket_id=MOTION, augmentation_level=AUGMENTATION)
    y = y.to(device).expand(count, -1)
    sigma = torch.full((count,), SIGMA, device=device)
    indicator = torch.zeros(videos, t, device=device)
    options = {**patcher.model_options["transformer_options"], "wrappers": patcher.wrappers,
               "optimized_attention_override": ATTENTION[attention_name]}

    @torch.no_grad()
    def run():
        return patcher.model.apply_model(x, sigma, c_concat=concat, c_crossattn=context, y=y, num_video_frames=t,
                                         image_only_indicator=indicator, transformer_options=options)
    return run


def diffsynth_step(unet, inputs: Inputs, dtype, device) -> Callable[[], torch.Tensor]:
    """DiffSynth's forward on the same input ComfyUI's apply_model gives its UNet (x scaled by c_in)."""
    c_in = 1 / math.sqrt(SIGMA ** 2 + 1)
    sample = torch.cat([inputs.x * c_in, inputs.concat], dim=1).to(device, dtype)
    emb = inputs.image_emb.to(device, dtype)
    add_time_id = torch.tensor([[FPS - 1, MOTION, AUGMENTATION]], device=device)

    @torch.no_grad()
    def run():
        return unet(sample, 0.25 * math.log(SIGMA), emb, add_time_id)
    return run


def loader(patcher) -> Callable[[], None]:
    return lambda: comfy.model_management.load_models_gpu([patcher])


def chunk_value(frame_chunk: str) -> int | None:
    """apply_exvideo's frame_chunk for one --frame-chunk value ('auto': its own default, None)."""
    return None if frame_chunk == "auto" else int(frame_chunk)


def patch(base, weights, frame_chunk: str, skips_on_host: bool = False):
    return apply_exvideo(base, weights, frame_chunk=chunk_value(frame_chunk), skips_on_host=skips_on_host)


def predicted_bytes(setup: "Setup", frame_chunk: str, skips_on_host: bool = False, videos: int = 1) -> int:
    """What the patched MODEL tells ComfyUI one step of `videos` videos needs (chunking's memory model)."""
    latent = setup.inputs.x.shape[-1]
    shape = [videos * setup.inputs.frames, 8, latent, latent]
    return memory_required(setup.base.model, chunk_value(frame_chunk), skips_on_host)(shape)


def chunk_label(frame_chunk: str) -> str:
    return "" if frame_chunk == "auto" else f" frame_chunk={frame_chunk}"


@dataclass
class Setup:
    """Everything the sides run on: ComfyUI's MODEL, the patched clones, DiffSynth's UNets (None at toy sizes)."""
    base: object
    weights: object
    inputs: Inputs
    device: torch.device
    dtype: torch.dtype
    diffsynth: dict = field(default_factory=dict)


def build_setup(args) -> Setup:
    dtype = getattr(torch, args.dtype)
    device = comfy.model_management.get_torch_device()
    config, size = (SMALL_UNET_CONFIG, SMALL) if args.toy else (FULL_UNET_CONFIG, FULL)
    base = build_svd_model(config, seed=0, dtype=dtype)
    extension = random_exvideo_state_dict(args.table, seed=1, **size)
    setup = Setup(base, load_exvideo(extension), make_inputs(args.frames, args.latent, size["context_dim"]),
                  device, dtype)
    if not args.toy:
        from exvideo_harness.diffsynth_reference import diffsynth_unet

        # Taken before any patched clone loads: the base model's own tensors.
        sgm = {"model." + k: v for k, v in base.model.state_dict().items() if k.startswith("diffusion_model.")}
        # DiffSynth's UNets are built on these very tensors: on a CPU in fp32 the weights are in RAM once.
        for name, ext in (("DiffSynth+ExVideo", extension), ("DiffSynth", None)):
            if name in args.sides:
                setup.diffsynth[name] = diffsynth_unet(sgm, ext).to(device=device, dtype=dtype)
    return setup


def build_sides(args, setup: Setup) -> list[Side]:
    """The sides of one round, interleaved: ours, DiffSynth, native, ..."""
    ours, native, theirs, extra = [], [], [], []
    chunks = args.frame_chunk
    native_clone = setup.base.clone()
    patched = {chunk: patch(setup.base, setup.weights, chunk) for chunk in chunks}
    for attn in args.attention:
        for chunk, clone in patched.items() if "ours" in args.sides else ():
            ours.append(Side(f"ours{chunk_label(chunk)} [{attn}]", comfy_step(clone, setup.inputs, attn, setup.device),
                             loader(clone), predicted=predicted_bytes(setup, chunk)))
        if "native" in args.sides:
            native.append(Side(f"native [{attn}]", comfy_step(native_clone, setup.inputs, attn, setup.device),
                               loader(native_clone)))
    first = args.attention[0]
    default = patched[chunks[0]]
    if args.batched:
        extra.append(Side(f"ours cond+uncond [{first}]",
                          comfy_step(default, setup.inputs, first, setup.device, videos=2), loader(default),
                          predicted=predicted_bytes(setup, chunks[0], videos=2)))
    if args.skips_on_host:
        held = patch(setup.base, setup.weights, chunks[0], skips_on_host=True)
        extra.append(Side(f"ours skips on host [{first}]", comfy_step(held, setup.inputs, first, setup.device),
                          loader(held), predicted=predicted_bytes(setup, chunks[0], skips_on_host=True)))
    if args.compile:
        from comfy_extras.nodes_torch_compile import TorchCompileModel

        compiled = TorchCompileModel.execute(default, "inductor").result[0]
        extra.append(Side(f"ours compiled [{first}]", comfy_step(compiled, setup.inputs, first, setup.device),
                          loader(compiled), warm_up=True))
    for name, unet in setup.diffsynth.items():
        theirs.append(Side(name, diffsynth_step(unet, setup.inputs, setup.dtype, setup.device)))
    # Patched clones next to each other (loading one clone after another of the same patches is free).
    sides = []
    for index in range(max(len(ours), len(theirs), len(native))):
        for group in (ours, theirs, native):
            if index < len(group):
                sides.append(group[index])
    return sides + extra


def run_rounds(sides: list[Side], rounds: int, warmup: int, device) -> None:
    for side in sides:
        if side.warm_up and not warmup:
            side.prepare()
            side.run()
    for index in range(warmup + rounds):
        for side in sides:
            side.prepare()
            seconds, peak = timed(side.run, device, repeats=1)
            if index >= warmup:
                side.times.append(seconds)
                side.peaks.append(peak)
            tag = "warm-up" if index < warmup else f"round {index - warmup + 1}"
            print(f"  {tag:8} {side.name:40} {seconds:8.2f} s  +{gib(peak)}", file=sys.stderr, flush=True)


def ratio(a: Side | None, b: Side | None, values_of: str, b_factor: float = 1.0) -> str:
    """Median of the per-round ratios a / (b_factor * b), with the rounds' own ratios."""
    if a is None or b is None:
        return NOT_RUN
    per_round = [x / max(b_factor * y, 1e-12) for x, y in zip(getattr(a, values_of), getattr(b, values_of))]
    return f"{statistics.median(per_round):.2f} (rounds {' '.join(f'{r:.2f}' for r in per_round)})"


def print_ratios(label: str, a: Side | None, b: Side | None, time_goal: str = "", peak_goal: str = "",
                 b_time_factor: float = 1.0) -> None:
    """The two ratio lines of `label`, "a / b": time (b's times b_time_factor) and peak memory."""
    print(f"ratio time {label}: {ratio(a, b, 'times', b_time_factor)}{time_goal}")
    print(f"ratio peak {label}: {ratio(a, b, 'peaks')}{peak_goal}")


def report(sides: list[Side], args, setup: Setup, layout_sides: list[Side] | None = None) -> None:
    by_name = {side.name: side for side in sides}
    print(f"\n{'side':44} {'time':>9} {'peak memory':>12}   (medians of {args.rounds} interleaved rounds)")
    for side in sides + (layout_sides or []):
        print(f"{side.name:44} {side.median('times'):8.2f}s {gib(int(side.median('peaks'))):>12}")
    print()
    for side in sides:
        if side.predicted is not None:
            measured = side.median("peaks")
            print(f"memory model, {side.name}: predicted {gib(side.predicted)}, measured {gib(int(measured))} "
                  f"(measured / predicted {measured / side.predicted:.2f})")
    theirs, plain = by_name.get("DiffSynth+ExVideo"), by_name.get("DiffSynth")
    goals = f"  (goal <= {GOAL_TIME})", f"  (goal <= {GOAL_PEAK})"
    print()
    for attn in args.attention:
        for chunk in args.frame_chunk:
            ours = by_name.get(f"ours{chunk_label(chunk)} [{attn}]")
            if ours is not None:
                print_ratios(f"ours{chunk_label(chunk)} / DiffSynth+ExVideo [{attn}]", ours, theirs, *goals)
        ours = by_name.get(f"ours{chunk_label(args.frame_chunk[0])} [{attn}]")
        native = by_name.get(f"native [{attn}]")
        print_ratios(f"native / DiffSynth [{attn}]", native, plain)
        print(f"patch overhead [{attn}]: ours / native {ratio(ours, native, 'times')}; "
              f"DiffSynth's own (add_positional_conv / plain) {ratio(theirs, plain, 'times')}  "
              f"(goal: ours <= DiffSynth's own)")
    first = args.attention[0]
    ours = by_name.get(f"ours{chunk_label(args.frame_chunk[0])} [{first}]")
    unchunked = by_name.get(f"ours frame_chunk=0 [{first}]")
    for chunk in args.frame_chunk:
        chunked = by_name.get(f"ours{chunk_label(chunk)} [{first}]")
        if chunk != "0" and unchunked is not None and chunked is not None:
            print_ratios(f"ours{chunk_label(chunk) or ' default chunk'} / unchunked [{first}]", chunked, unchunked)
    batched = by_name.get(f"ours cond+uncond [{first}]")
    if batched is not None:
        print_ratios(f"ours cond+uncond in one forward / DiffSynth's two forwards (peak: its one) [{first}]",
                     batched, theirs, goals[0], b_time_factor=2)
    held = by_name.get(f"ours skips on host [{first}]")
    if held is not None:
        print_ratios(f"ours skips on host / ours [{first}]", held, ours)
        print_ratios(f"ours skips on host / DiffSynth+ExVideo [{first}]", held, theirs, *goals)
    compiled = by_name.get(f"ours compiled [{first}]")
    if compiled is not None:
        print_ratios(f"ours compiled (TorchCompileModel, inductor) / ours [{first}]", compiled, ours)
        print_ratios(f"ours compiled / DiffSynth+ExVideo [{first}]", compiled, theirs, *goals)
    if layout_sides:
        layout_theirs = layout_sides[1] if len(layout_sides) > 1 else None
        print_ratios(f"ours channels_last / DiffSynth+ExVideo [{first}]", layout_sides[0], layout_theirs, *goals)


def print_same_output(a: Side, b: Side) -> None:
    """Whether two sides that must compute the same tensor do, on this device: one more call of each.

    A GPU may pick other kernels between calls, so a difference within fp16's
    rounding of the output's scale still counts as the same.
    """
    out_a, out_b = a.run().float(), b.run().float()
    difference, scale = (out_a - out_b).abs().max().item(), out_b.abs().max().item()
    verdict = "yes, bit for bit" if difference == 0 else "yes, within rounding" if difference <= scale / 1024 else "NO"
    print(f"same output, {a.name} and {b.name}: {verdict} (max |difference| {difference:.3g} of {scale:.3g})")


def to_channels_last(module: torch.nn.Module) -> None:
    """Conv weights of `module` in channels_last (4-D) / channels_last_3d (5-D), in place.

    ComfyUI's own --force-channels-last calls `diffusion_model.to(memory_format=
    torch.channels_last)`, which fails on SVD's 5-D Conv3d weights.
    """
    for param in module.parameters():
        if param.dim() == 4:
            param.data = param.data.contiguous(memory_format=torch.channels_last)
        elif param.dim() == 5:
            param.data = param.data.contiguous(memory_format=torch.channels_last_3d)


def channels_last_rounds(args, setup: Setup) -> list[Side]:
    """Ours with channels_last conv weights and input, interleaved with DiffSynth again."""
    clone = patch(setup.base, setup.weights, args.frame_chunk[0])
    comfy.model_management.load_models_gpu([clone])
    to_channels_last(setup.base.model.diffusion_model)
    for _, conv in clone.object_patches.items():
        if hasattr(conv, "time_pos_conv"):
            to_channels_last(conv.time_pos_conv)
    first = args.attention[0]
    sides = [Side(f"ours channels_last [{first}]",
                  comfy_step(clone, setup.inputs, first, setup.device, memory_format=torch.channels_last),
                  loader(clone))]
    if "DiffSynth+ExVideo" in setup.diffsynth:
        sides.append(Side("DiffSynth+ExVideo (channels_last rounds)",
                          diffsynth_step(setup.diffsynth["DiffSynth+ExVideo"], setup.inputs, setup.dtype,
                                         setup.device)))
    run_rounds(sides, args.rounds, args.warmup, setup.device)
    return sides


def parse_args(argv=None, description: str = __doc__):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=None, help="T, frames in the forward (default 16; toy 4)")
    parser.add_argument("--table", type=int, default=None, help="N, the extension's table length (default 128)")
    parser.add_argument("--latent", type=int, default=16, help="latent height = width (default 16: 128 px)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--attention", nargs="+", default=list(ATTENTION), choices=list(ATTENTION),
                        help="ComfyUI attention rows (default both); the first is used for the options below")
    parser.add_argument("--frame-chunk", nargs="+", default=["auto"],
                        help="ours at these frame_chunk values: auto (apply_exvideo's default), 0 (unchunked), K")
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES),
                        help="which sides run (default all): ours, DiffSynth+ExVideo, DiffSynth (plain), native")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed rounds first (default 0)")
    parser.add_argument("--batched", action="store_true", help="ours: cond and uncond in one forward")
    parser.add_argument("--channels-last", action="store_true", help="ours: channels_last conv layout rounds")
    parser.add_argument("--skips-on-host", action="store_true", help="ours: the skip stack in host memory")
    parser.add_argument("--compile", action="store_true", help="ours under native TorchCompileModel (inductor)")
    parser.add_argument("--profile", action="store_true",
                        help="after the rounds, benchmarks/profile_unet.py's summary of ours and DiffSynth+ExVideo")
    parser.add_argument("--toy", action="store_true",
                        help="small random UNet (no DiffSynth side): checks that the script runs")
    args = parser.parse_args(argv)
    args.frames = args.frames or (4 if args.toy else 16)
    args.table = args.table or (32 if args.toy else 128)
    return args


def main() -> None:
    args = parse_args()
    setup = build_setup(args)
    print(f"device {setup.device}, dtype {args.dtype}, T={args.frames}, latent {args.latent}x{args.latent}, "
          f"N={args.table}, threads {torch.get_num_threads()}, {'toy UNet' if args.toy else 'full-size UNet'}, "
          f"memory: {PeakMemory.method(setup.device)}")
    if args.toy:
        print("toy sizes: DiffSynth's SVDUNet exists only at full size, so its sides do not run")
    sides = build_sides(args, setup)
    run_rounds(sides, args.rounds, args.warmup, setup.device)
    report(sides, args, setup)
    if args.skips_on_host and "ours" in args.sides:
        by_name = {side.name: side for side in sides}
        first = args.attention[0]
        print_same_output(by_name[f"ours skips on host [{first}]"],
                          by_name[f"ours{chunk_label(args.frame_chunk[0])} [{first}]"])
    if args.profile:
        from profile_unet import profile_report

        profile_report(args, setup)
    if args.channels_last:
        layout_sides = channels_last_rounds(args, setup)
        report(sides, args, setup, layout_sides)


if __name__ == "__main__":
    main()
