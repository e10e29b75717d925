"""ComfyUI's native TorchCompileModel on an ExVideo-patched MODEL (small random model).

The node (comfy_extras/nodes_torch_compile.py) is `model.clone()` plus
`comfy_api.torch_helpers.set_torch_compile_wrapper(model, backend)`: it
compiles the diffusion model and swaps it in through an APPLY_MODEL wrapper,
while the ExVideo blocks are object patches applied when the clone loads. So
dynamo must trace through our blocks.

The node offers inductor and cudagraphs only; inductor's code generation for
a UNet takes minutes on two CPU cores, so the test calls the node's helper
with dynamo's "eager" backend: the same capture, guards and wrapper, with the
captured graph run by eager aten ops. Tracing the whole UNet still costs about
two CPU minutes; compiling one block instead (the helper's `keys`) is no
check, because ComfyUI's UNet dispatches its layers by isinstance and calls a
compiled SpatialVideoTransformer as a plain layer. benchmarks/unet_step.py
--compile measures the node itself (inductor).
"""

import pytest
import torch
from torch._dynamo.utils import counters

from comfy.ldm.modules.attention import attention_pytorch
from comfy_api.torch_helpers import set_torch_compile_wrapper

from exvideo_core import apply_exvideo, skip_stack
from exvideo_harness.svd_models import apply_model_direct

pytestmark = pytest.mark.usefixtures("unload_after")

FRAMES = 4


def _sdpa(_default, *args, **kwargs):
    return attention_pytorch(*args, **kwargs)


def patched_with_sdpa(base, weights):
    patched = apply_exvideo(base, weights)
    # PyTorch SDPA, as on a GPU: ComfyUI's CPU default (sub-quadratic) asks psutil for free
    # memory at every call, which dynamo cannot trace, so each attention would break the graph.
    patched.model_options["transformer_options"]["optimized_attention_override"] = _sdpa
    return patched


def compiled_output(model) -> torch.Tensor:
    """`model`'s output under the node's compile wrapper (eager backend), dynamo's counters fresh for it."""
    torch._dynamo.reset()
    counters.clear()
    compiled = model.clone()  # what TorchCompileModel.execute does, with another backend
    set_torch_compile_wrapper(model=compiled, backend="eager")
    return apply_model_direct(compiled, FRAMES, wrappers=True)


def test_patched_model_under_torch_compile_is_one_graph_with_the_uncompiled_output(base, weights):
    patched = patched_with_sdpa(base, weights)
    expected = apply_model_direct(patched, FRAMES)
    out = compiled_output(patched)
    assert counters["stats"]["unique_graphs"] == 1, "the patched UNet did not trace as one graph"
    assert not counters["graph_break"], dict(counters["graph_break"])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # The ExVideo blocks were in what ran compiled: without them the output differs.
    assert (expected - apply_model_direct(base, FRAMES)).abs().max() > 1e-2


def test_with_the_skip_stack_in_host_memory_only_its_patches_break_the_graph(base, weights):
    """skip_stack's patches run eagerly (torch.compiler.disable); the compiled rest computes the same."""
    patched = patched_with_sdpa(base, weights)
    expected = apply_model_direct(patched, FRAMES)
    held = patched.clone()
    # A second CPU device object: the stack makes and hands back real copies (see test_skip_stack.py).
    skip_stack.keep_on_host(held.model_options, True, torch.device("cpu", 0))
    out = compiled_output(held)
    reasons = list(counters["graph_break"])
    assert reasons and all("HostSkipStack" in reason for reason in reasons), reasons
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
