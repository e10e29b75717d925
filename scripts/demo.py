"""The main job: an image becomes a long video through a real ComfyUI server running this pack.

Starts ComfyUI with the pack, queues the shipped image-to-video workflow
(example_workflows/exvideo_image_to_video.json) on an image, prints progress,
and writes an mp4 and a contact sheet PNG. Real SVD-XT and ExVideo weights
are used when they are in ComfyUI's model folders (models/checkpoints/svd_xt*.safetensors,
models/exvideo/*.safetensors); otherwise random-weight stand-ins are generated
and the result is noise. The default size finishes in minutes on a CPU;
--real gives the reference settings (512x512, 128 frames, 50 steps).

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


def find_real_weights(models: pathlib.Path):
    checkpoints = sorted((models / "checkpoints").glob("svd_xt*.safetensors")) + \
        sorted((models / "checkpoints").glob("svd*.safetensors"))
    extensions = sorted((models / "exvideo").glob("*.safetensors"), key=lambda p: "128f" not in p.name)
    if checkpoints and extensions:
        return checkpoints[0], extensions[0]
    return None


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
    parser.add_argument("--models", type=pathlib.Path, default=COMFYUI / "models",
                        help="ComfyUI models folder holding checkpoints/ and exvideo/")
    parser.add_argument("--output", type=pathlib.Path, default=REPO_ROOT / "output" / "demo")
    args = parser.parse_args()
    settings = {**(REAL if args.real else QUICK), **{k: getattr(args, k) for k in QUICK if getattr(args, k)}}

    real = find_real_weights(args.models)
    checkpoint, extension = real or random_weights()
    if not real:
        print("\n" + "!" * 78 + "\n!! No SVD-XT / ExVideo weights found in " + str(args.models) +
              "\n!! Using RANDOM weights: the video will be NOISE. Put svd_xt.safetensors in models/checkpoints"
              "\n!! and ExVideo-SVD-128f-v1.safetensors in models/exvideo for a real video.\n" + "!" * 78 + "\n",
              flush=True)

    cpu = not torch.cuda.is_available()
    print(f"[demo] starting ComfyUI ({'CPU' if cpu else 'GPU'}) with the pack...", flush=True)
    # The server's scratch folders (and its links to GBs of model files) live outside the
    # pack's folder, which ComfyUI scans as a custom node, and are gone when the demo ends.
    with tempfile.TemporaryDirectory(prefix="exvideo-demo-") as scratch, \
            start_comfy_server(pathlib.Path(scratch), cpu=cpu) as server:
        ckpt_name = server.install_model("checkpoints", checkpoint, "svd_xt.safetensors")
        ext_name = server.install_model("exvideo", extension, "ExVideo-SVD-128f-v1.safetensors")
        prompt = workflows.ui_to_api(workflows.load(WORKFLOW), server.client.object_info())
        if args.image:
            # The server's input folder is the demo's own scratch folder, so the copy replaces nothing of the user's.
            image = pathlib.Path(shutil.copy(args.image, server.input_dir / args.image.name))
            workflows.set_inputs(prompt, "LoadImage", image=image.name)
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
    if not real:
        print("[demo] (random weights: the video above is noise)")


if __name__ == "__main__":
    main()
