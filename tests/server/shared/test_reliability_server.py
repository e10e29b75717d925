"""Reliability sweep through the real server: bad files and inputs, interrupts, escapes, and full or read-only disks
(many prompts in a row: tests/server/test_memory_server.py, on a server of its own).

Every failure must be a node error that names the cause and the fix, leave
the server answering and running the next prompt, and write nothing (no
partial or temporary file, nothing outside the output folder). Bad inputs are
generated files. Sizes are the smallest the full-size SVD-XT accepts; the
divergence, interrupt and save-prefix checks of training, which no UNet size
changes, train the harness's small SVD (the post-tuning template trains the
full-size one, tests/server/shared/test_workflows.py).
"""

import asyncio
import json
import os
import pathlib
import pickle
import queue
import shutil
import subprocess
import threading
import time
import uuid

import pytest
import torch

from exvideo_core.safetensors_io import read_header, save
from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.comfy_server import ExecutionFailed, ExecutionInterrupted, PromptRejected
from exvideo_harness.exvideo_files import FULL, SMALL, exvideo_checkpoint_path, random_exvideo_state_dict
from exvideo_harness.svd_checkpoint import svd_xt_checkpoint_path
from exvideo_harness.svd_models import SMALL_UNET_CONFIG

pytestmark = [pytest.mark.server, pytest.mark.full_size]

OUT = "reliability"  # every prompt here writes under output/reliability
SMALL_SVD = ("small", 0)  # the harness's small SVD UNet, for checks of training that no UNet size changes
SMALL_SVD_CHANNELS = SMALL_UNET_CONFIG["model_channels"]


# ------------------------------------------------------------------ generated bad files


