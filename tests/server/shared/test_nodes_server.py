"""Pack nodes through the real server: the paths the example workflows don't take, errors, interrupts."""

import json
import shutil
import time

import pytest

from exvideo_core.video_io import read_audio, read_metadata, read_video, write_mp4
from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.comfy_server import ExecutionFailed, ExecutionInterrupted
from exvideo_harness.exvideo_files import FULL, exvideo_checkpoint_path
from exvideo_harness.svd_checkpoint import svd_xt_checkpoint_path

pytestmark = [pytest.mark.server, pytest.mark.full_size]

SIZE, FRAMES = 128, 4


@pytest.fixture(scope="module")
def names(comfy_server, module_scratch):
    install = comfy_server.install_model
    bad = module_scratch / "bad_models"
    bad.mkdir()
    (bad / "random_bytes.safetensors").write_bytes(bytes(range(256)) * 40)
    short = install("exvideo", exvideo_checkpoint_path(TABLE, FULL), f"ExVideo-SVD-{TABLE}f.safetensors")
    return {
        "ckpt": install("checkpoints", svd_xt_checkpoint_path(), "svd_xt.safetensors"),
        "exvideo": short,  # the generation prompt's loader extends its table to 24 rows
        "exvideo_short": short,
        "svd_in_exvideo_slot": install("exvideo", svd_xt_checkpoint_path(), "svd_xt_misplaced.safetensors"),
        "random_bytes": install("exvideo", bad / "random_bytes.safetensors"),
    }


