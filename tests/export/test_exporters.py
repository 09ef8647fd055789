"""The current (torch.export-based) ONNX exporter against the legacy one: same numbers, same bytes run to
run, asymmetric pads as one Conv (no Pad node), and the fallback when the current exporter fails."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from wascompress.export.exporter import ExportConfig, prune_model
from wascompress.export.onnx_graph import ExportError, onnx_bytes, run_onnx, to_onnx
from wascompress.models import create_model, list_models
from wascompress.was import WASConfig, apply_was_, freeze_dom_


def pruned_dom(name: str) -> torch.nn.Module:
    """A zoo model's DOM (crop + translate, seed 1) in its pruned form: shrunk kernels, asymmetric pads, crops."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, width=0.25)
    apply_was_(model, WASConfig(crop=(0.4, 0.6), translate=0.3))
    frozen = freeze_dom_(model, 1).eval()
    pruned, _ = prune_model(frozen, ExportConfig(mode="dom", seed=1, recalibrate_bn=False))
    return pruned


@pytest.mark.parametrize("name", list_models())
def test_current_exporter_equals_legacy_on_every_zoo_model(name):
    model = pruned_dom(name)
    current = onnx_bytes(to_onnx(model, (3, 32, 32), "dynamo"))
    legacy = onnx_bytes(to_onnx(model, (3, 32, 32), "legacy"))
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    scale = max(1.0, float(np.abs(reference).max()))
    assert np.abs(run_onnx(current, x) - run_onnx(legacy, x)).max() / scale <= 1e-5
    assert np.abs(run_onnx(current, x) - reference).max() / scale <= 1e-5
    proto = onnx.load_from_string(current)
    assert "dynamo exporter" in proto.doc_string
    assert "Pad" not in {node.op_type for node in proto.graph.node}  # asymmetric pads live in the Conv
    if name in ("resnet18", "mobilenetv2"):  # byte-identical run to run (two of them: each export takes seconds)
        assert onnx_bytes(to_onnx(model, (3, 32, 32), "dynamo")) == current


class _NotExportable(torch.nn.Module):
    """A model torch.export cannot trace (data-dependent control flow) but TorchScript tracing can."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if float(x.sum()) > 0 else x


def test_auto_falls_back_to_the_legacy_exporter_and_dynamo_alone_fails_clearly():
    proto = to_onnx(_NotExportable(), (1, 2, 2), "auto")
    assert "legacy exporter" in proto.doc_string
    with pytest.raises(ExportError, match="torch.export-based ONNX exporter failed"):
        to_onnx(_NotExportable(), (1, 2, 2), "dynamo")
    with pytest.raises(ExportError, match="exporter must be"):
        to_onnx(_NotExportable(), (1, 2, 2), "tflite")
