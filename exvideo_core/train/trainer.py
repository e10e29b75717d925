"""`Trainer`: post-tunes an ExVideo extension on encoded clips, resumably.

    trainer = Trainer(model, clips, TrainConfig(steps=...), weights=None)   # or Trainer.resume(model, clips, path)
    result = trainer.train(progress=callback, state_path="run.safetensors")
    trainer.weights(ema=...)           # ExVideoWeights: save_exvideo / apply_exvideo
    trainer.lora_state_dict(ema=...)   # LoRA mode: a ComfyUI LoRA file's tensors

One optimizer step takes `grad_accumulation` clips per process; sample k of
the run (counted over steps, accumulation and processes) uses clip
`order(epoch)[k % n]`, a sigma and a noise drawn from generators seeded by
(seed, k). So the run is a function of its config and data: interrupted and
resumed, or spread over processes, it computes the same steps.

Failure handling: a non-finite loss (or, without fp16 loss scaling, a
non-finite gradient) stops the run with `TrainingDivergedError` before the
update, so the trainer keeps the last good tensors; ComfyUI's interrupt and
KeyboardInterrupt propagate after the state (as of the last completed step)
is saved to `state_path`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from typing import Callable, Iterator, Mapping, Sequence

import torch

import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.utils

from ..constraints import check_latent_size
from ..errors import DatasetError, TrainConfigError, TrainingDivergedError, TrainingError
from ..patch import apply_exvideo, check_model, new_exvideo
from ..weights import ExVideoWeights
from . import distributed, optimizer as optimizers
from .cache import EncodedClip, clip_record, fingerprint
from .config import TrainConfig
from .ema import EMA
from .grad_checkpoint import add_gradient_checkpointing
from .objective import denoising_loss, draw_sigma, training_sigmas
from .seeding import generator
from .state import TrainState, load_state, save_state, state_bytes
from .trainable import FullTemporal, TemporalLoRA, TrainableExtension, layer_tensor_keys

# `TrainConfig.autocast`: the compute dtype of the training clone (None: the MODEL's own).
_COMPUTE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass(frozen=True)
class TrainResult:
    step: int  # optimizer steps done, over all sessions of the run
    total: int
    losses: list[float]  # mean reweighted loss of each step
    completed: bool  # False when `should_stop` ended the session early


class Trainer:
    """One post-tuning run: the trained tensors, AdamW, the EMA, the step count and the loss history."""

    def __init__(self, model: comfy.model_patcher.ModelPatcher, clips: Sequence[EncodedClip], config: TrainConfig,
                 weights: ExVideoWeights | None = None, lora: Mapping[str, torch.Tensor] | None = None):
        """`weights`: the extension to start from (default: `new_exvideo` for the longest clip); its
        position table is extended if a clip is longer. `lora`: a LoRA (ours) to continue, in LoRA mode."""
        check_model(model)
        if not clips:
            raise DatasetError("there are no clips to train on")
        smallest = min(clips, key=lambda clip: min(clip.latents.shape[-2:]))
        height, width = smallest.latents.shape[-2:]
        check_latent_size(width, height, f"clip {smallest.name} (the smallest of {len(clips)}) has", DatasetError)
        if lora is not None and config.mode != "lora":
            raise TrainConfigError(f"a LoRA to continue was given, but the mode is {config.mode!r}; use mode='lora'")
        self.model, self.config = model, config
        with torch.inference_mode(False):
            # A node's clips were made in inference mode; autograd needs ordinary tensors.
            self.clips = [dataclasses.replace(c, latents=c.latents.float().clone(),
                                              image_embeds=c.image_embeds.float().clone()) for c in clips]
            num_frames = max(clip.num_frames for clip in self.clips)
            if weights is None:
                weights = new_exvideo(model, num_frames)
            elif weights.num_frames < num_frames:
                logging.info("ExVideo training: extending the position table from %d to %d frames",
                             weights.num_frames, num_frames)
                weights = weights.extend(num_frames)
            self.device = model.load_device
            self.trainable = _trainable(config, weights, lora, self.device)
            self.trainable.check(model)
            self.parameters = self.trainable.parameters()
            for parameter in self.parameters.values():
                parameter.requires_grad_(True)
            # Under torchrun each process keeps AdamW's moments for its share of the tensors (optimizer.py).
            self.optimizer = optimizers.adamw(self.parameters, config)
            self.scaler = torch.amp.GradScaler(self.device.type) if config.autocast == "fp16" else None
            self.ema = EMA(self.parameters, config.ema_decay) if config.ema_decay is not None else None
        self.step = 0
        self.losses: list[float] = []
        self._sigmas = training_sigmas(model)
        self._data = fingerprint(self.clips)
        self._clip_record = clip_record(self.clips)
        self._updating = False

    @classmethod
    def resume(cls, model: comfy.model_patcher.ModelPatcher, clips: Sequence[EncodedClip],
               path: str | os.PathLike, steps: int | None = None, config: TrainConfig | None = None) -> "Trainer":
        """Continue the run saved at `path`; `steps` raises (or lowers) its total. `config` replaces the saved
        config whole: `session.TrainingSession.resume` checks first that it changes no setting of the run and
        that `clips` are the run's."""
        # Nodes run in inference mode; tensors the optimizer will update in place must be ordinary ones.
        with torch.inference_mode(False):
            state = load_state(path)
            config = config or state.config
            config = config if steps is None else dataclasses.replace(config, steps=steps)
            trainer = cls(model, clips, config, state.weights, state.lora)
            trainer._restore(state)
        return trainer

    # ------------------------------------------------------------------ training

    def train(self, progress: Callable[[int, int, float], None] | None = None,
              should_stop: Callable[[], bool] | None = None,
              state_path: str | os.PathLike | None = None) -> TrainResult:
        """Run up to `config.steps` optimizer steps.

        `progress(step, total, loss)` is called after every step. `should_stop()`
        is asked before every step (a CLI's SIGINT flag): a True ends the
        session cleanly. `state_path`: where the resumable state is written
        (every `save_every` steps, at the end, on interrupt and on divergence).
        """
        if self.step >= self.config.steps:
            return TrainResult(self.step, self.config.steps, list(self.losses), True)
        with self.training_model() as patched:
            try:
                while self.step < self.config.steps:
                    if distributed.any_true(should_stop is not None and should_stop(), self.device):
                        break
                    self._train_step(patched)
                    if progress is not None:
                        progress(self.step, self.config.steps, self.losses[-1])
                    if state_path is not None and self.config.save_every and self.step % self.config.save_every == 0:
                        self.save_state(state_path)
            except (comfy.model_management.InterruptProcessingException, KeyboardInterrupt):
                self._save_on_exit(state_path, "interrupted", all_processes=False)
                raise
            except TrainingDivergedError:
                # Loss and gradients are averaged first, so every process diverges at the same step.
                self._save_on_exit(state_path, "stopped", all_processes=True)
                raise
        if state_path is not None:
            self.save_state(state_path)
        return TrainResult(self.step, self.config.steps, list(self.losses), self.step >= self.config.steps)

    @contextlib.contextmanager
    def training_model(self) -> Iterator[comfy.model_patcher.ModelPatcher]:
        """The loaded clone that computes with the trained tensors, with everything else frozen.

        On exit the clone is unloaded, so ComfyUI restores the MODEL's weights
        and modules, and requires_grad flags are put back.
        """
        with torch.inference_mode(False), torch.enable_grad():
            patched = self.trainable.patch(self.model)
            compute_dtype = _COMPUTE_DTYPES.get(self.config.autocast)
            if compute_dtype is not None:
                # Mixed precision the way ComfyUI's own trainer sets it (comfy_extras/nodes_train.py): the clone's
                # inputs are cast to the compute dtype and every ComfyUI ops layer casts its weight and bias to
                # the activations' dtype on the fly (cast_bias_weight), the trained fp32 masters included; the
                # masters, AdamW and the loss stay fp32. Unloading the clone restores the layers' casting flags.
                patched.set_model_compute_dtype(compute_dtype)
            if self.config.gradient_checkpointing:
                add_gradient_checkpointing(patched)
            # An enormous requirement makes ComfyUI free the device of other models first, as its LoRA trainer does.
            comfy.model_management.load_models_gpu([patched], memory_required=1e20, force_full_load=True)
            trained = {id(p) for p in self.parameters.values()}
            frozen = [p for p in patched.model.parameters() if p.requires_grad and id(p) not in trained]
            for parameter in frozen:
                parameter.requires_grad_(False)
            try:
                yield patched
            finally:
                for parameter in frozen:
                    # An inference tensor (a MODEL loaded inside a node) takes requires_grad only in inference mode.
                    with torch.inference_mode(parameter.is_inference()):
                        parameter.requires_grad_(True)
                _unload(patched, {key.rsplit(".", 1)[0] for key in layer_tensor_keys(self.model)})

    def _train_step(self, patched: comfy.model_patcher.ModelPatcher) -> None:
        # A no-op unless ComfyUI unloaded the clone meanwhile; then it re-applies the same patches.
        comfy.model_management.load_models_gpu([patched], force_full_load=True)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate_at(self.step)
        rank, world = distributed.rank_and_world()
        accumulation = self.config.grad_accumulation
        try:
            loss = 0.0
            for micro in range(accumulation):
                comfy.model_management.throw_exception_if_processing_interrupted()
                sample_loss = self._sample_loss(patched, (self.step * accumulation + micro) * world + rank)
                scaled = sample_loss / accumulation
                (scaled if self.scaler is None else self.scaler.scale(scaled)).backward()
                loss += sample_loss.item() / accumulation
            distributed.average_gradients(self.parameters.values())
            loss = distributed.mean(loss, self.device)
            if not math.isfinite(loss) and self.step == 0:
                # Nothing was updated yet, so the learning rate is not the cause: the inputs are.
                raise TrainingDivergedError(
                    f"ExVideo training diverged at step 1: the loss is {loss} before any update, so the MODEL or "
                    f"the clips already produce NaN/inf (a LoRA or merge with NaN weights, a broken checkpoint or "
                    f"VAE?). Check the model by sampling with it, then train again.", 1)
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"ExVideo training diverged at step {self.step + 1}: the loss is {loss}. The tensors of step "
                    f"{self.step} are kept; lower the learning rate (or use bf16/fp32) and resume.", self.step + 1)
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            max_norm = self.config.max_grad_norm if self.config.max_grad_norm is not None else math.inf
            grad_norm = torch.nn.utils.clip_grad_norm_(list(self.parameters.values()), max_norm).item()
            # With fp16 loss scaling an overflow is routine: the scaler skips the update and lowers the scale.
            if not math.isfinite(grad_norm) and self.scaler is None:
                raise TrainingDivergedError(
                    f"ExVideo training diverged at step {self.step + 1}: the gradients are not finite (norm "
                    f"{grad_norm}). The tensors of step {self.step} are kept; lower the learning rate and resume.",
                    self.step + 1)
            self._updating = True
            if self.scaler is None:
                self.optimizer.step()
            else:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            if self.ema is not None:
                self.ema.update(self.parameters)
            self.step += 1
            self.losses.append(loss)
            self._updating = False
        finally:
            self.optimizer.zero_grad(set_to_none=True)

    def draw(self, sample: int) -> tuple[EncodedClip, float, torch.Tensor]:
        """What sample `sample` of the run trains on: the clip, sigma and noise (t c h w)."""
        epoch, position = divmod(sample, len(self.clips))
        order = torch.randperm(len(self.clips), generator=generator(self.config.seed, "order", epoch))
        clip = self.clips[order[position].item()]
        rng = generator(self.config.seed, "sample", sample)
        sigma = draw_sigma(self.config, self._sigmas, rng)
        return clip, sigma, torch.randn(clip.latents.shape, generator=rng)

    def _sample_loss(self, patched: comfy.model_patcher.ModelPatcher, sample: int) -> torch.Tensor:
        clip, sigma, noise = self.draw(sample)
        return denoising_loss(patched, clip, sigma, noise, self.config)

    # ------------------------------------------------------------------ results

    @property
    def data_fingerprint(self) -> str:
        """Identifies the clips (names, shapes, buckets) the run trains on."""
        return self._data

    def weights(self, ema: bool = False) -> ExVideoWeights:
        """The extension trained so far (in LoRA mode: the starting temporal tensors, trained table and conv)."""
        weights = self.trainable.weights(self._values(ema))
        steps = int(self.trainable.start.metadata.get("exvideo.training_steps", "0")) + self.step
        return dataclasses.replace(weights, metadata={**weights.metadata, "exvideo.training_steps": str(steps),
                                                      "exvideo.ema": str(ema).lower()})

    def lora_state_dict(self, ema: bool = False, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """The trained LoRA as a ComfyUI LoRA file's tensors (apply it after the extension from `weights()`)."""
        if not isinstance(self.trainable, TemporalLoRA):
            raise TrainingError("lora_state_dict needs mode='lora'; in full mode everything is in weights()")
        return self.trainable.lora_state_dict(self._values(ema), dtype)

    def patched_model(self, ema: bool = False) -> comfy.model_patcher.ModelPatcher:
        """The MODEL as a user will run the result: ExVideo Apply Extension, then (LoRA mode) the LoRA via ComfyUI's
        loader."""
        patched = apply_exvideo(self.model, self.weights(ema))
        if isinstance(self.trainable, TemporalLoRA):
            patched, _ = comfy.sd.load_lora_for_models(patched, None, self.lora_state_dict(ema), 1.0, 0)
        return patched

    def _values(self, ema: bool) -> Mapping[str, torch.Tensor]:
        if not ema:
            return self.parameters
        if self.ema is None:
            raise TrainingError("this run keeps no EMA: set ema_decay in the TrainConfig")
        return self.ema.values

    # ------------------------------------------------------------------ state

    def state_bytes(self) -> int:
        """How large `save_state`'s file will be, told before training: its tensors (the header, a table of them and
        the metadata, adds under a MiB)."""
        return state_bytes(sum(t.numel() for t in self.trainable.start.tensors.values()),
                           self.trainable.lora_values(), sum(p.numel() for p in self.parameters.values()),
                           self.ema is not None)

    def save_state(self, path: str | os.PathLike) -> None:
        """Write the resumable state. In a distributed run every process must call it at the same step (the
        optimizer's shards are gathered on process 0, which alone writes); it returns once the file is written."""
        optimizer = optimizers.full_state(self.optimizer, self.parameters, self.device)
        if distributed.rank_and_world()[0] == 0:
            weights = self.trainable.weights()
            save_state(TrainState(
                config=self.config, step=self.step, losses=list(self.losses),
                weights=dataclasses.replace(weights, metadata=dict(self.trainable.start.metadata)),
                lora=self.lora_state_dict() if isinstance(self.trainable, TemporalLoRA) else None,
                optimizer=optimizer, ema=None if self.ema is None else self.ema.values,
                scaler=None if self.scaler is None else self.scaler.state_dict(), data=self._data,
                clips=self._clip_record), path)
        distributed.barrier()  # so any process may read the file next

    def _restore(self, state: TrainState) -> None:
        # Whether these are the run's clips is session.check_resumable's rule, checked before the state is loaded.
        unknown = state.optimizer.keys() - set(self.parameters)
        if unknown:
            raise TrainingError(f"the saved optimizer state names tensors this run does not train: {sorted(unknown)[:3]}")
        optimizers.load_full_state(self.optimizer, self.parameters, state.optimizer)
        if self.ema is not None:
            if state.ema is None:
                logging.warning("ExVideo training: the saved run kept no EMA; it starts from the current tensors")
            else:
                self.ema.load(state.ema)
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)
        self.step, self.losses = state.step, list(state.losses)

    def _save_on_exit(self, state_path: str | os.PathLike | None, how: str, all_processes: bool) -> None:
        """`all_processes`: whether every process of a distributed run gets here at the same step."""
        if state_path is None:
            return
        if self._updating:
            # Stopped halfway through an update: the tensors are neither the old step's nor the new one's.
            logging.warning("ExVideo training %s during a weight update; %s keeps the last state saved before",
                            how, state_path)
            return
        if optimizers.sharded(self.optimizer) and not all_processes:
            # Gathering the shards is a collective; a process interrupted on its own would wait for the others
            # forever. (The first SIGINT/SIGTERM stops every process at the same step and saves normally.)
            logging.warning("ExVideo training %s in one of %d processes; %s keeps the last state saved before",
                            how, distributed.rank_and_world()[1], state_path)
            return
        self.save_state(state_path)
        logging.info("ExVideo training %s at step %d; resume from %s", how, self.step, state_path)


