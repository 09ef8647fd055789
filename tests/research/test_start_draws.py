"""research/dom_study/start_draws.py: magnitude-placed draws keep each draw's size and count (so the
sub-network's MACs) and pick the heaviest window and filters of the trained weights."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest
import torch
from torch import nn

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "research" / "dom_study"))
import start_draws  # noqa: E402  (a broken import fails, not skips)

from wascompress.was import WASConfig, apply_was_, dom_draws, recalibrate_bn_, shadow_mode, was_layers  # noqa: E402
from wascompress.was.transforms import CropWindow, FilterKeep  # noqa: E402


def two_conv_net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    apply_was_(model, WASConfig(crop=(0.4, 0.6), filter=(0.5, 0.5), skip_first=False))
    return model


def window_mass(mass: torch.Tensor, window: CropWindow) -> float:
    return float(mass[window.top:window.top + window.height, window.left:window.left + window.width].sum())


def test_magnitude_draws_pick_the_heaviest_window_and_filters_at_the_same_size():
    """Each layer's windows go where its PW carries the most L1 mass (a different corner per layer, neither
    the first nor the last position tried, and the best of every position) and its kept filters are its
    heaviest, at the seed's sizes and counts. Catches every window put in one fixed place (bottom-right, or
    the first position), the lightest window chosen, a layer's draws left as the seed's, and the lightest
    filters kept."""
    model = two_conv_net()
    heavy = {"0": ((0, 0), [2, 5]), "3": ((0, 2), [1, 6])}  # per layer: the heavy tap, the heavy filters
    with torch.no_grad():
        for name, ((row, col), filters) in heavy.items():
            weight = model.get_submodule(name).parametrizations.weight.original
            weight.mul_(0.01)
            weight[:, :, row, col] *= 100  # every window holding this tap carries the mass
            weight[filters] *= 10
    draws = dom_draws(model, 3)
    placed = start_draws.magnitude_draws(model, draws)
    assert placed.keys() == draws.keys() == heavy.keys()
    for name, ((row, col), filters) in heavy.items():
        mass = model.get_submodule(name).parametrizations.weight.original.detach().abs().sum(dim=(0, 1))
        assert [type(d) for d in placed[name]] == [type(d) for d in draws[name]]
        windows = [(old, new) for old, new in zip(draws[name], placed[name]) if isinstance(old, CropWindow)]
        assert windows, name
        for old, new in windows:
            assert (new.height, new.width, new.resize) == (old.height, old.width, False)
            assert new.top <= row < new.top + new.height and new.left <= col < new.left + new.width, (name, new)
            best = max(window_mass(mass, CropWindow(t, left, old.height, old.width, False))
                       for t in range(3 - old.height + 1) for left in range(3 - old.width + 1))  # 3x3 kernels
            assert window_mass(mass, new) == best, (name, new)
        (old_keep, new_keep), = [(o, n) for o, n in zip(draws[name], placed[name]) if isinstance(o, FilterKeep)]
        assert len(new_keep.kept) == len(old_keep.kept) == 4 and set(filters) <= set(new_keep.kept), name
        assert placed[name] != draws[name], name


def test_start_accuracy_matches_the_packages_evaluation_of_that_mode():
    from wascompress.data import BatchLoader
    from wascompress.data.datasets import make_synthetic
    from wascompress.data.run_data import calibration_batches
    from wascompress.evaluate import mode_accuracy

    model = two_conv_net()
    with torch.no_grad():
        model[8].bias.zero_()  # a random net's head bias alone would decide: every image one class
    images = make_synthetic(True, seed=0, image_size=16, size=200)
    calibration = calibration_batches(images, 2, 64)
    with shadow_mode(model, "aom"), torch.no_grad():  # labels: the AOM's own answers, so its top-1 is 1
        recalibrate_bn_(model, calibration)
        model.eval()
        answers = [model(batch).argmax(1) for batch, _ in BatchLoader(images, 64, shuffle=False)]
        data = replace(images, labels=torch.cat(answers))
    aom = start_draws.start_accuracy(model, {name: None for name in was_layers(model)}, data, calibration)
    assert aom == mode_accuracy(model, data, mode="aom", calibration=calibration).top1 == 1
    doms = [start_draws.start_accuracy(model, dom_draws(model, seed), data, calibration) for seed in (0, 5)]
    assert doms == [mode_accuracy(model, data, mode="dom", seed=seed, calibration=calibration).top1 for seed in (0, 5)]
    assert all(d < 1 for d in doms)  # the sub-networks answer differently from the AOM


def test_a_missing_checkpoint_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "draws.json"
    with pytest.raises(SystemExit) as exit_info:
        start_draws.main(["--checkpoint", str(tmp_path / "missing.pt"), "--model", "resnet18", "--out", str(out)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: checkpoint not found: {tmp_path / 'missing.pt'}"]
    assert not out.exists()
