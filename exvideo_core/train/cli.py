"""Post-tuning from the command line, in one process or in one per device under torchrun.

    python -m exvideo_core.train --config run.toml
    torchrun --nproc_per_node 8 -m exvideo_core.train --config run.toml

The config file (TOML; relative paths are relative to it):

    [model]
    checkpoint = "svd_xt.safetensors"        # SVD or SVD-XT, as ComfyUI's Image Only Checkpoint Loader reads it
    exvideo = "ExVideo-SVD-128f-v1.safetensors"   # optional: the extension to start from (default: a fresh one)
    lora = "lora.safetensors"                # optional, mode = "lora": a LoRA of ours to continue
    [data]
    videos = "clips/"                        # a folder of mp4/webm/gif/mov
    frames = 128                             # also: width, height, frame_stride, clips_per_video,
                                             #       recursive, motion_bucket_id (-1, the default: measured
                                             #       per clip; 0 and up: that bucket for every clip)
    [train]
    steps = 1000                             # any TrainConfig field (see config.py)
    [output]
    dir = "runs/my-extension"
    layout = "diffsynth"                     # or "comfyui"

The output folder holds the resumable `state.safetensors` (running the same
command again resumes it; a larger `steps` trains on), the encoded clips
(`clips-<settings>.safetensors`, reused by later runs with the same data
settings), and at the end of every session `exvideo.safetensors` (plus
`lora.safetensors` in LoRA mode and `*-ema` files with an EMA).

Under torchrun each process trains on its own samples (the global batch is
`grad_accumulation x processes` clips) and the gradients are averaged, so
all processes hold the same tensors; AdamW's state is sharded between them
(each holds 1/processes of it, optimizer.py) and gathered on process 0 for
the state file, which any number of processes resumes; process 0 alone
writes files. Ctrl-C (or SIGTERM) stops after the current step and saves
the state; a second one stops at once, keeping the state of the last
finished step (under torchrun: the last one saved, as gathering the shards
needs every process at the same step).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import sys
import time
from typing import Callable

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import torch

from ..constraints import check_training_size
from ..errors import ExVideoError, FileError, TrainConfigError
from ..layout import LAYOUTS
from ..paths import file_identity
from .config import TrainConfig

DATA_DEFAULTS = {"frames": 128, "width": 512, "height": 512, "frame_stride": 1, "clips_per_video": 1,
                 "recursive": False, "motion_bucket_id": -1}  # dataset.MEASURE_MOTION (a test holds them equal)
EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


@dataclasses.dataclass(frozen=True)
class RunConfig:
    checkpoint: pathlib.Path
    videos: pathlib.Path
    output: pathlib.Path
    train: TrainConfig
    data: dict  # DATA_DEFAULTS' keys
    exvideo: pathlib.Path | None = None
    lora: pathlib.Path | None = None
    layout: str = "diffsynth"

    @property
    def state_path(self) -> pathlib.Path:
        return self.output / "state.safetensors"

    @property
    def cache_path(self) -> pathlib.Path:
        """Named after everything that decides the encoded clips, so other settings, or videos added to, removed
        from or rewritten in the folder, never reuse a stale cache."""
        from .dataset import folder_identity

        key = json.dumps({"checkpoint": [str(self.checkpoint), *file_identity(self.checkpoint)],
                          "videos": [str(self.videos), *folder_identity(self.videos, self.data["recursive"])],
                          **self.data}, sort_keys=True)
        return self.output / f"clips-{hashlib.sha256(key.encode()).hexdigest()[:12]}.safetensors"


def load_run_config(path: str | os.PathLike) -> RunConfig:
    path = pathlib.Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise TrainConfigError(f"cannot read the config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise TrainConfigError(f"{path} is not valid TOML: {e}") from None
    _only(raw, {"model", "data", "train", "output"}, "the config file")
    model, data, output = (raw.get(name, {}) for name in ("model", "data", "output"))
    _only(model, {"checkpoint", "exvideo", "lora"}, "[model]")
    _only(data, {"videos", *DATA_DEFAULTS}, "[data]")
    _only(output, {"dir", "layout"}, "[output]")
    train = raw.get("train", {})
    _only(train, {field.name for field in dataclasses.fields(TrainConfig)}, "[train]")
    for section, key in (("model", "checkpoint"), ("data", "videos"), ("output", "dir")):
        if not raw.get(section, {}).get(key):
            raise TrainConfigError(f"the config file needs [{section}] {key} = \"...\"")
    layout = output.get("layout", "diffsynth")
    if layout not in LAYOUTS:
        raise TrainConfigError(f"[output] layout must be one of {LAYOUTS}, got {layout!r}")
    size = (data.get("width", DATA_DEFAULTS["width"]), data.get("height", DATA_DEFAULTS["height"]))
    check_training_size(*size, "[data] width and height", TrainConfigError)
    here = path.parent
    optional = {key: here / model[key] for key in ("exvideo", "lora") if model.get(key)}
    return RunConfig(checkpoint=here / model["checkpoint"], videos=here / data["videos"], output=here / output["dir"],
                     train=TrainConfig(**train), data={**DATA_DEFAULTS, **{k: v for k, v in data.items()
                                                                           if k != "videos"}},
                     layout=layout, **optional)


def _only(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise TrainConfigError(f"unknown setting(s) {unknown} in {where}; allowed: {sorted(allowed)}")


# ---------------------------------------------------------------- models and data


def load_svd_checkpoint(path: pathlib.Path, encoders: bool):
    """(MODEL, VAE, CLIP vision) as ComfyUI's Image Only Checkpoint Loader gives them; no encoders unless asked."""
    import comfy.sd

    if not path.is_file():
        raise FileError(f"the checkpoint {path} does not exist; set [model] checkpoint to svd_xt.safetensors")
    try:
        model, _, vae, clip_vision = comfy.sd.load_checkpoint_guess_config(
            str(path), output_vae=encoders, output_clip=False, output_clipvision=encoders)[:4]
    except Exception as e:  # ComfyUI's "Could not detect model type", safetensors' and torch's read errors
        raise FileError(f"{path.name} is not a checkpoint ComfyUI can load ({type(e).__name__}: {e})") from None
    if encoders and (vae is None or clip_vision is None):
        raise FileError(f"{path.name} holds no VAE or image encoder; use the full SVD checkpoint (svd_xt)")
    return model, vae, clip_vision


