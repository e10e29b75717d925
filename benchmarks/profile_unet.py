"""Where a UNet step's time and memory go: torch.profiler over one forward of ours and of DiffSynth's.

    .venv/bin/python benchmarks/profile_unet.py                  # CPU: T=16, latent 16x16, fp32, SDPA
    .venv/bin/python benchmarks/profile_unet.py --toy            # small random UNet, ours only

Same setup and flags as benchmarks/unet_step.py (the first --attention row is
profiled; `unet_step.py --profile` runs this after its rounds, in the same process). Each side runs once untimed, then once under the profiler. Self CPU
time of every op is put into one group: the innermost labelled scope around it
decides, else the op's own name:

  ExVideo positional conv      our reflect pad + 3x3x3 conv (DiffSynth's positional_conv)
  ExVideo block, own ops       what ExVideoVideoTransformer.forward runs itself (frame table,
                               rearranges, adding the embedding), not its ComfyUI children
  ComfyUI weight casting       comfy.ops.cast_bias_weight
  attention                    the attention function ComfyUI calls / scaled_dot_product_attention
  reshapes and copies          aten copy_, contiguous, clone, cat, permute, reshape, view, pad, ...
  matmul, convolution, normalisation, elementwise and other   by op name
  Python and framework         wall time no op accounts for (interpreter, dispatch between ops)

"allocated" is the memory the group's ops allocated (profile_memory), a
measure of traffic rather than of the peak.
"""

from __future__ import annotations

import collections
import contextlib
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from unet_step import ATTENTION, build_setup, comfy_step, diffsynth_step, parse_args, patch

import comfy.model_management  # noqa: E402 (unet_step set the device up)
import comfy.ops  # noqa: E402

from exvideo_core.temporal_block import ExVideoVideoTransformer  # noqa: E402

POSITIONAL_CONV = "ExVideo positional conv"
OWN_OPS = "ExVideo block, own ops"
CASTING = "ComfyUI weight casting"
ATTENTION_GROUP = "attention"
RESET = "(children: by op name)"
GROUPS = (POSITIONAL_CONV, OWN_OPS, CASTING, ATTENTION_GROUP, "reshapes and copies", "matmul", "convolution",
          "normalisation", "elementwise and other", "Python and framework")
RESHAPES = {"aten::copy_", "aten::contiguous", "aten::clone", "aten::cat", "aten::permute", "aten::reshape",
            "aten::view", "aten::_reshape_alias", "aten::transpose", "aten::expand", "aten::repeat",
            "aten::_unsafe_view", "aten::as_strided", "aten::to", "aten::_to_copy", "aten::empty_like",
            "aten::unsqueeze", "aten::squeeze", "aten::split", "aten::slice", "aten::select", "aten::index",
            "aten::narrow", "aten::t", "aten::flatten", "aten::unflatten", "aten::pad", "aten::reflection_pad3d",
            "aten::constant_pad_nd", "aten::chunk", "aten::stack", "aten::empty", "aten::empty_strided",
            "aten::resize_", "aten::fill_", "aten::zero_", "aten::zeros", "aten::new_empty", "aten::detach",
            "aten::alias", "aten::lift_fresh", "aten::repeat_interleave", "aten::movedim"}
MATMUL = ("addmm", "aten::mm", "aten::bmm", "baddbmm", "aten::linear", "aten::matmul")
CONVOLUTION = ("conv",)
NORMALISATION = ("norm",)


def _labelled(module: torch.nn.Module, label: str) -> None:
    forward = module.forward

    def labelled_forward(*args, **kwargs):
        with record_function(label):
            return forward(*args, **kwargs)
    module.forward = labelled_forward


def label_comfy_model(diffusion_model: torch.nn.Module) -> None:
    for module in diffusion_model.modules():
        if isinstance(module, ExVideoVideoTransformer):
            _labelled(module, OWN_OPS)
            for name, child in module.named_children():
                # A ModuleList is iterated, never called: its members are.
                for member in (child if isinstance(child, torch.nn.ModuleList) else [child]):
                    _labelled(member, POSITIONAL_CONV if name == "time_pos_conv" else RESET)


def label_diffsynth_model(unet: torch.nn.Module) -> None:
    for module in unet.modules():
        if getattr(module, "positional_conv", None) is not None:
            _labelled(module.positional_conv, POSITIONAL_CONV)