def _trainable(config: TrainConfig, weights: ExVideoWeights, lora, device: torch.device) -> TrainableExtension:
    if config.mode == "full":
        return FullTemporal(weights, device)
    return TemporalLoRA(weights, device, config.lora_rank, config.lora_alpha, config.seed, lora)


def _unload(model: comfy.model_patcher.ModelPatcher, wrapped_modules: set[str]) -> None:
    """Unload the training clone now (ComfyUI then restores the MODEL) and drop its weight wrappers.

    Through ComfyUI's own `free_memory`, which unloads and drops the list entries of every model on the
    device except `keep_loaded`: here every loaded model but the clone, so other models stay where they
    are (`unload_all_models` would evict them all; `cleanup_models_gc` only collects dead entries).
    """
    management = comfy.model_management
    others = [management.LoadedModel(loaded) for loaded in management.loaded_models() if loaded is not model]
    if len(others) == len(management.loaded_models()):
        return  # not loaded (ComfyUI unloaded it meanwhile)
    management.free_memory(1e30, model.load_device, keep_loaded=others)
    # ComfyUI clears a module's wrappers at its next load, not at unload: clear them so the MODEL
    # holds no reference to the trained tensors.
    for name in wrapped_modules:
        comfy.model_patcher.wipe_lowvram_weight(comfy.utils.get_attr(model.model, name))
