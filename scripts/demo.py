"""The main job: an image becomes a long video through a real ComfyUI server running this pack.

Starts ComfyUI with the pack, queues a video on an image, prints progress,
and writes an mp4 and a contact sheet PNG. Which models:

- real SVD-XT and ExVideo weights, when they are in ComfyUI's model folders
  (models/checkpoints/svd_xt*.safetensors, models/exvideo/*.safetensors): the
  shipped image-to-video workflow (example_workflows/exvideo_image_to_video.json);
  --real gives the reference settings (512x512, 128 frames, 50 steps);
- otherwise the project's small world, once its weights are trained
  (scripts/exvideo_harness/small_world/weights): its SVD makes a 40-frame
  clip with its ExVideo extension from a held-out first frame, then Continue
  Video carries it on to about 3x that, all through the pack's own nodes;
- otherwise random-weight SVD-XT stand-ins, and the result is noise.

    scripts/demo.sh [--image photo.png] [--real] [--frames 32 --steps 10 ...]
"""

import argparse
import asyncio
import json
import os
import pathlib
import shutil
import tempfile
import time

import aiohttp
import torch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
COMFYUI = pathlib.Path(os.environ.get("COMFYUI_PATH", REPO_ROOT / ".comfyui")).resolve()

import comfy.cli_args  # noqa: E402

# The harness imports comfy.model_management, which picks its device on import.
if not torch.cuda.is_available():
    comfy.cli_args.args.cpu = True

from exvideo_harness import workflows  # noqa: E402
from exvideo_harness.comfy_server import start_comfy_server  # noqa: E402

WORKFLOW = REPO_ROOT / "example_workflows" / "exvideo_image_to_video.json"
REAL = {"width": 512, "height": 512, "frames": 128, "steps": 50}
QUICK = {"width": 128, "height": 128, "frames": 12, "steps": 4}
SMALL_WORLD_CLIPS = 3  # 40 + 2 x 32 = 104 frames, about 3x the extension's 40
SMALL_WORLD_STEPS = 20


def find_real_weights(models: pathlib.Path):
    checkpoints = sorted((models / "checkpoints").glob("svd_xt*.safetensors")) + \
        sorted((models / "checkpoints").glob("svd*.safetensors"))
    extensions = sorted((models / "exvideo").glob("*.safetensors"), key=lambda p: "128f" not in p.name)
    if checkpoints and extensions:
        return checkpoints[0], extensions[0]
    return None


def small_world_files():
    """The small world's UNet, VAE and extension files, or None while a stage is untrained."""
    from exvideo_harness.small_world import models

    files = [models.weights_dir() / name for name in (models.UNET_FILE, models.VAE_FILE, models.EXVIDEO_FILE)]
    return files if all(path.exists() for path in files) else None


def save_first_frame(path: pathlib.Path, seed: int) -> None:
    """A held-out first frame of the small world as a PNG (the world draws it; no file ships)."""
    from PIL import Image

    from exvideo_harness.small_world.world import make_clip

    pixels = (make_clip(seed, 1).frames[0] * 255).round().astype("uint8")
    Image.fromarray(pixels).save(path)


def small_world_prompt(extension: str, image: str, clips: int, steps: int, seed: int) -> dict:
    """The small world's MODEL into the pack's nodes: a 40-frame clip, `clips - 1` continuations, one decode."""
    from exvideo_harness.small_world import generate
    from exvideo_harness.small_world.latents import POOL_FRAMES
    from exvideo_harness.small_world.world import WorldConfig

    size = WorldConfig().size
    settings = {**vars(generate.EXVIDEO_SETTINGS), "steps": steps, "seed": seed}
    prompt = {
        "world": {"class_type": "ExVideoHarnessSmallWorld", "inputs": {}},
        "exvideo": {"class_type": "ApplyExVideo", "inputs": {"model": ["world", 0], "exvideo_name": extension,
                                                             "frames": 0, "frame_chunk": -1}},
        "image": {"class_type": "LoadImage", "inputs": {"image": image}},
        "clip0": {"class_type": "ExVideoSampler", "inputs": {
            "model": ["exvideo", 0], "clip_vision": ["world", 1], "vae": ["world", 2], "image": ["image", 0],
            "width": size, "height": size, "frames": POOL_FRAMES, **settings}},
    }
    video = ["clip0", 0]
    for clip in range(1, clips):
        prompt[f"clip{clip}"] = {"class_type": "ExVideoContinue", "inputs": {
            "model": ["exvideo", 0], "clip_vision": ["world", 1], "vae": ["world", 2], "previous": video,
            "frames": POOL_FRAMES, "overlap_frames": 8, **settings, "seed": seed + clip}}
        video = [f"clip{clip}", 0]
    prompt["decode"] = {"class_type": "ExVideoTemporalDecode", "inputs": {
        "vae": ["world", 2], "samples": video, "window_frames": 8, "overlap_frames": 4, "tile_size": 0,
        "tile_overlap": 8}}
    prompt["save"] = {"class_type": "ExVideoSaveMP4", "inputs": {
        "images": ["decode", 0], "fps": 12.0, "filename_prefix": "demo/small_world", "contact_sheet": True}}
    return prompt


def random_weights():
    from exvideo_harness.exvideo_files import FULL, exvideo_checkpoint_path
    from exvideo_harness.svd_checkpoint import svd_xt_checkpoint_path

    print("[demo] generating random-weight SVD-XT and ExVideo files (first run only, a few GB)...", flush=True)
    return svd_xt_checkpoint_path(), exvideo_checkpoint_path(128, FULL)


