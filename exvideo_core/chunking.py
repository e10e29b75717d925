"""The chunks of the frame-chunked forward: memory that stops growing with the transients.

The UNet runs all `(b t)` frames of a video through every layer at once, so
its widest transients (the GEGLU projections, 8x the channels, and the
attention) scale with the frame count. Most layers do not need the clip:

- per-frame layers (spatial ResBlocks, spatial attention and feed-forwards,
  GroupNorms over (c h w) of one frame, projections) treat each `(b t)` row
  on its own, so they run over chunks of K frames, exactly;
- cross-frame layers (the temporal transformer, tokens `(b h w) t c`) treat
  each spatial position on its own, so they run over chunks of positions
  holding K frames' worth of tokens; ExVideo's 3x3x3 positional conv reads a
  1-row halo on each side of its chunk, cut from the once-padded clip;
- the temporal ResBlock (`VideoResBlock.time_stack`) normalises over the
  whole clip, so it stays whole: it holds no channel expansion and its
  transients are a few copies of its input.

What stays O(T) is each layer's input and output, the UNet's skip stack and
a few level copies; the transients are O(K). The blocks own their one
forward each (`ExVideoVideoTransformer`, `ExVideoVideoResBlock`) and ask
this module only for their chunks: running whole is the one-chunk case.
How large a chunk is: chunk_policy.py; what it saves: memory_model.py.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch


def map_frames(fn: Callable[..., torch.Tensor], chunk: int, x: torch.Tensor, *per_frame) -> torch.Tensor:
    """fn over chunks of `chunk` rows of x (and of each per-frame tensor with x's leading size), concatenated.

    One chunk is a plain call. Otherwise the output is allocated once and
    filled, so no chunk list and concatenated copy exist together.
    """
    rows = x.shape[0]
    if chunk >= rows:
        return fn(x, *per_frame)
    out = None
    for start in range(0, rows, chunk):
        part = slice(start, min(start + chunk, rows))
        args = [a[part] if a is not None and a.shape[0] == rows else a for a in per_frame]
        y = fn(x[part], *args)
        if out is None:
            out = y.new_empty((rows, *y.shape[1:]))
        out[part] = y
        del y
    return out


def position_chunks(videos: int, height: int, rows_per_chunk: int) -> Iterator[tuple[slice, slice]]:
    """(videos, rows) of each chunk of a cross-frame layer's positions, in order.

    A chunk of at least a whole frame's rows takes as many whole videos as
    fit; a smaller one takes rows of one video.
    """
    if rows_per_chunk >= height:
        per_chunk = max(1, rows_per_chunk // height)
        for first in range(0, videos, per_chunk):
            yield slice(first, min(first + per_chunk, videos)), slice(0, height)
        return
    for video in range(videos):
        for top in range(0, height, rows_per_chunk):
            yield slice(video, video + 1), slice(top, min(top + rows_per_chunk, height))
