"""Kernel shrinking: a conv whose taps outside a window are zero equals a smaller conv on a padded or
cropped input, in PyTorch and in the exported ONNX graph (one Conv node with asymmetric pads, after a
one-hot depthwise crop conv where a pad is negative)."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from wascompress.export.onnx_graph import onnx_bytes, run_onnx, to_onnx
from wascompress.export.shrink import (
    KernelWindow,
    ShrunkConv2d,
    crop_conv,
    nonzero_window,
    shrink_decision,
    shrink_kernels_,
)

TOLERANCE = 1e-5


def windows(k: int) -> list[KernelWindow]:
    """Every window of a k x k kernel except the whole kernel."""
    found = []
    for h, w in itertools.product(range(1, k + 1), repeat=2):
        for top, left in itertools.product(range(k - h + 1), range(k - w + 1)):
            if (h, w) != (k, k):
                found.append(KernelWindow(top, left, h, w))
    return found


def zero_outside(conv: nn.Conv2d, window: KernelWindow) -> None:
    mask = torch.zeros_like(conv.weight)
    mask[:, :, window.top : window.top + window.height, window.left : window.left + window.width] = 1
    with torch.no_grad():
        conv.weight.mul_(mask)


# (stride, padding, dilation, kind): kind "dense" (groups 1), "grouped" (groups 2), "depthwise"
CASES = [
    (1, 0, 1, "dense"), (1, 1, 1, "dense"), (1, 2, 1, "dense"),
    (2, 0, 1, "dense"), (2, 1, 1, "dense"), (2, 2, 1, "dense"),
    (1, 0, 2, "dense"), (1, 1, 2, "dense"), (2, 2, 2, "dense"),
    (1, 1, 1, "depthwise"), (2, 0, 1, "depthwise"), (1, 2, 2, "depthwise"),
    (1, 1, 1, "grouped"), (2, 0, 1, "grouped"),
]


def make_conv(k: int, stride: int, padding: int, dilation: int, kind: str, bias: bool) -> nn.Conv2d:
    if kind == "depthwise":
        cin, cout, groups = 4, 4, 4
    elif kind == "grouped":
        cin, cout, groups = 4, 6, 2
    else:
        cin, cout, groups = 3, 5, 1
    return nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("stride,padding,dilation,kind", CASES)
def test_shrunk_conv_equals_the_zero_bordered_conv(k, stride, padding, dilation, kind):
    torch.manual_seed(1000 * k + 100 * stride + 10 * padding + dilation)
    x = torch.randn(2, 4, 13, 13)
    negative_pads = 0
    for i, window in enumerate(windows(k)):
        conv = make_conv(k, stride, padding, dilation, kind, bias=i % 2 == 0).eval()
        x_in = x[:, : conv.in_channels]
        zero_outside(conv, window)
        assert nonzero_window(conv.weight.detach()) == window
        shrunk = ShrunkConv2d(conv, window).eval()
        assert shrunk.conv.kernel_size == (window.height, window.width)
        negative_pads += min(shrunk.pads) < 0
        with torch.no_grad():
            expected, got = conv(x_in), shrunk(x_in)
        assert got.shape == expected.shape, (window, shrunk.pads)
        difference = float((got - expected).abs().max())
        assert difference <= TOLERANCE, (window, shrunk.pads, difference)
    if padding == 0:
        assert negative_pads == len(windows(k))  # without padding, every zero border is a crop of the input
    if padding == 0 or dilation == 2:
        assert negative_pads > 0


def test_shrunk_conv_with_per_axis_settings():
    """Non-square kernels, and stride / padding / dilation that differ between the axes (and 'valid')."""
    torch.manual_seed(3)
    x = torch.randn(2, 4, 13, 15)
    settings = [dict(kernel_size=(3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1)),
                dict(kernel_size=(5, 3), stride=(2, 1), padding=(0, 1), dilation=(1, 2)),
                dict(kernel_size=(3, 3), padding="valid", groups=4),
                dict(kernel_size=(1, 3), padding=(0, 1))]
    for setting in settings:
        kh, kw = setting["kernel_size"]
        for top, left, h, w in itertools.product(range(kh), range(kw), range(1, kh + 1), range(1, kw + 1)):
            if top + h > kh or left + w > kw or (h, w) == (kh, kw):
                continue
            window = KernelWindow(top, left, h, w)
            conv = nn.Conv2d(4, 4, **setting).eval()
            zero_outside(conv, window)
            take, reason = shrink_decision(conv, nonzero_window(conv.weight.detach()))
            assert take or "depthwise" in reason, (setting, window, reason)
            with torch.no_grad():
                difference = float((ShrunkConv2d(conv, window)(x) - conv(x)).abs().max())
            assert difference <= TOLERANCE, (setting, window)


class Parallel(nn.Module):
    """Every branch on the same input, outputs concatenated along channels."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


