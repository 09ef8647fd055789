"""Counting an ONNX graph's cost from the graph itself: MACs, effective MACs, parameters, sparsity.

Any ONNX model with one float input: an image input's symbolic height and width (exported as dynamic)
must be given (``image_size``; a symbolic channel count, ``channels``), never guessed, and what is given
must agree with what the graph fixes (:meth:`ModelInput.shape`). Shapes come from ONNX shape inference at batch 1. MACs follow thop's rules for the ops both know, so
the two counts agree on the same model: Conv (output elements x input channels per group x kernel
taps; bias not counted), Gemm/MatMul (output elements x inner dimension), BatchNormalization (4 per
element: thop's count for an affine norm), AveragePool/GlobalAveragePool (one add per pooled input plus
one divide per output; a ReduceMean over the spatial axes is a global average pool). Element-wise ops (Add, Relu, Clip, Mul), Pad/Slice, pooling by max, Reshape and
Flatten count nothing — in thop as here. *Effective* MACs count only multiplications by non-zero
weights (Conv, Gemm, MatMul with an initializer weight). A quantized (QDQ) graph counts the same: a
weight that a DequantizeLinear node computes from an INT8 initializer is that initializer dequantized, so
its Conv has the MACs of the FP32 Conv, reported with precision ``int8``; its parameters are the INT8
values (not the scales and zero points). A Conv whose weight is not an initializer (computed in the
graph) or whose shapes cannot be inferred is listed as *not counted* (:attr:`GraphCost.uncounted`) and
left out of the totals, which are then a lower bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from wascompress.errors import ConfigError, WascompressError

FLOAT_INPUTS = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16,
                onnx.TensorProto.DOUBLE: np.float64}  # the input types the profiler can feed random images to


class ModelFileError(WascompressError):
    """A file that is not a readable ONNX model, or one the profiler cannot feed."""


@dataclass(frozen=True)
class ModelInput:
    """A model's one input: its name, element type and dimensions (an int, or a name if symbolic)."""

    name: str
    dtype: type
    dims: tuple[int | str, ...]

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the graph fixes (None: any)."""
        return self.dims[0] if self.dims and isinstance(self.dims[0], int) else None

    def shape(self, image_size: tuple[int, int] | None = None, batch: int = 1, where: str = "model",
              channels: int | None = None) -> tuple[int, ...]:
        """The full input shape at ``batch``. Dimensions the graph fixes are its own; an image input's
        symbolic height and width come from ``image_size`` (H, W) and a symbolic channel count from
        ``channels``; whatever is given must agree with what the graph fixes."""
        if len(self.dims) < 2:
            raise ModelFileError(f"{where}: input {self.name!r} has shape {list(self.dims)}; expected a batch "
                                 "dimension and at least one more")
        per_image = self.dims[1:]
        if image_size is not None or channels is not None:
            if len(per_image) != 3:
                raise ConfigError(f"{where}: input {self.name!r} of shape {_dims_text(self.dims)} is not a batch "
                                  "of images (N, C, H, W): an image size does not apply to it")
            given = (channels, *(image_size or (None, None)))
            if any(isinstance(d, int) and g is not None and d != g for d, g in zip(per_image, given)):
                raise ConfigError(f"{where}: {_given_text(image_size, channels)} does not fit input {self.name!r} "
                                  f"of shape {_dims_text(self.dims)}")
            per_image = tuple(d if g is None else g for d, g in zip(per_image, given))
        if any(not isinstance(d, int) for d in per_image):
            raise ConfigError(f"{where}: input {self.name!r} has symbolic dimensions {_dims_text(self.dims)}; "
                              f"{_what_to_pass(per_image)}")
        return (batch, *per_image)


def _what_to_pass(per_image: tuple[int | str, ...]) -> str:
    """What fixes an input's symbolic dimensions: ``--image-size H W`` where only an image's height and
    width are symbolic, ``--input-shape C,H,W`` (its alias that also gives the channel count) where the
    channel count is too; nothing for an input that is not a batch of images."""
    if len(per_image) != 3:
        return "only an image input's (N, C, H, W) height, width and channels can be given"
    _, height, width = (str(d) if isinstance(d, int) else name for d, name in zip(per_image, ("C", "HEIGHT", "WIDTH")))
    if isinstance(per_image[0], int):
        return f"give --image-size {height} {width}"
    return f"its channel count is symbolic too: give --input-shape C,{height},{width}"


def _given_text(image_size: tuple[int, int] | None, channels: int | None) -> str:
    size = [f"image size {image_size[0]}x{image_size[1]}"] if image_size is not None else []
    return " and ".join(size + ([f"{channels} channels"] if channels is not None else []))


def _dims_text(dims: tuple[int | str, ...]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


@dataclass(frozen=True)
class NodeCost:
    name: str
    op: str
    macs: int
    effective_macs: int
    weight_shape: tuple[int, ...] | None = None
    sparsity: float | None = None  # fraction of zero weights
    precision: str | None = None  # of the weight: "int8" (dequantized from an INT8 initializer) or "fp32"


@dataclass
class GraphCost:
    macs: int = 0
    effective_macs: int = 0
    params: int = 0
    nonzero_params: int = 0
    nodes: list[NodeCost] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()
    uncounted: list[str] = field(default_factory=list)  # Conv/Gemm/MatMul nodes whose cost is unknown

    @property
    def precision(self) -> str:
        """``int8`` when most counted MACs run on INT8 weights, else ``fp32``."""
        int8 = sum(n.macs for n in self.nodes if n.precision == "int8")
        return "int8" if self.macs and int8 * 2 > self.macs else "fp32"

    @property
    def int8_macs(self) -> int:
        return sum(n.macs for n in self.nodes if n.precision == "int8")

    def as_dict(self) -> dict[str, Any]:
        return {"macs": self.macs, "effective_macs": self.effective_macs, "params": self.params,
                "nonzero_params": self.nonzero_params, "input_shape": list(self.input_shape),
                "precision": self.precision, "int8_macs": self.int8_macs,
                "uncounted": list(self.uncounted),
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


def weight_aliases(proto: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` plus the outputs of Identity nodes on them (the PyTorch exporter stores equal weights once
    and feeds the other users through an Identity node) and of DequantizeLinear nodes on them (a QDQ
    graph's weights, dequantized)."""
    aliased = dict(arrays)
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in aliased:
            aliased[node.output[0]] = aliased[node.input[0]]
        elif node.op_type == "DequantizeLinear" and all(name in aliased for name in node.input if name):
            aliased[node.output[0]] = dequantize(node, aliased)
    return aliased


