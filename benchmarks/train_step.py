"""One post-tuning step: our Trainer vs DiffSynth's ExVideo training step, and ours with vs without checkpointing.

Full-size SVD-XT UNet with the same random weights on every side
(scripts/exvideo_harness/svd_models.py, seed 0) and the same random ExVideo extension
(N-row table, fp16 like the released file), one T-frame clip, fp32 weights.

  diffsynth    DiffSynth 1.1.9 `SVDUNet(add_positional_conv=N)`, its example's
               step (examples/ExVideo/ExVideo_svd_train.py): every parameter of
               the 16 `TemporalAttentionBlock`s trained, the rest frozen,
               `use_gradient_checkpointing=True`, x0 loss reweighted by
               sqrt(1 + sigma^2) / sigma, AdamW
  ours         `Trainer`, full mode (the same 528 tensors), gradient checkpointing
  ours-nockpt  the same without gradient checkpointing
  ours-lora    `Trainer`, LoRA mode (rank 16; table and conv in full), checkpointing

With --autocast bf16/fp16 both sides compute in that dtype from fp32 trained
tensors: DiffSynth's UNet is cast to it with fp32 master copies in AdamW (how
its example's Lightning "16-mixed" under DeepSpeed trains), ours sets it as the
clone's compute dtype (ComfyUI's casting ops); fp16 adds loss scaling.

Every configuration runs in a fresh process, one at a time; there it takes a
warm-up step (which also creates AdamW's state), then `--steps` timed steps
(time: the median). Both sides draw sample k's sigma and noise the same way
(the trainer's seeded generators), so their warm-up losses must agree.

    .venv/bin/python benchmarks/train_step.py                   # CPU-sized defaults (T=8, 16x16 latent)
    .venv/bin/python benchmarks/train_step.py --frames 128 --latent 64 --autocast bf16   # the real recipe, GPU

Memory: "resident" is what the process holds between steps once warm (model,
trained tensors, AdamW state); "step" is the peak of a step above that
(gradients, activations, temporaries), which is what the memory goals
compare; "-grads" is the step less the trained tensors' fp32 gradients
(activations and temporaries, what checkpointing acts on); "total" =
resident + step. On CUDA: torch.cuda allocator
statistics; on CPU: RSS and its high-water mark (VmHWM, reset before each
step; Linux with glibc).

Per-rank memory: under torchrun the trainer shards AdamW's state over the
processes (torch's ZeroRedundancyOptimizer, exvideo_core/train/optimizer.py).
`--ranks 1 2` (the default) measures the moments each process holds for this
benchmark's trained set: the trainer's own `optimizer.adamw` in 1 and in 2
real gloo processes, each taking a local AdamW step over the trained tensors'
shapes on the meta device (so no process allocates them; a full 2-process
step of the full-size UNet does not fit a CPU machine's memory). The smaller
runs in tests/train/test_distributed.py measure the same on real tensors.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from common import REPO_ROOT, PeakMemory, _status_bytes, setup_paths

CONFIGS = {
    "diffsynth": "DiffSynth SVDUNet step, checkpointing",
    "ours": "ours, full, checkpointing",
    "ours-nockpt": "ours, full, no checkpointing",
    "ours-lora": "ours, LoRA r16, checkpointing",
}
SEED = 0
MOTION_BUCKET = 127
COMPUTE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class StepMeter:
    """Times each step after the first and measures its memory above what the process holds before it."""

    def __init__(self, device: torch.device, steps: int):
        self.device, self.steps = device, steps
        self.losses, self.seconds, self.resident, self.peaks = [], [], [], []
        self._memory = None

    def step_done(self, step: int, loss: float) -> None:
        """Call after step `step` (1-based) with its loss; step 1 is the warm-up."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        if self._memory is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._memory.__exit__(None, None, None)
            self.peaks.append(self._memory.peak)
            self._memory = None
        self.losses.append(loss)
        if step <= self.steps:
            self._memory = PeakMemory(self.device).__enter__()  # collects garbage and trims the heap first
            self.resident.append(torch.cuda.memory_allocated() if self.device.type == "cuda"
                                 else _status_bytes("VmRSS"))
            self._start = time.perf_counter()

    def result(self) -> dict:
        return {"seconds": statistics.median(self.seconds), "resident": max(self.resident),
                "step_peak": max(self.peaks), "warmup_loss": self.losses[0], "losses": self.losses}


def _clip(frames: int, latent: int):
    from exvideo_core.train.cache import EncodedClip

    g = torch.Generator().manual_seed(SEED)
    latents = torch.randn(frames, 4, latent, latent, generator=g)  # VAE latents, unscaled
    return EncodedClip("benchmark", latents, torch.randn(1, 1024, generator=g), MOTION_BUCKET, 0.0)