@contextlib.contextmanager
def labelled_casting():
    cast = comfy.ops.cast_bias_weight

    def labelled_cast(*args, **kwargs):
        with record_function(CASTING):
            return cast(*args, **kwargs)
    comfy.ops.cast_bias_weight = labelled_cast
    try:
        yield
    finally:
        comfy.ops.cast_bias_weight = cast


def labelled_attention(name: str):
    func = ATTENTION[name]

    def override(default, *args, **kwargs):
        with record_function(ATTENTION_GROUP):
            return func(default, *args, **kwargs)
    return override


def _by_name(name: str) -> str:
    if "scaled_dot_product" in name:
        return ATTENTION_GROUP
    if name in RESHAPES:
        return "reshapes and copies"
    if any(key in name for key in MATMUL):
        return "matmul"
    if any(key in name for key in CONVOLUTION):
        return "convolution"
    if any(key in name for key in NORMALISATION):
        return "normalisation"
    return "elementwise and other"


def group_of(event) -> str:
    """The innermost labelled scope around `event` (or an SDPA op), else the event's own name."""
    node = event
    while node is not None:
        if node.name in (POSITIONAL_CONV, OWN_OPS, CASTING, ATTENTION_GROUP) or "scaled_dot_product" in node.name:
            return ATTENTION_GROUP if "scaled_dot_product" in node.name else node.name
        if node.name == RESET:
            break
        node = node.cpu_parent
    return _by_name(event.name)


def summarise(prof, wall: float) -> dict[str, list[float]]:
    """group -> [self CPU seconds, allocated bytes]."""
    totals = collections.defaultdict(lambda: [0.0, 0.0])
    labels = {POSITIONAL_CONV, OWN_OPS, CASTING, ATTENTION_GROUP, RESET}
    for event in prof.events():
        if event.name in labels:  # the scopes' own bookkeeping
            continue
        group = group_of(event)
        totals[group][0] += event.self_cpu_time_total / 1e6
        totals[group][1] += max(event.self_cpu_memory_usage, 0)
    totals["Python and framework"][0] = max(wall - sum(t[0] for t in totals.values()), 0.0)
    return totals


def profiled(run) -> tuple[dict, float]:
    run()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
    return summarise(prof, wall), wall


def profile_report(args, setup) -> None:
    """Profiles ours (the first --attention row) and DiffSynth+ExVideo, and prints the groups side by side.

    The labels stay on the model's modules: call it after any timing.
    """
    attn = args.attention[0]
    ATTENTION[f"{attn} (labelled)"] = labelled_attention(attn)
    results = {}
    ours = patch(setup.base, setup.weights, args.frame_chunk[0])
    comfy.model_management.load_models_gpu([ours])
    label_comfy_model(setup.base.model.diffusion_model)
    with labelled_casting():
        results[f"ours [{attn}]"] = profiled(comfy_step(ours, setup.inputs, f"{attn} (labelled)", setup.device))
    if "DiffSynth+ExVideo" in setup.diffsynth:
        unet = setup.diffsynth["DiffSynth+ExVideo"]
        label_diffsynth_model(unet)
        results["DiffSynth+ExVideo"] = profiled(diffsynth_step(unet, setup.inputs, setup.dtype, setup.device))

    print(f"\nprofile of one forward: {setup.device}, {args.dtype}, T={args.frames}, latent {args.latent}x{args.latent}, "
          f"threads {torch.get_num_threads()}, {'toy UNet' if args.toy else 'full-size UNet'}; self CPU seconds "
          f"(share of the profiled wall time), allocated GiB")
    names = list(results)
    print(f"{'group':28}" + "".join(f"{name:>34}" for name in names))
    for group in GROUPS:
        cells = []
        for name in names:
            totals, wall = results[name]
            seconds, allocated = totals.get(group, (0.0, 0.0))
            cells.append(f"{seconds:9.2f} s {100 * seconds / wall:5.1f}% {allocated / 2**30:7.2f} GiB")
        print(f"{group:28}" + "".join(f"{cell:>34}" for cell in cells))
    print(f"{'wall time (profiled)':28}" + "".join(f"{results[name][1]:32.2f} s" for name in names))


def main() -> None:
    args = parse_args(description=__doc__)
    profile_report(args, build_setup(args))


if __name__ == "__main__":
    main()
