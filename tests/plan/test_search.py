"""Choosing cuts: options scored by the fitted network's divergence, and the cheapest options meeting the
budget, whichever kind (kernel window or channels) they are."""

from __future__ import annotations

import pytest
import torch

from tests.plan.test_structure import SHAPE, tiny
from wascompress.errors import ConfigError
from wascompress.plan.search import (
    Option,
    PlanSettings,
    Scorer,
    allocate,
    channel_options,
    plan_for_budget,
    plan_macs,
    scored_options,
    window_options,
)
from wascompress.plan.structure import model_structure
from wascompress.was import apply_was_, was_layers
from wascompress.was.planned import PLAN_WAS, LayerCut

SETTINGS = PlanSettings(channel_step=8)


def planned_tiny() -> tuple[torch.nn.Module, object]:
    model = tiny()
    structure = model_structure(model, SHAPE)
    apply_was_(model, PLAN_WAS)
    return model, structure


def images(count: int, seed: int) -> torch.Tensor:
    return torch.randn(count, *SHAPE, generator=torch.Generator().manual_seed(seed))


def with_scores(options: list[Option], window: float, channels: float) -> list[Option]:
    return [Option(o.unit, o.window, o.keep, window if o.window is not None else channels) for o in options]


@pytest.mark.parametrize("cheap", ["window", "channels"])
def test_the_budget_is_met_with_the_options_that_cost_least(cheap):
    """Catches an allocation that prefers one kind of cut whatever the scores say (the search space must hold
    channel-only and kernel-only plans), or that stops over the budget."""
    model, structure = planned_tiny()
    options = window_options(structure, model, list(was_layers(model))) + channel_options(structure, SETTINGS)
    scored = with_scores(options, *((0.01, 1.0) if cheap == "window" else (1.0, 0.01)))
    target = int(0.6 * structure.macs({}, {}))
    chosen = allocate(structure, scored, target)
    assert plan_macs(structure, chosen) <= target
    assert chosen and all(unit.startswith(cheap) for unit in chosen), sorted(chosen)


def test_a_budget_no_plan_reaches_is_refused():
    model, structure = planned_tiny()
    options = with_scores(window_options(structure, model, list(was_layers(model))), 0.1, 0.1)
    with pytest.raises(ConfigError, match="no plan reaches 0.050 of the MACs"):
        allocate(structure, options, int(0.05 * structure.macs({}, {})))


def test_an_options_score_counts_its_fit():
    """Catches scoring that skips the fit (the option would be judged as PW's bare window)."""
    model, _ = planned_tiny()
    with torch.no_grad():
        model.fc.weight.mul_(50)  # confident predictions, as a trained network makes: divergences that tell
    scorer = Scorer(model, images(128, 1), images(64, 2), SETTINGS)
    cuts = {"conv2.conv": LayerCut(window=(0, 0, 2, 2))}
    fitted, bare = scorer.score(cuts, ["conv2.conv"]), scorer.score(cuts, [])
    assert fitted < bare and bare > 0
    assert scorer.score({}, []) == 0  # nothing cut: re-estimating BatchNorm alone costs no option anything


def test_planning_is_deterministic_and_the_plan_meets_its_budget():
    """Catches unseeded sampling in scoring, and a plan whose cuts differ from what the search chose."""
    plans = []
    for _ in range(2):
        model, structure = planned_tiny()
        scored = scored_options(model, structure, images(64, 1), images(64, 2), SETTINGS)
        plans.append(plan_for_budget(model, structure, scored, 0.5, SETTINGS))
    assert plans[0].to_dict() == plans[1].to_dict()
    facts = plans[0].facts
    assert facts["predicted_mac_ratio"] <= 0.5 and sum(r["macs"] for r in facts["layers"]) == facts["predicted_macs"]
