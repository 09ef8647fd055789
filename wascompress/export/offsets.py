"""Compensation maps past BatchNorm: a removed constant channel's share (``CompensatedConv2d``, a conv plus a
constant map) sits between the conv and its BatchNorm, where it stops the ONNX exporter from folding the
BatchNorm into the conv; the graph then runs a BatchNormalization node of its own. In eval mode
``BN(conv(x) + m) = BN(conv(x)) + m · γ/√(σ² + ε)``, so the map moves past the BatchNorm (scaled per channel)
and the conv and BatchNorm fold again. Only for the deployed graph: in training mode BatchNorm normalises by
the batch's statistics and the identity does not hold.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import Tensor, nn

from wascompress.export.filters import CompensatedConv2d


class ShiftedBatchNorm2d(nn.Module):
    """An eval-mode BatchNorm followed by a constant map."""

    def __init__(self, bn: nn.BatchNorm2d, shift: Tensor) -> None:
        super().__init__()
        self.bn = bn
        self.register_buffer("shift", shift.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(x) + self.shift


class _WrapperTracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return isinstance(m, CompensatedConv2d) or super().is_leaf_module(m, qualified_name)


def offsets_past_batchnorm_(model: nn.Module) -> int:
    """Move every compensation map whose conv feeds only a BatchNorm past it (``model`` in eval mode, changed
    in place); returns how many moved. A model torch.fx cannot trace is left as it is."""
    if not any(isinstance(m, CompensatedConv2d) for m in model.modules()):
        return 0
    try:
        graph = _WrapperTracer().trace(model)
    except Exception:  # noqa: BLE001 - any untraceable model: keep the wrappers (correct, a little slower)
        return 0
    moved = 0
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(model.get_submodule(node.target), CompensatedConv2d):
            continue
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module":
            continue
        bn = model.get_submodule(users[0].target)
        if not isinstance(bn, nn.BatchNorm2d) or not bn.track_running_stats:
            continue
        wrapper = model.get_submodule(node.target)
        scale = torch.rsqrt(bn.running_var + bn.eps)
        scale = scale * bn.weight.detach() if bn.affine else scale
        model.set_submodule(node.target, wrapper.conv)
        model.set_submodule(users[0].target, ShiftedBatchNorm2d(bn, wrapper.offset * scale.view(1, -1, 1, 1)))
        moved += 1
    return moved
