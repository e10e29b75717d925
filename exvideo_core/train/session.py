"""One training session: the rules the Post-Tune node and the CLI share, so they cannot drift apart.

    session = TrainingSession.open(model, clips, config, state_path, resume=True,
                                   start=SessionStart(weights=None, lora=None), new_run_hint="...")
    result = session.run(progress=callback, stop_on_signals=False)   # the CLI passes True
    session.save_lora(path, ema=False, dtype="fp32")                 # lora mode, the one LoRA writer
    session.save_results(folder, layout="diffsynth")                 # exvideo[-ema] and lora[-ema] files

Resume: a saved run continues only with the settings and the clips it was
saved with. `RESUMABLE_CHANGES` names the fields that may differ (`steps`:
train a finished run further or stop earlier; `save_every`: how often the
state is written, which changes no tensor); any other difference is refused
with `ResumeSettingsError`, naming every changed field, and other clips
(`cache.clip_difference`: other videos, sizes, buckets or frames) with
`ResumeDataError`, both before anything is loaded. Keeping the saved
settings quietly would train something the user did not ask for; silently
starting over would discard the saved run; continuing on a new dataset
would mix two trainings under one name.

LoRA files: written by `lora.save_lora` alone (ComfyUI's generic LoRA keys,
which LoraLoaderModelOnly reads, with the `exvideo.requires` text and the
extension's length, steps and fingerprint).

Failures: a non-finite loss or gradient (`TrainingDivergedError`), ComfyUI's
interrupt and KeyboardInterrupt save the state of the last finished step in
`Trainer.train` and propagate; SIGINT/SIGTERM (`stop_on_signals`) end the
session after the current step (a second signal stops at once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
import signal
from typing import Callable, Iterator, Mapping, Sequence

import torch

from ..errors import ResumeDataError, ResumeSettingsError
from ..weights import ExVideoWeights
from .config import TrainConfig

# The TrainConfig fields a resumed run may change; every other field is a setting of the run.
RESUMABLE_CHANGES = frozenset({"steps", "save_every"})


@dataclasses.dataclass(frozen=True)
class SessionStart:
    """What a new run starts from (ignored when a saved run is resumed: its state holds both)."""

    weights: ExVideoWeights | None = None  # the extension to start from; None: a fresh one from the MODEL
    lora: Mapping[str, torch.Tensor] | None = None  # a LoRA of ours to continue (mode "lora")


def changed_settings(saved: TrainConfig, wanted: TrainConfig) -> list[str]:
    """The fields of `wanted` that differ from the saved run's, other than `RESUMABLE_CHANGES`."""
    return [field.name for field in dataclasses.fields(TrainConfig)
            if field.name not in RESUMABLE_CHANGES and getattr(saved, field.name) != getattr(wanted, field.name)]


def check_resumable(state_path: str | os.PathLike, config: TrainConfig,
                    new_run_hint: str = "choose another state file to start a new run",
                    clips: Sequence | None = None) -> int:
    """The step the saved run is at, or `ResumeSettingsError` naming each setting that changed (and how), or,
    when `clips` are given, `ResumeDataError` if they are not the clips the run was trained on."""
    from .state import read_state_header

    header = read_state_header(state_path)
    saved, step = header.config, header.step
    changed = changed_settings(saved, config)
    if changed:
        details = ", ".join(f"{name}: saved {getattr(saved, name)!r}, now {getattr(config, name)!r}"
                            for name in changed)
        allowed = " and ".join(f"'{name}'" for name in sorted(RESUMABLE_CHANGES))
        raise ResumeSettingsError(
            f"{state_path} holds a run with other settings ({', '.join(changed)}; only {allowed} may change on "
            f"resume; {details}). Restore them, or {new_run_hint}.", changed)
    if clips is not None:
        difference = _clip_difference(header, clips)
        if difference:
            raise ResumeDataError(
                f"{state_path} holds a run trained on other clips than these ({difference}); resuming would go on "
                f"training it on a different dataset. Give it its own clips, or {new_run_hint}.")
    return step


def _clip_difference(header, clips: Sequence) -> str | None:
    from .cache import clip_difference, fingerprint

    if header.clips is not None:
        return clip_difference(header.clips, clips)
    # A state saved before clip records knows its clips only by name, shape and bucket.
    return None if header.data == fingerprint(clips) else "other names, sizes or motion buckets"


