"""The DOM study's from-trained figures (research/dom_study/rows_pretrained.py), computed from hand-made
table rows and units whose answers are worked out here."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "research" / "dom_study"))
import rows_pretrained  # noqa: E402  (a broken import fails, not skips)


def row(model: str, name: str, by_seed: dict[int, float]) -> dict:
    return {"model": model, "row": name, "top1_by_seed": by_seed,
            "test_top1": {"mean": sum(by_seed.values()) / len(by_seed)}}


TABLE = [
    row("tiny", "baseline", {0: 0.80, 1: 0.82}),
    row("tiny", "torch-pruning", {0: 0.74, 1: 0.76}),
    row("tiny", "pretrained-pair", {0: 0.78, 1: 0.78}),
    row("tiny", "pretrained-teacher", {0: 0.76, 1: 0.76}),
    row("tiny", "pretrained-multi", {0: 0.79, 1: 0.80}),  # the best headline row
    row("tiny", "pretrained-multi-2F", {0: 0.95, 1: 0.95}),  # not judged at F epochs: never the best
    row("vgg16", "baseline", {0: 0.90}),
    row("vgg16", "pretrained-pair", {0: 0.87}),  # no torch-pruning row yet
    row("resnet18", "pretrained-pair", {0: 0.70}),  # no baseline yet: no figures
]


def unit(model: str, name: str, seed: int, top1: dict[float, float]) -> dict:
    return {"model": model, "row": name, "seed": seed,
            "budgets": [{"target": target, "test_top1": value} for target, value in top1.items()]}


UNITS = [
    unit("tiny", "pretrained-multi", 0, {0.75: 0.80, 0.5: 0.79, 0.35: 0.70}),
    unit("tiny", "pretrained-multi", 1, {0.75: 0.82, 0.5: 0.80, 0.35: 0.72}),
    unit("tiny", "pretrained-multi", 2, {0.75: 0.99, 0.5: 0.99, 0.35: 0.99}),  # no competitor for seed 2
    unit("tiny", "torch-pruning-multi", 0, {0.75: 0.78, 0.5: 0.75, 0.35: 0.71}),
    unit("tiny", "torch-pruning-multi", 1, {0.75: 0.81, 0.5: 0.78}),  # 0.35 not pruned for seed 1
    unit("vgg16", "torch-pruning-multi", 0, {0.75: 0.10, 0.5: 0.10}),  # another model's
    unit("tiny", "pretrained-multi-fitted", 0, {0.75: 0.77, 0.5: 0.80, 0.35: 0.73}),
]


def test_budget_differences_are_the_multi_dom_minus_torch_pruning_paired_by_seed():
    """Per budget, the mean over the seeds both rows have of DOM minus pruned net, in points. Catches the
    difference taken the other way, seeds without a competitor (or another model's units) counted, and
    budgets matched by position instead of target."""
    differences = rows_pretrained.budget_differences(UNITS, "tiny")
    assert differences == pytest.approx({"0.75": (2 + 1) / 2, "0.5": (4 + 2) / 2, "0.35": -1.0})
    assert list(differences) == ["0.75", "0.5", "0.35"]
    assert rows_pretrained.budget_differences(UNITS, "vgg16") == {}


def test_summary_judges_the_best_headline_row_against_the_baseline_and_torch_pruning():
    """The best from-trained headline row per model, its gap under the baseline and its margin over
    torch-pruning (paired by seed, in points), and across models the worst gap and the smallest margin.
    Catches a non-headline row chosen, the worst row chosen, the differences swapped, and the best model's
    figures reported instead of the worse one's."""
    facts = rows_pretrained.summary(UNITS, TABLE)
    assert facts["models"].keys() == {"tiny", "vgg16"}
    tiny, vgg = facts["models"]["tiny"], facts["models"]["vgg16"]
    assert tiny["best_row"] == "pretrained-multi" and tiny["best_top1"] == pytest.approx(79.5)
    assert tiny["gap_points"] == pytest.approx((1 + 2) / 2)  # baseline minus DOM
    assert tiny["minus_torch_pruning_points"] == pytest.approx((5 + 4) / 2)  # DOM minus torch-pruning
    assert tiny["multi_minus_torch_pruning"] == rows_pretrained.budget_differences(UNITS, "tiny")
    assert vgg["best_row"] == "pretrained-pair" and vgg["gap_points"] == pytest.approx(3.0)
    assert vgg["minus_torch_pruning_points"] is None and vgg["multi_minus_torch_pruning"] == {}
    assert facts["pretrained_best_dom_gap_points"] == pytest.approx(3.0)  # the worse model's gap
    assert facts["pretrained_dom_minus_torch_pruning_points"] == pytest.approx(4.5)
    empty = rows_pretrained.summary([], [row("tiny", "baseline", {0: 0.8})])
    assert empty == {"models": {}, "pretrained_best_dom_gap_points": None,
                     "pretrained_dom_minus_torch_pruning_points": None,
                     "pretrained_fitted_multi_minus_torch_pruning_points": None}


def test_the_fitted_multi_row_is_judged_budget_by_budget_at_its_worst():
    """The fitted multi-budget row against torch-pruning-multi, per budget, and the goal's figure: its worst
    budget over models. Catches the fitted row's units mixed with the unfitted row's, and the best budget
    reported instead of the worst."""
    assert rows_pretrained.budget_differences(UNITS, "tiny", "pretrained-multi-fitted") == pytest.approx(
        {"0.75": -1.0, "0.5": 5.0, "0.35": 2.0})
    facts = rows_pretrained.summary(UNITS, TABLE)
    assert facts["pretrained_fitted_multi_minus_torch_pruning_points"] == pytest.approx(-1.0)
