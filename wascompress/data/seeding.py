"""Seeded random generators: one well-mixed stream per (seed, use), so no two uses mirror each other."""

from __future__ import annotations

import numpy as np
import torch


def seeded_generator(seed: int, *streams: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, *streams)`` through numpy's SeedSequence (well mixed)."""
    entropy = [int(v) & 0xFFFFFFFFFFFFFFFF for v in (seed, *streams)]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0]) & 0x7FFFFFFFFFFFFFFF)
