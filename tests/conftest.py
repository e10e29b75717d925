"""Checks that the host ComfyUI, the pack and its harness are importable the way scripts/setup.sh sets them up.

Import paths are set in one place, the venv's `comfyui-exvideo.pth` (written by
scripts/setup.sh): ComfyUI first, so `import nodes` is ComfyUI's nodes.py; the
pack's own node classes are loaded under a fixed name by `exvideo_harness.pack`.
"""

import ctypes
import gc
import pathlib
import subprocess

import pytest
import torch

try:
    import comfy.cli_args
    import exvideo_harness  # noqa: F401
except ImportError as error:
    raise RuntimeError(f"{error}: run the tests with scripts/test.sh (it sets up the venv and its import "
                       "paths), or point COMFYUI_PATH at a ComfyUI and run scripts/setup.sh --test") from error

# ComfyUI picks its device when comfy.model_management is first imported;
# without a GPU it must be told to use the CPU, as `main.py --cpu` would.
if not torch.cuda.is_available():
    comfy.cli_args.args.cpu = True

# The harness imports comfy.model_management: only after the device is chosen.
from exvideo_core import load_exvideo  # noqa: E402
from exvideo_harness.cache import empty_scratch  # noqa: E402
from exvideo_harness.clip_vision import StubClipVision  # noqa: E402
from exvideo_harness.exvideo_files import SMALL, random_exvideo_state_dict  # noqa: E402
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, build_svd_model  # noqa: E402
from exvideo_harness.svd_vae import build_svd_vae, window_dependent_decode  # noqa: E402

# Frames of the shared extensions' position tables.
N = 32


@pytest.fixture(autouse=True, scope="module")
def _release_models_after_module():
    """Full-size modules load several GB in-process; the next module must start without them.

    ComfyUI keeps every model it loaded in its model-management list until
    unloaded, and glibc keeps freed heap pages unless trimmed.
    """
    yield
    import comfy.model_management

    comfy.model_management.unload_all_models()
    gc.collect()
    comfy.model_management.soft_empty_cache()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


@pytest.fixture(scope="module")
def module_scratch(tmp_path_factory, request) -> pathlib.Path:
    """A folder for the files one module's tests share, emptied (all but *.log) when the module ends."""
    root = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    yield root
    empty_scratch(root)


# The small random models and extensions the tests share; a module that needs
# another variant defines its own fixture of the same name.


@pytest.fixture(scope="module")
def base():
    """The small random SVD MODEL (seed 0)."""
    return build_svd_model(SMALL_UNET_CONFIG, seed=0)


@pytest.fixture(scope="module")
def weights():
    return load_exvideo(random_exvideo_state_dict(N, seed=1, **SMALL))


@pytest.fixture(scope="module")
def other_weights():
    return load_exvideo(random_exvideo_state_dict(N, seed=2, **SMALL))


@pytest.fixture(scope="module")
def vae():
    """A small random SVD VAE with the temporal decoder."""
    return build_svd_vae(seed=0, channels=32)


@pytest.fixture
def decoder_calls(vae, monkeypatch):
    """Replaces `vae`'s decoder by `window_dependent_decode` and records the shape of each call."""
    calls = []

    def decode(z):
        calls.append(tuple(z.shape))
        return window_dependent_decode(z)

    monkeypatch.setattr(vae.first_stage_model, "decode", decode)
    return calls


@pytest.fixture
def clip_vision():
    return StubClipVision()


@pytest.fixture
def unload_after():
    """Models a test loaded are unloaded after it (`pytestmark = pytest.mark.usefixtures("unload_after")`)."""
    yield
    import comfy.model_management

    comfy.model_management.unload_all_models()


@pytest.fixture
def tmpfs(tmp_path):
    """mount(options) -> a fresh tmpfs folder; skips when this process may not mount."""
    mounted = []

    def mount(options: str):
        folder = tmp_path / f"mount{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)