async def follow(server, prompt: dict) -> dict:
    """Queues `prompt` and prints ComfyUI's progress messages until it finishes."""
    client = server.client
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client.client_id}") as ws:
            prompt_id = client.queue_prompt(prompt)
            names = {node_id: node["class_type"] for node_id, node in prompt.items()}
            started = time.monotonic()
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(message.data)
                data = event.get("data", {})
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                elapsed = time.monotonic() - started
                if event["type"] == "executing" and data.get("node"):
                    print(f"[demo] {elapsed:6.1f}s  {names.get(data['node'], data['node'])}", flush=True)
                elif event["type"] == "progress":
                    print(f"[demo] {elapsed:6.1f}s    step {data['value']}/{data['max']}", flush=True)
                elif event["type"] in ("execution_success", "execution_error", "execution_interrupted"):
                    break
    return client.wait(prompt_id, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=pathlib.Path,
                        help="first frame (default: the workflow's example image, which the pack puts into "
                             "ComfyUI's input folder when it loads)")
    parser.add_argument("--real", action="store_true", help="reference settings: 512x512, 128 frames, 50 steps")
    for name in ("width", "height", "frames", "steps"):
        parser.add_argument(f"--{name}", type=int, help=f"override ({QUICK[name]} by default, {REAL[name]} with --real)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clips", type=int, help=f"small world: clips in all ({SMALL_WORLD_CLIPS} by default)")
    parser.add_argument("--models", type=pathlib.Path, default=COMFYUI / "models",
                        help="ComfyUI models folder holding checkpoints/ and exvideo/")
    parser.add_argument("--output", type=pathlib.Path, default=REPO_ROOT / "output" / "demo")
    args = parser.parse_args()
    settings = {**(REAL if args.real else QUICK), **{k: getattr(args, k) for k in QUICK if getattr(args, k)}}

    real = find_real_weights(args.models)
    world = None if real else small_world_files()
    if world:
        print("\n" + "=" * 78 + "\n== No SVD-XT / ExVideo weights found in " + str(args.models) +
              "\n== Using the project's SMALL WORLD instead: a 15M-value SVD trained by this repository on"
              "\n== bouncing discs (docs/small-world.md), NOT SVD-XT. Put svd_xt.safetensors in"
              "\n== models/checkpoints and ExVideo-SVD-128f-v1.safetensors in models/exvideo for real videos.\n" +
              "=" * 78 + "\n", flush=True)
        checkpoint, extension = None, world[2]
    else:
        checkpoint, extension = real or random_weights()
    if not real and not world:
        print("\n" + "!" * 78 + "\n!! No SVD-XT / ExVideo weights found in " + str(args.models) +
              "\n!! Using RANDOM weights: the video will be NOISE. Put svd_xt.safetensors in models/checkpoints"
              "\n!! and ExVideo-SVD-128f-v1.safetensors in models/exvideo for a real video.\n" + "!" * 78 + "\n",
              flush=True)

    cpu = not torch.cuda.is_available()
    print(f"[demo] starting ComfyUI ({'CPU' if cpu else 'GPU'}) with the pack...", flush=True)
    # The server's scratch folders (and its links to GBs of model files) live outside the
    # pack's folder, which ComfyUI scans as a custom node, and are gone when the demo ends.
    with tempfile.TemporaryDirectory(prefix="exvideo-demo-") as scratch, \
            start_comfy_server(pathlib.Path(scratch), cpu=cpu, harness_nodes=bool(world)) as server:
        ext_name = server.install_model("exvideo", extension, extension.name if world else
                                        "ExVideo-SVD-128f-v1.safetensors")
        if args.image:
            # The server's input folder is the demo's own scratch folder, so the copy replaces nothing of the user's.
            image = pathlib.Path(shutil.copy(args.image, server.input_dir / args.image.name)).name
        if world:
            if not args.image:
                image = "small_world_first_frame.png"
                save_first_frame(server.input_dir / image, seed=args.seed)
            clips = args.clips or SMALL_WORLD_CLIPS
            steps = args.steps or SMALL_WORLD_STEPS
            prompt = small_world_prompt(ext_name, image, clips, steps, args.seed)
            print(f"[demo] small world: a 40-frame clip and {clips - 1} continuations at 128x128, {steps} steps, "
                  f"seed {args.seed}", flush=True)
        else:
            ckpt_name = server.install_model("checkpoints", checkpoint, "svd_xt.safetensors")
            prompt = workflows.ui_to_api(workflows.load(WORKFLOW), server.client.object_info())
            if args.image:
                workflows.set_inputs(prompt, "LoadImage", image=image)
            workflows.set_inputs(prompt, "ExVideoCheckpointLoader", ckpt_name=ckpt_name, exvideo_name=ext_name)
            workflows.set_inputs(prompt, "ExVideoSampler", width=settings["width"], height=settings["height"],
                                 frames=settings["frames"], steps=settings["steps"], seed=args.seed)
            workflows.set_inputs(prompt, "ExVideoSaveMP4", filename_prefix="demo/exvideo", contact_sheet=True)
            print(f"[demo] {settings['frames']} frames at {settings['width']}x{settings['height']}, "
                  f"{settings['steps']} steps, seed {args.seed}", flush=True)
        outputs = asyncio.run(follow(server, prompt))
        videos = server.output_files(outputs)
        # The contact sheet is written beside the video, under the same name.
        files = videos + [v.with_suffix(".png") for v in videos if v.with_suffix(".png").exists()]
        args.output.mkdir(parents=True, exist_ok=True)
        written = [pathlib.Path(shutil.copy(f, args.output / f.name)) for f in files]
    for path in written:
        print(f"[demo] wrote {path}")
    if world:
        print("[demo] (the project's small world, not SVD-XT: discs of its procedural world, moving)")
    elif not real:
        print("[demo] (random weights: the video above is noise)")


if __name__ == "__main__":
    main()