def generation_prompt(names: dict, steps: int = 2, frames: int = FRAMES, prefix: str = "nodes/video") -> dict:
    """LoadImage -> Load ExVideo Extension + Apply ExVideo (weights) -> sampler -> decode -> save."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "exvideo_example.png"}},
        "2": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": names["ckpt"]}},
        "3": {"class_type": "ExVideoLoader", "inputs": {"exvideo_name": names["exvideo"], "frames": 24}},
        "4": {"class_type": "ApplyExVideoWeights", "inputs": {"model": ["2", 0], "exvideo": ["3", 0]}},
        "5": {"class_type": "ExVideoSampler", "inputs": {
            "model": ["4", 0], "clip_vision": ["2", 1], "vae": ["2", 2], "image": ["1", 0],
            "width": SIZE, "height": SIZE, "frames": frames, "fps": 30, "motion_bucket_id": 127,
            "augmentation_level": 0.02, "min_cfg": 2.0, "cfg": 2.0, "steps": steps, "sampler_name": "euler",
            "scheduler": "karras", "seed": 3}},
        "6": {"class_type": "ExVideoTemporalDecode", "inputs": {
            "vae": ["2", 2], "samples": ["5", 0], "window_frames": 3, "overlap_frames": 1}},
        "7": {"class_type": "ExVideoSaveMP4", "inputs": {
            "images": ["6", 0], "fps": 24.0, "filename_prefix": prefix, "contact_sheet": True}},
    }


@pytest.fixture(scope="module")
def sample_image(comfy_server):
    shutil.copy(REPO_ROOT / "example_workflows" / "exvideo_example.png", comfy_server.input_dir)


def test_video_nodes_with_native_ones_audio_and_embedded_workflow(comfy_server, tmp_path):
    """Our Load Video (VideoHelperSuite's options) -> our Save Video with its audio; native Load Video's VIDEO
    -> our Save Video; our VIDEO -> native Save Video. The saved MP4 carries the prompt and the workflow
    the client sent, as native Save Video embeds them."""
    import torch

    source = tmp_path / "clip.mp4"
    wave = torch.sin(torch.arange(16000) / 16000 * 2 * torch.pi * 440)
    write_mp4(torch.rand(10, 64, 96, 3), source, fps=20, audio={"waveform": wave.expand(2, -1)[None].clone(),
                                                                 "sample_rate": 16000})
    shutil.copy(source, comfy_server.input_dir / "clip.mp4")
    prompt = {
        "1": {"class_type": "ExVideoLoadVideo", "inputs": {
            "video": "clip.mp4", "force_rate": 0.0, "custom_width": 48, "custom_height": 0, "frame_load_cap": 0,
            "skip_first_frames": 1, "select_every_nth": 2}},
        "2": {"class_type": "ExVideoSaveMP4", "inputs": {
            "images": ["1", 0], "fps": ["1", 2], "audio": ["1", 3], "filename_prefix": "nodes/reloaded",
            "contact_sheet": False, "codec": "h264", "crf": 23}},
        "3": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
        "4": {"class_type": "ExVideoSaveMP4", "inputs": {
            "images": ["3", 0], "fps": 30.0, "filename_prefix": "nodes/from_native", "contact_sheet": False}},
        "5": {"class_type": "SaveVideo", "inputs": {
            "video": ["1", 4], "filename_prefix": "nodes/native_save", "format": "auto", "codec": "auto"}},
    }
    workflow = {"nodes": [{"id": int(k), "type": v["class_type"]} for k, v in prompt.items()], "links": []}
    outputs = comfy_server.client.run(prompt, timeout=120, extra_data={"extra_pnginfo": {"workflow": workflow}})
    files = {node: comfy_server.output_files({node: ui})[0] for node, ui in outputs.items()}

    frames, fps = read_video(files["2"])
    assert frames.shape == (5, 32, 48, 3) and fps == pytest.approx(10)  # height from the aspect ratio
    assert read_audio(files["2"])["waveform"].shape[1] == 2  # the file's sound passed through
    tags = read_metadata(files["2"])
    # The prompt as the server ran it: ours, plus the 'is_changed' fingerprints it adds to the loaders.
    ran = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in json.loads(tags["prompt"]).items()}
    assert ran == prompt and json.loads(tags["workflow"]) == workflow

    frames, fps = read_video(files["4"])
    assert frames.shape == (10, 64, 96, 3) and fps == pytest.approx(20)  # the VIDEO's own rate, not 30
    assert read_audio(files["4"]) is not None
    frames, fps = read_video(files["5"])
    assert frames.shape == (5, 32, 48, 3) and fps == pytest.approx(10)
    # Native Save Video embeds the same tags in the same way.
    assert json.loads(read_metadata(files["5"])["workflow"]) == workflow


@pytest.mark.parametrize("slot, expected", [
    ("svd_in_exvideo_slot", "full SVD checkpoint"),
    ("random_bytes", "not a valid safetensors file"),
])
def test_wrong_file_in_the_exvideo_slot(comfy_server, names, slot, expected):
    prompt = generation_prompt({**names, "exvideo": names[slot]})
    with pytest.raises(ExecutionFailed) as failed:
        comfy_server.client.run(prompt, timeout=300)
    assert failed.value.node_type == "ExVideoLoader"
    assert expected in failed.value.exception_message


def test_too_many_frames_names_the_table_length(comfy_server, names, sample_image):
    with pytest.raises(ExecutionFailed) as failed:
        comfy_server.client.run(generation_prompt(names, frames=30), timeout=600)
    assert failed.value.node_type == "ExVideoSampler"
    assert "30 latent frames" in failed.value.exception_message and "only 24" in failed.value.exception_message


def test_interrupt_mid_sampling_then_the_next_prompt_runs(comfy_server, names, sample_image):
    """Interrupted while sampling, the server runs the next prompt: loader, Apply ExVideo (weights), sampler,
    decode and save, the video and its contact sheet written whole."""
    client = comfy_server.client
    prompt_id = client.queue_prompt(generation_prompt(names, steps=200, prefix="nodes/interrupted"))
    deadline = time.monotonic() + 600
    # Wait until the sampler itself runs (its first step has been taken).
    while not _sampling(comfy_server, prompt_id):
        assert time.monotonic() < deadline, "sampling never started"
        time.sleep(0.5)
    client.interrupt(prompt_id)
    with pytest.raises(ExecutionInterrupted):
        client.wait(prompt_id, timeout=300)
    outputs = client.run(generation_prompt(names, steps=1, prefix="nodes/after_interrupt"), timeout=900)
    (video,) = comfy_server.output_files(outputs)
    frames, fps = read_video(video)
    assert frames.shape == (FRAMES, SIZE, SIZE, 3) and fps == pytest.approx(24)
    assert video.with_suffix(".png").is_file()


def _sampling(comfy_server, prompt_id: str) -> bool:
    """True once the server log shows the sampler's progress bar for the running prompt."""
    running = comfy_server.client.queue_state()["queue_running"]
    return any(item[1] == prompt_id for item in running) and "1/200" in comfy_server.log_text()


def test_join_clips_node(comfy_server):
    """Two latent clips whose second starts with the first's last 2 frames become one 8-frame video."""
    import safetensors.torch

    prompt = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 6}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 4}},
        "3": {"class_type": "ExVideoJoinLatents", "inputs": {"a": ["1", 0], "b": ["2", 0], "overlap_frames": 2}},
        "4": {"class_type": "SaveLatent", "inputs": {"samples": ["3", 0], "filename_prefix": "nodes/joined"}},
    }
    comfy_server.client.run(prompt, timeout=120)
    (saved,) = (comfy_server.output_dir / "nodes").glob("joined_*.latent")
    assert safetensors.torch.load_file(saved)["latent_tensor"].shape == (8, 4, 8, 8)


