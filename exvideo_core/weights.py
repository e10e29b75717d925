"""`ExVideoWeights`: one ExVideo extension, validated, in our layout.

Whatever the source (DiffSynth's released file, our own files, a state dict
in memory, a freshly initialised extension), the weights are held under
ComfyUI's names (`diffusion_model.<block>.<tensor>`, see `layout`), checked
once on the way in, and converted back to DiffSynth's layout on the way out.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterator

import torch

from . import layout, safetensors_io
from .constraints import MIN_FRAMES
from .errors import CheckpointError, InputError
from .layout import CONV_BIAS, CONV_WEIGHT, TABLE, TEMPORAL_BLOCKS, TemporalBlock
from .position import extend_table

FORMAT_VERSION = "1"
_LIST_LIMIT = 5
_REDUCIBLE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Metadata this pack writes and later reads back as numbers or flags: a file
# whose value is anything else was not written by us and is not believed.
TRUSTED_METADATA = {
    "exvideo.training_steps": lambda value: value.isascii() and value.isdigit(),
    "exvideo.ema": lambda value: value in ("true", "false"),
}

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ExVideoWeights:
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """N: the longest video (in latent frames) the position table covers."""
        return self.table(TEMPORAL_BLOCKS[0]).shape[0]

    @property
    def model_channels(self) -> int:
        return self.table(TEMPORAL_BLOCKS[0]).shape[1] // TEMPORAL_BLOCKS[0].channel_mult

    def table(self, block: TemporalBlock) -> torch.Tensor:
        return self.tensors[block.comfy_prefix + TABLE]

    def conv(self, block: TemporalBlock) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tensors[block.comfy_prefix + CONV_WEIGHT], self.tensors[block.comfy_prefix + CONV_BIAS]

    def temporal_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The fine-tuned tensors that replace the base model's, as (model key, tensor)."""
        for block in TEMPORAL_BLOCKS:
            for name in layout.TEMPORAL_TENSORS:
                key = block.comfy_prefix + name
                yield key, self.tensors[key]

    def extend(self, num_frames: int) -> "ExVideoWeights":
        """A copy whose position tables have `num_frames` rows (new rows: ping-pong init)."""
        tensors = dict(self.tensors)
        for block in TEMPORAL_BLOCKS:
            tensors[block.comfy_prefix + TABLE] = extend_table(self.table(block), num_frames)
        return ExVideoWeights(tensors, {**self.metadata, "exvideo.num_frames": str(num_frames)})

    def to(self, dtype: torch.dtype) -> "ExVideoWeights":
        return ExVideoWeights({k: v.to(dtype) for k, v in self.tensors.items()}, dict(self.metadata))

    def state_dict(self, layout_name: str = "comfyui") -> dict[str, torch.Tensor]:
        if layout_name == "comfyui":
            return dict(self.tensors)
        if layout_name == "diffsynth":
            return layout.to_diffsynth(self.tensors)
        raise InputError(f"unknown layout {layout_name!r}; use one of {layout.LAYOUTS}")


def _listing(names) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_LIST_LIMIT])
    return shown + (f" and {len(names) - _LIST_LIMIT} more" if len(names) > _LIST_LIMIT else "")


def expected_shapes(channels: int, context_dim: int, num_frames: int) -> dict[str, tuple[int, ...]]:
    c = channels
    shapes = {
        TABLE: (num_frames, c),
        CONV_WEIGHT: (c, c, 3, 3, 3),
        CONV_BIAS: (c,),
        "time_pos_embed.0.weight": (4 * c, c), "time_pos_embed.0.bias": (4 * c,),
        "time_pos_embed.2.weight": (c, 4 * c), "time_pos_embed.2.bias": (c,),
        "time_stack.0.ff_in.net.0.proj.weight": (8 * c, c), "time_stack.0.ff_in.net.0.proj.bias": (8 * c,),
        "time_stack.0.ff_in.net.2.weight": (c, 4 * c), "time_stack.0.ff_in.net.2.bias": (c,),
        "time_stack.0.ff.net.0.proj.weight": (8 * c, c), "time_stack.0.ff.net.0.proj.bias": (8 * c,),
        "time_stack.0.ff.net.2.weight": (c, 4 * c), "time_stack.0.ff.net.2.bias": (c,),
    }
    for norm in ("norm_in", "norm1", "norm2", "norm3"):
        shapes[f"time_stack.0.{norm}.weight"] = shapes[f"time_stack.0.{norm}.bias"] = (c,)
    for attn, kv_dim in (("attn1", c), ("attn2", context_dim)):
        shapes[f"time_stack.0.{attn}.to_q.weight"] = (c, c)
        shapes[f"time_stack.0.{attn}.to_k.weight"] = shapes[f"time_stack.0.{attn}.to_v.weight"] = (c, kv_dim)
        shapes[f"time_stack.0.{attn}.to_out.0.weight"] = (c, c)
        shapes[f"time_stack.0.{attn}.to_out.0.bias"] = (c,)
    return shapes


