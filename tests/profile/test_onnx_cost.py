"""MACs read from the ONNX graph equal thop's count of the PyTorch model; sparsity is a direct count."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import thop
import torch
from torch import nn

from wascompress.export.onnx_graph import to_onnx
from wascompress.models import create_model, list_models
from wascompress.models.cost import count_macs
from wascompress.profile.onnx_cost import ModelFileError, initializers, load_model, onnx_cost

WIDTH = {"vgg16": 0.125, "resnet18": 0.125, "resnet34": 0.125, "googlenet": 0.125}


@pytest.mark.parametrize("name", list_models())
def test_graph_macs_equal_thop_on_every_zoo_model(name):
    model = create_model(name, width=WIDTH.get(name, 0.25)).eval()
    graph = onnx_cost(to_onnx(model, (3, 32, 32)))
    # thop counts BatchNorm (4 per element); the exported graph folds it into the conv, so it is left out
    assert graph.macs == count_macs(model)

    def no_ops(module, inputs, output):
        module.total_ops += 0

    with_bn, _ = thop.profile(copy.deepcopy(model), inputs=(torch.zeros(1, 3, 32, 32),), verbose=False)
    without_bn, _ = thop.profile(copy.deepcopy(model), inputs=(torch.zeros(1, 3, 32, 32),),
                                 custom_ops={nn.BatchNorm2d: no_ops}, verbose=False)
    assert graph.macs == int(without_bn) < int(with_bn)


def test_effective_macs_and_sparsity_are_direct_counts():
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    with torch.no_grad():
        model.conv2.conv.weight[:, :, 0, :] = 0  # a zero row in every filter
        model.res1.conv.weight[:3] = 0  # three zero filters
    proto = to_onnx(model, (3, 32, 32))
    cost = onnx_cost(proto)
    weights = initializers(proto)
    floats = [a for a in weights.values() if np.issubdtype(a.dtype, np.floating)]  # not shapes or axes
    assert cost.params == sum(a.size for a in floats)
    assert cost.nonzero_params == sum(int(np.count_nonzero(a)) for a in floats)
    convs = [n for n in cost.nodes if n.op == "Conv"]
    for node in convs:
        assert node.sparsity is not None
    zero_share = [n.sparsity for n in convs if n.sparsity > 0]
    assert len(zero_share) == 2
    assert cost.effective_macs < cost.macs
    # conv2 (8x8x3x3 on 32x32): one of three rows zero -> a third of its MACs are not effective
    conv2 = convs[1]
    assert conv2.macs - conv2.effective_macs == conv2.macs // 3


def test_not_a_model_is_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_text("definitely not protobuf")
    with pytest.raises(ModelFileError, match="junk.onnx"):
        load_model(junk)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.onnx")


def test_weights_shared_through_identity_nodes_are_counted():
    """The PyTorch exporter stores equal weights once and feeds the second conv through an Identity node
    (the exporter's crop convs of a layer size are all equal): those convs still count."""
    from wascompress.export.shrink import crop_conv

    model = nn.Sequential(crop_conv(8, (1, 0, 0, 0)), nn.ReLU(), crop_conv(8, (1, 0, 0, 0))).eval()
    proto = to_onnx(model, (8, 10, 10), "legacy")  # the legacy exporter writes Identity nodes
    assert any(n.op_type == "Identity" for n in proto.graph.node)
    cost = onnx_cost(proto)
    assert cost.macs == count_macs(model, (8, 10, 10)) == 8 * 10 * 9 * 2 + 8 * 10 * 8 * 2
    assert cost.params == 8 * 2  # one stored copy


def test_graph_macs_equal_thop_on_torchvision_resnet18_at_224():
    """Any input size: torchvision's resnet18 (random weights) at 224x224, BatchNorm left out as the
    exported graph folds it (1.81 G MACs)."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    graph = onnx_cost(to_onnx(model, (3, 224, 224)))
    assert graph.macs == count_macs(model, (3, 224, 224)) and 1.80e9 < graph.macs < 1.83e9
    assert graph.input_shape == (1, 3, 224, 224) and not graph.uncounted