class _Trap:
    """Unpickling this creates `marker` (through builtins.open, which any process can import)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def sd15_lora_state_dict() -> dict[str, torch.Tensor]:
    """A small LoRA with the key names of an SD1.5 LoRA (kohya layout: UNet and text encoder)."""
    state = {}
    for name, dim in (("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 320),
                      ("lora_unet_mid_block_attentions_0_proj_in", 1280),
                      ("lora_te_text_model_encoder_layers_0_self_attn_q_proj", 768)):
        state[f"{name}.lora_down.weight"] = torch.randn(4, dim) * 0.01
        state[f"{name}.lora_up.weight"] = torch.zeros(dim, 4)
        state[f"{name}.alpha"] = torch.tensor(4.0)
    return state


def nan_svd_lora_state_dict(channels: int) -> dict[str, torch.Tensor]:
    """A LoRA for one spatial attention layer of an SVD UNet of `channels` base channels whose factors are NaN:
    a LoRA saved from a diverged run."""
    name = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"
    return {f"{name}.lora_down.weight": torch.full((1, channels), float("nan")),
            f"{name}.lora_up.weight": torch.full((channels, 1), float("nan")),
            f"{name}.alpha": torch.tensor(1.0)}


def tiny_sd15_checkpoint(path: pathlib.Path) -> pathlib.Path:
    """A 26M-parameter UNet that ComfyUI detects as SD1.5 (model_channels 320, context 768, one level)."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    from exvideo_harness.random_init import randomize_

    unet = UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1],
                     channel_mult=[1], transformer_depth=[1], transformer_depth_output=[1, 1],
                     transformer_depth_middle=1, context_dim=768, num_heads=8, use_linear_in_transformer=False,
                     use_spatial_transformer=True, adm_in_channels=None, dtype=torch.float32,
                     operations=comfy.ops.disable_weight_init)
    randomize_(unet, seed=0)
    save({f"model.diffusion_model.{k}": v.half() for k, v in unet.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def files(module_scratch) -> dict[str, pathlib.Path]:
    folder = module_scratch / "bad_inputs"
    folder.mkdir()
    out = {"marker": folder / "unpickled"}
    save(sd15_lora_state_dict(), out.setdefault("sd15_lora", folder / "sd15_lora.safetensors"))
    small = folder / "small.safetensors"
    save(random_exvideo_state_dict(4, seed=0, dtype=torch.float16, **SMALL), small)
    data = small.read_bytes()
    (out.setdefault("truncated", folder / "truncated.safetensors")).write_bytes(data[:len(data) // 2])
    for protocol in (0, pickle.HIGHEST_PROTOCOL):
        path = out.setdefault(f"pickle_p{protocol}", folder / f"pickle_p{protocol}.safetensors")
        path.write_bytes(pickle.dumps(_Trap(out["marker"]), protocol=protocol))
    (out.setdefault("pickle_ckpt", folder / "real_pickle.ckpt")).write_bytes(pickle.dumps(_Trap(out["marker"])))
    save(nan_svd_lora_state_dict(SMALL_SVD_CHANNELS), out.setdefault("nan_lora", folder / "diverged_lora.safetensors"))
    out["sd15_ckpt"] = tiny_sd15_checkpoint(folder / "tiny_sd15.safetensors")
    return out


@pytest.fixture(scope="module")
def names(comfy_server, files):
    install = comfy_server.install_model
    result = {
        "ckpt": install("checkpoints", svd_xt_checkpoint_path(), "svd_xt.safetensors"),
        "exvideo": install("exvideo", exvideo_checkpoint_path(128, FULL), "ExVideo-SVD-128f-v1.safetensors"),
        "sd15_ckpt": install("checkpoints", files["sd15_ckpt"]),
        "nan_lora": install("loras", files["nan_lora"]),
    }
    for key in ("sd15_lora", "truncated", "pickle_p0", f"pickle_p{pickle.HIGHEST_PROTOCOL}", "pickle_ckpt"):
        result[key] = install("exvideo", files[key])
    shutil.copy(REPO_ROOT / "example_workflows" / "exvideo_example.png", comfy_server.input_dir)
    yield result
    assert not files["marker"].exists(), "a pickle was unpickled"


# ------------------------------------------------------------------ prompts


def svd(names) -> dict:
    """The SVD checkpoint, the image, the extension and the harness's small SVD: in every prompt, even where
    unused, so that the server's cache (which drops the outputs of nodes a prompt lacks) keeps them loaded from
    one prompt to the next."""
    return {"ckpt": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": names["ckpt"]}},
            "image": {"class_type": "LoadImage", "inputs": {"image": "exvideo_example.png"}},
            "ext": {"class_type": "ExVideoLoader", "inputs": {"exvideo_name": names["exvideo"], "frames": 0}},
            "small": {"class_type": "ExVideoHarnessSmallSVD", "inputs": {"seed": 0}}}


def exvideo_sampler(model, size=128, frames=2, steps=1, width=None) -> dict:
    return {"class_type": "ExVideoSampler", "inputs": {
        "model": model, "clip_vision": ["ckpt", 1], "vae": ["ckpt", 2], "image": ["image", 0],
        "width": width or size, "height": size, "frames": frames, "fps": 30, "motion_bucket_id": 127,
        "augmentation_level": 0.0, "min_cfg": 2.0, "cfg": 2.0, "steps": steps, "sampler_name": "euler",
        "scheduler": "karras", "seed": 3}}


def exvideo_prompt(names, prefix: str, **sampler) -> dict:
    """Load ExVideo Extension + Apply ExVideo (weights) + ExVideo sampler -> SaveLatent."""
    return {**svd(names),
            "apply": {"class_type": "ApplyExVideoWeights", "inputs": {"model": ["ckpt", 0], "exvideo": ["ext", 0]}},
            "sample": exvideo_sampler(["apply", 0], **sampler),
            "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sample", 0], "filename_prefix": prefix}}}


def frames_prompt(names, prefix: str, frames: int = 2, size: int = 64) -> dict:
    return {**svd(names),
            "img": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": frames,
                                                           "color": 0x336699}},
            "save": {"class_type": "ExVideoSaveMP4", "inputs": {"images": ["img", 0], "fps": 8.0,
                                                                "filename_prefix": prefix, "contact_sheet": True}}}


