"""ExVideo's frame positions: the ping-pong ids and the table they initialise.

SVD was trained on 25 frames, so its frame embedding has only seen positions
0..24. ExVideo gives each of N frames a trainable row, initialised with SVD's
own sinusoid at a position that bounces inside the trained range:
0..24, 23..4, 5..24, 23..4, ... (DiffSynth's `PositionalID`, max_id 25,
repeat_length 20).
"""

import torch

from comfy.ldm.modules.diffusionmodules.util import timestep_embedding

from .errors import FrameCountError

SVD_FRAMES = 25
REPEAT_LENGTH = 20


def ping_pong_position(frame: int, max_id: int = SVD_FRAMES, repeat_length: int = REPEAT_LENGTH) -> int:
    if frame < max_id:
        return frame
    phase = (frame - max_id) % (2 * repeat_length)
    if phase < repeat_length:
        return max_id - 2 - phase
    return max_id - 2 * repeat_length + phase


def ping_pong_positions(num_frames: int, start: int = 0) -> torch.Tensor:
    """Position ids of frames `start .. num_frames-1`, shape (t,)."""
    return torch.tensor([ping_pong_position(f) for f in range(start, num_frames)], dtype=torch.long)


def initial_table(num_frames: int, channels: int, start: int = 0) -> torch.Tensor:
    """Rows `start..num_frames-1` of a fresh table: SVD's sinusoid at the ping-pong ids, (t, c) fp32."""
    return timestep_embedding(ping_pong_positions(num_frames, start), channels)


def extend_table(table: torch.Tensor, num_frames: int) -> torch.Tensor:
    """`table` (n c) grown to `num_frames` rows; trained rows are kept as they are."""
    rows, channels = table.shape
    if num_frames < rows:
        raise FrameCountError(f"cannot shrink a {rows}-frame position table to {num_frames} frames; "
                         f"videos of up to {rows} frames already work with it")
    new_rows = initial_table(num_frames, channels, start=rows).to(table.dtype)
    return torch.cat([table, new_rows], dim=0)
