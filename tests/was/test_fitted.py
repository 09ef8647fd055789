"""A fitted DOM's correction: where it enters the Shadow Weight, that gradients reach it, and how it is stored."""

from __future__ import annotations

import copy

import pytest
import torch

from wascompress.errors import ConfigError
from wascompress.models import create_model
from wascompress.was import WASConfig, apply_was_, dom_draws, freeze_dom_, plain_state_dict, set_draws_, was_layers
from wascompress.was.fitted import (
    add_corrections_,
    add_slots_for_state_,
    correction_keys,
    correction_size,
    seed_key,
    without_corrections,
)
from wascompress.was.transforms import CropWindow, FittedTaps, FusedDraws, apply_draws

CROP_FILTER = WASConfig(crop=(0.4, 0.6), filter=(0.5, 0.9))


def fitted_tiny(seed: int = 3) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10).eval()
    apply_was_(model, CROP_FILTER)
    key = seed_key(seed)
    add_corrections_(model, key, dom_draws(model, seed))
    with torch.no_grad():
        for layer in was_layers(model).values():
            layer.fitted[key].normal_()
    return model, key


def test_the_sw_is_the_draws_applied_to_pw_plus_the_correction_at_its_window():
    """Catches a correction added at the wrong taps (destination instead of source window), to dropped
    filters, or not at all: the frozen weight is computed here from first principles."""
    model, key = fitted_tiny()
    draws = dom_draws(model, 3)
    frozen = freeze_dom_(copy.deepcopy(model), 3, key)
    for name, layer in was_layers(model).items():
        conv = model.get_submodule(name)
        pw = conv.parametrizations.weight.original.detach()
        delta = layer.fitted[key].detach()
        p = FusedDraws(draws[name], layer.kernel).placement
        full = pw.clone()
        full[:, :, p.src_top:p.src_top + p.height, p.src_left:p.src_left + p.width] += delta
        expected = apply_draws(full, draws[name])
        assert torch.equal(frozen.get_submodule(name).weight.detach(), expected), name


def test_the_window_conv_and_the_masked_conv_agree_and_gradients_reach_pw_and_the_correction():
    """Catches WindowConvForward ignoring the correction (the training hot path would train another net than
    the one exported) and a correction cut off from autograd."""
    model, key = fitted_tiny()
    x = torch.randn(4, 3, 32, 32)
    set_draws_(model, dom_draws(model, 3, key))
    fast = model(x)
    masked = freeze_dom_(copy.deepcopy(model), 3, key)(x)
    torch.testing.assert_close(fast, masked, rtol=1e-5, atol=1e-5)
    set_draws_(model, dom_draws(model, 3))
    assert (model(x) - fast).abs().max() > 1e-3  # the correction changes the output
    set_draws_(model, dom_draws(model, 3, key))
    model(x).square().sum().backward()
    for name, layer in was_layers(model).items():
        conv = model.get_submodule(name)
        assert layer.fitted[key].grad is not None and layer.fitted[key].grad.abs().sum() > 0, name
        assert conv.parametrizations.weight.original.grad.abs().sum() > 0, name


def test_a_dropped_filter_gets_no_gradient_in_its_correction():
    """Catches a correction that leaks into dropped filters (a DOM's zero filters would stop being zero)."""
    model, key = fitted_tiny()
    set_draws_(model, dom_draws(model, 3, key))
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    for layer in was_layers(model).values():
        kept = layer.fused.kept
        if kept is None:
            continue
        dropped = [i for i in range(layer.out_channels) if i not in kept]
        assert layer.fitted[key].grad[dropped].abs().sum() == 0


def test_corrections_round_trip_through_a_plain_state_dict_and_can_be_left_out():
    """Catches a checkpoint that loses a fitted DOM (slots not recreated) or a PW-only reader that keeps it."""
    model, key = fitted_tiny()
    state = plain_state_dict(model)
    fresh = create_model("tiny", num_classes=10).eval()
    apply_was_(fresh, CROP_FILTER)
    assert add_slots_for_state_(fresh, state) == [key]
    fresh.load_state_dict({k.replace(".weight", ".parametrizations.weight.original") if k.endswith("conv.weight")
                           and k[:-len(".weight")] in was_layers(fresh) else k: v for k, v in state.items()})
    x = torch.randn(2, 3, 32, 32)
    set_draws_(model, dom_draws(model, 3, key))
    set_draws_(fresh, dom_draws(fresh, 3, key))
    assert torch.equal(model(x), fresh(x))
    assert correction_keys(fresh) == [key]
    assert correction_size(fresh, key) == sum(layer.fitted[key].numel() for layer in was_layers(model).values())
    pw_only = without_corrections(state)
    assert len(pw_only) == len(state) - len(was_layers(model)) and not any(".fitted." in k for k in pw_only)


def test_a_correction_of_another_window_shape_is_one_clear_error():
    """Catches a correction silently applied to draws it was not made for (here 3x1 windows, fitted 2x2)."""
    model, key = fitted_tiny(seed=3)
    other = {name: (CropWindow(0, 0, 3, 1), FittedTaps(key)) for name in was_layers(model)}
    set_draws_(model, other)
    with pytest.raises(ConfigError, match="fitted correction"):
        model(torch.randn(1, 3, 32, 32))