def extension_save_prompt(names, prefix: str, exvideo_name: str | None = None) -> dict:
    """Save ExVideo Extension of the test extension, or of another file in the exvideo folder."""
    prompt = {**svd(names), "save": {"class_type": "ExVideoSaveExtension", "inputs": {
        "exvideo": ["ext" if exvideo_name is None else "other", 0], "filename_prefix": prefix, "layout": "diffsynth"}}}
    if exvideo_name is not None:
        prompt["other"] = {"class_type": "ExVideoLoader", "inputs": {"exvideo_name": exvideo_name, "frames": 0}}
    return prompt


def training_prompt(names, run_name: str, steps: int, model=("ckpt", 0), video_folder: str = "",
                    width: int = 128) -> dict:
    """Clips (from the example image repeated, or a video folder) -> Post-Tune (lora mode) -> loss plot preview."""
    return {**svd(names),
            "frames": {"class_type": "RepeatImageBatch", "inputs": {"image": ["image", 0], "amount": 2}},
            "clips": {"class_type": "ExVideoTrainingClips", "inputs": {
                "vae": ["ckpt", 2], "clip_vision": ["ckpt", 1], "video_folder": video_folder, "frames": 2,
                "width": width, "height": 128, "frame_stride": 1, "motion_bucket_id": 127, "images": ["frames", 0]}},
            "train": {"class_type": "ExVideoTrain", "inputs": {
                "model": list(model), "clips": ["clips", 0], "steps": steps, "mode": "lora", "learning_rate": 1e-5,
                "lora_rank": 2, "lora_alpha": 2.0, "grad_accumulation": 1, "gradient_checkpointing": True,
                "seed": 0, "run_name": run_name, "resume": True}},
            "plot": {"class_type": "ExVideoLossPlot", "inputs": {"loss": ["train", 2], "width": 128, "height": 96}},
            "show": {"class_type": "PreviewImage", "inputs": {"images": ["plot", 0]}}}


# ------------------------------------------------------------------ checks


def fails(comfy_server, names, prompt, node_type: str, *expected: str, timeout: float = 600) -> ExecutionFailed:
    with pytest.raises(ExecutionFailed) as failed:
        comfy_server.client.run(prompt, timeout=timeout)
    assert failed.value.node_type == node_type, failed.value
    for text in expected:
        assert text in failed.value.exception_message, failed.value.exception_message
    assert_healthy(comfy_server, names)
    return failed.value


