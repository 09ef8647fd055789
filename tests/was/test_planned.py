"""A planned DOM as data: its cuts become the draws every DOM path runs, it survives JSON, and it refuses a
model it was not made for."""

from __future__ import annotations

import pytest
import torch

from wascompress.errors import ConfigError
from wascompress.models import create_model
from wascompress.was import apply_was_, set_draws_, use_pw_
from wascompress.was.planned import PLAN_WAS, DomPlan, LayerCut, fingerprint, plan_key, plans_to_json, read_plans


def planned(width: float = 1.0) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("tiny", width=width).eval()
    apply_was_(model, PLAN_WAS)
    return model


def test_a_plans_cuts_are_what_its_dom_computes():
    """Catches draws that drop the window or the filters of a cut, or that cut layers the plan leaves whole."""
    model = planned()
    plan = DomPlan(fingerprint(model), {"conv2.conv": LayerCut(window=(1, 1, 2, 2), kept=(0, 3, 5))})
    set_draws_(model, plan.draws(model))
    weight = model.conv2.conv.weight.detach()
    pw = model.conv2.conv.parametrizations.weight.original.detach()
    assert torch.equal(weight[[0, 3, 5], :, 1:, 1:], pw[[0, 3, 5], :, 1:, 1:])
    assert weight[:, :, 0].abs().sum() == 0 and weight[:, :, :, 0].abs().sum() == 0
    assert weight[[1, 2, 4, 6, 7]].abs().sum() == 0
    assert torch.equal(model.conv3.conv.weight, model.conv3.conv.parametrizations.weight.original)
    use_pw_(model)


def test_plans_survive_their_file(tmp_path):
    model = planned()
    plan = DomPlan(fingerprint(model), {"res1.conv": LayerCut(window=(0, 0, 3, 2)), "conv1.conv": LayerCut(kept=(1, 2))},
                   0.5, {"predicted_mac_ratio": 0.49})
    path = tmp_path / "plans.json"
    path.write_text(plans_to_json([plan]))
    assert read_plans(str(path)) == [plan]
    assert plan_key(0.5) == "plan0_5"


def test_a_plan_made_for_another_model_is_refused():
    """Catches a plan applied by layer name alone to a model of another width (its kept filters would not
    exist, or mean other channels)."""
    plan = DomPlan(fingerprint(planned(1.0)), {"conv2.conv": LayerCut(kept=(0, 1))})
    with pytest.raises(ConfigError, match="made for another model"):
        plan.draws(planned(2.0))


def test_a_file_that_is_not_a_plans_file_is_refused(tmp_path):
    path = tmp_path / "plans.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(ConfigError, match="not a wascompress plans file"):
        read_plans(str(path))
