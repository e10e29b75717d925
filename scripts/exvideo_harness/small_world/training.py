"""What the small world's training scripts share: a resumable run, its log and its final file.

A run keeps its whole state (model, optimizer, step, losses, wall time) in
one file under `.cache/small_world/`, written atomically every
`save_every` steps and when interrupted (Ctrl-C, or SIGTERM for a job in
the background), so a stopped run resumes where its
last save left it and computes the same steps: each step draws its data from
a generator seeded by (seed, step), never from a global generator.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import pathlib
import signal
import time
from typing import Callable

import torch

from exvideo_core import atomic_file
from exvideo_core.train.ema import EMA
from exvideo_core.train.seeding import generator

from ..cache import REPO_ROOT

log = logging.getLogger("small_world")


def stage_arguments(description: str) -> argparse.Namespace:
    """A training stage's command line (--max-steps, --threads), with its progress logged and threads set."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, help="stop after this many steps of this session (resume later)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    torch.set_num_threads(args.threads)
    return args


def run_dir() -> pathlib.Path:
    path = REPO_ROOT / ".cache" / "small_world"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclasses.dataclass(frozen=True)
class Schedule:
    steps: int
    lr: float
    warmup: int = 100
    final_lr_fraction: float = 0.1
    # A warm restart: the warm-up and the cosine start at this step, as a finished run trains on. The steps
    # before it ran under the schedules its recipe's note records.
    restart: int = 0

    def lr_at(self, step: int) -> float:
        """Linear warm-up from `restart`, then a cosine down to `final_lr_fraction` of `lr` at `steps`."""
        step -= self.restart
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.restart - self.warmup)
        return self.lr * (self.final_lr_fraction + (1 - self.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


class Run:
    """The resumable state of one training script: `run.step`, `run.losses`, `run.wall_s`."""

    def __init__(self, name: str, module: torch.nn.Module, schedule: Schedule, seed: int, recipe: dict,
                 ema_decay: float | None = None, state_path: pathlib.Path | None = None, save_every: int = 100):
        """Trains every parameter of `module`; `ema_decay`: also keep their exponential moving average."""
        self.name, self.module, self.schedule, self.seed = name, module, schedule, seed
        self.recipe = {**recipe, "seed": seed, "steps": schedule.steps, "lr": schedule.lr,
                       **({"restart": schedule.restart} if schedule.restart else {}),
                       **({"ema_decay": ema_decay} if ema_decay else {})}
        self.optimizer = torch.optim.AdamW(module.parameters(), lr=schedule.lr, weight_decay=0.0)
        self.ema = EMA(dict(module.named_parameters()), ema_decay) if ema_decay else None
        self.state_path = state_path or run_dir() / f"{name}.state.pt"
        self.save_every = save_every
        self.step, self.losses, self.wall_s = 0, [], 0.0
        if self.state_path.exists():
            self._resume()

    def _resume(self) -> None:
        state = torch.load(self.state_path, map_location="cpu", weights_only=False)
        if state["recipe"] != self.recipe:
            raise SystemExit(f"{self.state_path} holds a run of another recipe ({state['recipe']}); "
                             f"delete it to start this one ({self.recipe})")
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.losses, self.wall_s = state["step"], state["losses"], state["wall_s"]
        if self.ema:
            self.ema.load(state["ema"])
        log.info("%s: resumed at step %d/%d (%.0f s so far)", self.name, self.step, self.schedule.steps, self.wall_s)

    def save(self) -> None:
        state = {"recipe": self.recipe, "module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "step": self.step, "losses": self.losses, "wall_s": self.wall_s,
                 "ema": self.ema.values if self.ema else None}
        atomic_file.atomic_write(self.state_path, lambda tmp: torch.save(state, tmp))

    def train(self, loss_of_step: Callable[[torch.Generator], torch.Tensor], max_steps: int | None = None) -> bool:
        """Runs steps until the schedule ends (True) or `max_steps` more were taken (False); saves on the way."""
        stop = self.schedule.steps if max_steps is None else min(self.schedule.steps, self.step + max_steps)
        # A background job ignores SIGINT and is stopped with SIGTERM: both save the state first.
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, signal.default_int_handler)
        started, last_log = time.monotonic(), time.monotonic()
        wall_before = self.wall_s
        try:
            while self.step < stop:
                for group in self.optimizer.param_groups:
                    group["lr"] = self.schedule.lr_at(self.step)
                loss = loss_of_step(generator(self.seed, self.name, self.step))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{self.name}: loss {loss.item()} at step {self.step}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), 1.0)
                self.optimizer.step()
                if self.ema:
                    self.ema.update(dict(self.module.named_parameters()))
                self.losses.append(loss.item())
                self.step += 1
                self.wall_s = wall_before + time.monotonic() - started
                if self.step % self.save_every == 0 or self.step == stop:
                    self.save()
                if time.monotonic() - last_log > 30 or self.step == stop:
                    last_log = time.monotonic()
                    recent = self.losses[-50:]
                    log.info("%s: step %d/%d  loss %.4f  lr %.2e  %.2f s/step  %.0f s in all", self.name,
                             self.step, self.schedule.steps, sum(recent) / len(recent),
                             self.schedule.lr_at(self.step - 1), self.wall_s / max(1, self.step), self.wall_s)
        except KeyboardInterrupt:
            self.save()
            raise
        return self.step >= self.schedule.steps

    def final_state_dict(self) -> dict[str, torch.Tensor]:
        """The module's tensors to ship: the moving average of its parameters where one is kept."""
        state = dict(self.module.state_dict())
        if self.ema:
            state.update(self.ema.values)
        return state


def exported(path: pathlib.Path) -> bool:
    """Whether a stage's final file is already shipped, so that running the stage again does nothing."""
    if path.exists():
        log.info("%s is shipped; delete it to train its stage again", path)
        return True
    return False


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest_entry(path: pathlib.Path, entry: dict) -> None:
    """Records a stage's final file in the manifest beside it: its sha256, size and `entry` (recipe, losses...)."""
    manifest_path = path.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[path.name] = {"sha256": sha256(path), "bytes": path.stat().st_size, **entry}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
