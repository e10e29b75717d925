"""Seeds derived from a run's seed and a label, so every random draw is a function of where it happens.

The trainer never touches torch's global generator: clip order, sigma and
noise of sample k come from generators seeded by (seed, purpose, k). A run
resumed at any step therefore draws exactly what the uninterrupted run drew,
and each process of a distributed run draws its own samples.
"""

import hashlib

import torch


def derive_seed(seed: int, *labels) -> int:
    text = ":".join(str(part) for part in (seed, *labels))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, *labels) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *labels))