def assert_healthy(comfy_server, names) -> None:
    """The server answers, its queue is empty, and a native prompt still runs and saves."""
    assert comfy_server.is_running()
    assert comfy_server.client.queue_state() == {"queue_running": [], "queue_pending": []}
    prompt = {**svd(names),
              "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    assert len(comfy_server.output_files(comfy_server.client.run(prompt, timeout=60))) == 1


def written(comfy_server, pattern: str = "**/*") -> list[pathlib.Path]:
    return sorted(p for p in (comfy_server.output_dir / OUT).glob(pattern) if p.is_file())


class ProgressWatcher:
    """Follows the server's websocket as the test client, to act when a node reports progress."""

    def __init__(self, comfy_server):
        self.url = f"ws://127.0.0.1:{comfy_server.port}/ws?clientId={comfy_server.client.client_id}"
        self.messages: queue.Queue = queue.Queue()
        self._connected, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)
        self._thread.start()
        assert self._connected.wait(30), "could not open the server's websocket"

    async def _listen(self):
        import aiohttp

        async with aiohttp.ClientSession() as session, session.ws_connect(self.url) as ws:
            self._connected.set()
            while not self._stop.is_set():
                try:
                    message = await ws.receive(timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.messages.put(json.loads(message.data))
                elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return

    def wait_for_progress(self, prompt_id: str, node_id: str, value: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"node {node_id} never reported progress {value}"
            try:
                message = self.messages.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            data = message.get("data", {})
            if (message.get("type") == "progress" and data.get("prompt_id") == prompt_id
                    and data.get("node") == node_id and data.get("value", 0) >= value):
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def watcher(comfy_server):
    watching = ProgressWatcher(comfy_server)
    yield watching
    watching.close()


# ------------------------------------------------------------------ wrong files in the ExVideo slot


@pytest.mark.parametrize("slot, expected", [
    ("sd15_lora", "it is a LoRA: load it with a LoRA loader node"),
    ("truncated", "truncated"),
    (f"pickle_p{pickle.HIGHEST_PROTOCOL}", "pickle"),
    ("pickle_p0", "not a valid safetensors file"),  # protocol 0 has no binary magic: refused by its header
])
def test_wrong_file_in_the_exvideo_slot(comfy_server, names, files, slot, expected):
    fails(comfy_server, names, extension_save_prompt(names, f"{OUT}/never_{slot}", names[slot]), "ExVideoLoader",
          expected)
    assert written(comfy_server) == [] and not files["marker"].exists()


def test_a_ckpt_pickle_is_not_listed_and_never_opened(comfy_server, names, files):
    """The exvideo folder lists .safetensors only. ComfyUI 0.3.75 does not check V3 combo values against their
    list, so a prompt sent through the API can still name the .ckpt: the loader refuses it unopened."""
    assert names["pickle_ckpt"] not in comfy_server.client.models("exvideo")
    fails(comfy_server, names, extension_save_prompt(names, f"{OUT}/never_ckpt", names["pickle_ckpt"]),
          "ExVideoLoader", "is a pickle checkpoint", "never opened", "Convert it to .safetensors")
    assert written(comfy_server) == [] and not files["marker"].exists()


# ------------------------------------------------------------------ wrong model, sizes


@pytest.mark.parametrize("node", ["ApplyExVideo", "ApplyExVideoWeights"])
def test_exvideo_on_a_non_svd_model(comfy_server, names, node):
    """A (tiny) checkpoint ComfyUI detects as SD1.5; ModelSave would write it if the apply passed."""
    inputs = {"model": ["load", 0]}
    extension = {"exvideo_name": names["exvideo"], "frames": 0} if node == "ApplyExVideo" else {"exvideo": ["ext", 0]}
    inputs.update(extension)
    prompt = {**svd(names),
              "load": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": names["sd15_ckpt"]}},
              "apply": {"class_type": node, "inputs": inputs},
              "save": {"class_type": "ModelSave", "inputs": {"model": ["apply", 0], "filename_prefix": f"{OUT}/never"}}}
    fails(comfy_server, names, prompt, node, "this MODEL is BaseModel", "Image Only Checkpoint Loader")
    assert written(comfy_server) == []


def test_latent_too_small_for_the_positional_conv(comfy_server, names):
    """The size widgets start where the positional conv does (128 px): the server refuses a smaller video
    before anything runs, naming the input and its minimum."""
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.client.run(exvideo_prompt(names, f"{OUT}/never_small", size=64), timeout=60)
    assert set(rejected.value.node_errors) == {"sample"}
    assert "Value 64 smaller than min of 128" in str(rejected.value) and "width" in str(rejected.value)
    assert_healthy(comfy_server, names)
    assert written(comfy_server) == []


def test_size_not_a_multiple_of_8(comfy_server, names):
    """The widgets step by 8 but the server accepts any value in range; the node refuses it by name."""
    fails(comfy_server, names, exvideo_prompt(names, f"{OUT}/never_132", width=132), "ExVideoSampler",
          "multiples of 8", "132x128")
    fails(comfy_server, names, training_prompt(names, "never_132", 1, width=132), "ExVideoTrainingClips",
          "multiples of 8")
    assert written(comfy_server) == []


# ------------------------------------------------------------------ training inputs


@pytest.mark.parametrize("folder, expected", [
    ("empty_videos", "holds no videos"),
    ("broken_videos", "every video was unreadable"),
    ("no_such_folder", "is not a folder"),
    ("../", "leads outside"),
])
def test_empty_or_unreadable_video_folder(comfy_server, names, folder, expected):
    (comfy_server.input_dir / "empty_videos").mkdir(exist_ok=True)
    broken = comfy_server.input_dir / "broken_videos"
    broken.mkdir(exist_ok=True)
    (broken / "random.mp4").write_bytes(os.urandom(4096))
    (broken / "empty.webm").write_bytes(b"")
    fails(comfy_server, names, training_prompt(names, f"never_{uuid.uuid4().hex[:6]}", 1, video_folder=folder),
          "ExVideoTrainingClips", expected)


def state_file(comfy_server, run_name: str) -> pathlib.Path:
    return comfy_server.output_dir / "exvideo_training" / f"{run_name}.state.safetensors"


@pytest.fixture
def checked_states(comfy_server):
    """Runs whose state a test has checked; deleted after it (a full-size state with AdamW moments is 6 GB)."""
    runs = []
    yield runs.append
    for run_name in runs:
        state_file(comfy_server, run_name).unlink(missing_ok=True)


def saved_progress(path: pathlib.Path) -> dict:
    """The state file's progress, after checking that its header and every tensor's extent fit the file."""
    _, metadata = read_header(path)
    return json.loads(metadata["progress"])


def test_nan_loss_in_training(comfy_server, names, checked_states):
    """A LoRA with NaN factors (saved from a diverged run) makes the very first loss NaN."""
    checked_states("nan_run")
    prompt = training_prompt(names, "nan_run", 3, model=("lora", 0))
    prompt["lora"] = {"class_type": "LoraLoaderModelOnly", "inputs": {
        "model": list(SMALL_SVD), "lora_name": names["nan_lora"], "strength_model": 1.0}}
    error = fails(comfy_server, names, prompt, "ExVideoTrain", "diverged at step 1",
                  "the loss is nan before any update")
    assert error.exception_type.endswith("TrainingDivergedError")
    # The state of the last good step (none) is kept, and is a complete file.
    assert saved_progress(state_file(comfy_server, "nan_run")) == {"step": 0, "losses": []}


# ------------------------------------------------------------------ interrupts


def test_interrupt_during_decoding(comfy_server, names, watcher):
    client = comfy_server.client

    def decode_prompt(frames: int, prefix: str) -> dict:
        return {**svd(names),
                "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 128,
                                                                        "batch_size": frames}},
                "decode": {"class_type": "ExVideoTemporalDecode", "inputs": {
                    "vae": ["ckpt", 2], "samples": ["latent", 0], "window_frames": 2, "overlap_frames": 0}},
                "save": {"class_type": "ExVideoSaveMP4", "inputs": {
                    "images": ["decode", 0], "fps": 8.0, "filename_prefix": prefix, "contact_sheet": False}}}

    prompt_id = client.queue_prompt(decode_prompt(64, f"{OUT}/decode_interrupted"))
    watcher.wait_for_progress(prompt_id, "decode", 1, timeout=600)
    client.interrupt(prompt_id)
    with pytest.raises(ExecutionInterrupted):
        client.wait(prompt_id, timeout=300)
    assert written(comfy_server) == []
    (video,) = comfy_server.output_files(client.run(decode_prompt(2, f"{OUT}/decode_after"), timeout=600))
    assert video.is_file()
    video.unlink()


