"""Host code the pack reproduces or relies on, pinned to the ComfyUI source it follows.

Each pin names a host function, the ComfyUI version whose source our code
follows, a fingerprint of that source and what to re-check when it changes.
The fingerprint hashes the function's syntax tree, so comments and layout do
not count, and a newer ComfyUI whose function is the same passes. A ComfyUI
update that changes one of them fails here, naming it, instead of leaving
our copy silently computing the old block (other packs died that way:
ComfyUI #5355, #12134, #13136).
"""

import ast
import dataclasses
import hashlib
import importlib
import inspect
import textwrap

import pytest

import comfyui_version

FOLLOWED_VERSION = "0.3.75"


@dataclasses.dataclass(frozen=True)
class HostPin:
    module: str
    qualname: str
    fingerprint: str  # of FOLLOWED_VERSION's source
    recheck: str  # ours that follows it, and what to compare

    def function(self):
        target = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            target = getattr(target, part)
        return target


PINS = [
    HostPin("comfy.ldm.modules.attention", "SpatialVideoTransformer.forward", "88f5db770b6da4d2",
            "exvideo_core/temporal_block.py ExVideoVideoTransformer.forward reproduces it with the position table "
            "and conv added: compare the spatial block, time context, time_pos_embed, time_stack and time_mixer "
            "steps"),
    HostPin("comfy.ldm.modules.diffusionmodules.openaimodel", "VideoResBlock.forward", "09e4bbfe5940be0d",
            "exvideo_core/video_resblock.py ExVideoVideoResBlock.forward copies its tail after the spatial "
            "ResBlock"),
    HostPin("comfy.ldm.modules.diffusionmodules.openaimodel", "forward_timestep_embed", "380056dc4e565efb",
            "the arguments our VideoResBlock and SpatialVideoTransformer replacements are called with "
            "(num_video_frames, image_only_indicator, time_context, transformer_options)"),
    HostPin("comfy.ldm.modules.diffusionmodules.openaimodel", "UNetModel._forward", "c5d255b09fc9d77e",
            "exvideo_core/skip_stack.py relies on where input_block_patch, input_block_patch_after_skip and "
            "output_block_patch run around the skip stack's push and pop; exvideo_core/deep_cache.py "
            "shallow_forward copies its embedding, patches and block loop for the shallow blocks"),
    HostPin("comfy.context_windows", "IndexListContextHandler.set_step", "e2c5ea8b8ed5ad3e",
            "exvideo_core/context_windows.py SvdFrameWindows.set_step replaces it for SVD's per-frame timesteps "
            "(and host_reads_svd_steps decides whether the replacement is still needed)"),
]


def fingerprint(function) -> str:
    return source_fingerprint(inspect.getsource(function))


def source_fingerprint(source: str) -> str:
    return hashlib.sha256(ast.dump(ast.parse(textwrap.dedent(source))).encode()).hexdigest()[:16]


@pytest.mark.parametrize("pin", PINS, ids=lambda pin: pin.qualname)
def test_host_source_is_the_one_followed(pin):
    found = fingerprint(pin.function())
    assert found == pin.fingerprint, (
        f"ComfyUI {comfyui_version.__version__}'s {pin.module}.{pin.qualname} differs from the "
        f"{FOLLOWED_VERSION} source the pack follows (fingerprint {found}, pinned {pin.fingerprint}). "
        f"Re-check {pin.recheck}; then pin the new fingerprint and version here.")


def test_the_fingerprint_ignores_comments_and_layout_but_not_code():
    original = "def f(x):\n    return x + 1\n"
    commented = "    def f(x):\n        # why, not what\n        return (x\n                + 1)\n"
    changed = "def f(x):\n    return x + 2\n"
    assert source_fingerprint(commented) == source_fingerprint(original)
    assert source_fingerprint(changed) != source_fingerprint(original)
