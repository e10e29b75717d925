"""How many frames a chunk of the frame-chunked forward holds: the one rule for `frame_chunk`.

`frame_chunk` (the Apply nodes' input, `apply_exvideo`'s argument) is None
for automatic, 0 for unchunked, or K frames' worth of the latent's tokens a
chunk; a layer's chunk follows from it and the layer's UNet level.
"""

from __future__ import annotations

from .errors import InputError

# frame_chunk=None picks K per UNet level so that a chunk holds about this
# many tokens (8 frames of a 512x512 video's level 0, 64x64 latents): the
# level-0 GEGLU transient of one chunk is then 8 * 4096 tokens x 2560 channels,
# about 170 MB in fp16, whatever the length. Deeper levels (4x, 16x, 64x fewer
# tokens a frame) get longer chunks, and small videos (a 16x16 latent: 128
# frames a chunk) run unchunked, where splitting would only cost kernel
# launches. Chunking pays where T * h * w exceeds this, which is where
# activation memory, not weights, sets the peak.
AUTO_CHUNK_TOKENS = 8 * 64 * 64


def check_frame_chunk(frame_chunk) -> None:
    """Refuses anything but None (automatic), 0 (unchunked) or a positive frame count."""
    if frame_chunk is None:
        return
    if isinstance(frame_chunk, bool) or not isinstance(frame_chunk, int) or frame_chunk < 0:
        raise InputError(f"frame_chunk must be a whole number of frames >= 0 (0 runs all frames at once) or "
                         f"None for automatic, got {frame_chunk!r}")


def chunk_frames(frame_chunk: int | None, level: int, rows: int, h: int, w: int) -> int:
    """Frames per chunk for a layer at UNet `level` with `rows` = (b t) frames of h x w tokens; 0: run it whole.

    K frames means K frames' worth of the latent's tokens: a level with h and
    w halved `level` times takes 4**level times as many frames a chunk, so deep
    levels (a few tokens a frame) do not split into launches of nothing.
    """
    if frame_chunk is None:
        chunk = max(1, AUTO_CHUNK_TOKENS // (h * w))
    else:
        chunk = frame_chunk * 4 ** level
    return chunk if 0 < chunk < rows else 0
