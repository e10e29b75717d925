"""ComfyUI's own context windows (Context Windows (Manual)) on an ExVideo-patched MODEL.

`comfy.context_windows.IndexListContextHandler` cuts the latent batch into
windows along `dim`; for SVD that must be dim 0, the frame axis. For every
window it slices the latent and the timesteps, rewrites the cond's
`num_video_frames` to the window's length and calls the model, then fuses the
windows' predictions. Each window is therefore a video of its own to the
UNet, and the patched temporal blocks give it table rows 0..length-1, the
positions a clip of that length has in training and in plain sampling. So a
video longer than the position table samples as long as every window fits.

ComfyUI 0.3.75's handler finds the current step by comparing the sampler's
sigmas with the whole timestep tensor (`set_step`), which for SVD holds one
timestep per frame: that comparison fails for any video of more than one
frame. `for_svd_frames` gives the sampling a copy that reads the step from
the first timestep (all frames share it) and, for the sub-steps of
multi-step samplers, which match no sigma, keeps the last step's windows.
"""

from __future__ import annotations

import copy
import functools

import torch

from comfy.context_windows import IndexListContextHandler

from .errors import FrameCountError

# The one axis along which windows make sense for SVD: the latent batch is the video's frames.
FRAME_AXIS = 0


class SvdFrameWindows(IndexListContextHandler):
    """The handler Context Windows (Manual) made, reading the step from one of SVD's per-frame timesteps."""

    def set_step(self, timestep: torch.Tensor, model_options: dict) -> None:
        sigmas = model_options["transformer_options"]["sample_sigmas"]
        matches = torch.nonzero(torch.isclose(sigmas, timestep.flatten()[0].to(sigmas), rtol=1e-4))
        if matches.numel():
            self._step = int(matches[0].item())


@functools.cache
def host_reads_svd_steps() -> bool:
    """Whether the host's own `set_step` finds the step from SVD's per-frame timesteps (0.3.75's does not).

    Asked of the host's code itself, so a ComfyUI that fixes it keeps its own
    handler, whatever its version number says.
    """
    probe = IndexListContextHandler.__new__(IndexListContextHandler)
    options = {"transformer_options": {"sample_sigmas": torch.tensor([2.0, 1.0, 0.5, 0.0])}}
    try:
        IndexListContextHandler.set_step(probe, torch.full((5,), 1.0), options)
    except Exception:
        return False
    return getattr(probe, "_step", None) == 1


def for_svd_frames(model_options: dict) -> None:
    """Replaces ComfyUI's context handler in one sampling's `model_options` by an SvdFrameWindows copy.

    Only where the host's handler needs it (`host_reads_svd_steps`), and only
    handlers of exactly ComfyUI's class: another pack's subclass keeps its
    own behaviour. The copy changes only its class: the subclass adds no
    state, and overrides set_step alone.
    """
    handler = model_options.get("context_handler")
    if type(handler) is IndexListContextHandler and not host_reads_svd_steps():
        windows = copy.copy(handler)
        windows.__class__ = SvdFrameWindows
        model_options["context_handler"] = windows


def check_window_length(handler, frames: int, rows: int) -> None:
    """Raise FrameCountError unless `handler` samples a `frames`-frame video (longer than the table) in windows that fit.

    A handler of another pack, whose window lengths only it knows, passes:
    the position table itself refuses a call longer than it.
    """
    if not isinstance(handler, IndexListContextHandler):
        return
    if handler.dim != FRAME_AXIS:
        raise FrameCountError(
            f"this video has {frames} latent frames, more than the {rows} of the ExVideo extension's position table, "
            f"and its context windows run along dim {handler.dim}, which is not SVD's frame axis: use Context Windows "
            f"(Manual) with dim {FRAME_AXIS} (not the WAN variant) and context_length at most {rows}.")
    if handler.context_length > rows:
        raise FrameCountError(
            f"the context windows are {handler.context_length} latent frames long (context_length) but the ExVideo "
            f"extension's position table covers only {rows}: each window is sampled as a video of its own, so set "
            f"context_length of Context Windows (Manual) to at most {rows}.")
