"""Counting an ONNX graph's cost from the graph itself: MACs, effective MACs, parameters, sparsity.

Shapes come from ONNX shape inference at batch 1. MACs follow thop's rules for the ops both know, so
the two counts agree on the same model: Conv (output elements x input channels per group x kernel
taps; bias not counted), Gemm/MatMul (output elements x inner dimension), BatchNormalization (4 per
element: thop's count for an affine norm), AveragePool/GlobalAveragePool (one add per pooled input plus
one divide per output). Element-wise ops (Add, Relu, Clip, Mul), Pad/Slice, pooling by max, Reshape and
Flatten count nothing — in thop as here. *Effective* MACs count only multiplications by non-zero
weights (Conv, Gemm, MatMul with an initializer weight).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from wascompress.errors import WascompressError


class ModelFileError(WascompressError):
    """A file that is not a readable ONNX model."""


@dataclass(frozen=True)
class NodeCost:
    name: str
    op: str
    macs: int
    effective_macs: int
    weight_shape: tuple[int, ...] | None = None
    sparsity: float | None = None  # fraction of zero weights


@dataclass
class GraphCost:
    macs: int = 0
    effective_macs: int = 0
    params: int = 0
    nonzero_params: int = 0
    nodes: list[NodeCost] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"macs": self.macs, "effective_macs": self.effective_macs, "params": self.params,
                "nonzero_params": self.nonzero_params, "input_shape": list(self.input_shape),
                "layers": [n.__dict__ | {"weight_shape": list(n.weight_shape) if n.weight_shape else None}
                           for n in self.nodes if n.macs]}


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX model; anything else is a one-line :class:`ModelFileError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model not found: {path}")
    try:
        proto = onnx.load(str(path))
    except Exception as err:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{path} is not an ONNX model ({type(err).__name__})") from None
    if not proto.graph.node or not proto.graph.input:
        raise ModelFileError(f"{path} is not an ONNX model (no graph)")
    return proto


def initializers(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Dense and sparse initializers as arrays (sparse ones densified)."""
    arrays = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    for sparse in proto.graph.sparse_initializer:
        values = numpy_helper.to_array(sparse.values)
        indices = numpy_helper.to_array(sparse.indices)
        dense = np.zeros(int(np.prod(sparse.dims)), dtype=values.dtype)
        flat = indices if indices.ndim == 1 else np.ravel_multi_index(indices.T, tuple(sparse.dims))
        dense[flat] = values
        arrays[sparse.values.name] = dense.reshape(tuple(sparse.dims))
    return arrays


def with_identity_aliases(proto: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` plus the outputs of Identity nodes on them: the PyTorch exporter stores equal weights once
    and feeds the other users through an Identity node."""
    aliased = dict(arrays)
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in aliased:
            aliased[node.output[0]] = aliased[node.input[0]]
    return aliased


def graph_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    names = {init.name for init in proto.graph.initializer} | {s.values.name for s in proto.graph.sparse_initializer}
    return [i for i in proto.graph.input if i.name not in names]


def input_shape(proto: onnx.ModelProto, batch: int = 1) -> tuple[int, ...]:
    """The first input's shape with symbolic dimensions (the batch) set to ``batch``."""
    dims = graph_inputs(proto)[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else batch for d in dims)


def _shapes(proto: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    for d in graph_inputs(fixed)[0].type.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            d.Clear()
            d.dim_value = 1
    inferred = shape_inference.infer_shapes(fixed, data_prop=True)
    shapes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def onnx_cost(model: str | Path | onnx.ModelProto) -> GraphCost:
    """Count MACs (dense and effective), parameters and per-layer sparsity of one image."""
    proto = load_model(model) if not isinstance(model, onnx.ModelProto) else model
    weights = initializers(proto)
    shapes = _shapes(proto)
    cost = GraphCost(input_shape=input_shape(proto))
    for array in weights.values():
        if np.issubdtype(array.dtype, np.floating):
            cost.params += int(array.size)
            cost.nonzero_params += int(np.count_nonzero(array))
    weights = with_identity_aliases(proto, weights)
    for index, node in enumerate(proto.graph.node):
        name = node.name or f"{node.op_type}_{index}"
        out = shapes.get(node.output[0]) if node.output else None
        inp = shapes.get(node.input[0]) if node.input else None
        weight = weights.get(node.input[1]) if len(node.input) > 1 else None
        macs = effective = 0
        if node.op_type == "Conv" and out is not None and weight is not None:
            per_output = int(np.prod(weight.shape[1:]))  # in/groups x kernel taps
            spatial = int(np.prod(out[2:]))
            macs = int(np.prod(out)) * per_output
            effective = int(np.count_nonzero(weight)) * spatial * out[0]
        elif node.op_type in ("Gemm", "MatMul") and out is not None and inp is not None:
            inner = inp[-1] if not (node.op_type == "Gemm" and _attr(node, "transA", 0)) else inp[0]
            macs = int(np.prod(out)) * inner
            if weight is not None:
                effective = int(round(macs * np.count_nonzero(weight) / weight.size))
            else:
                effective = macs
        elif node.op_type == "BatchNormalization" and inp is not None:
            macs = effective = 4 * int(np.prod(inp))
        elif node.op_type == "GlobalAveragePool" and inp is not None and out is not None:
            macs = effective = int(np.prod(inp)) + int(np.prod(out))
        elif node.op_type == "AveragePool" and inp is not None and out is not None:
            macs = effective = _average_pool_ops(node, inp, out)
        sparsity = None
        if weight is not None and node.op_type in ("Conv", "Gemm", "MatMul"):
            sparsity = 1 - np.count_nonzero(weight) / weight.size
        cost.nodes.append(NodeCost(name, node.op_type, macs, effective,
                                   tuple(weight.shape) if weight is not None else None, sparsity))
        cost.macs += macs
        cost.effective_macs += effective
    return cost


def _average_pool_ops(node: onnx.NodeProto, inp: tuple[int, ...], out: tuple[int, ...]) -> int:
    """thop's count: one add per input element inside each window, one divide per output."""
    kernel = _attr(node, "kernel_shape", [])
    strides = _attr(node, "strides", [1] * len(kernel))
    pads = _attr(node, "pads", [0] * 2 * len(kernel))
    include_pad = bool(_attr(node, "count_include_pad", 0))
    dims = len(kernel)
    windows = 1
    for axis in range(dims):
        size, output, k, s = inp[2 + axis], out[2 + axis], kernel[axis], strides[axis]
        p = pads[axis]
        lower, upper = (-p, size + pads[axis + dims]) if include_pad else (0, size)
        windows *= sum(max(min(i * s - p + k, upper) - max(i * s - p, lower), 0) for i in range(output))
    return math.prod(inp[:2]) * windows + math.prod(out)
