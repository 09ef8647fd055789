"""BatchNorm re-estimation: statistics fit the mode that runs, deterministically."""

from __future__ import annotations

import copy

import torch

from wascompress.models import create_model
from wascompress.was import WASConfig, apply_was_, recalibrate_bn_, shadow_mode
from wascompress.was.batchnorm import batchnorm_layers


def batches(n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(16, 3, 32, 32, generator=g) * 2 + 0.5 for _ in range(n)]


def test_recalibration_sets_exact_statistics_of_first_bn():
    torch.manual_seed(0)
    model = create_model("tiny")
    data = batches()
    recalibrate_bn_(model, data)
    first_conv, first_bn = model.conv1.conv, batchnorm_layers(model)[0]
    with torch.no_grad():
        acts = torch.cat([first_conv(x) for x in data])
    # the mean over batches of per-batch means (equal batch sizes) is the overall mean
    assert torch.allclose(first_bn.running_mean, acts.mean(dim=(0, 2, 3)), atol=1e-5)
    assert not model.training


def test_recalibration_is_deterministic_and_mode_specific():
    torch.manual_seed(0)
    model = create_model("tiny")
    apply_was_(model, WASConfig(crop=(0.4, 0.6), translate=0.3))
    twin = copy.deepcopy(model)
    with shadow_mode(model, "dom", seed=2):
        recalibrate_bn_(model, batches())
    with shadow_mode(twin, "dom", seed=2):
        recalibrate_bn_(twin, batches())
    dom_stats = [bn.running_var.clone() for bn in batchnorm_layers(model)]
    assert all(torch.equal(a, b.running_var) for a, b in zip(dom_stats, batchnorm_layers(twin)))
    with shadow_mode(model, "aom"):
        recalibrate_bn_(model, batches())
    assert any(not torch.equal(a, bn.running_var) for a, bn in zip(dom_stats, batchnorm_layers(model)))
    assert all(bn.momentum == 0.1 for bn in batchnorm_layers(model))


def test_num_batches_limits_the_images_used():
    model = create_model("tiny")
    assert recalibrate_bn_(model, batches(6), num_batches=2) == 32
