"""Compensation maps move past their BatchNorm in the deployed graph: the BatchNorm folds into the conv again
(no BatchNormalization node left to run) and the output stays the same."""

from __future__ import annotations

import copy

import onnx
import torch

from tests.plan.test_structure import SHAPE, tiny
from wascompress.export.exporter import ExportConfig, export_model, mode_model, prune_model
from wascompress.export.filters import CompensatedConv2d
from wascompress.export.offsets import ShiftedBatchNorm2d, offsets_past_batchnorm_
from wascompress.was import apply_was_
from wascompress.was.planned import PLAN_WAS, DomPlan, LayerCut, fingerprint


def planned_with_channel_cut() -> tuple[torch.nn.Module, DomPlan]:
    """tiny with res1's filters halved: res2 consumes constant channels (a compensation map before its BN)."""
    model = tiny()
    apply_was_(model, PLAN_WAS)
    return model, DomPlan(fingerprint(model), {"res1.conv": LayerCut(kept=tuple(range(0, 32, 2)))}, 0.8, {}, 8)


def test_moving_the_maps_keeps_the_output_and_leaves_no_wrapper_before_a_batchnorm():
    """Catches a map moved unscaled (γ/√(σ²+ε) left out) or moved in front of the wrong BatchNorm."""
    model, plan = planned_with_channel_cut()
    config = ExportConfig(mode="dom", plan=plan, recalibrate_bn=False, input_shape=SHAPE)
    pruned, _ = prune_model(mode_model(model, config, None), config)
    assert any(isinstance(m, CompensatedConv2d) for m in pruned.modules())
    moved = copy.deepcopy(pruned).eval()
    assert offsets_past_batchnorm_(moved) >= 1
    assert not any(isinstance(m, CompensatedConv2d) for m in moved.modules())
    assert any(isinstance(m, ShiftedBatchNorm2d) for m in moved.modules())
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        assert torch.allclose(moved(x), pruned.eval()(x), atol=1e-5)


def test_the_exported_graph_runs_no_batchnorm_node(tmp_path):
    """Catches an export that keeps the wrappers: each would leave a BatchNormalization node to run."""
    model, plan = planned_with_channel_cut()
    out = tmp_path / "dom.onnx"
    report = export_model(model, out, ExportConfig(mode="dom", plan=plan, recalibrate_bn=False, input_shape=SHAPE))
    assert report["offsets_past_batchnorm"] >= 1 and report["verification"]["top1_identical"]
    ops = {node.op_type for node in onnx.load(out).graph.node}
    assert "BatchNormalization" not in ops, ops
