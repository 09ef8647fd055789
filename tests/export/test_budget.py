"""MAC budgets (``wascompress/export/budget.py``): a DOM seed's MACs are those of the graph it exports to,
known before training, and a budget picks the seed at or just under it, or says which seed came closest."""

from __future__ import annotations

import copy

import pytest
import torch

from wascompress.errors import ConfigError
from wascompress.export.budget import (SeedCost, aom_macs, check_budget, closest_under, pruned_macs, seed_costs,
                                       within_budget)
from wascompress.export.exporter import ExportConfig, export_model
from wascompress.models import create_model
from wascompress.models.cost import count_macs
from wascompress.profile.onnx_cost import onnx_cost
from wascompress.was import WASConfig, apply_was_, was_layers

SHAPE = (3, 24, 40)  # not the default 32x32: the input shape is the caller's


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10)
    apply_was_(model, WASConfig(crop=(0.4, 1.0), filter=(0.5, 1.0)))  # windows 2x2 to 3x3: seeds differ
    return model.eval()


def test_aom_macs_are_the_plain_models_without_batchnorm(model):
    plain = create_model("tiny", num_classes=10)
    assert aom_macs(model, SHAPE) == count_macs(plain, SHAPE) > count_macs(plain, (3, 16, 16))


@pytest.mark.parametrize("seed,channel_align", [(0, None), (3, 1)])
def test_a_seeds_macs_are_those_of_the_graph_it_exports_to(model, tmp_path, seed, channel_align):
    """Kernel windows and removed filters (whole groups of ``channel_align``, or single ones) both count."""
    align = {"channel_align": channel_align} if channel_align else {}
    report = export_model(model, tmp_path / "dom.onnx",
                          ExportConfig(mode="dom", seed=seed, recalibrate_bn=False, input_shape=SHAPE, **align))
    counted = pruned_macs(model, seed, SHAPE, channel_align)
    assert counted == report["cost"]["macs"] == onnx_cost(tmp_path / "dom.onnx").macs
    assert counted < aom_macs(model, SHAPE)
    if channel_align == 1:  # single filters go where groups of 16 cannot: fewer MACs than the default
        assert counted < pruned_macs(model, seed, SHAPE)


def test_counting_leaves_the_model_as_it_was(model):
    state = copy.deepcopy(model.state_dict())
    draws = {name: layer.draws for name, layer in was_layers(model).items()}
    seed_costs(model, range(2), SHAPE)
    assert {name: layer.draws for name, layer in was_layers(model).items()} == draws
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_seed_costs_are_fractions_of_the_aom(model):
    costs = seed_costs(model, [4, 1, 2], SHAPE)
    dense = aom_macs(model, SHAPE)
    assert [c.seed for c in costs] == [4, 1, 2]
    for cost in costs:
        assert cost.macs == pruned_macs(model, cost.seed, SHAPE) and cost.ratio == cost.macs / dense
        assert 0 < cost.ratio < 1
    assert costs[0].as_dict() == {"seed": 4, "macs": costs[0].macs, "ratio": costs[0].ratio}
    assert len({c.macs for c in costs}) > 1  # seeds differ: a budget has something to choose from


COSTS = [SeedCost(0, 70, 0.7), SeedCost(1, 40, 0.4), SeedCost(2, 50, 0.5), SeedCost(3, 50, 0.5), SeedCost(4, 90, 0.9)]


def test_closest_under_takes_the_most_macs_within_the_budget():
    assert closest_under(COSTS, 0.6) == SeedCost(2, 50, 0.5)  # 0.5 beats 0.4; seeds 2 and 3 tie: the lower
    assert closest_under(COSTS, 0.5) == SeedCost(2, 50, 0.5)  # at the budget counts as within
    assert closest_under(COSTS, 1) == SeedCost(4, 90, 0.9)
    assert closest_under(COSTS, 0.45).seed == 1
    assert [c.seed for c in within_budget(COSTS, 0.5)] == [1, 2, 3]


def test_a_budget_no_seed_reaches_names_the_cheapest():
    with pytest.raises(ConfigError) as caught:
        closest_under(COSTS, 0.3)
    message = str(caught.value)
    assert "no DOM seed of the 5 tried reaches 0.3 of the AOM's MACs" in message
    assert "the cheapest, seed 1, needs 0.400" in message and "\n" not in message


@pytest.mark.parametrize("ratio", [0, -0.5, 1.5, True, "0.5", None])
def test_a_budget_is_a_fraction_in_0_1(ratio):
    with pytest.raises(ConfigError, match="a MAC budget is a fraction of the AOM's MACs in"):
        within_budget(COSTS, ratio)


def test_check_budget_accepts_fractions():
    assert check_budget(1) == 1.0 and isinstance(check_budget(1), float) and check_budget(0.25) == 0.25


@pytest.mark.parametrize("budget,fragment,absent", [
    (0.05, "no seed can: the smallest draw these WAS settings allow needs", "try more seeds"),
    (None, "try more seeds (--search-seeds)", "no seed can"),
])
def test_a_missed_budget_suggests_more_seeds_only_where_they_can_help(budget, fragment, absent):
    """Catches "try more seeds" where the crop / filter range itself sets the floor (more seeds cannot help)."""
    from wascompress.export.budget import closest_under, seed_costs, smallest_draw_ratio

    model = create_model("tiny", num_classes=10)
    apply_was_(model, WASConfig(crop=(0.4, 1.0), filter=(0.5, 1.0), shared=True))
    floor = smallest_draw_ratio(model, (3, 32, 32))
    costs = [c for c in seed_costs(model, range(8), (3, 32, 32)) if c.ratio > floor + 1e-9][:2]  # above the floor
    assert costs and all(c.ratio >= floor for c in seed_costs(model, range(8), (3, 32, 32)))
    if budget is None:
        budget = (floor + min(c.ratio for c in costs)) / 2  # reachable by some draw, not by these two seeds
    with pytest.raises(ConfigError) as caught:
        closest_under(costs, budget, floor)
    assert fragment in str(caught.value) and absent not in str(caught.value)
