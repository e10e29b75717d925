"""DeepCache on ComfyUI's SVD UNet: most model calls reuse the deep blocks' output of the last full call.

DeepCache (Ma, Fang and Wang, arXiv 2312.00858) observes that a UNet's deep
features change little between adjacent denoising steps, while its
shallowest skip branch carries what changes. So every `interval`-th model
call runs the whole UNet and keeps the feature that enters output block
n - depth (everything the deep blocks made); the calls between run only
input blocks [0, depth) and output blocks [n - depth, n), with the kept
feature standing in for the rest. With interval 1 nothing is installed, so
sampling is exactly what it is without the cache.

How it rides on the host, as native EasyCache does (comfy_extras/nodes_easycache.py):
- an OUTER_SAMPLE wrapper gives each sampling run a fresh `CacheRun` in its
  own copy of the model options, so nothing outlives the run;
- a DIFFUSION_MODEL wrapper decides each call. A full call is the host's own
  forward plus one output_block_patch that keeps the feature. A cached call
  is `shallow_forward`: ComfyUI's forward has no hook that skips blocks, so
  that loop is ours, following `UNetModel._forward` (pinned in
  tests/core/test_host_pins.py), with the host's block patches in their
  places, so the skip stack, chunking and ExVideo's blocks work unchanged.

ComfyUI evaluates some things separately within one step: cond and uncond
when they do not fit one batch, each context window, and each conditioning
a guider samples with (ExVideo Keyframes runs a start and an end one). Each
has its own kept feature and its own count of calls (`cache_key`).
"""

from __future__ import annotations

import dataclasses
import logging

import torch

import comfy.model_patcher
import comfy.patcher_extension
from comfy.ldm.modules.diffusionmodules.openaimodel import forward_timestep_embed, timestep_embedding

from .errors import InputError
from .unet_map import TEMPORAL_TRANSFORMER, unet_map

KEY = "exvideo_deep_cache"  # the wrappers' key, and where a sampling run keeps its CacheRun
MAX_INTERVAL = 10
MAX_DEPTH = 11  # SVD's UNet has 12 input blocks: at most all but the deepest run at every call


@dataclasses.dataclass(frozen=True)
class DeepCacheSettings:
    interval: int = 1  # one full UNet call every `interval` calls; 1 is off
    depth: int = 1  # the blocks at each end of the UNet that run at every call

    def __post_init__(self):
        if not (isinstance(self.interval, int) and 1 <= self.interval <= MAX_INTERVAL):
            raise InputError(f"Deep cache interval must be a whole number from 1 (off) to {MAX_INTERVAL}, got "
                             f"{self.interval!r}.")
        if not (isinstance(self.depth, int) and 1 <= self.depth <= MAX_DEPTH):
            raise InputError(f"Deep cache depth must be a whole number from 1 to {MAX_DEPTH}, got {self.depth!r}.")


def check_depth(unet: torch.nn.Module, depth: int) -> None:
    deepest = len(unet.input_blocks) - 1
    if depth > deepest:
        raise InputError(f"Deep cache depth {depth} leaves no deep blocks to cache: this UNet has "
                         f"{len(unet.input_blocks)} input blocks, so the depth can be at most {deepest}.")


def with_deep_cache(model: comfy.model_patcher.ModelPatcher, settings: DeepCacheSettings
                    ) -> comfy.model_patcher.ModelPatcher:
    """A clone of `model` that samples with the deep cache; `model` itself when the interval is 1 (off)."""
    unet = model.model.diffusion_model
    if not hasattr(unet, "input_blocks") or not hasattr(unet, "output_blocks"):
        raise InputError(f"ExVideo Deep Cache needs a UNet model such as SVD; this MODEL's diffusion model is a "
                         f"{type(unet).__name__}.")
    check_depth(unet, settings.depth)
    if settings.interval == 1:
        return model
    cached = model.clone()
    cached.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, KEY, DeepCache(settings).sample)
    cached.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY, forward_wrapper)
    return cached


@dataclasses.dataclass
class CacheRun:
    """One sampling run's kept features and counts."""

    settings: DeepCacheSettings
    features: dict = dataclasses.field(default_factory=dict)  # cache_key -> the feature entering the shallow end
    calls: dict = dataclasses.field(default_factory=dict)  # cache_key -> model calls so far
    full_calls: int = 0
    cached_calls: int = 0
    blocks_run: int = 0
    blocks_skipped: int = 0
    transformers_before_shallow_end: int | None = None  # the same for every call: counted on the first

    def transformer_index_at_shallow_end(self, unet: torch.nn.Module) -> int:
        """How many transformer layers a full forward runs before the shallow end, counted once per run."""
        if self.transformers_before_shallow_end is None:
            self.transformers_before_shallow_end = _transformers_before_output(
                unet, len(unet.output_blocks) - self.settings.depth)
        return self.transformers_before_shallow_end

    def block_ratio(self) -> float:
        """UNet block evaluations without the cache over those with it."""
        return (self.blocks_run + self.blocks_skipped) / max(1, self.blocks_run)


