"""A conv on an input zero-padded asymmetrically, exported to ONNX as one ``Conv`` with asymmetric pads.

PyTorch's conv2d pads symmetrically, so an asymmetric pad is a ``F.pad`` before it; in an exported graph
that would be a Pad node (a full pass over the input) before the Conv. ``wascompress::padded_conv2d``
is a custom op that both ONNX exporters translate into the single Conv node: the current
``torch.export``-based exporter through an onnxscript translation (:data:`ONNX_TRANSLATIONS`), the
legacy TorchScript exporter through a registered symbolic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnxscript import opset18
from torch import Tensor
from torch.onnx import symbolic_helper

OPSET = 18


@torch.library.custom_op("wascompress::padded_conv2d", mutates_args=())
def padded_conv2d(x: Tensor, weight: Tensor, bias: Tensor, pads: list[int], stride: list[int],
                  dilation: list[int], groups: int) -> Tensor:
    """conv2d of ``x`` zero-padded by ``pads`` = (left, right, top, bottom) >= 0."""
    return F.conv2d(F.pad(x, pads) if any(pads) else x, weight, bias, stride, 0, dilation, groups)


@padded_conv2d.register_fake
def _padded_conv2d_shape(x, weight, bias, pads, stride, dilation, groups):  # type: ignore[no-untyped-def]
    return F.conv2d(F.pad(x, pads), weight, bias, stride, 0, dilation, groups)


def _onnxscript_conv(x, weight, bias, pads, stride, dilation, groups):  # type: ignore[no-untyped-def]
    left, right, top, bottom = pads
    return opset18.Conv(x, weight, bias, pads=[top, left, bottom, right], strides=list(stride),
                        dilations=list(dilation), group=groups)


@symbolic_helper.parse_args("v", "v", "v", "is", "is", "is", "i")
def _torchscript_conv(g, x, weight, bias, pads, stride, dilation, groups):  # type: ignore[no-untyped-def]
    left, right, top, bottom = pads
    kernel = weight.type().sizes()[2:]
    return g.op("Conv", x, weight, bias, kernel_shape_i=kernel, strides_i=list(stride),
                dilations_i=list(dilation), group_i=groups, pads_i=[top, left, bottom, right])


torch.onnx.register_custom_op_symbolic("wascompress::padded_conv2d", _torchscript_conv, OPSET)
ONNX_TRANSLATIONS = {torch.ops.wascompress.padded_conv2d.default: _onnxscript_conv}
"""The current exporter's ``custom_translation_table`` for this module's op."""