# Native context windows on a video longer than the table: the 256 frames in 128-frame windows,
# scaled to an extension of 8 rows (12 frames, two 8-frame windows), one step, cfg 1 (no uncond). Each
# full-size frame costs about two seconds a forward on CI.
TABLE, LONG = 8, 12


def context_window_prompt(names: dict, context_length: int | None = TABLE, frames: int = LONG) -> dict:
    """Native nodes only but for our loader: ... -> Context Windows (Manual) -> SVD conditioning -> KSampler -> latent."""
    model = ["4", 0]
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "exvideo_example.png"}},
        "2": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": names["ckpt"]}},
        "3": {"class_type": "ExVideoLoader", "inputs": {"exvideo_name": names["exvideo_short"], "frames": TABLE}},
        "4": {"class_type": "ApplyExVideoWeights", "inputs": {"model": ["2", 0], "exvideo": ["3", 0]}},
        "6": {"class_type": "SVD_img2vid_Conditioning", "inputs": {
            "clip_vision": ["2", 1], "init_image": ["1", 0], "vae": ["2", 2], "width": SIZE, "height": SIZE,
            "video_frames": frames, "motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}},
        "7": {"class_type": "KSampler", "inputs": {
            "model": model, "seed": 0, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "karras",
            "positive": ["6", 0], "negative": ["6", 1], "latent_image": ["6", 2], "denoise": 1.0}},
        "8": {"class_type": "SaveLatent", "inputs": {"samples": ["7", 0], "filename_prefix": "nodes/windowed"}},
    }
    if context_length is not None:
        prompt["5"] = {"class_type": "ContextWindowsManual", "inputs": {
            "model": ["4", 0], "context_length": context_length, "context_overlap": TABLE // 2,
            "context_schedule": "standard_static", "context_stride": 1, "closed_loop": False,
            "fuse_method": "pyramid", "dim": 0}}
        prompt["7"]["inputs"]["model"] = ["5", 0]
    return prompt


def test_native_context_windows_sample_a_video_longer_than_the_table(comfy_server, names, sample_image):
    import safetensors.torch

    comfy_server.client.run(context_window_prompt(names), timeout=900)
    (saved,) = (comfy_server.output_dir / "nodes").glob("windowed_*.latent")
    samples = safetensors.torch.load_file(saved)["latent_tensor"]
    assert samples.shape == (LONG, 4, SIZE // 8, SIZE // 8) and samples.isfinite().all()
    assert f"Using context windows {TABLE} for {LONG} frames" in comfy_server.log_text()


@pytest.mark.parametrize("context_length, expected", [
    (TABLE + 2, f"context windows are {TABLE + 2} latent frames long (context_length)"),
    (None, f"{LONG} latent frames but"),
])
def test_native_sampler_refuses_a_window_or_video_longer_than_the_table(comfy_server, names, sample_image,
                                                                        context_length, expected):
    with pytest.raises(ExecutionFailed) as failed:
        comfy_server.client.run(context_window_prompt(names, context_length), timeout=600)
    assert failed.value.node_type == "KSampler"
    assert expected in failed.value.exception_message and f"only {TABLE}" in failed.value.exception_message


def small_svd_training(run_name: str, images: list, frames: int, steps: int = 1, mode: str = "lora",
                       learning_rate: float = 1e-4, gradient_checkpointing: bool = False) -> dict:
    """Training Clips of `images` (a link) -> Post-Tune of the harness's small SVD, with the VAE and CLIP
    vision of the checkpoint loader node "2" that the prompts here all have."""
    return {
        "small": {"class_type": "ExVideoHarnessSmallSVD", "inputs": {"seed": 0}},
        "clips": {"class_type": "ExVideoTrainingClips", "inputs": {
            "vae": ["2", 2], "clip_vision": ["2", 1], "video_folder": "(none)", "frames": frames, "width": SIZE,
            "height": SIZE, "frame_stride": 1, "motion_bucket_id": 127, "images": images}},
        "train": {"class_type": "ExVideoTrain", "inputs": {
            "model": ["small", 0], "clips": ["clips", 0], "steps": steps, "mode": mode,
            "learning_rate": learning_rate, "lora_rank": 2, "lora_alpha": 2.0, "grad_accumulation": 1,
            "gradient_checkpointing": gradient_checkpointing, "seed": 0, "run_name": run_name, "resume": False}},
    }


def test_post_tunes_outputs_feed_native_training_nodes(comfy_server, names, sample_image):
    """Post-Tune's loss into Plot Loss Graph; its lora into Save LoRA Weights (the same tensors as Save ExVideo
    LoRA writes) and into Load LoRA Model on the run's extension (the same video as the trained model).

    The wiring does not depend on the UNet's size: it trains and samples the harness's small SVD, with the
    full-size checkpoint's VAE and CLIP vision (the post-tuning template trains the full-size UNet)."""
    import safetensors.torch
    import torch
    from PIL import Image

    run_name = "nodes_native_lora"
    prompt = generation_prompt(names, steps=1, frames=2)
    sampler = prompt.pop("5")
    for key in ("3", "4", "6", "7"):
        del prompt[key]
    prompt.update({
        "frames": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}},
        # Two steps: Plot Loss Graph divides by max - min, zero for a single loss.
        **small_svd_training(run_name, ["frames", 0], frames=2, steps=2, learning_rate=1e-3,
                             gradient_checkpointing=True),
        "plot": {"class_type": "LossGraphNode", "inputs": {"loss": ["train", 2], "filename_prefix": "nodes/loss"}},
        "native_save": {"class_type": "SaveLoRA", "inputs": {"lora": ["train", 3], "prefix": "nodes/native_lora"}},
        "our_save": {"class_type": "ExVideoSaveLoRA", "inputs": {
            "lora": ["train", 3], "filename_prefix": "nodes/our_lora", "dtype": "fp32"}},
        "apply": {"class_type": "ApplyExVideoWeights", "inputs": {"model": ["small", 0], "exvideo": ["train", 1]}},
        "native_load": {"class_type": "LoraModelLoader", "inputs": {
            "model": ["apply", 0], "lora": ["train", 3], "strength_model": 1.0}},
    })
    for name, model in (("loaded", ["native_load", 0]), ("trained", ["train", 0])):
        prompt[f"sample_{name}"] = {**sampler, "inputs": {**sampler["inputs"], "model": model}}
        prompt[f"latent_{name}"] = {"class_type": "SaveLatent", "inputs": {
            "samples": [f"sample_{name}", 0], "filename_prefix": f"nodes/native_{name}"}}
    try:
        outputs = comfy_server.client.run(prompt, timeout=600)
    finally:
        (comfy_server.output_dir / "exvideo_training" / f"{run_name}.state.safetensors").unlink(missing_ok=True)

    (graph,) = comfy_server.output_files({"plot": outputs["plot"]})
    assert Image.open(graph).size == (840, 520)  # Plot Loss Graph's canvas
    nodes = comfy_server.output_dir / "nodes"
    (native,), (ours,) = nodes.glob("native_lora_*.safetensors"), nodes.glob("our_lora_*.safetensors")
    native, ours = safetensors.torch.load_file(native), safetensors.torch.load_file(ours)
    assert set(native) == set(ours) and len(ours) == 16 * 14 * 3
    assert all(torch.equal(native[key], value) for key, value in ours.items())
    loaded, trained = (safetensors.torch.load_file(next(nodes.glob(f"native_{name}_*.latent")))["latent_tensor"]
                       for name in ("loaded", "trained"))
    assert (loaded - trained).abs().max() <= 1e-5 * trained.abs().max()


