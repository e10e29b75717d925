"""Stage 3 of the small world: ExVideo post-tuning of the base to 40 frames (5x its 8), by the pack's own nodes.

    python -m exvideo_harness.small_world.train_extension            # train (resumes), then export
    python -m exvideo_harness.small_world.train_extension --steps 20 # a shorter run (a test's)

Needs stages 1 and 2 in `models.weights_dir()`. What a user does, in a real
ComfyUI server: the world's 40-frame training clips are mp4 files in the
server's input folder; the harness's loader node gives the small MODEL,
CLIP_VISION and VAE (ComfyUI detects only full-size SVD); then the pack's
ExVideo Training Clips (each clip's motion measured, as the reference does),
ExVideo Post-Tune (full mode: the position table initialised as the pack
initialises it, the identity conv and the temporal transformers) and Save
ExVideo Extension in DiffSynth's layout. The server's folders live under
`.cache/small_world/extension_server/`, so queueing the same prompt again
resumes Post-Tune's saved state; Ctrl-C cancels the prompt the way the UI's
cancel button does, which saves that state first.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import signal
import time

import safetensors.torch
import torch
from safetensors import safe_open

from exvideo_core import safetensors_io
from exvideo_core.train.dataset import MEASURE_MOTION
from exvideo_core.train.state import load_state, state_file
from exvideo_core.video_io import write_mp4

from .. import comfy_server
from . import models, training
from .latents import POOL_FRAMES, LatentPool
from .train_base import FPS
from .world import WorldConfig, make_clip

CLIP_FOLDER = "small_world_clips"
RUN_NAME = "small_world_40f"
RECIPE = {"stage": "extension", "frames": POOL_FRAMES, "clips": 128, "steps": 240, "mode": "full",
          "learning_rate": 1e-4, "seed": 3, "layout": "diffsynth"}


def write_clips(folder: pathlib.Path, count: int) -> None:
    """The first `count` clips of the training pool as lossless mp4 files (written once)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        path = folder / f"clip_{LatentPool.seed(index)}.mp4"
        if not path.exists():
            frames = torch.from_numpy(make_clip(LatentPool.seed(index), POOL_FRAMES).frames)
            write_mp4(frames, path, fps=FPS, codec="h264_lossless")


def export_fp16(saved: pathlib.Path, path: pathlib.Path) -> None:
    """The saved extension, its metadata kept, in fp16: as DiffSynth ships ExVideo, and half the repository's
    bytes (the extension's positional convs and temporal layers hold 8.3 M values)."""
    with safe_open(saved, "pt") as file:
        metadata = file.metadata()
    tensors = safetensors.torch.load_file(saved)
    safetensors_io.save({name: tensor.half() for name, tensor in tensors.items()}, path, metadata)


def prompt(recipe: dict) -> dict:
    size = WorldConfig().size
    return {
        "world": {"class_type": "ExVideoHarnessSmallWorld", "inputs": {}},
        "clips": {"class_type": "ExVideoTrainingClips", "inputs": {
            "vae": ["world", 2], "clip_vision": ["world", 1], "video_folder": CLIP_FOLDER,
            "frames": recipe["frames"], "width": size, "height": size, "frame_stride": 1,
            "motion_bucket_id": MEASURE_MOTION}},
        "train": {"class_type": "ExVideoTrain", "inputs": {
            "model": ["world", 0], "clips": ["clips", 0], "steps": recipe["steps"], "mode": recipe["mode"],
            "learning_rate": recipe["learning_rate"], "lora_rank": 16, "lora_alpha": 16.0,
            "grad_accumulation": 1, "gradient_checkpointing": False, "seed": recipe["seed"],
            "run_name": RUN_NAME, "resume": True}},
        "save": {"class_type": "ExVideoSaveExtension", "inputs": {
            "exvideo": ["train", 1], "filename_prefix": f"exvideo/{RUN_NAME}", "layout": recipe["layout"]}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=RECIPE["steps"])
    parser.add_argument("--clips", type=int, default=RECIPE["clips"])
    parser.add_argument("--root", type=pathlib.Path, default=training.run_dir() / "extension_server")
    parser.add_argument("--export", action=argparse.BooleanOptionalAction, default=True,
                        help="copy the saved extension into the shipped weights and the manifest")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    recipe = {**RECIPE, "steps": args.steps, "clips": args.clips}
    path = models.weights_dir() / models.EXVIDEO_FILE
    if args.export and training.exported(path):
        return

    # Post-Tune's state keeps the steps and losses; the wall time of the sessions is kept here, beside it.
    wall_path = args.root / "wall_s.json"
    wall_s = json.loads(wall_path.read_text())["wall_s"] if wall_path.exists() else 0.0
    with comfy_server.start_comfy_server(args.root, harness_nodes=True) as server:
        write_clips(server.input_dir / CLIP_FOLDER, recipe["clips"])
        started = time.monotonic()
        prompt_id = server.client.queue_prompt(prompt(recipe))
        # A kill cancels as the UI's button does: Post-Tune saves its resumable state, then the server stops.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            server.client.wait(prompt_id, timeout=24 * 3600)
        except KeyboardInterrupt:
            server.client.interrupt(prompt_id)
            server.client.wait(prompt_id, timeout=600)
            raise SystemExit(f"extension: cancelled; run again to resume ({server.log_path})")
        finally:
            wall_path.write_text(json.dumps({"wall_s": wall_s + time.monotonic() - started}))
        # Save Extension shows its file as text; the newest file of the prefix is this run's.
        saved = max((server.output_dir / "exvideo").glob(f"{RUN_NAME}*.safetensors"), key=lambda p: p.stat().st_mtime)
        state = load_state(state_file(server.output_dir / "exvideo_training", RUN_NAME))
        if args.export:
            export_fp16(saved, path)
            wall = json.loads(wall_path.read_text())["wall_s"]
            training.write_manifest_entry(path, {
                "recipe": recipe, "steps": state.step, "dtype": "fp16", "final_loss": sum(state.losses[-50:]) / len(state.losses[-50:]),
                "wall_s_2_cores": round(wall)})
            training.log.info("extension: exported %s", path)


if __name__ == "__main__":
    main()