def _extension(table: int) -> dict:
    from exvideo_harness.exvideo_files import FULL, random_exvideo_state_dict

    return random_exvideo_state_dict(table, seed=1, dtype=torch.float16, **FULL)


def _train_config(args, **changes):
    from exvideo_core.train import TrainConfig

    # DiffSynth's latent scale, so both sides see the very same x0 and the losses can be compared.
    return TrainConfig(steps=1 + args.steps, latent_scale="diffsynth", autocast=args.autocast, seed=SEED, **changes)


def run_ours(args, meter: StepMeter, **changes) -> int:
    """Our Trainer through its public `train`; returns the number of trained values."""
    from exvideo_core import load_exvideo
    from exvideo_core.train import Trainer
    from exvideo_harness.svd_models import FULL_UNET_CONFIG, build_svd_model

    trainer = Trainer(build_svd_model(FULL_UNET_CONFIG, seed=0), [_clip(args.frames, args.latent)],
                      _train_config(args, **changes), weights=load_exvideo(_extension(args.table)))
    trainer.train(progress=lambda step, total, loss: meter.step_done(step, loss))
    return sum(p.numel() for p in trainer.parameters.values())


def run_diffsynth(args, meter: StepMeter, device: torch.device) -> int:
    """DiffSynth's example step on its SVDUNet: same weights, trained set, sample draws and loss."""
    from diffsynth.models.svd_unet import TemporalAttentionBlock
    from diffsynth.schedulers.continuous_ode import ContinuousODEScheduler

    from exvideo_core.constraints import DIFFSYNTH_ENCODER_SCALE
    from exvideo_core.train.objective import draw_sigma
    from exvideo_core.train.seeding import generator
    from exvideo_harness.diffsynth_reference import diffsynth_unet
    from exvideo_harness.svd_models import FULL_UNET_CONFIG, unet_state_dict

    unet = diffsynth_unet(unet_state_dict(FULL_UNET_CONFIG, seed=0), _extension(args.table)).to(device)
    unet.train()
    unet.requires_grad_(False)
    trained = [p for block in unet.blocks if isinstance(block, TemporalAttentionBlock) for p in block.parameters()]
    for parameter in trained:
        parameter.requires_grad_(True)
    config = _train_config(args)
    dtype = COMPUTE_DTYPES.get(args.autocast)
    # Mixed precision as the example trains (Lightning's "16-mixed" under DeepSpeed: the module in the compute
    # dtype, fp32 master copies of the trained tensors in the optimizer), and as our Trainer's clone computes:
    # every layer in the compute dtype, from fp32 trained tensors.
    masters = trained
    if dtype is not None:
        masters = [parameter.detach().clone().requires_grad_(True) for parameter in trained]
        unet.to(dtype)
    inputs_dtype = dtype or torch.float32
    optimizer = torch.optim.AdamW(masters, lr=config.learning_rate, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type) if args.autocast == "fp16" else None
    scheduler = ContinuousODEScheduler(num_inference_steps=1000)

    clip = _clip(args.frames, args.latent)
    latents = (clip.latents * DIFFSYNTH_ENCODER_SCALE).to(device)
    image_latent = clip.latents[:1].expand_as(clip.latents).to(device)
    image_emb = clip.image_embeds.to(device, inputs_dtype)
    add_time_id = torch.tensor([[config.fps - 1, MOTION_BUCKET, 0.0]], device=device)

    for step in range(1 + args.steps):
        # Sample k as our trainer draws it (one clip, no accumulation, one process: k = step).
        rng = generator(config.seed, "sample", step)
        sigma = draw_sigma(config, scheduler.sigmas, rng)
        noise = torch.randn(clip.latents.shape, generator=rng).to(device)
        timestep = scheduler.timesteps[torch.argmin((scheduler.sigmas - sigma).abs())]
        # The example's calculate_loss, from the noisy latents on.
        noisy = scheduler.add_noise(latents, noise, timestep)
        prediction = unet(torch.cat([noisy, image_latent], dim=1).to(inputs_dtype), timestep, image_emb, add_time_id,
                          use_gradient_checkpointing=True)
        x0 = scheduler.step(prediction.float(), timestep, noisy.float().clone(), to_final=True)
        loss = torch.nn.functional.mse_loss(x0, latents * config.target_scale)
        loss = loss * scheduler.training_weight(timestep).to(device)
        (loss if scaler is None else scaler.scale(loss)).backward()
        if masters is not trained:
            for master, parameter in zip(masters, trained):
                master.grad = None if parameter.grad is None else parameter.grad.float()
                parameter.grad = None
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        if masters is not trained:
            with torch.no_grad():
                for master, parameter in zip(masters, trained):
                    parameter.copy_(master)
        optimizer.zero_grad(set_to_none=True)
        meter.step_done(step + 1, loss.item())
    return sum(p.numel() for p in trained)