def dequantize(node: onnx.NodeProto, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """What a DequantizeLinear node on constant inputs computes: (x - zero_point) * scale, per tensor or
    along its ``axis``."""
    x = arrays[node.input[0]].astype(np.float64)
    scale = arrays[node.input[1]].astype(np.float64)
    zero = arrays[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else np.zeros_like(scale)
    if scale.ndim == 1 and x.ndim > 1:  # per axis: line the scales up with that axis
        shape = [1] * x.ndim
        shape[_attr(node, "axis", 1) % x.ndim] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((x - zero) * scale).astype(np.float32)


def quantized_weights(proto: onnx.ModelProto) -> tuple[set[str], set[str]]:
    """Names of the integer initializers DequantizeLinear nodes read, and of their scales and zero points."""
    values, parameters = set(), set()
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear":
            values.add(node.input[0])
            parameters.update(name for name in node.input[1:] if name)
    return values, parameters


def graph_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    names = {init.name for init in proto.graph.initializer} | {s.values.name for s in proto.graph.sparse_initializer}
    return [i for i in proto.graph.input if i.name not in names]


def model_input(proto: onnx.ModelProto, where: str = "model") -> ModelInput:
    """The model's one input; several inputs, or one that is not a float tensor, is a one-line error."""
    inputs = graph_inputs(proto)
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs)
        raise ModelFileError(f"{where} has {len(inputs)} inputs ({names}); only models with one input (an image "
                             "or feature tensor) can be profiled")
    value = inputs[0]
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or tensor.elem_type not in FLOAT_INPUTS:
        kind = onnx.TensorProto.DataType.Name(tensor.elem_type) if value.type.HasField("tensor_type") else "not a tensor"
        raise ModelFileError(f"{where}: input {value.name!r} is {kind.lower()}; the profiler feeds random float "
                             "tensors, so only float16, float32 and float64 inputs are supported")
    if not tensor.HasField("shape"):
        raise ModelFileError(f"{where}: input {value.name!r} has no declared shape")
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
    return ModelInput(value.name, FLOAT_INPUTS[tensor.elem_type], dims)


def _shapes(proto: onnx.ModelProto, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    dims = graph_inputs(fixed)[0].type.tensor_type.shape.dim
    for d, size in zip(dims, shape):
        d.Clear()
        d.dim_value = size
    inferred = shape_inference.infer_shapes(fixed, data_prop=True)
    shapes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def onnx_cost(model: str | Path | onnx.ModelProto, image_size: tuple[int, int] | None = None,
              where: str | None = None, channels: int | None = None) -> GraphCost:
    """Count MACs (dense and effective), parameters and per-layer sparsity of one image (of ``image_size``
    (H, W) and ``channels`` where the graph leaves them symbolic); ``where`` names the model in errors."""
    if image_size is not None and len(image_size) != 2:
        raise ConfigError(f"image_size is (height, width), got {tuple(image_size)}; the channel count goes in channels")
    proto = load_model(model) if not isinstance(model, onnx.ModelProto) else model
    where = where or (str(model) if not isinstance(model, onnx.ModelProto) else "model")
    weights = initializers(proto)
    graph_input = model_input(proto, where)
    batch = graph_input.fixed_batch or 1  # a graph that fixes its batch is counted at it, then per image
    shapes = _shapes(proto, graph_input.shape(image_size, batch, where, channels))
    cost = GraphCost(input_shape=graph_input.shape(image_size, 1, where, channels))
    quantized, scales = quantized_weights(proto)
    for name, array in weights.items():
        if name in quantized or (np.issubdtype(array.dtype, np.floating) and name not in scales):
            cost.params += int(array.size)
            cost.nonzero_params += int(np.count_nonzero(array))
    dequantized = {node.output[0] for node in proto.graph.node
                   if node.op_type == "DequantizeLinear" and node.input[0] in weights}
    weights = weight_aliases(proto, weights)
    for index, node in enumerate(proto.graph.node):
        name = node.name or f"{node.op_type}_{index}"
        out = shapes.get(node.output[0]) if node.output else None
        inp = shapes.get(node.input[0]) if node.input else None
        weight = weights.get(node.input[1]) if len(node.input) > 1 else None
        macs = effective = 0
        if node.op_type == "Conv" and (out is None or weight is None):
            cost.uncounted.append(name)  # its cost is unknown here, not zero
        elif node.op_type == "Conv":
            per_output = int(np.prod(weight.shape[1:]))  # in/groups x kernel taps
            spatial = int(np.prod(out[2:]))
            macs = int(np.prod(out)) * per_output
            effective = int(np.count_nonzero(weight)) * spatial * out[0]
        elif node.op_type in ("Gemm", "MatMul") and (out is None or inp is None):
            cost.uncounted.append(name)
        elif node.op_type in ("Gemm", "MatMul"):
            inner = inp[-1] if not (node.op_type == "Gemm" and _attr(node, "transA", 0)) else inp[0]
            macs = int(np.prod(out)) * inner
            if weight is not None:
                effective = int(round(macs * np.count_nonzero(weight) / weight.size))
            else:
                effective = macs
        elif node.op_type == "BatchNormalization" and inp is not None:
            macs = effective = 4 * int(np.prod(inp))
        elif (node.op_type == "GlobalAveragePool" or _is_global_mean(node, inp, weights)) and inp is not None \
                and out is not None:
            macs = effective = int(np.prod(inp)) + int(np.prod(out))
        elif node.op_type == "AveragePool" and inp is not None and out is not None:
            macs = effective = _average_pool_ops(node, inp, out)
        sparsity = precision = None
        if weight is not None and node.op_type in ("Conv", "Gemm", "MatMul"):
            sparsity = 1 - np.count_nonzero(weight) / weight.size
            precision = "int8" if node.input[1] in dequantized else "fp32"
        macs, effective = macs // batch, effective // batch
        cost.nodes.append(NodeCost(name, node.op_type, macs, effective,
                                   tuple(weight.shape) if weight is not None else None, sparsity, precision))
        cost.macs += macs
        cost.effective_macs += effective
    return cost


def _is_global_mean(node: onnx.NodeProto, inp: tuple[int, ...] | None, arrays: dict[str, np.ndarray]) -> bool:
    """A ReduceMean over every spatial axis: a global average pool (how torch.export-based exports write
    adaptive average pooling to 1x1)."""
    if node.op_type != "ReduceMean" or inp is None or len(inp) < 3:
        return False
    if len(node.input) > 1 and node.input[1] in arrays:  # opset 18: axes are an input
        axes = [int(a) for a in np.asarray(arrays[node.input[1]]).reshape(-1)]
    else:
        axes = list(_attr(node, "axes", []))
    return sorted(a % len(inp) for a in axes) == list(range(2, len(inp)))


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
