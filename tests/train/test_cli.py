"""`python -m exvideo_core.train`: the config file, resuming, and data parallelism under torchrun on gloo.

The distributed runs use `exvideo_harness/train_cli_small.py`, the real CLI on the
small SVD; the last test runs `python -m exvideo_core.train` itself on the
full-size random SVD-XT checkpoint.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import torch

from exvideo_core import load_exvideo, safetensors_io
from exvideo_core.train import TrainConfigError, load_state
from exvideo_core.train.cli import load_run_config
from exvideo_core.train.dataset import MEASURE_MOTION
from exvideo_core.train.lora import REQUIRES, extension_fingerprint
from exvideo_core.video_io import write_mp4
from exvideo_harness.cache import REPO_ROOT
from exvideo_harness.train_data import moving_square_video

SMALL_CLI = REPO_ROOT / "scripts" / "exvideo_harness" / "train_cli_small.py"
TRAIN = {"steps": 2, "learning_rate": 1e-3, "gradient_checkpointing": False, "seed": 3}


@pytest.fixture(scope="module")
def videos(module_scratch):
    folder = module_scratch / "videos"
    folder.mkdir()
    write_mp4(moving_square_video(16), folder / "square.mp4", fps=30, crf=0)
    write_mp4(moving_square_video(16).flip(2), folder / "square_reversed.mp4", fps=30, crf=0)
    return folder


def write_config(folder: pathlib.Path, videos: pathlib.Path, checkpoint="svd.safetensors", data=None, **train):
    folder.mkdir(parents=True, exist_ok=True)
    settings = {**TRAIN, **train}
    data = {"frames": 8, "width": 128, "height": 128, **(data or {})}
    lines = ["[model]", f'checkpoint = "{checkpoint}"', "[data]", f'videos = "{videos}"',
             *(f"{k} = {_toml(v)}" for k, v in data.items()),
             "[train]", *(f"{k} = {_toml(v)}" for k, v in settings.items()),
             "[output]", 'dir = "run"']
    path = folder / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, str) else str(value)


def run_cli(args: list[str], launcher: list[str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "COMFYUI_PATH": os.environ.get("COMFYUI_PATH", str(REPO_ROOT / ".comfyui")),
           "OMP_NUM_THREADS": "1"}
    command = [*(launcher or [sys.executable]), *args]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return done


def torchrun(processes: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]


# ---------------------------------------------------------------- the config file


def test_config_paths_are_relative_to_the_file_and_defaults_fill_in(tmp_path, videos):
    run = load_run_config(write_config(tmp_path, videos, data={"frame_stride": 2}))
    assert run.checkpoint == tmp_path / "svd.safetensors" and run.output == tmp_path / "run"
    assert run.videos == videos and run.data["frame_stride"] == 2 and run.data["clips_per_video"] == 1
    assert run.train.steps == 2 and run.train.mode == "full" and run.layout == "diffsynth"


def test_motion_bucket_id_measures_by_default_and_0_is_bucket_0(tmp_path, videos):
    """As in ExVideo Training Clips: one sentinel measures each clip's motion, and 0 is the samplers' bucket 0."""
    assert load_run_config(write_config(tmp_path / "a", videos)).data["motion_bucket_id"] == MEASURE_MOTION
    fixed = load_run_config(write_config(tmp_path / "b", videos, data={"motion_bucket_id": 0}))
    assert fixed.data["motion_bucket_id"] == 0


def test_the_clip_cache_is_named_after_the_data_settings(tmp_path, videos):
    checkpoint = str(tmp_path / "svd.safetensors")
    one = load_run_config(write_config(tmp_path / "a", videos, checkpoint)).cache_path.name
    same = load_run_config(write_config(tmp_path / "b", videos, checkpoint, steps=9)).cache_path.name
    other = load_run_config(write_config(tmp_path / "c", videos, checkpoint, data={"width": 256})).cache_path.name
    assert one == same != other


def test_the_clip_cache_is_named_after_the_videos_and_the_checkpoint_on_disk(tmp_path, videos):
    """Adding, rewriting or removing a video, or replacing the checkpoint, in place, encodes the clips again."""
    folder, checkpoint = tmp_path / "videos", tmp_path / "svd.safetensors"
    shutil.copytree(videos, folder)
    checkpoint.write_bytes(b"one")
    config = write_config(tmp_path / "run", folder, str(checkpoint))
    names = [load_run_config(config).cache_path.name]
    write_mp4(moving_square_video(12), folder / "added.mp4", fps=30, crf=0)
    names.append(load_run_config(config).cache_path.name)
    write_mp4(moving_square_video(10), folder / "added.mp4", fps=30, crf=0)
    names.append(load_run_config(config).cache_path.name)
    (folder / "added.mp4").unlink()
    names.append(load_run_config(config).cache_path.name)
    checkpoint.write_bytes(b"other")
    names.append(load_run_config(config).cache_path.name)
    assert len(set(names[:3])) == 3 and names[3] == names[0] and names[4] != names[0], names


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("[output]", "[output]\nlayuot = 'comfyui'"), r"unknown setting\(s\) \['layuot'\]"),
    (lambda text: text.replace("steps = 2", "stepz = 2"), r"\['stepz'\] in \[train\]"),
    (lambda text: text.replace("learning_rate = 0.001", "learning_rate = 7.0"), "learning_rate must be in"),
    (lambda text: text.replace('dir = "run"', ""), r"needs \[output\] dir"),
    (lambda text: text.replace("width = 128", "width = 64"), r"at least 128 .*got 64x128"),
    (lambda text: text.replace("[data]", "[data\n"), "not valid TOML"),
])
def test_bad_config_files_name_the_setting(tmp_path, videos, edit, message):
    path = write_config(tmp_path, videos)
    path.write_text(edit(path.read_text()))
    with pytest.raises(TrainConfigError, match=message):
        load_run_config(path)


# ---------------------------------------------------------------- runs on the small SVD


@pytest.fixture(scope="module")
def single(module_scratch, videos):
    """One process, two clips per step: the same global batch as two processes with one clip each."""
    folder = module_scratch / "single"
    folder.mkdir()
    done = run_cli([str(SMALL_CLI), "--cpu", "--config", str(write_config(folder, videos, grad_accumulation=2))])
    return folder / "run", done


@pytest.fixture(scope="module")
def two_processes(module_scratch, videos):
    folder = module_scratch / "ddp"
    folder.mkdir()
    config = write_config(folder, videos, grad_accumulation=1)
    done = run_cli([str(SMALL_CLI), "--cpu", "--config", str(config)], launcher=torchrun(2))
    return folder / "run", done


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(single, two_processes):
    (one_dir, _), (two_dir, _) = single, two_processes
    one, two = load_state(one_dir / "state.safetensors"), load_state(two_dir / "state.safetensors")
    assert one.step == two.step == 2
    assert two.losses == pytest.approx(one.losses, rel=1e-5)
    trained_one = load_exvideo(one_dir / "exvideo.safetensors").tensors
    trained_two = load_exvideo(two_dir / "exvideo.safetensors").tensors
    for key, value in trained_one.items():
        # Gradients are summed in another order; AdamW's first steps are about lr * sign(grad), so an
        # element whose gradient is ~0 may move by up to 2 * lr * steps differently.
        torch.testing.assert_close(trained_two[key], value, rtol=0, atol=4e-3)
    close = sum(torch.allclose(trained_two[k], v, rtol=1e-4, atol=1e-6) for k, v in trained_one.items())
    assert close / len(trained_one) > 0.95


def test_processes_stay_identical_and_only_process_0_writes(two_processes):
    run_dir, done = two_processes
    assert "2 process(es) hold identical tensors" in done.stderr
    writers = set(re.findall(r"rank (\d+) wrote", done.stderr))
    assert writers == {"0"}, done.stderr[-2000:]
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("clips-")) == [
        "exvideo.safetensors", "state.safetensors"]


def test_running_the_same_command_again_resumes_and_trains_on(single, tmp_path):
    run_dir, _ = single
    config = run_dir.parent / "run.toml"
    done = run_cli([str(SMALL_CLI), "--cpu", "--config", str(config), "--steps", "3"])
    assert "resuming" in done.stderr and load_state(run_dir / "state.safetensors").step == 3
    assert "encoding training clips" not in done.stderr  # the cache is reused


def test_resuming_with_other_settings_is_refused(single):
    run_dir, _ = single
    config = run_dir.parent / "run.toml"
    config.write_text(config.read_text().replace("seed = 3", "seed = 4"))
    env = {**os.environ, "COMFYUI_PATH": os.environ.get("COMFYUI_PATH", str(REPO_ROOT / ".comfyui"))}
    done = subprocess.run([sys.executable, str(SMALL_CLI), "--cpu", "--config", str(config)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    assert "other settings (seed" in done.stderr and "another [output] dir" in done.stderr


# ---------------------------------------------------------------- the real command


def run_module(config: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COMFYUI_PATH": os.environ.get("COMFYUI_PATH", str(REPO_ROOT / ".comfyui"))}
    return subprocess.run([sys.executable, "-m", "exvideo_core.train", "--cpu", "--config", str(config), *extra],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)


def test_a_file_comfyui_cannot_load_is_named(tmp_path, videos):
    (tmp_path / "svd.safetensors").write_bytes(bytes(range(256)) * 64)
    done = run_module(write_config(tmp_path, videos))
    assert done.returncode == 1
    assert "error: svd.safetensors is not a checkpoint ComfyUI can load" in done.stderr
    assert not (tmp_path / "run" / "state.safetensors").exists()


@pytest.mark.full_size
def test_python_m_exvideo_core_train_post_tunes_the_svd_xt_checkpoint(tmp_path, videos):
    from exvideo_harness.svd_checkpoint import svd_xt_checkpoint_path

    config = write_config(tmp_path, videos, str(svd_xt_checkpoint_path()), data={"frames": 2},
                          steps=1, mode="lora", lora_rank=4, gradient_checkpointing=True)
    done = run_module(config)
    assert done.returncode == 0, done.stderr[-4000:]
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("clips-")) == [
        "exvideo.safetensors", "lora.safetensors", "state.safetensors"]
    assert load_exvideo(run_dir / "exvideo.safetensors").num_frames == 2
    lora, metadata = safetensors_io.load(run_dir / "lora.safetensors")
    # The Post-Tune node's schema (lora.save_lora): what it belongs on, and that extension's fingerprint.
    assert metadata["exvideo.requires"] == REQUIRES and "exvideo.apply_after" not in metadata
    assert metadata["exvideo.extension_fingerprint"] == extension_fingerprint(
        load_exvideo(run_dir / "exvideo.safetensors"))
    assert lora and all(key.startswith("diffusion_model.") for key in lora)
    assert load_state(run_dir / "state.safetensors").step == 1


def test_the_documented_example_config_is_valid(tmp_path):
    readme = (REPO_ROOT / "docs" / "post-tuning.md").read_text()
    (example,) = re.findall(r"```toml\n(# run\.toml.*?)```", readme, flags=re.S)
    path = tmp_path / "run.toml"
    path.write_text(example)
    run = load_run_config(path)
    assert run.train.steps == 2000 and run.data["frames"] == 128 and run.output == tmp_path / "runs/my_extension"
