"""Zero-filter removal: removed channels are constant downstream, so each consumer is compensated
exactly (a bias, or a border map where zero padding makes the constant vary); a channel that meets a
residual addition is not constant and its zeros are kept."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wascompress.export.filters import CompensatedConv2d, remove_zero_filters, zero_filters

TOLERANCE = 1e-5


def randomise_bn_(model: nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics and affine parameters; a positive shift, so that the constant a
    zero filter leaves after BN + ReLU is not zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                n = bn.num_features
                bn.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
                bn.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                bn.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                bn.bias.copy_(torch.rand(n, generator=generator) + 0.5)


def zero_out_(conv: nn.Conv2d, filters: list[int]) -> None:
    with torch.no_grad():
        conv.weight[filters] = 0


def max_difference(a: nn.Module, b: nn.Module, inputs: list[torch.Tensor]) -> float:
    with torch.no_grad():
        return max(float((a(x) - b(x)).abs().max()) for x in inputs)


def fresh_inputs(shape: tuple[int, ...]) -> list[torch.Tensor]:
    """Inputs unlike the probe: other seeds, batch sizes and scales."""
    generator = torch.Generator().manual_seed(4321)
    return [torch.randn(1, *shape, generator=generator), torch.randn(3, *shape, generator=generator) * 5,
            torch.rand(4, *shape, generator=generator) - 2]


def probe(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(2, *shape, generator=torch.Generator().manual_seed(99))


def chain(consumer: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        consumer, nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10),
    )
    randomise_bn_(model, 1)
    zero_out_(model[0], [1, 4, 5])
    return model.eval()


@pytest.mark.parametrize("consumer_kind", ["3x3 padding 1", "3x3 padding 1 with bias", "1x1", "3x3 padding 0"])
def test_zero_filters_of_a_chain_are_removed_exactly(consumer_kind):
    consumer = {
        "3x3 padding 1": nn.Conv2d(8, 6, 3, padding=1, bias=False),
        "3x3 padding 1 with bias": nn.Conv2d(8, 6, 3, padding=1, bias=True),
        "1x1": nn.Conv2d(8, 6, 1, bias=False),
        "3x3 padding 0": nn.Conv2d(8, 6, 3, padding=0, bias=False),
    }[consumer_kind]
    model = chain(consumer)
    assert zero_filters(model[0]) == [1, 4, 5]
    original = [p.detach().clone() for p in model.parameters()]
    pruned, changes = remove_zero_filters(model, probe((3, 16, 16)), channel_align=1)
    assert [(c.layer, c.filters_before, c.filters_after, c.removed) for c in changes] == [("0", 8, 5, True)]
    assert changes[0].reason.startswith("removed 3 zero filters")
    assert pruned[0].out_channels == 5 and pruned[1].num_features == 5
    assert zero_filters(pruned[0]) == []
    # the input model is left as it was
    assert model[0].out_channels == 8 and all(torch.equal(a, b) for a, b in zip(original, model.parameters()))
    compensated = pruned[3]
    if consumer_kind.startswith("3x3 padding 1"):  # zero padding: the constant's contribution varies at the border
        assert isinstance(compensated, CompensatedConv2d)
        assert compensated.conv.in_channels == 5
        assert compensated.offset.numel() == 6 * 16 * 16
        offset = compensated.offset.reshape(6, 16, 16)
        assert not torch.equal(offset[:, 0, 0], offset[:, 8, 8])  # a border map, not a bias
        assert torch.equal(offset[:, 5, 5], offset[:, 8, 8])  # uniform inside
    else:  # no padding: the contribution is the same everywhere, a bias
        assert isinstance(compensated, nn.Conv2d) and compensated.in_channels == 5
        assert compensated.bias is not None and float(compensated.bias.detach().abs().max()) > 0
    assert max_difference(model, pruned, fresh_inputs((3, 16, 16))) <= TOLERANCE
    if not isinstance(compensated, CompensatedConv2d):  # a border map fits the probe's size only
        assert max_difference(model, pruned, fresh_inputs((3, 11, 11))) <= TOLERANCE


def test_zero_filters_of_a_compensated_consumer_are_removed_later():
    """The consumer first gets a border map for the removed constants; when its own zero filters go, the map
    loses their channels, and the next consumer is compensated for the (spatially varying) removed maps."""
    model = chain(nn.Conv2d(8, 6, 3, padding=1, bias=False))
    zero_out_(model[3], [0, 2])
    pruned, changes = remove_zero_filters(model, probe((3, 16, 16)), channel_align=1)
    assert [(c.layer, c.filters_before, c.filters_after, c.removed) for c in changes] == [
        ("0", 8, 5, True), ("3.conv", 6, 4, True)]  # wrapped by the first compensation
    assert isinstance(pruned[3], CompensatedConv2d) and pruned[3].conv.out_channels == 4
    assert pruned[3].offset.numel() == 4 * 16 * 16 and pruned[4].num_features == 4
    assert isinstance(pruned[6], CompensatedConv2d) and pruned[6].conv.in_channels == 4
    assert max_difference(model, pruned, fresh_inputs((3, 16, 16))) <= TOLERANCE


class ResidualBlock(nn.Module):
    """stem -> relu(bn2(conv2(y)) + y) with y = relu(bn1(conv1(stem))); conv1's zero filter feeds the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.head = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(self.stem(x))))
        return self.head(torch.relu(self.bn2(self.conv2(y)) + y))