def test_interrupt_during_training_keeps_a_resumable_state(comfy_server, names, watcher, checked_states):
    client = comfy_server.client
    checked_states("interrupted_run")
    state = state_file(comfy_server, "interrupted_run")
    # The small SVD takes a fraction of a second per step: enough steps that the interrupt lands mid-run.
    steps = 5000
    prompt_id = client.queue_prompt(training_prompt(names, "interrupted_run", steps, model=SMALL_SVD))
    watcher.wait_for_progress(prompt_id, "train", 1, timeout=900)
    client.interrupt(prompt_id)
    with pytest.raises(ExecutionInterrupted):
        client.wait(prompt_id, timeout=600)
    saved = saved_progress(state)
    assert 1 <= saved["step"] < steps and len(saved["losses"]) == saved["step"]
    assert [p.name for p in state.parent.iterdir() if p.name.startswith(".")] == [], "a temporary file was left"

    # Resuming runs one more step on top of the saved ones.
    client.run(training_prompt(names, "interrupted_run", saved["step"] + 1, model=SMALL_SVD), timeout=900)
    resumed = saved_progress(state)
    assert resumed["step"] == saved["step"] + 1 and resumed["losses"][:saved["step"]] == saved["losses"]


# ------------------------------------------------------------------ saving


ESCAPES = ["../escaped", "/tmp/exvideo_escaped"]


