"""Counting a PyTorch model's cost: parameters and MACs (thop's dense count, 1 MAC = 2 FLOPs)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def count_parameters(model: nn.Module, nonzero: bool = False) -> int:
    """All parameters, or only the non-zero ones."""
    with torch.no_grad():
        return sum(int((p != 0).sum()) if nonzero else p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> int:
    """Dense multiply-accumulates of one image, counted by thop on a deep copy (thop adds buffers)."""
    import thop

    probe = copy.deepcopy(model).eval()
    device = next(probe.parameters()).device
    with torch.no_grad():
        macs, _ = thop.profile(probe, inputs=(torch.zeros(1, *input_size, device=device),), verbose=False)
    return int(macs)