@pytest.mark.parametrize("k,stride,padding,dilation", [(3, 1, 0, 1), (3, 2, 1, 1), (3, 1, 2, 2), (5, 2, 1, 1)])
def test_onnx_of_every_window_matches(k, stride, padding, dilation):
    """One export holding a shrunk conv for every window: ONNX Runtime agrees with the zero-bordered convs."""
    torch.manual_seed(k + stride + padding)
    originals, shrunk_convs = [], []
    for window in windows(k):
        conv = nn.Conv2d(3, 2, k, stride=stride, padding=padding, dilation=dilation)
        zero_outside(conv, window)
        originals.append(conv)
        shrunk_convs.append(ShrunkConv2d(conv, window))
    reference, model = Parallel(originals).eval(), Parallel(shrunk_convs).eval()
    proto = to_onnx(model, (3, 13, 13))
    assert len(main_convs(proto)) == len(windows(k))
    # one crop conv per window that needs one; the current exporter's optimizer merges the equal crops
    # of one input (the same weights on the same tensor) into one node each
    distinct = {tuple(max(0, -p) for p in c.pads) for c in shrunk_convs if min(c.pads) < 0}
    assert len(distinct) <= len(crop_convs(proto)) <= sum(min(c.pads) < 0 for c in shrunk_convs)
    assert not nodes(proto, "Slice") and not nodes(proto, "Pad")
    x = torch.randn(2, 3, 13, 13)
    with torch.no_grad():
        expected = reference(x).numpy()
    assert float(np.abs(run_onnx(onnx_bytes(proto), x.numpy()) - expected).max()) <= TOLERANCE


def test_window_count():
    assert len(windows(3)) == 35 and len(windows(5)) == 224


# ---------------------------------------------------------------------------------------------------
# ONNX: one Conv node per shrunk conv, asymmetric pads, a crop conv only where a pad is negative


def shrunk(conv: nn.Conv2d, window: KernelWindow) -> ShrunkConv2d:
    zero_outside(conv, window)
    return ShrunkConv2d(conv, window)


def nodes(proto: onnx.ModelProto, op: str) -> list[onnx.NodeProto]:
    return [n for n in proto.graph.node if n.op_type == op]


def main_convs(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in nodes(proto, "Conv") if not n.input[1].endswith("crop.weight")]


def crop_convs(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in nodes(proto, "Conv") if n.input[1].endswith("crop.weight")]


def attribute(node: onnx.NodeProto, name: str) -> list[int]:
    return list(next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name))


def kernel_shape(proto: onnx.ModelProto, node: onnx.NodeProto) -> list[int]:
    """The Conv's kernel_shape attribute, or (the attribute is optional) its weight's spatial dims."""
    if any(a.name == "kernel_shape" for a in node.attribute):
        return attribute(node, "kernel_shape")
    weight = next(i for i in proto.graph.initializer if i.name == node.input[1])
    return list(weight.dims[2:])


def test_onnx_has_one_conv_per_shrunk_conv_with_asymmetric_pads():
    torch.manual_seed(5)
    layers = [
        shrunk(nn.Conv2d(3, 6, 3, padding=1), KernelWindow(0, 1, 2, 2)),  # pads (l,r,t,b) (0,1,1,0)
        shrunk(nn.Conv2d(6, 6, 5, padding=2), KernelWindow(0, 0, 3, 4)),  # (2,1,2,0)
        shrunk(nn.Conv2d(6, 6, 3, padding=1, groups=6), KernelWindow(1, 1, 2, 2)),  # (0,1,0,1): depthwise
        shrunk(nn.Conv2d(6, 4, 3, padding=1, stride=2, dilation=2), KernelWindow(0, 1, 3, 2)),  # (-1,1,1,1)
        shrunk(nn.Conv2d(4, 4, 3, padding=0), KernelWindow(0, 0, 2, 2)),  # (0,-1,0,-1): crop bottom/right
        shrunk(nn.Conv2d(4, 3, 3, padding=1), KernelWindow(2, 0, 1, 3)),  # (1,1,-1,1): crop top
        shrunk(nn.Conv2d(3, 3, 5, padding=1), KernelWindow(2, 2, 1, 1)),  # (-1,-1,-1,-1): crop every side
    ]
    assert [layer.pads for layer in layers] == [
        (0, 1, 1, 0), (2, 1, 2, 0), (0, 1, 0, 1), (-1, 1, 1, 1), (0, -1, 0, -1), (1, 1, -1, 1), (-1, -1, -1, -1)]
    model = nn.Sequential(*layers).eval()
    proto = to_onnx(model, (3, 17, 17))
    convs = main_convs(proto)
    assert len(convs) == len(layers)
    for node, layer in zip(convs, layers):
        left, right, top, bottom = layer.pads
        assert attribute(node, "pads") == [max(0, top), max(0, left), max(0, bottom), max(0, right)]
        assert kernel_shape(proto, node) == list(layer.conv.kernel_size)
    assert not nodes(proto, "Pad") and not nodes(proto, "Slice")
    crops = crop_convs(proto)
    assert len(crops) == sum(min(layer.pads) < 0 for layer in layers) == 4
    # each crop conv is depthwise, unpadded, and feeds the Conv of the layer with the negative pad
    consumers = {n.input[0]: i for i, n in enumerate(convs)}
    assert sorted(consumers[c.output[0]] for c in crops) == [3, 4, 5, 6]
    for crop in crops:
        assert attribute(crop, "pads") == [0, 0, 0, 0]
        assert onnx.helper.get_attribute_value(next(a for a in crop.attribute if a.name == "group")) > 1
    data = onnx_bytes(proto)
    for batch in (1, 3):  # the batch axis is dynamic
        x = torch.randn(batch, 3, 17, 17)
        with torch.no_grad():
            expected = model(x).numpy()
        got = run_onnx(data, x.numpy())
        assert got.shape == expected.shape
        assert float(np.abs(got - expected).max()) <= TOLERANCE


