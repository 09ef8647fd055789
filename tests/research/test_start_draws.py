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


def test_magnitude_draws_pick_the_heaviest_window_and_filters_at_the_same_size():
    model = two_conv_net()
    weight = model[3].parametrizations.weight.original
    with torch.no_grad():
        weight.mul_(0.01)
        weight[:, :, 1:, 1:] *= 100  # the bottom-right 2x2 window carries the mass
        weight[[1, 6]] *= 10  # ... and filters 1 and 6 the most
    draws = dom_draws(model, 3)
    placed = start_draws.magnitude_draws(model, draws)
    for name in was_layers(model):
        assert [type(d) for d in placed[name]] == [type(d) for d in draws[name]]
        for old, new in zip(draws[name], placed[name]):
            if isinstance(old, CropWindow):
                assert (new.height, new.width) == (old.height, old.width)
            if isinstance(old, FilterKeep):
                assert len(new.kept) == len(old.kept) == 4
    windows = [d for d in placed["3"] if isinstance(d, CropWindow)]
    assert windows and all((w.top, w.left) == (3 - w.height, 3 - w.width) for w in windows)
    kept = next(d for d in placed["3"] if isinstance(d, FilterKeep)).kept
    assert {1, 6} <= set(kept)
    assert placed != draws


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
