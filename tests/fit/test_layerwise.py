"""Fitting a DOM to the trained network: it must lower what each layer gets wrong on images it never saw,
be deterministic, and refuse draws that keep no window."""

from __future__ import annotations

import copy

import pytest
import torch

from wascompress.errors import ConfigError
from wascompress.fit import FitSettings, fit_dom_
from wascompress.models import create_model
from wascompress.was import WASConfig, apply_was_, dom_draws, recalibrate_bn_, set_draws_, use_pw_, was_layers
from wascompress.was.fitted import seed_key

SEED = 3


def trained_tiny(config: WASConfig) -> torch.nn.Module:
    """A tiny model with BatchNorm statistics of its own (as a trained one has), WAS attached."""
    torch.manual_seed(5)
    model = create_model("tiny", num_classes=10).train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(64, 3, 32, 32))
    apply_was_(model.eval(), config)
    return model


def images(count: int, seed: int) -> torch.Tensor:
    return torch.randn(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def layer_errors(model: torch.nn.Module, fitted: str | None, held_out: torch.Tensor, bn: torch.Tensor) -> dict:
    """Each WAS layer's relative squared error, DOM against AOM, on ``held_out`` (DOM BatchNorm on ``bn``)."""
    outputs = {}

    def grab(store):
        return lambda name: model.get_submodule(name).register_forward_hook(
            lambda _m, _a, out, name=name: store.__setitem__(name, out.detach()))

    aom, dom = {}, {}
    model = copy.deepcopy(model)
    for store, draws in ((aom, None), (dom, dom_draws(model, SEED, fitted))):
        if draws is None:
            use_pw_(model)
        else:
            set_draws_(model, draws)
            recalibrate_bn_(model, [bn])
        handles = [grab(store)(name) for name in was_layers(model)]
        with torch.no_grad():
            model(held_out)
        for handle in handles:
            handle.remove()
    for name in aom:
        outputs[name] = float((dom[name] - aom[name]).square().sum() / aom[name].square().sum())
    return outputs


@pytest.mark.parametrize("solver", ["taps", "shared"])
def test_fitting_lowers_every_layers_error_on_images_it_was_not_fitted_on(solver):
    """Catches a skipped fit (corrections left zero: the errors equal the plain window's), a correction
    applied at the wrong taps or with the wrong sign, and a fit against the wrong target."""
    model = trained_tiny(WASConfig(crop=(0.4, 0.6)))
    fit_images, held_out = images(256, 1), images(128, 2)
    plain = layer_errors(model, None, held_out, fit_images)
    fits = fit_dom_(model, dom_draws(model, SEED), seed_key(SEED), fit_images, FitSettings(solver=solver))
    fitted = layer_errors(model, seed_key(SEED), held_out, fit_images)
    assert [f.layer for f in fits] == list(was_layers(model))
    for name in plain:
        assert fitted[name] < plain[name], (name, plain[name], fitted[name])
    for fit in fits:  # the fit's own record says the same on its images
        assert fit.error_fitted < fit.error_plain


def test_the_fit_leaves_the_aom_and_its_batchnorm_statistics_untouched():
    """Catches a fit that keeps the DOM's re-estimated BatchNorm statistics in the model (the AOM, and every
    later fit's reference, would run with the wrong ones)."""
    model = trained_tiny(WASConfig(crop=(0.4, 0.6)))
    x = images(8, 3)
    use_pw_(model)
    before = model(x)
    fit_dom_(model, dom_draws(model, SEED), seed_key(SEED), images(128, 1))
    assert torch.equal(model(x), before)


def test_the_fit_is_deterministic():
    """Catches unseeded position sampling or any other randomness in the fit."""
    first, second = (trained_tiny(WASConfig(crop=(0.4, 0.6), filter=(0.5, 0.9))) for _ in range(2))
    for model in (first, second):
        fit_dom_(model, dom_draws(model, SEED), seed_key(SEED), images(192, 1), FitSettings(positions=64))
    for name, layer in was_layers(first).items():
        assert torch.equal(layer.fitted[seed_key(SEED)], was_layers(second)[name].fitted[seed_key(SEED)])


def test_dropped_filters_keep_no_correction():
    """Catches a fit that writes corrections into filters the DOM drops."""
    model = trained_tiny(WASConfig(crop=(0.4, 0.6), filter=(0.5, 0.6)))
    draws = dom_draws(model, SEED)
    fit_dom_(model, draws, seed_key(SEED), images(128, 1))
    for name, layer in was_layers(model).items():
        kept = [d for d in draws[name] if hasattr(d, "kept")][0].kept
        dropped = [i for i in range(layer.out_channels) if i not in kept]
        assert dropped and layer.fitted[seed_key(SEED)][dropped].abs().sum() == 0


def test_draws_that_keep_no_window_cannot_be_fitted():
    """A resizing crop (the reference's) moves every tap: there is no window of PW to correct."""
    model = trained_tiny(WASConfig(crop=(0.4, 0.6), crop_mode="resize"))
    with pytest.raises(ConfigError, match="cannot be fitted"):
        fit_dom_(model, dom_draws(model, SEED), seed_key(SEED), images(64, 1))


@pytest.mark.parametrize("layer", ["conv1.conv", "conv2.conv"])
def test_window_fits_from_one_pass_equal_fitting_each_window_alone(layer):
    """Catches a wrong tap order when the shared Gram matrix is cut down to a window (the planner scores every
    window of a layer from one pass), a wrong target, or a prior on the wrong taps."""
    from wascompress.fit.layerwise import window_fits
    from wascompress.was.planned import PLAN_WAS, DomPlan, LayerCut, fingerprint

    model = trained_tiny(PLAN_WAS)
    fit_images = images(96, 1)
    recalibrate_bn_(model, [fit_images])  # the statistics the fit re-estimates before the layer: the same
    settings = FitSettings(positions=None, bn_images=96, batch_size=96)
    windows = [(0, 1, 2, 2), (1, 0, 2, 3), (0, 0, 3, 1)]
    use_pw_(model)
    with torch.no_grad():
        shared = window_fits(model, layer, windows, fit_images, settings)
    for window in windows:
        plan = DomPlan(fingerprint(model), {layer: LayerCut(window=window)})
        fit_dom_(model, plan.draws(model), "alone", fit_images, settings, only=[layer])
        alone = was_layers(model)[layer].fitted["alone"].detach()
        assert alone.abs().sum() > 0
        assert torch.allclose(shared[window], alone, rtol=1e-3, atol=1e-5), (window, (shared[window] - alone).abs().max())
