"""The training clips of the small world's UNet stages, encoded once by the trained VAE and cached.

The pool is `size` clips of `POOL_FRAMES` frames (training seeds, never
held-out ones). The base trains on 8-frame windows of them, the ExVideo
extension on whole clips, so both stages see the same world and the
encoding is paid once. Latents are ComfyUI's (unscaled, as `VAE.encode`
returns them) and cached under the VAE file's hash and the world's
fingerprint: a new VAE, or a world drawn differently, re-encodes.
"""

from __future__ import annotations

import pathlib

import torch

from . import models, training
from .world import HELD_OUT_SEEDS, fingerprint, make_clip

POOL_FRAMES = 40  # 5x the base's 8 frames: the extension's length


class LatentPool:
    def __init__(self, vae, size: int, folder: pathlib.Path):
        self.vae, self.size, self.folder = vae, size, folder
        folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def of_shipped_vae(cls, size: int) -> "LatentPool":
        """The pool encoded by the VAE in `models.weights_dir()`, cached under its file's hash and the world's."""
        path = models.weights_dir() / models.VAE_FILE
        folder = training.run_dir() / "latents" / f"{training.sha256(path)[:12]}-{fingerprint()}"
        return cls(models.load_vae(path), size, folder)

    @staticmethod
    def seed(index: int) -> int:
        return HELD_OUT_SEEDS + index

    @torch.no_grad()
    def latents(self, index: int) -> torch.Tensor:
        """(POOL_FRAMES 4 h w) VAE latents of pool clip `index`."""
        path = self.folder / f"{self.seed(index)}.pt"
        if path.exists():
            return torch.load(path)
        frames = torch.from_numpy(make_clip(self.seed(index), POOL_FRAMES).frames)
        latents = self.vae.encode(frames).float().contiguous()
        torch.save(latents, path)
        return latents
