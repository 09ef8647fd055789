"""Crop absorption: a shrunk conv's input crop moves into the conv that produces its input, exactly, and
only where that is exact (single consumer, position-wise ops between, padding left to give up)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from wascompress.export.absorb import absorb_crops_
from wascompress.export.onnx_graph import onnx_bytes, run_onnx, to_onnx
from wascompress.export.shrink import KernelWindow, ShrunkConv2d
from wascompress.models.cost import count_macs

TOLERANCE = 1e-5


def shrunk(conv: nn.Conv2d, window: KernelWindow) -> ShrunkConv2d:
    mask = torch.zeros_like(conv.weight)
    mask[:, :, window.top : window.top + window.height, window.left : window.left + window.width] = 1
    with torch.no_grad():
        conv.weight.mul_(mask)
    return ShrunkConv2d(conv, window)


def randomise_bn_(model: nn.Module) -> None:
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 1.5)
                bn.bias.uniform_(0.2, 0.8)  # the producer's border outputs are not zero after BN + ReLU


class Chain(nn.Module):
    """producer conv -> BN -> ReLU -> consumer (a shrunk conv whose window needs a crop)."""

    def __init__(self, producer: nn.Module, consumer: ShrunkConv2d, channels: int) -> None:
        super().__init__()
        self.producer, self.bn, self.act, self.consumer = producer, nn.BatchNorm2d(channels), nn.ReLU(), consumer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.consumer(self.act(self.bn(self.producer(x))))


class SharedInput(Chain):
    """As Chain, but the producer's output is also added to the result (a residual): not absorbable."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.bn(self.producer(x)))
        return self.consumer(hidden) + hidden


# consumer windows of a 3x3 conv with padding 1 that need a crop, and the crop (l, r, t, b) they need
CROPPING_WINDOWS = [(KernelWindow(0, 2, 3, 1), (1, 0, 0, 0)), (KernelWindow(0, 0, 3, 1), (0, 1, 0, 0)),
                    (KernelWindow(2, 0, 1, 2), (0, 0, 1, 0)), (KernelWindow(0, 1, 1, 2), (0, 0, 0, 1)),
                    (KernelWindow(2, 2, 1, 1), (1, 0, 1, 0))]


def check_equal(model: nn.Module, reference: nn.Module, size: int) -> None:
    x = torch.randn(2, 4, size, size)
    with torch.no_grad():
        expected = reference(x)
        assert float((model(x) - expected).abs().max()) <= TOLERANCE
    got = run_onnx(onnx_bytes(to_onnx(model, (4, size, size))), x.numpy())
    assert float(np.abs(got - expected.numpy()).max()) <= TOLERANCE


@pytest.mark.parametrize("window,crops", CROPPING_WINDOWS)
@pytest.mark.parametrize("producer_kind", ["conv", "shrunk"])
def test_a_crop_moves_into_the_producer_exactly(window, crops, producer_kind):
    torch.manual_seed(11)
    producer = nn.Conv2d(4, 8, 3, padding=1)
    if producer_kind == "shrunk":  # a 5x5 conv shrunk to its central 3x3: padding 1 on every side
        producer = shrunk(nn.Conv2d(4, 8, 5, padding=2), KernelWindow(1, 1, 3, 3))
    model = Chain(producer, shrunk(nn.Conv2d(8, 6, 3, padding=1), window), 8).eval()
    randomise_bn_(model)
    assert model.consumer.crop is not None
    reference = copy.deepcopy(model)
    macs_before = count_macs(model, (4, 9, 9))
    absorbed = absorb_crops_(model)
    assert [(a.consumer, a.producer, a.crops) for a in absorbed] == [("consumer", "producer", crops)]
    assert model.consumer.crop is None and isinstance(model.producer, ShrunkConv2d)
    assert count_macs(model, (4, 9, 9)) < macs_before  # no crop op, and fewer producer outputs
    check_equal(model, reference, 9)