def optimizer_shard(args) -> dict:
    """The AdamW moments this process holds for the benchmark's trained set (its share, under several ranks)."""
    from exvideo_core.layout import DIFFSYNTH_TO_COMFY
    from exvideo_core.train import TrainConfig, distributed
    from exvideo_core.train.optimizer import adamw, local_moments, sharded
    from exvideo_harness.exvideo_files import FULL, exvideo_shapes

    # The trainer's full-mode tensors, by the same names and so in the same order (ZeRO's partition depends on it).
    shapes = {DIFFSYNTH_TO_COMFY[key]: shape for key, shape in exvideo_shapes(args.table, **FULL).items()}
    parameters = {name: torch.nn.Parameter(torch.empty(shape, device="meta")) for name, shape in sorted(shapes.items())}
    with distributed.process_group(torch.device("cpu")):
        rank, world = distributed.rank_and_world()
        optimizer = adamw(parameters, TrainConfig())
        for parameter in parameters.values():
            parameter.grad = torch.zeros_like(parameter)
        # The local step creates this process's moments; ZeRO's broadcast of the updated tensors that follows
        # in optimizer.step() has nothing to send from the meta device.
        (optimizer.optim if sharded(optimizer) else optimizer).step()
        return {"rank": rank, "world": world, "values": sum(p.numel() for p in parameters.values()),
                **local_moments(optimizer)}


def measure(config: str, args) -> dict:
    """One configuration, in this process."""
    import comfy.model_management

    device = comfy.model_management.get_torch_device()
    meter = StepMeter(device, args.steps)
    if config == "diffsynth":
        trained = run_diffsynth(args, meter, device)
    else:
        changes = {"ours": {}, "ours-nockpt": {"gradient_checkpointing": False}, "ours-lora": {"mode": "lora"}}
        trained = run_ours(args, meter, **changes[config])
    return {"config": config, "device": str(device), "trained": trained, **meter.result()}


def _activations(result: dict) -> int:
    """A step's peak less the fp32 gradients of the trained tensors: activations and temporaries."""
    return result["step_peak"] - 4 * result["trained"]


def _gib(size: float) -> str:
    return f"{size / 2**30:7.2f}"


def _goal(ratio: float, limit: float) -> str:
    return f"{ratio:.2f} (goal <= {limit}: {'met' if ratio <= limit else 'NOT met'})"


