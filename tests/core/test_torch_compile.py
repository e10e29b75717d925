"""ComfyUI's native TorchCompileModel on an ExVideo-patched MODEL (small random model).

The node (comfy_extras/nodes_torch_compile.py) is `model.clone()` plus
`comfy_api.torch_helpers.set_torch_compile_wrapper(model, backend)`: it
compiles the diffusion model and swaps it in through an APPLY_MODEL wrapper,
while the ExVideo blocks are object patches applied when the clone loads. So
dynamo must trace through our blocks.

The node offers inductor and cudagraphs only; inductor's code generation for
a UNet takes minutes on two CPU cores (more than the whole suite can spend),
so the test calls the node's helper with dynamo's "eager" backend: the same
capture, guards and wrapper, with the captured graph run by eager aten ops,
so compiled equals uncompiled (to fp32 rounding). benchmarks/unet_step.py --compile
measures the node itself (inductor).
"""

import pytest
import torch
from torch._dynamo.utils import counters

from comfy_api.torch_helpers import set_torch_compile_wrapper

from exvideo_core import apply_exvideo
from exvideo_harness.svd_models import apply_model_direct

pytestmark = pytest.mark.usefixtures("unload_after")

FRAMES = 4


def _compiled(model):
    compiled = model.clone()  # what TorchCompileModel.execute does, with another backend
    set_torch_compile_wrapper(model=compiled, backend="eager")
    return compiled


def test_patched_model_under_torch_compile_computes_the_uncompiled_output(base, weights):
    # Apply ExVideo -> TorchCompileModel, the order of a workflow. The other order
    # compiles the same way (lazily, at the first call, with the patches applied)
    # but would trace the UNet a second time.
    torch._dynamo.reset()
    counters.clear()
    patched = apply_exvideo(base, weights)
    expected = apply_model_direct(patched, FRAMES)
    out = apply_model_direct(_compiled(patched), FRAMES, wrappers=True)
    assert counters["stats"]["unique_graphs"] > 0, "nothing was compiled"
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # The ExVideo blocks ran inside the compiled model: without them the output differs.
    assert (expected - apply_model_direct(base, FRAMES)).abs().max() > 1e-2
