"""QDQ (INT8) graphs in the cost counter and the profiler: the same MACs as FP32, reported as INT8, the
file's real size, and accuracy through ONNX Runtime."""

from __future__ import annotations

import onnx
import pytest
import torch

from wascompress.data import make_synthetic
from wascompress.export.exporter import ExportConfig, export_model
from wascompress.export.onnx_graph import onnx_bytes, to_onnx
from wascompress.export.quantize import QuantizationData, QuantizeConfig, quantize_onnx
from wascompress.models import create_model
from wascompress.profile import formats
from wascompress.profile.latency import TimingPlan
from wascompress.profile.onnx_cost import onnx_cost
from wascompress.profile.profiler import ProfileRequest, profile

EVERY_LAYER = QuantizeConfig(fp32_last=False, calibration_images=32)


@pytest.fixture(scope="module")
def graphs():
    torch.manual_seed(0)
    fp32 = to_onnx(create_model("tiny").eval(), (3, 32, 32))
    int8 = quantize_onnx(onnx_bytes(fp32), torch.randn(32, 3, 32, 32), EVERY_LAYER)
    return fp32, int8


def test_a_conv_on_dequantized_weights_counts_the_same_macs_as_int8(graphs):
    fp32, int8 = (onnx_cost(g) for g in graphs)
    assert int8.macs == fp32.macs > 0 and not int8.uncounted
    # parameters: the INT8 values, not their scales and zero points; the FP32 export stores equal biases
    # once (shared through Identity nodes), the quantizer one INT32 copy per conv (scaled by its input's scale)
    assert fp32.params <= int8.params <= fp32.params + sum(n.weight_shape[0] for n in fp32.nodes if n.op == "Conv")
    assert int8.effective_macs <= int8.macs
    counted = [n for n in int8.nodes if n.op in ("Conv", "Gemm")]
    assert counted and all(n.precision == "int8" for n in counted)
    assert [n.macs for n in counted] == [n.macs for n in fp32.nodes if n.op in ("Conv", "Gemm")]
    assert (int8.precision, fp32.precision, fp32.int8_macs) == ("int8", "fp32", 0)
    assert int8.int8_macs == sum(n.macs for n in counted)  # pooling is not a weighted layer


@pytest.mark.parametrize("config,first,last", [(QuantizeConfig(), "int8", "fp32"),
                                               (QuantizeConfig(fp32_first=True), "fp32", "fp32"),
                                               (QuantizeConfig(fp32_last=False), "int8", "int8")])
def test_layers_kept_fp32(config, first, last):
    """By default only the last layer (the logits) stays FP32; ``fp32_first`` keeps the stem conv too."""
    torch.manual_seed(0)
    fp32 = to_onnx(create_model("tiny").eval(), (3, 32, 32))
    cost = onnx_cost(quantize_onnx(onnx_bytes(fp32), torch.randn(32, 3, 32, 32), config))
    layers = [n.precision for n in cost.nodes if n.op in ("Conv", "Gemm")]
    assert (layers[0], layers[-1]) == (first, last) and set(layers[1:-1]) == {"int8"}
    assert cost.macs == onnx_cost(fp32).macs


def test_profiler_compares_fp32_and_int8_exports(tmp_path):
    torch.manual_seed(0)
    model = create_model("tiny")
    test = make_synthetic(train=False, size=64)
    data = QuantizationData(torch.randn(32, 3, 32, 32), test, test)
    export_model(model, tmp_path / "fp32.onnx", ExportConfig())
    # random weights on random calibration images: the 2-image agreement is not the point here
    export_model(model, tmp_path / "int8.onnx", ExportConfig(quantize=QuantizeConfig(min_agreement=0.01, fp32_last=False)),
                 quantization=data)
    request = ProfileRequest(models=(tmp_path / "fp32.onnx", tmp_path / "int8.onnx"), batch_sizes=(2,),
                             plan=TimingPlan(warmup=1, runs=2), dataset="synthetic", limit_test=64)
    report = profile(request)
    fp32, int8 = report["models"]
    assert (fp32["precision"], int8["precision"]) == ("fp32", "int8")
    assert int8["macs"] == fp32["macs"] and int8["thop_match"]  # the graph count equals thop's of the PyTorch model
    assert int8["file_bytes"] == (tmp_path / "int8.onnx").stat().st_size  # the real bytes
    assert 0 <= int8["test_accuracy"] <= 1
    table = formats.to_table(report)
    assert "INT8" in table and "FP32" in table
    assert "precision" in formats.to_csv(report).splitlines()[0]
    assert any(n.op_type == "DequantizeLinear" for n in onnx.load(tmp_path / "int8.onnx").graph.node)