LoadCheckpoint = Callable[[pathlib.Path, bool], tuple]


def training_clips(run: RunConfig, load_checkpoint: LoadCheckpoint, rank: int):
    """(clips, MODEL or None): process 0 encodes the clips into the cache, once per data settings, keeping the
    MODEL it loaded with the encoders; every process then reads the cache."""
    from . import distributed
    from .cache import encode_clips, load_clip_cache, save_clip_cache
    from .dataset import VideoClipDataset

    model = None
    if rank == 0 and not run.cache_path.exists():
        data = run.data
        dataset = VideoClipDataset.from_folder(run.videos, data["frames"], data["width"], data["height"],
                                               data["frame_stride"], data["clips_per_video"], data["recursive"])
        model, vae, clip_vision = load_checkpoint(run.checkpoint, True)
        logging.info("encoding training clips from %s", run.videos)
        clips = encode_clips(dataset, vae, clip_vision, data["motion_bucket_id"],
                             progress=lambda done: logging.info("encoded %d clip(s)", done))
        del vae, clip_vision
        save_clip_cache(clips, run.cache_path)
    distributed.barrier()
    return load_clip_cache(run.cache_path), model


NEW_RUN_HINT = "choose another [output] dir to start a new run"


def train(run: RunConfig, device: torch.device, load_checkpoint: LoadCheckpoint = load_svd_checkpoint) -> bool:
    """One session of the run; True when it reached `steps`. Raises ExVideoError (and subclasses) on bad input.

    The rules (resume, failures, files written) are `session.TrainingSession`'s, as for the Post-Tune node;
    this adds the config file's data, the clip cache and the processes of a torchrun."""
    from .. import load_exvideo, safetensors_io
    from . import distributed
    from .session import SessionStart, TrainingSession, check_resumable

    rank, world = distributed.rank_and_world()
    if rank == 0:
        run.output.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    resuming = run.state_path.exists()
    if resuming:
        check_resumable(run.state_path, run.train, NEW_RUN_HINT)  # before any clip is encoded
    clips, model = training_clips(run, load_checkpoint, rank)
    if model is None:
        model, _, _ = load_checkpoint(run.checkpoint, False)
    start = SessionStart() if resuming else SessionStart(
        weights=load_exvideo(run.exvideo) if run.exvideo else None,
        lora=safetensors_io.load(run.lora)[0] if run.lora else None)
    session = TrainingSession.open(model, clips, run.train, run.state_path, start=start, new_run_hint=NEW_RUN_HINT)
    trainer = session.trainer
    distributed.check_same("training data", trainer.data_fingerprint, device)
    distributed.broadcast_parameters(trainer.parameters.values())

    first_step, started = trainer.step, time.perf_counter()

    def progress(step: int, total: int, loss: float) -> None:
        if rank == 0:
            rate = (time.perf_counter() - started) / (step - first_step)
            logging.info("step %d/%d  loss %.5f  %.2f s/step", step, total, loss, rate)

    result = session.run(progress=progress, stop_on_signals=True)
    distributed.check_same("trained tensors", distributed.digest(trainer.parameters.values()), device)
    if rank == 0:
        session.save_results(run.output, run.layout)
        state = "done" if result.completed else "stopped; run the same command to resume"
        logging.info("step %d/%d (%s). %d process(es) hold identical tensors. Wrote %s", result.step, result.total,
                     state, world, run.output)
    return result.completed


def main(argv: list[str] | None = None, load_checkpoint: LoadCheckpoint = load_svd_checkpoint) -> int:
    parser = argparse.ArgumentParser(prog="python -m exvideo_core.train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the run's TOML file (see the module docstring)")
    parser.add_argument("--steps", type=int, help="override [train] steps, e.g. to train a finished run further")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)

    from .host import prepare_host

    try:
        device = prepare_host(cpu=args.cpu)
        from . import distributed

        run = load_run_config(args.config)
        if args.steps is not None:
            run = dataclasses.replace(run, train=dataclasses.replace(run.train, steps=args.steps))
        with distributed.process_group(device):
            train(run, device, load_checkpoint)
    except ExVideoError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; the state of the last finished step is saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