def test_no_absorption_where_it_would_not_be_exact():
    torch.manual_seed(12)
    window = KernelWindow(0, 2, 3, 1)  # needs a crop of one column on the left
    cases = {
        "shared input": SharedInput(nn.Conv2d(4, 8, 3, padding=1), shrunk(nn.Conv2d(8, 8, 3, padding=1), window), 8),
        "no padding to give up": Chain(nn.Conv2d(4, 8, 3, padding=0), shrunk(nn.Conv2d(8, 6, 3, padding=1), window), 8),
        "stride 2 needs two": Chain(nn.Conv2d(4, 8, 3, padding=1, stride=2),
                                    shrunk(nn.Conv2d(8, 6, 3, padding=1), window), 8),
        "not position-wise": Chain(nn.Conv2d(4, 8, 3, padding=1), shrunk(nn.Conv2d(8, 6, 3, padding=1), window), 8),
    }
    cases["not position-wise"].act = nn.AvgPool2d(3, stride=1, padding=1)
    for name, model in cases.items():
        model.eval()
        randomise_bn_(model)
        reference = copy.deepcopy(model)
        assert absorb_crops_(model) == [], name
        assert model.consumer.crop is not None, name
        check_equal(model, reference, 9)


def test_stride_two_producer_with_enough_padding():
    """Dropping one output of a stride-2 conv takes two of its leading padding."""
    torch.manual_seed(13)
    consumer = shrunk(nn.Conv2d(8, 6, 3, padding=1), KernelWindow(0, 2, 3, 1))
    model = Chain(nn.Conv2d(4, 8, 5, padding=2, stride=2), consumer, 8).eval()
    randomise_bn_(model)
    reference = copy.deepcopy(model)
    assert len(absorb_crops_(model)) == 1
    assert model.producer.conv_pads == (0, 2, 2, 2)
    check_equal(model, reference, 11)


def test_untraceable_models_keep_their_crops():
    class Branchy(Chain):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                x = -x
            return super().forward(x)

    model = Branchy(nn.Conv2d(4, 8, 3, padding=1), shrunk(nn.Conv2d(8, 6, 3, padding=1), KernelWindow(0, 2, 3, 1)), 8)
    assert absorb_crops_(model.eval()) == []
    assert model.consumer.crop is not None


def test_a_producer_that_crops_its_own_input_crops_more():
    """A producer whose padding is used up but which crops its input anyway takes the crop over: its
    crop conv grows from one column to two and the consumer's crop op disappears."""
    torch.manual_seed(14)
    window = KernelWindow(0, 2, 3, 1)  # pads (-1, 1, 1, 1): crops one column on the left
    model = Chain(shrunk(nn.Conv2d(4, 8, 3, padding=1), window), shrunk(nn.Conv2d(8, 6, 3, padding=1), window), 8)
    model.eval()
    randomise_bn_(model)
    reference = copy.deepcopy(model)
    assert [(a.producer, a.crops) for a in absorb_crops_(model)] == [("producer", (1, 0, 0, 0))]
    assert model.consumer.crop is None
    assert model.producer.crop.kernel_size == (1, 2) and model.producer.crop.dilation == (1, 2)  # two columns
    assert model.producer.pads == (-2, 1, 1, 1)
    check_equal(model, reference, 9)


def test_crops_that_would_use_up_a_small_map_stay_where_they_are():
    """vgg16's last stage runs on 2x2 maps: 1-wide windows at the edge of consecutive convs ask each producer
    to skip a column it then no longer has. Checked on the probe, such an absorption is undone and the pruned
    graph computes what the zero-tap model computes."""
    from wascompress.export.exporter import ExportConfig, mode_model, prune_model
    from wascompress.models import create_model
    from wascompress.was import WASConfig, apply_was_

    net = create_model("vgg16", num_classes=10, width=0.25)
    apply_was_(net, WASConfig(crop=(0.2, 1.0)))
    config = ExportConfig(mode="dom", seed=2, recalibrate_bn=False, input_shape=(3, 32, 32))
    frozen = mode_model(net, config, None).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = frozen(x)
    pruned, changes = prune_model(copy.deepcopy(frozen), config)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), expected, rtol=1e-4, atol=1e-4)
    assert count_macs(pruned, (3, 32, 32)) < count_macs(frozen, (3, 32, 32))
    absorbed = {c["consumer"] for c in changes["absorbed_crops"]}
    assert "features.15.conv" not in absorbed  # its crop could not move into features.14 (a 2-wide map)
