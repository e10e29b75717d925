"""The memory model of the frame-chunked forward: what the patched MODEL tells ComfyUI it needs.

With C = model_channels base channels, s bytes a value, N = batch x frames x
latent pixels (tokens) and N_K the tokens of one chunk, the activation peak
above the weights is about

    s * C * (HELD_COPIES * N + CHUNK_COPIES * min(N_K, N))

(docs/memory.md has the measurements against it). The skip stack kept in
host memory (skip_stack.py) takes its copies out of the held part.
"""

from __future__ import annotations

import math
from typing import Callable

import comfy.model_management

from .chunk_policy import AUTO_CHUNK_TOKENS
from .unet_map import skip_copies

# The memory model of the forward (docs/memory.md), in copies of a level-0
# feature map (model_channels values a token, a token being one frame's
# latent pixel), dtype-sized: what stays alive across the whole forward, per
# token of the batch (the skip stack, about 4.5 copies at SVD's widths, a
# layer's input and output, the level-0 concatenation of the decoder), and
# what one chunk adds while it runs, per token of the chunk (the GEGLU's 8x
# projection and its two 4x halves, attention, norms). Counted from the
# layers' shapes, not yet fitted: benchmarks/unet_memory.py measures the
# full-size peaks to check them against (docs/memory.md). With the skip stack
# in host memory its copies (unet_map.skip_copies) leave the held part.
HELD_COPIES = 12
CHUNK_COPIES = 24


def activation_bytes(tokens: int, chunk_tokens: int, model_channels: int, dtype_size: int,
                     host_copies: float = 0.0) -> int:
    """Predicted activation peak of one forward over `tokens` (b t h w at the latent) in chunks of `chunk_tokens`.

    host_copies: held copies kept in host memory instead (the skip stack).
    """
    held = (HELD_COPIES - host_copies) * tokens
    return int(dtype_size * model_channels * (held + CHUNK_COPIES * min(chunk_tokens, tokens)))


def memory_required(base_model, frame_chunk: int | None, skips_on_host: bool = False) -> Callable:
    """The clone's `BaseModel.memory_required` (an object patch): the chunked forward's `activation_bytes`.

    Same signature and dtype rule as ComfyUI's, which for SVD reserves
    about 0.02 MiB a token and dtype byte, several times what the chunked
    forward holds; reserving that would keep cond and uncond from batching
    (ComfyUI batches them when 1.5x the estimate is free). The attention
    backends size their own query chunks to the free memory, so they are not
    counted apart.
    """
    model_channels = base_model.diffusion_model.model_channels
    host_copies = skip_copies(base_model.diffusion_model) if skips_on_host else 0.0

    def required(input_shape, cond_shapes={}):
        dtype = base_model.manual_cast_dtype or base_model.get_dtype()
        pixels = math.prod(input_shape[2:])
        tokens = input_shape[0] * pixels
        if frame_chunk == 0:
            chunk_tokens = tokens
        elif frame_chunk is None:
            chunk_tokens = AUTO_CHUNK_TOKENS
        else:
            chunk_tokens = frame_chunk * pixels
        return activation_bytes(tokens, chunk_tokens, model_channels, comfy.model_management.dtype_size(dtype),
                                host_copies)

    return required
