"""Counting a PyTorch model's cost: parameters and MACs (thop's dense count, 1 MAC = 2 FLOPs)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


def count_parameters(model: nn.Module, nonzero: bool = False) -> int:
    """All parameters, or only the non-zero ones."""
    with torch.no_grad():
        return sum(int((p != 0).sum()) if nonzero else p.numel() for p in model.parameters())


def _no_ops(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
    module.total_ops += 0


def count_macs(model: nn.Module, input_shape: tuple[int, int, int] = (3, 32, 32), count_batchnorm: bool = False) -> int:
    """Dense multiply-accumulates of one image of ``input_shape`` (C, H, W), counted by thop on a deep copy
    (thop adds buffers).

    BatchNorm is not counted by default: an exported graph folds it into the preceding conv, so it
    costs nothing at inference, and this count then equals the one read from the ONNX graph.
    """
    import thop

    probe = copy.deepcopy(model).eval()
    device = next(probe.parameters()).device
    custom = {} if count_batchnorm else {cls: _no_ops for cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)}
    with torch.no_grad():
        macs, _ = thop.profile(probe, inputs=(torch.zeros(1, *input_shape, device=device),), custom_ops=custom,
                               verbose=False)
    return int(macs)


@dataclass(frozen=True)
class LayerCost:
    """One conv or linear layer's cost for one image."""

    name: str
    kind: str  # "conv" or "linear"
    weight_shape: tuple[int, ...]
    output_hw: tuple[int, int]
    macs: int  # dense multiply-accumulates
    nonzero_macs: int  # those whose weight is non-zero
    sparsity: float  # fraction of zero weights


def layer_costs(model: nn.Module, input_shape: tuple[int, int, int] = (3, 32, 32)) -> list[LayerCost]:
    """MACs of every Conv2d and Linear for one image, dense and with zero weights skipped."""
    costs: list[LayerCost] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        weight = module.weight.detach()
        nonzero = int((weight != 0).sum())
        if isinstance(module, nn.Conv2d):
            hw = (int(output.shape[-2]), int(output.shape[-1]))
            per_weight = hw[0] * hw[1]
            kind = "conv"
        else:
            hw, per_weight, kind = (1, 1), int(output.numel() // output.shape[-1]) // max(1, output.shape[0]), "linear"
        costs.append(LayerCost(names[module], kind, tuple(weight.shape), hw, weight.numel() * per_weight,
                               nonzero * per_weight, 1 - nonzero / weight.numel()))

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            was_training = model.training
            model.eval()
            model(torch.zeros(1, *input_shape, device=device))
            model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return costs
