"""ExVideo's positional conv under ComfyUI's NVIDIA conv3d workaround, simulated on the CPU.

With `comfy.ops.NVIDIA_MEMORY_CONV_BUG_WORKAROUND` set (cuDNN 9.10.2-9.14,
torch 2.9-2.10), every fp16/bf16 `Conv3d` of ComfyUI's ops runs
`torch.cudnn_convolution(input, weight, self.padding, ...)`, which zero-pads
whatever `padding_mode` says. Here the flag is set and `cudnn_convolution` is
replaced by the zero-padded `F.conv3d` it computes, so the host path runs on
any machine.
"""

import contextlib

import pytest
import torch
import torch.nn.functional as F

import comfy.ops

from exvideo_core import apply_exvideo
from exvideo_core.layout import MODEL_PREFIX, TEMPORAL_BLOCKS
from exvideo_core.temporal_block import positional_conv
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, apply_model_direct, build_svd_model

FRAMES = 4


class ZeroPaddedCudnnConvolution:
    """What `torch.cudnn_convolution` computes (no bias: ComfyUI adds it after), counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, input, weight, padding, stride, dilation, groups, benchmark=False, deterministic=False,
                 allow_tf32=True):
        self.calls += 1
        return F.conv3d(input, weight, None, stride, padding, dilation, groups)


@contextlib.contextmanager
def nvidia_conv_workaround():
    cudnn = ZeroPaddedCudnnConvolution()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(comfy.ops, "NVIDIA_MEMORY_CONV_BUG_WORKAROUND", True)
        patch.setattr(torch, "cudnn_convolution", cudnn)
        yield cudnn


def with_and_without_workaround(model) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The model's output without and with the workaround, and how many convs took the workaround's path."""
    without = apply_model_direct(model, FRAMES).float()
    with nvidia_conv_workaround() as cudnn:
        with_workaround = apply_model_direct(model, FRAMES).float()
    return without, with_workaround, cudnn.calls


@pytest.fixture(scope="module")
def bf16_base():
    return build_svd_model(SMALL_UNET_CONFIG, seed=0, dtype=torch.bfloat16)


def test_simulated_workaround_drops_reflect_padding_of_a_plain_conv():
    """The simulation reaches the host's code path: a plain reflect-padded ComfyUI conv loses its padding."""
    conv = comfy.ops.manual_cast.Conv3d(8, 8, kernel_size=3, padding=1, padding_mode="reflect", dtype=torch.bfloat16)
    # ComfyUI's ops skip initialisation.
    torch.nn.init.normal_(conv.weight, generator=torch.Generator().manual_seed(0))
    torch.nn.init.zeros_(conv.bias)
    x = torch.randn(1, 8, 4, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.bfloat16)
    with torch.no_grad():
        reflect = conv(x).float()
        with nvidia_conv_workaround() as cudnn:
            zero_padded = conv(x).float()
    assert cudnn.calls == 1
    assert (zero_padded - reflect).abs().max() > 0.1 * reflect.abs().max()


def test_patched_model_is_unchanged_by_the_workaround(bf16_base, weights):
    """ExVideo's output changes no more than the unpatched model's own rounding under the workaround."""
    patched = apply_exvideo(bf16_base, weights)
    # The extension's convs are the identity plus small noise, so padding barely shows. Noise of
    # variance 1/fan-in makes each border voxel's output depend on its padding as much as on itself.
    g = torch.Generator().manual_seed(3)
    for block in TEMPORAL_BLOCKS:
        # The clone's other object patches (chunked ResBlocks, memory_required) hold no positional conv.
        conv = patched.object_patches[MODEL_PREFIX + block.comfy_name].time_pos_conv
        assert conv.weight.dtype == torch.bfloat16
        noise = torch.randn(conv.weight.shape, generator=g) / conv.weight[0].numel() ** 0.5
        with torch.no_grad():
            conv.weight.add_(noise.to(conv.weight.dtype))

    base_without, base_with, base_calls = with_and_without_workaround(bf16_base)
    ours_without, ours_with, ours_calls = with_and_without_workaround(patched)
    assert base_calls > 0 and ours_calls == base_calls + len(TEMPORAL_BLOCKS)  # so did every positional conv

    scale = ours_without.abs().max()
    base_change = (base_with - base_without).abs().max()
    ours_change = (ours_with - ours_without).abs().max()
    # The workaround adds the bias after the conv, a second bf16 rounding: all it may change, in both models.
    assert ours_change <= 2 * base_change + 2 ** -8 * scale, (ours_change, base_change, scale)


@pytest.mark.parametrize("weight_dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("workaround", [False, True])
def test_positional_conv_is_reflect_padded_with_any_weight_dtype(weight_dtype, workaround):
    """bf16 activations with bf16 or fp32 weights (post-tuning's masters), forward and backward."""
    channels = 8
    g = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(channels, channels, 3, 3, 3, generator=g), torch.randn(channels, generator=g)
    # What torch's Conv3d(padding_mode="reflect") computes, in fp32 (functional: comfy-test bans raw layers).
    reference_weight, reference_bias = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    conv = positional_conv(channels, weight, bias, dtype=weight_dtype)
    conv.weight.requires_grad_(True)
    conv.bias.requires_grad_(True)
    assert sorted(conv.state_dict()) == ["bias", "weight"]

    x = torch.randn(2, channels, 3, 4, 5, generator=g)
    with nvidia_conv_workaround() if workaround else contextlib.nullcontext():
        out = conv(x.to(torch.bfloat16))
    expected = F.conv3d(F.pad(x, (1,) * 6, mode="reflect"), reference_weight, reference_bias)
    assert out.dtype == torch.bfloat16 and out.shape == expected.shape
    assert (out.float() - expected).abs().max() < 0.05 * expected.abs().max()

    out.float().square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().max() > 0
    assert conv.bias.grad is not None and conv.bias.grad.abs().max() > 0
    # Reflected borders feed the weight gradient too, so it must match the fp32 reference's.
    expected.square().sum().backward()
    grad_error = (conv.weight.grad.float() - reference_weight.grad).abs().max()
    assert grad_error < 0.05 * reference_weight.grad.abs().max()