@dataclasses.dataclass(frozen=True)
class DeepCache:
    settings: DeepCacheSettings

    def sample(self, executor, *args, **kwargs):
        """OUTER_SAMPLE wrapper: a fresh CacheRun in this sampling's own model options (ComfyUI's clone)."""
        options = executor.class_obj.model_options["transformer_options"]
        run = options[KEY] = CacheRun(self.settings)
        try:
            return executor(*args, **kwargs)
        finally:
            options.pop(KEY, None)
            logging.info("ExVideo Deep Cache (interval %d, depth %d): %d full and %d cached UNet calls, %.2fx fewer "
                         "block evaluations", self.settings.interval, self.settings.depth, run.full_calls,
                         run.cached_calls, run.block_ratio())


def cache_key(x: torch.Tensor, transformer_options: dict) -> tuple:
    """What one call's deep feature belongs to: its conditionings (by their uuids), its batch and its window."""
    window = transformer_options.get("context_window")
    return (tuple(transformer_options.get("uuids", ())), tuple(transformer_options.get("cond_or_uncond", ())),
            tuple(x.shape), tuple(window.index_list) if window is not None else None)


def forward_wrapper(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
    """DIFFUSION_MODEL wrapper: the whole UNet every `interval` calls of a key, its shallow ends between."""
    run: CacheRun | None = transformer_options.get(KEY)
    if run is None:  # called outside a sampling run (another node calling the model directly)
        return executor(x, timesteps, context, y, control, transformer_options, **kwargs)
    if control is not None:
        raise InputError("ExVideo Deep Cache skips the deep blocks, and a ControlNet adds its residuals to "
                         "them. Bypass the Deep Cache node when sampling with a ControlNet.")
    unet = executor.class_obj
    depth, blocks = run.settings.depth, len(unet.input_blocks) + 1 + len(unet.output_blocks)
    key = cache_key(x, transformer_options)
    count = run.calls[key] = run.calls.get(key, -1) + 1
    if count % run.settings.interval == 0 or key not in run.features:
        run.full_calls += 1
        run.blocks_run += blocks
        return executor(x, timesteps, context, y, control,
                        _keeping_feature(transformer_options, run, key, len(unet.output_blocks) - depth), **kwargs)
    run.cached_calls += 1
    run.blocks_run += 2 * depth
    run.blocks_skipped += blocks - 2 * depth
    return shallow_forward(unet, x, timesteps, context, y, transformer_options, depth, run.features[key],
                           run.transformer_index_at_shallow_end(unet), **kwargs)


def _keeping_feature(transformer_options: dict, run: CacheRun, key: tuple, first_shallow: int) -> dict:
    """This call's transformer options, with a last output_block_patch that keeps the shallow end's input."""

    def keep(h, skip, options):
        if options["block"] == ("output", first_shallow):
            run.features[key] = h
        return h, skip

    patches = transformer_options.get("patches", {})
    return {**transformer_options,
            "patches": {**patches, "output_block_patch": [*patches.get("output_block_patch", []), keep]}}


def _transformers_before_output(unet: torch.nn.Module, index: int) -> int:
    """How many transformer layers run before output block `index` in a full forward."""
    def before(name: str) -> bool:
        part, _, rest = name.partition(".")
        return part != "output_blocks" or int(rest.split(".")[0]) < index

    return sum(layer.kind == TEMPORAL_TRANSFORMER and before(layer.name) for layer in unet_map(unet))


def shallow_forward(unet, x, timesteps, context, y, transformer_options: dict, depth: int, deep_feature: torch.Tensor,
                    shallow_end_transformer_index: int, **kwargs) -> torch.Tensor:
    """`UNetModel._forward` (ComfyUI 0.3.75) with the blocks between the shallow ends replaced by `deep_feature`.

    The same embedding, patches and block arguments as the host's loop, so
    every patch sees the block ids and transformer indices of a full call;
    `shallow_end_transformer_index` is the index the host's loop has reached
    when it enters the shallow end.
    """
    transformer_options["original_shape"] = list(x.shape)
    transformer_options["transformer_index"] = 0
    patches = transformer_options.get("patches", {})
    block_arguments = {"time_context": kwargs.get("time_context"),
                       "num_video_frames": kwargs.get("num_video_frames", unet.default_num_video_frames),
                       "image_only_indicator": kwargs.get("image_only_indicator")}

    emb = unet.time_embed(timestep_embedding(timesteps, unet.model_channels, repeat_only=False).to(x.dtype))
    for patch in patches.get("emb_patch", []):
        emb = patch(emb, unet.model_channels, transformer_options)
    if unet.num_classes is not None:
        emb = emb + unet.label_emb(y)

    h, skips = x, []
    for index in range(depth):
        transformer_options["block"] = ("input", index)
        h = forward_timestep_embed(unet.input_blocks[index], h, emb, context, transformer_options, **block_arguments)
        for patch in patches.get("input_block_patch", []):
            h = patch(h, transformer_options)
        skips.append(h)
        for patch in patches.get("input_block_patch_after_skip", []):
            h = patch(h, transformer_options)

    first_shallow = len(unet.output_blocks) - depth
    transformer_options["transformer_index"] = shallow_end_transformer_index
    h = deep_feature
    for index in range(first_shallow, len(unet.output_blocks)):
        transformer_options["block"] = ("output", index)
        skip = skips.pop()
        for patch in patches.get("output_block_patch", []):
            h, skip = patch(h, skip, transformer_options)
        h = torch.cat([h, skip], dim=1)
        output_shape = skips[-1].shape if skips else None
        h = forward_timestep_embed(unet.output_blocks[index], h, emb, context, transformer_options, output_shape,
                                   **block_arguments)
    return unet.out(h.type(x.dtype))