def _print_shards(shards: dict[int, list[dict]], ours: dict | None) -> None:
    """The per-rank memory rows: AdamW's moments per process for each process count."""
    values = next(iter(shards.values()))[0]["values"]
    whole = 2 * 4 * values  # exp_avg and exp_avg_sq in fp32
    print(f"\nPer-rank memory: AdamW moments (exp_avg, exp_avg_sq) each process holds for the {values / 1e6:.0f}M "
          f"trained values, the trainer's optimizer (torch ZeroRedundancyOptimizer over more than one process) "
          f"in real gloo processes, over the tensors' shapes on the meta device")
    print(f"{'processes':>9} {'per rank (GiB)':>24} {'largest / 1 process':>20}")
    for world, ranks in shards.items():
        per_rank = [r["bytes"] for r in sorted(ranks, key=lambda r: r["rank"])]
        assert sum(per_rank) == whole, (per_rank, whole)  # every moment held exactly once
        ideal = 1 / world
        print(f"{world:>9} {' / '.join(_gib(b).strip() for b in per_rank):>24} "
              f"{max(per_rank) / whole:>13.3f} (ideal {ideal:.3f})")
        if ours and world > 1:
            print(f"{'':>9} ours, full, resident per rank: {_gib(ours['resident'] - whole + max(per_rank)).strip()} "
                  f"GiB (the 1-process resident above less the moments the other ranks hold)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8, help="T, frames of the clip (default 8)")
    parser.add_argument("--latent", type=int, default=16, help="latent height = width (default 16: 128 px)")
    parser.add_argument("--table", type=int, default=128, help="N, the extension's table length (default 128)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after the warm-up step (default 2)")
    parser.add_argument("--autocast", default=None, choices=["bf16", "fp16"],
                        help="mixed precision on both sides (default: none, fp32)")
    parser.add_argument("--configs", nargs="*", default=["diffsynth", "ours", "ours-nockpt"], choices=list(CONFIGS),
                        help="what to measure (default: all but ours-lora; none: only the per-rank rows)")
    parser.add_argument("--ranks", nargs="*", type=int, default=[1, 2],
                        help="process counts whose per-rank AdamW state to measure (default: 1 2; none: skip)")
    parser.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--shard-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table < args.frames:
        parser.error(f"--table ({args.table}) must cover --frames ({args.frames})")

    if args.child or args.shard_child:
        setup_paths()
        print(json.dumps(measure(args.child, args) if args.child else optimizer_shard(args)))
        return

    results, failed = {}, {}
    for config in args.configs:
        command = [sys.executable, __file__, "--child", config, "--frames", str(args.frames), "--latent",
                   str(args.latent), "--table", str(args.table), "--steps", str(args.steps)]
        if args.autocast:
            command += ["--autocast", args.autocast]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
        if done.returncode != 0:
            # Killed by the kernel (-9) when the machine runs out of memory; the other configurations still count.
            failed[config] = done.returncode
            print(f"  {config} failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr, flush=True)
            continue
        results[config] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[config]
        print(f"  {config:12} {r['seconds']:7.2f} s/step, resident {_gib(r['resident'])} GiB, step +"
              f"{_gib(r['step_peak'])} GiB ({time.perf_counter() - started:.0f} s in all)", file=sys.stderr,
              flush=True)

    shards = {}
    for world in args.ranks:
        from exvideo_harness.ranks import run_ranks

        shards[world] = run_ranks([sys.executable, __file__, "--shard-child", "--table", str(args.table)], world,
                                  timeout=1800, cwd=REPO_ROOT)
    if not results and not shards:
        sys.exit("every configuration failed")
    if shards:
        _print_shards(shards, results.get("ours"))
    if not results:
        return
    device = torch.device(next(iter(results.values()))["device"])
    print(f"\nOne training step, full-size SVD-XT UNet (random weights), T={args.frames}, latent "
          f"{args.latent}x{args.latent}, N={args.table}, {args.autocast or 'fp32'}, {device}, "
          f"threads {torch.get_num_threads()}; median of {args.steps} steps after a warm-up step")
    print(f"memory: {PeakMemory.method(device)}, a fresh process per configuration; resident = held between "
          f"steps (model, trained tensors, AdamW state); step = a step's peak above that (gradients, activations); "
          f"-grads = step less the fp32 gradients; total = resident + step\n")
    print(f"{'configuration':38} {'trained':>8} {'s/step':>8} {'resident':>9} {'step':>8} {'-grads':>8} "
          f"{'total':>8} {'warm-up loss':>13}")
    for config, r in results.items():
        print(f"{CONFIGS[config]:38} {r['trained'] / 1e6:7.1f}M {r['seconds']:8.2f} {_gib(r['resident']):>9} "
              f"{_gib(r['step_peak']):>8} {_gib(_activations(r)):>8} {_gib(r['resident'] + r['step_peak']):>8} "
              f"{r['warmup_loss']:13.6f}")
    for config, code in failed.items():
        print(f"{CONFIGS[config]:38} failed, exit {code}" + (" (killed: out of memory)" if code == -9 else ""))
    print("(memory in GiB)\n")

    ours, theirs, plain = results.get("ours"), results.get("diffsynth"), results.get("ours-nockpt")
    if ours and theirs:
        print(f"time ours / DiffSynth:                 {_goal(ours['seconds'] / theirs['seconds'], 1.0)}")
        print(f"step memory ours / DiffSynth:          {_goal(ours['step_peak'] / theirs['step_peak'], 0.8)}")
        total = (ours["resident"] + ours["step_peak"]) / (theirs["resident"] + theirs["step_peak"])
        print(f"total memory ours / DiffSynth:         {total:.2f} (for information)")
        loss_gap = abs(ours["warmup_loss"] - theirs["warmup_loss"]) / abs(theirs["warmup_loss"])
        print(f"same warm-up loss (same computation):  {'yes' if loss_gap < 1e-3 else 'NO'} "
              f"(relative difference {loss_gap:.1e})")
    if ours and plain:
        print(f"step memory checkpointing / without:   {_goal(ours['step_peak'] / plain['step_peak'], 0.5)}")
        print(f"  the same less the gradients:         {_activations(ours) / max(_activations(plain), 1):.2f}")
        print(f"time checkpointing / without:          {ours['seconds'] / plain['seconds']:.2f} (for information)")


if __name__ == "__main__":
    main()