@pytest.mark.parametrize("consumer, inputs", [
    ("SaveLoRA", {"prefix": "nodes/refused_native_lora"}),
    ("LoraModelLoader", {"model": ["small", 0], "strength_model": 1.0}),
    ("ExVideoSaveLoRA", {"filename_prefix": "nodes/refused_our_lora", "dtype": "fp16"}),
])
def test_full_mode_lora_output_is_refused_by_every_lora_node(comfy_server, names, sample_image, consumer, inputs):
    """Full mode puts every trained tensor in the extension. Its lora output, passed by the server to native Save
    LoRA Weights, native Load LoRA Model or our Save ExVideo LoRA, fails naming full mode and writes nothing (a
    plain {} would have been saved as an empty LoRA). The UNet is the harness's small SVD: full mode at full size
    needs about 20 GB beside the server's model. The server caches the run, so it trains once for the three."""
    run_name = "nodes_full_mode"
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "exvideo_example.png"}},
        "2": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": names["ckpt"]}},
        "frames": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}},
        **small_svd_training(run_name, ["frames", 0], frames=2, mode="full"),
        "consumer": {"class_type": consumer, "inputs": {"lora": ["train", 3], **inputs}},
    }
    if consumer == "LoraModelLoader":  # not an output node: a prompt needs one
        prompt["save"] = {"class_type": "ModelSave", "inputs": {"model": ["consumer", 0],
                                                                "filename_prefix": "nodes/refused_model"}}
    before = sorted(comfy_server.output_dir.rglob("*refused*"))
    with pytest.raises(ExecutionFailed) as failed:
        comfy_server.client.run(prompt, timeout=600)
    assert failed.value.node_type == consumer, failed.value
    assert "trained in full mode" in failed.value.exception_message, failed.value.exception_message
    assert sorted(comfy_server.output_dir.rglob("*refused*")) == before == []
    assert (comfy_server.output_dir / "exvideo_training" / f"{run_name}.state.safetensors").is_file()