@pytest.mark.parametrize("crops", [(1, 0, 0, 0), (0, 2, 0, 0), (0, 0, 3, 0), (0, 0, 0, 1), (2, 0, 0, 1),
                                   (1, 1, 2, 2), (1, 3, 0, 0), (2, 2, 1, 3)])
def test_crop_conv_is_an_exact_crop_in_pytorch_and_onnx(crops):
    left, right, top, bottom = crops
    conv = crop_conv(3, crops).eval()
    taps = conv.weight[0, 0]
    assert int((taps != 0).sum()) == 1 and float(taps.sum()) == 1.0
    for before, after, size in ((left, right, conv.kernel_size[1]), (top, bottom, conv.kernel_size[0])):
        if before == 0 or after == 0 or before == after:  # a one-sided or even crop costs at most 3 taps per axis
            assert size <= 3
    x = torch.randn(2, 3, 11, 12)
    expected = x[:, :, top : 11 - bottom, left : 12 - right]
    with torch.no_grad():
        assert torch.equal(conv(x), expected)
    got = run_onnx(onnx_bytes(to_onnx(nn.Sequential(conv), (3, 11, 12))), x.numpy())
    assert np.array_equal(got, expected.numpy())


def test_onnx_of_a_model_without_negative_pads_has_no_crop():
    torch.manual_seed(6)
    model = nn.Sequential(shrunk(nn.Conv2d(3, 4, 3, padding=1), KernelWindow(1, 0, 2, 3)), nn.ReLU(),
                          shrunk(nn.Conv2d(4, 4, 5, padding=2, stride=2), KernelWindow(1, 1, 3, 3))).eval()
    proto = to_onnx(model, (3, 12, 12))
    assert len(nodes(proto, "Conv")) == 2 and not crop_convs(proto) and not nodes(proto, "Pad")
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert sorted(tuple(weights[n.input[1]].shape[2:]) for n in nodes(proto, "Conv")) == [(2, 3), (3, 3)]
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        expected = model(x).numpy()
    assert float(np.abs(run_onnx(onnx_bytes(proto), x.numpy()) - expected).max()) <= TOLERANCE


# ---------------------------------------------------------------------------------------------------
# nonzero_window, shrink_decision, shrink_kernels_


def test_nonzero_window_on_hand_written_weights():
    weight = torch.zeros(2, 1, 3, 3)
    assert nonzero_window(weight) is None
    weight[0, 0, 1, 1] = 1.0
    assert nonzero_window(weight) == KernelWindow(1, 1, 1, 1)
    weight[1, 0, 2, 2] = -2.0  # another filter widens the layer-wide window
    assert nonzero_window(weight) == KernelWindow(1, 1, 2, 2)
    weight[0, 0, 0, 1] = 3.0
    assert nonzero_window(weight) == KernelWindow(0, 1, 3, 2)
    weight[1, 0, 1, 0] = 1e-30  # tiny is not zero
    assert nonzero_window(weight) == KernelWindow(0, 0, 3, 3)
    wide = torch.zeros(3, 2, 3, 5)
    wide[2, 1, 0, 3] = 1.0
    wide[0, 0, 1, 4] = 1.0
    assert nonzero_window(wide) == KernelWindow(0, 3, 2, 2)
    assert KernelWindow(0, 3, 2, 2).area == 4


