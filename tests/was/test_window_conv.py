"""A SW runs as its smaller conv: same outputs and PW gradients as the masked k x k conv, in float64."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from wascompress.models import create_model
from wascompress.was import WASConfig, apply_was_, resample_, strip_was_, use_dom_, use_pw_, was_layers
from wascompress.was.window_conv import WindowConvForward, pad_or_crop, window_pads

CONFIGS = [
    WASConfig(crop=(0.4, 0.6), skip_first=False),
    WASConfig(crop=(0.1, 0.5), translate=0.4, skip_first=False),  # windows that need input crops
    WASConfig(translate=0.3, filter=(0.3, 0.8), skip_first=False),
    WASConfig(crop=(0.3, 0.7), filter=(0.5, 0.9), skip_first=False),
]


def masked_copy(model: nn.Module) -> nn.Module:
    """The same WAS model running the masked k x k conv (the window forward removed)."""
    other = copy.deepcopy(model)
    for name in was_layers(other):
        del other.get_submodule(name).forward
    return other


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.describe())
@pytest.mark.parametrize("stride,dilation,groups,kernel,bias", [
    (1, 1, 1, 3, False), (2, 1, 1, 3, True), (1, 2, 1, 3, False), (1, 1, 2, 3, True), (2, 2, 2, 5, True),
    (1, 1, 1, 5, False)])
def test_window_forward_equals_masked_conv(config, stride, dilation, groups, kernel, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, kernel, stride=stride, padding=kernel // 2 * dilation, dilation=dilation,
                     groups=groups, bias=bias).double()
    fast = nn.Sequential(conv)
    apply_was_(fast, config)
    slow = masked_copy(fast)
    x = torch.randn(2, 4, 11, 9, dtype=torch.float64)
    for seed in range(6):
        resample_(fast, torch.Generator().manual_seed(seed))
        resample_(slow, torch.Generator().manual_seed(seed))
        a, b = fast(x), slow(x)
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        (a * torch.arange(a.numel(), dtype=a.dtype).view_as(a)).sum().backward()
        (b * torch.arange(b.numel(), dtype=b.dtype).view_as(b)).sum().backward()
        for p, q in zip(fast.parameters(), slow.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-9)
        fast.zero_grad(), slow.zero_grad()


def test_window_forward_is_taken_and_copies_stay_consistent():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, width=0.25)
    apply_was_(model, WASConfig(crop=(0.4, 0.6)))
    conv = model.get_submodule(next(iter(was_layers(model))))
    assert isinstance(conv.__dict__["forward"], WindowConvForward)
    calls = []
    original = torch.nn.functional.conv2d

    def spy(x, weight, *args):  # type: ignore[no-untyped-def]
        calls.append(tuple(weight.shape[-2:]))
        return original(x, weight, *args)

    use_dom_(model, 3)
    copied = copy.deepcopy(model)  # the copy's forward belongs to the copy's conv
    copied_conv = copied.get_submodule(next(iter(was_layers(copied))))
    assert copied_conv.__dict__["forward"].conv is copied_conv
    torch.nn.functional.conv2d = spy
    try:
        model.eval()(torch.randn(1, 3, 32, 32))
    finally:
        torch.nn.functional.conv2d = original
    assert (2, 2) in calls  # crop (0.4, 0.6) of 3x3 kernels: 2x2 windows run as 2x2 convs
    use_pw_(model)
    strip_was_(model)
    assert "forward" not in conv.__dict__


@pytest.mark.parametrize("pads", [(1, 0, 0, 1), (-1, 1, 2, -2), (0, 0, 0, 0), (2, 2, 1, 1), (-1, -1, 0, 0)])
def test_pad_or_crop_equals_padding_then_cropping(pads):
    x = torch.randn(1, 2, 7, 6)
    out, (sym_h, sym_w) = pad_or_crop(x, pads)
    expected = torch.nn.functional.pad(x, pads)  # negative amounts crop
    torch.testing.assert_close(torch.nn.functional.pad(out, (sym_w, sym_w, sym_h, sym_h)), expected)


def test_window_pads_of_the_full_kernel_are_the_conv_padding():
    assert window_pads((3, 3), (1, 1), (1, 1), 0, 0, 3, 3) == (1, 1, 1, 1)
    assert window_pads((3, 3), (1, 1), (1, 1), 1, 0, 2, 2) == (1, 0, 0, 1)