def test_zero_filter_feeding_a_residual_addition_is_kept():
    torch.manual_seed(2)
    model = ResidualBlock()
    randomise_bn_(model, 3)
    zero_out_(model.conv1, [2, 6])
    model.eval()
    reference = [p.detach().clone() for p in model.parameters()]
    pruned, changes = remove_zero_filters(model, probe((3, 12, 12)), channel_align=1)
    conv1 = [c for c in changes if c.layer == "conv1"]
    assert len(conv1) == 1 and not conv1[0].removed and conv1[0].filters_after == 8
    assert conv1[0].reason.startswith("kept zeros"), conv1[0].reason
    assert not any(c.removed for c in changes)
    assert pruned.conv1.out_channels == 8 and pruned.conv2.out_channels == 8
    assert max_difference(model, pruned, fresh_inputs((3, 12, 12))) <= TOLERANCE
    assert all(torch.equal(a, b) for a, b in zip(reference, model.parameters()))


def test_conv_feeding_a_linear_through_global_pooling_gets_a_bias():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10, bias=True))
    randomise_bn_(model, 5)
    zero_out_(model[0], [0, 3, 7])
    model.eval()
    bias_before = model[5].bias.detach().clone()
    pruned, changes = remove_zero_filters(model, probe((3, 10, 10)), channel_align=1)
    assert [(c.layer, c.filters_after, c.removed) for c in changes] == [("0", 5, True)]
    linear = pruned[5]
    assert isinstance(linear, nn.Linear) and linear.in_features == 5
    assert not torch.allclose(linear.bias, bias_before)  # the constant's contribution is folded in
    # the fold is what the removed constants contributed: bias' - bias = W[:, removed] @ constant
    constant = torch.relu(model[1].bias - model[1].running_mean * model[1].weight
                          / torch.sqrt(model[1].running_var + model[1].eps))
    expected = bias_before + model[5].weight[:, [0, 3, 7]] @ constant[[0, 3, 7]]
    assert torch.allclose(linear.bias, expected, atol=1e-6)
    assert max_difference(model, pruned, fresh_inputs((3, 10, 10)) + fresh_inputs((3, 20, 20))) <= TOLERANCE


@pytest.mark.parametrize("caller_mode", [torch.no_grad, torch.inference_mode])
def test_removal_works_inside_a_callers_no_grad_or_inference_mode(caller_mode):
    """torch-pruning traces through autograd; a caller pruning under no_grad() or inference_mode() gets the
    same net, made of ordinary tensors (it can still be trained or have its BatchNorm re-estimated)."""
    model = chain(nn.Conv2d(8, 6, 3, padding=1, bias=False))
    zero_out_(model[3], [0, 2])  # two layers pruned, the second after its consumer was compensated
    expected, expected_changes = remove_zero_filters(model, probe((3, 16, 16)), channel_align=1)
    with caller_mode():
        pruned, changes = remove_zero_filters(model, probe((3, 16, 16)), channel_align=1)
    assert changes == expected_changes and [c.removed for c in changes] == [True, True]
    assert str(pruned) == str(expected)
    tensors = list(pruned.parameters()) + list(pruned.buffers())
    assert not any(t.is_inference() for t in tensors)
    assert all(torch.equal(a, b) for a, b in zip(tensors, list(expected.parameters()) + list(expected.buffers())))
    pruned.train()(probe((3, 16, 16))).sum().backward()  # fails on inference tensors


def test_all_zero_layer_is_left_alone():
    model = chain(nn.Conv2d(8, 6, 1, bias=False))
    zero_out_(model[0], list(range(8)))
    pruned, changes = remove_zero_filters(model, probe((3, 8, 8)), channel_align=1)
    assert [(c.layer, c.removed, c.reason) for c in changes] == [("0", False, "every filter is zero")]
    assert pruned[0].out_channels == 8
    assert max_difference(model, pruned, fresh_inputs((3, 8, 8))) <= TOLERANCE


def test_aligned_removal_leaves_a_multiple_of_the_block():
    from wascompress.export.filters import aligned_removal

    zero = list(range(0, 40, 2))  # 20 zero filters of 48
    assert len(aligned_removal(48, zero, 16)) == 16  # 48 - 20 = 28 -> keep 32
    assert aligned_removal(16, [1, 2, 3], 16) == []  # 13 would be left: keep all 16
    assert aligned_removal(48, zero, 1) == zero


def test_an_untested_torch_pruning_release_fails_loudly(monkeypatch):
    import torch_pruning

    from wascompress.export.filters import check_torch_pruning

    check_torch_pruning()  # the installed release is a tested one
    monkeypatch.setattr(torch_pruning, "__version__", "2.0.0")
    with pytest.raises(RuntimeError, match="torch-pruning 2.0.0 is not a tested release"):
        check_torch_pruning()