def conv_with_window(conv: nn.Conv2d, window: KernelWindow) -> nn.Conv2d:
    nn.init.normal_(conv.weight)
    zero_outside(conv, window)
    return conv


def test_shrink_decision():
    depthwise = lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)  # noqa: E731
    dense = lambda: nn.Conv2d(8, 8, 3, padding=1, bias=False)  # noqa: E731
    # a 3x3 depthwise conv shrinks where no crop is needed ...
    for window in (KernelWindow(0, 0, 3, 2), KernelWindow(1, 0, 2, 2), KernelWindow(1, 1, 1, 1), KernelWindow(1, 0, 1, 3)):
        conv = conv_with_window(depthwise(), window)
        assert shrink_decision(conv, nonzero_window(conv.weight))[0], window
    # ... and keeps its 3x3 kernel where the window lies beyond the padding
    for window in (KernelWindow(0, 2, 3, 1), KernelWindow(0, 0, 1, 2), KernelWindow(2, 2, 1, 1)):
        conv = conv_with_window(depthwise(), window)
        take, reason = shrink_decision(conv, nonzero_window(conv.weight))
        assert not take and "depthwise" in reason and "crop" in reason, window
    conv = conv_with_window(dense(), KernelWindow(0, 0, 3, 2))  # a dense conv always pays
    assert shrink_decision(conv, nonzero_window(conv.weight)) == (True, "3x3 -> 3x2")
    conv = conv_with_window(nn.Conv2d(8, 8, 3, padding=1, groups=2), KernelWindow(0, 1, 3, 2))  # grouped
    assert shrink_decision(conv, nonzero_window(conv.weight))[0]
    conv = conv_with_window(nn.Conv2d(8, 8, 5, padding=2, groups=8), KernelWindow(0, 1, 4, 3))  # 5x5 depthwise
    assert shrink_decision(conv, nonzero_window(conv.weight)) == (True, "5x5 -> 4x3")
    conv = conv_with_window(dense(), KernelWindow(0, 0, 3, 3))
    assert shrink_decision(conv, nonzero_window(conv.weight)) == (False, "no zero border")
    assert shrink_decision(dense(), None) == (False, "all-zero weight")
    conv = conv_with_window(nn.Conv2d(8, 8, 3, padding="same"), KernelWindow(0, 0, 2, 2))
    assert not shrink_decision(conv, nonzero_window(conv.weight))[0]
    conv = conv_with_window(nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), KernelWindow(0, 0, 2, 2))
    take, reason = shrink_decision(conv, nonzero_window(conv.weight))
    assert not take and "reflect" in reason


def test_shrink_kernels_changes_only_convs_with_zero_borders():
    torch.manual_seed(7)
    model = nn.Sequential()
    model.add_module("full", nn.Conv2d(3, 8, 3, padding=1))  # no zero border: untouched
    model.add_module("act", nn.ReLU())
    model.add_module("border", conv_with_window(nn.Conv2d(8, 8, 3, padding=1, bias=False), KernelWindow(0, 0, 2, 3)))
    model.add_module("block", nn.Sequential())
    depthwise = lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8)  # noqa: E731
    model.block.add_module("dw_kept", conv_with_window(depthwise(), KernelWindow(0, 2, 3, 1)))
    model.block.add_module("dw_1x1_kept", conv_with_window(depthwise(), KernelWindow(0, 0, 1, 1)))
    model.block.add_module("dw_2x2", conv_with_window(depthwise(), KernelWindow(1, 1, 2, 2)))
    model.add_module("pointwise", nn.Conv2d(8, 4, 1))
    model.add_module("big", conv_with_window(nn.Conv2d(4, 4, 5, padding=0, stride=2), KernelWindow(1, 2, 3, 3)))
    model.eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
    before = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    changes = shrink_kernels_(model)
    assert [(c.layer, c.kernel_before, c.kernel_after) for c in changes] == [
        ("border", (3, 3), (2, 3)), ("block.dw_kept", (3, 3), (3, 3)), ("block.dw_1x1_kept", (3, 3), (3, 3)),
        ("block.dw_2x2", (3, 3), (2, 2)), ("big", (5, 5), (3, 3))]
    kept = changes[1:3]
    assert all(k.pads is None and k.reason.startswith("kept:") for k in kept)
    assert changes[4].pads == (-2, 0, -1, -1)
    for name in ("border", "block.dw_2x2", "big"):
        assert isinstance(model.get_submodule(name), ShrunkConv2d), name
    for name in ("full", "block.dw_kept", "block.dw_1x1_kept", "pointwise"):
        assert model.get_submodule(name) is before[name], name
    with torch.no_grad():
        assert float((model(x) - expected).abs().max()) <= TOLERANCE
    assert shrink_kernels_(model) == kept  # idempotent: the inner convs of shrunk ones have no zero border