def validate(tensors: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError unless `tensors` (our layout) is one complete, consistent extension."""
    expected = set(layout.DIFFSYNTH_TO_COMFY.values())
    missing, unexpected = expected - tensors.keys(), tensors.keys() - expected
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors ({_listing(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors ({_listing(unexpected)})")
        raise CheckpointError(f"{source} is an incomplete or modified ExVideo extension: " + "; ".join(parts) + ".")

    first = TEMPORAL_BLOCKS[0]
    table = tensors[first.comfy_prefix + TABLE]
    if table.ndim != 2 or table.shape[1] % first.channel_mult:
        raise CheckpointError(f"{source}: the position table of {first.comfy_name} has shape {tuple(table.shape)}; "
                              f"expected (frames, channels).")
    num_frames, model_channels = table.shape[0], table.shape[1] // first.channel_mult
    if num_frames < MIN_FRAMES or model_channels == 0:
        raise CheckpointError(f"{source} is degenerate: its position tables have {num_frames} rows of "
                              f"{table.shape[1]} channels, and a usable extension has at least {MIN_FRAMES} rows "
                              f"(one per frame). Use a complete extension such as ExVideo-SVD-128f-v1.")
    context_dim = tensors[first.comfy_prefix + "time_stack.0.attn2.to_k.weight"].shape[-1]
    wrong = []
    for block in TEMPORAL_BLOCKS:
        shapes = expected_shapes(model_channels * block.channel_mult, context_dim, num_frames)
        for name, shape in shapes.items():
            actual = tuple(tensors[block.comfy_prefix + name].shape)
            if actual != shape:
                wrong.append(f"{block.comfy_prefix + name} is {actual}, expected {shape}")
    if wrong:
        raise CheckpointError(f"{source} has tensors of the wrong shape (different table lengths or channels "
                              f"between blocks?): " + "; ".join(wrong[:_LIST_LIMIT]) + ".")

    not_float = [k for k, v in tensors.items() if not v.is_floating_point()]
    if not_float:
        raise CheckpointError(f"{source} has non-floating-point tensors: {_listing(not_float)}.")
    non_finite = [k for k, v in tensors.items() if not _all_finite(v)]
    if non_finite:
        raise CheckpointError(f"{source} contains NaN or infinite values in {_listing(non_finite)}; "
                              f"the file is corrupt or came from a diverged training run.")


def _all_finite(tensor: torch.Tensor) -> bool:
    """One reduction pass, no mask: min and max carry any NaN or infinity. `isfinite(t).all()` allocates a bool
    tensor per tensor and took 3.5 s per validation of a full-size extension, run several times per training run.
    float8 has no min/max kernels: it is checked in fp32."""
    low, high = torch.aminmax(tensor if tensor.dtype in _REDUCIBLE_DTYPES else tensor.float())
    return bool(torch.isfinite(low) and torch.isfinite(high))


def _trusted(metadata: dict[str, str], source: str) -> dict[str, str]:
    """The file's metadata less our own keys whose values are not what we write (a resume parses them)."""
    kept = dict(metadata)
    for key, wellformed in TRUSTED_METADATA.items():
        if key in kept and not wellformed(kept[key]):
            log.warning("%s: ignoring metadata %s=%r, which this pack does not write", source, key, kept.pop(key))
    return kept


def _require_extension_keys(keys, source: str) -> str:
    kind = layout.detect_layout(keys)
    if kind is None:
        raise CheckpointError(f"{source} is not an ExVideo extension: {layout.describe_foreign_keys(keys)}.")
    return kind


def from_state_dict(state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
                    source: str = "the state dict") -> ExVideoWeights:
    """Either layout in, validated `ExVideoWeights` out."""
    kind = _require_extension_keys(state_dict.keys(), source)
    tensors = dict(state_dict)
    if kind == "diffsynth":
        unknown = [k for k in tensors if k not in layout.DIFFSYNTH_TO_COMFY]
        if unknown:
            raise CheckpointError(f"{source} is an incomplete or modified ExVideo extension: "
                                  f"{len(unknown)} unexpected tensors ({_listing(unknown)}).")
        tensors = layout.to_comfyui(tensors)
    validate(tensors, source)
    metadata = {**_trusted(metadata or {}, source), "exvideo.num_frames": str(tensors[TEMPORAL_BLOCKS[0].comfy_prefix + TABLE].shape[0])}
    metadata.setdefault("exvideo.source", kind)
    return ExVideoWeights(tensors, metadata)


def load_exvideo(source: str | os.PathLike | dict[str, torch.Tensor]) -> ExVideoWeights:
    """Load an ExVideo extension from a .safetensors file (either layout) or a state dict."""
    if isinstance(source, dict):
        return from_state_dict(source)
    name = os.path.basename(os.fspath(source))
    tensors, metadata = safetensors_io.load(source, check_keys=lambda keys: _require_extension_keys(keys, name))
    return from_state_dict(tensors, metadata, source=name)


def save_exvideo(weights: ExVideoWeights, path: str | os.PathLike, layout: str = "diffsynth") -> None:
    """Write `weights` as .safetensors in 'diffsynth' (the released layout) or 'comfyui' layout."""
    metadata = {**weights.metadata, "exvideo.format_version": FORMAT_VERSION, "exvideo.layout": layout,
                "exvideo.num_frames": str(weights.num_frames)}
    safetensors_io.save(weights.state_dict(layout), path, metadata)