@pytest.mark.parametrize("prefix", ESCAPES)
def test_save_prefix_cannot_leave_the_output_folder(comfy_server, names, prefix):
    outside = [comfy_server.output_dir.parent, pathlib.Path("/tmp")]
    before = {p for folder in outside for p in folder.glob("*escaped*")}
    fails(comfy_server, names, frames_prompt(names, prefix), "ExVideoSaveMP4", "outside the output folder")
    fails(comfy_server, names, extension_save_prompt(names, prefix), "ExVideoSaveExtension",
          "outside the output folder")
    assert {p for folder in outside for p in folder.glob("*escaped*")} == before


@pytest.mark.parametrize("prefix", ESCAPES)
def test_lora_save_prefix_cannot_leave_the_output_folder(comfy_server, names, prefix):
    """The trained run is cached by the server, so only the save runs again."""
    prompt = training_prompt(names, "lora_escape_run", 1, model=SMALL_SVD)
    prompt["save_lora"] = {"class_type": "ExVideoSaveLoRA", "inputs": {
        "lora": ["train", 3], "filename_prefix": prefix, "dtype": "fp16"}}
    before = set(pathlib.Path("/tmp").glob("*escaped*")) | set(comfy_server.output_dir.parent.glob("*escaped*"))
    fails(comfy_server, names, prompt, "ExVideoSaveLoRA", "outside the output folder", timeout=900)
    assert set(pathlib.Path("/tmp").glob("*escaped*")) | set(comfy_server.output_dir.parent.glob("*escaped*")) == before


@pytest.fixture(scope="module")
def small_mounts(comfy_server):
    """A read-only and a full filesystem mounted as output subfolders (tmpfs; needs mount rights, as root has)."""
    base = comfy_server.output_dir / OUT
    readonly, full = base / "readonly", base / "full"
    mounted = []
    try:
        for folder, options in ((readonly, "ro,size=1m"), (full, "size=256k")):
            folder.mkdir(parents=True, exist_ok=True)
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                    capture_output=True, text=True)
            if result.returncode:
                pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): the read-only and full-disk "
                            f"checks need mount rights")
            mounted.append(folder)
        filler = full / "filler.bin"
        with open(filler, "wb", buffering=0) as f:  # fill it to the last byte; unbuffered, so closing cannot fail
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        yield {"readonly": readonly, "full": full, "filler": filler}
    finally:
        for folder in reversed(mounted):
            # Lazy: PyAV keeps a failed MP4 write's (deleted) file open while ComfyUI keeps the exception.
            subprocess.run(["umount", "--lazy", str(folder)], check=False)


@pytest.mark.parametrize("where, expected", [("readonly", "Read-only file system"), ("full", "No space left")])
def test_save_to_a_read_only_or_full_disk(comfy_server, names, small_mounts, where, expected):
    folder = small_mounts[where]
    def files():
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    before = files()
    fails(comfy_server, names, frames_prompt(names, f"{OUT}/{where}/video"), "ExVideoSaveMP4", expected)
    fails(comfy_server, names, extension_save_prompt(names, f"{OUT}/{where}/sub/extension"), "ExVideoSaveExtension",
          expected, "Nothing was written")
    assert files() == before, "a partial or temporary file was left"