class TrainingSession:
    """A `Trainer` bound to its state file; built by `start`, `resume` or `open`."""

    def __init__(self, trainer, state_path: str | os.PathLike, resumed: bool):
        self.trainer, self.state_path, self.resumed = trainer, pathlib.Path(state_path), resumed

    @classmethod
    def start(cls, model, clips: Sequence, config: TrainConfig, state_path: str | os.PathLike,
              start: SessionStart = SessionStart()) -> "TrainingSession":
        """A new run (an existing state file at `state_path` is overwritten when the state is saved)."""
        from .trainer import Trainer

        return cls(Trainer(model, clips, config, weights=start.weights, lora=start.lora), state_path, False)

    @classmethod
    def resume(cls, model, clips: Sequence, config: TrainConfig, state_path: str | os.PathLike,
               new_run_hint: str = "choose another state file to start a new run") -> "TrainingSession":
        """Continue the run saved at `state_path`; refused by name if `config` changes one of its settings."""
        from .trainer import Trainer

        step = check_resumable(state_path, config, new_run_hint, clips)
        logging.info("resuming %s at step %d of %d", state_path, step, config.steps)
        return cls(Trainer.resume(model, clips, state_path, config=config), state_path, True)

    @classmethod
    def open(cls, model, clips: Sequence, config: TrainConfig, state_path: str | os.PathLike, resume: bool = True,
             start: SessionStart = SessionStart(),
             new_run_hint: str = "choose another state file to start a new run") -> "TrainingSession":
        """`resume` if `resume` is on and `state_path` exists, else `start`."""
        if resume and os.path.exists(state_path):
            return cls.resume(model, clips, config, state_path, new_run_hint)
        return cls.start(model, clips, config, state_path, start)

    @property
    def config(self) -> TrainConfig:
        return self.trainer.config

    def run(self, progress: Callable[[int, int, float], None] | None = None, stop_on_signals: bool = False,
            should_stop: Callable[[], bool] | None = None):
        """Train up to `config.steps`, saving the state at `state_path`; a `TrainResult`.

        `stop_on_signals`: SIGINT/SIGTERM end the session after the current step (main thread only).
        """
        with (stop_signals() if stop_on_signals else contextlib.nullcontext(None)) as stop:
            asks = [ask for ask in (should_stop, stop) if ask is not None]
            return self.trainer.train(progress=progress, should_stop=(lambda: any(ask() for ask in asks)) if asks
                                      else None, state_path=self.state_path)

    # ------------------------------------------------------------------ results

    def lora(self, ema: bool = False) -> dict[str, torch.Tensor]:
        """The trained LoRA's tensors (lora mode), or in full mode, where everything is in the extension, a
        `NoLoRA`: empty, and an error naming full mode wherever something reads it as a LoRA."""
        from .lora import NoLoRA

        return self.trainer.lora_state_dict(ema) if self.config.mode == "lora" else NoLoRA()

    def save_lora(self, path: str | os.PathLike, ema: bool = False, dtype: str = "fp32") -> None:
        """The LoRA file, through the one writer (`lora.save_lora`), matched to this run's extension."""
        from .lora import save_lora

        save_lora(self.lora(ema), path, dtype, extension=self.trainer.weights(ema))

    def save_results(self, folder: str | os.PathLike, layout: str = "diffsynth") -> list[pathlib.Path]:
        """`exvideo.safetensors` (and `lora.safetensors` in lora mode), plus `-ema` twins with an EMA."""
        from .. import save_exvideo

        folder, written = pathlib.Path(folder), []
        for ema in (False, True) if self.trainer.ema is not None else (False,):
            suffix = "-ema" if ema else ""
            written.append(folder / f"exvideo{suffix}.safetensors")
            save_exvideo(self.trainer.weights(ema), written[-1], layout=layout)
            if self.config.mode == "lora":
                written.append(folder / f"lora{suffix}.safetensors")
                self.save_lora(written[-1], ema)
        return written


class StopRequest:
    """SIGINT/SIGTERM: the first asks the trainer to stop after the current step, the second stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logging.warning("stopping after this step (signal %d); send it again to stop now", signum)

    def __call__(self) -> bool:
        return self.requested

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
    stop = StopRequest()
    try:
        yield stop
    finally:
        stop.restore()