def test_native_load_video_feeds_training_clips_refine_and_continue(comfy_server, names, sample_image, tmp_path):
    """Native Load Video's VIDEO into the three nodes that take IMAGE or VIDEO: Training Clips trains on it
    (the harness's small SVD), and the trained model refines it and continues it with it as previous_images."""
    import safetensors.torch
    import torch

    source = tmp_path / "native_in.mp4"
    write_mp4(torch.rand(4, SIZE, SIZE, 3), source, fps=12)
    shutil.copy(source, comfy_server.input_dir / "native_in.mp4")
    sampling = {"fps": 12, "motion_bucket_id": 127, "augmentation_level": 0.0, "min_cfg": 1.0, "cfg": 2.0,
                "steps": 1, "sampler_name": "euler", "scheduler": "karras", "seed": 0}
    encoders = {"model": ["train", 0], "clip_vision": ["2", 1], "vae": ["2", 2]}
    prompt = {
        "video": {"class_type": "LoadVideo", "inputs": {"file": "native_in.mp4"}},
        "2": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": names["ckpt"]}},
        **small_svd_training("nodes_native_video", ["video", 0], frames=4),
        "refine": {"class_type": "ExVideoRefine", "inputs": {
            **encoders, **sampling, "images": ["video", 0], "width": SIZE, "height": SIZE, "denoise": 0.5,
            "diffsynth_latent_scale": False}},
        "continue": {"class_type": "ExVideoContinue", "inputs": {
            **encoders, **sampling, "previous": ["refine", 0], "frames": 3, "overlap_frames": 1,
            "previous_images": ["video", 0]}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["continue", 0],
                                                        "filename_prefix": "nodes/native_video_continued"}},
    }
    try:
        comfy_server.client.run(prompt, timeout=600)
    finally:
        (comfy_server.output_dir / "exvideo_training" / "nodes_native_video.state.safetensors").unlink(missing_ok=True)
    (saved,) = (comfy_server.output_dir / "nodes").glob("native_video_continued_*.latent")
    latent = safetensors.torch.load_file(saved)["latent_tensor"]
    # The 4 refined frames, then the continuation's 3 - 1 new ones.
    assert latent.shape == (6, 4, SIZE // 8, SIZE // 8) and latent.isfinite().all()
