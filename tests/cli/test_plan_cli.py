"""``wascompress plan`` -> ``fit --plan`` -> ``export --target-macs``: the per-layer table before anything
trains, one checkpoint holding the fitted planned DOMs, and exports that meet their budgets on the graph and
match PyTorch; bad input is one line, exit 2 and nothing written."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from tests.conftest import assert_one_line_error
from wascompress.checkpoint import load_checkpoint
from wascompress.profile.onnx_cost import onnx_cost
from wascompress.train.config import TrainConfig
from wascompress.train.trainer import train
from wascompress.was import use_pw_, was_layers

TINY = dict(model="tiny", width=2.0, dataset="synthetic", lr=0.05, batch_size=64, bn_batches=2, channels_last=False)
PLAN = ["--channel-step", "8", "--fit-images", "64", "--score-images", "64"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained without WAS (one epoch of synthetic images), and its plans for 0.6 and 0.4."""
    folder = tmp_path_factory.mktemp("planned")
    train(TrainConfig(**TINY, epochs=1, limit_train=400), folder / "run")
    return folder / "run" / "best.pt"


@pytest.fixture(scope="module")
def plans(trained, tmp_path_factory):
    from wascompress.cli import main

    out = tmp_path_factory.mktemp("plans") / "plans.json"
    assert main(["plan", str(trained), "--target-macs", "0.6", "0.4", *PLAN, "--out", str(out)]) == 0
    return out


def test_plan_prints_each_budgets_layers_and_fit_and_export_deploy_them(tmp_path, run_main, trained, plans):
    """Catches a plan whose export misses its budget on the graph, a fit --plan checkpoint without the
    corrections, and an export --target-macs that writes something other than the planned, fitted DOM."""
    result = run_main("plan", str(trained), "--target-macs", "0.4", *PLAN)
    assert result.returncode == 0, result.stderr
    assert "budget 0.4:" in result.stdout and "res1.conv" in result.stdout and "cut options scored" in result.stdout
    fitted = tmp_path / "fitted.pt"
    result = run_main("fit", str(trained), "--plan", str(plans), "--fit-images", "128", "--out", str(fitted))
    assert result.returncode == 0, result.stderr
    assert [line.split(" (")[0] for line in result.stdout.splitlines()[:2]] == ["planned DOM plan0_6",
                                                                                  "planned DOM plan0_4"]
    assert "validation top-1" in result.stdout
    loaded = load_checkpoint(fitted)
    assert [d["key"] for d in loaded.planned_doms()] == ["plan0_6", "plan0_4"]
    model, original = loaded.build_model(), load_checkpoint(trained).build_model()
    use_pw_(model)
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), original(x))  # the AOM and its statistics as trained (the DOMs' checks left none)
    assert any(layer.fitted["plan0_4"].abs().sum() > 0 for layer in was_layers(model).values())
    for budget in ("0.6", "0.4"):
        out = tmp_path / f"dom-{budget}.onnx"
        assert run_main("export", str(fitted), "--target-macs", budget, "--out", str(out)).returncode == 0
        report = json.loads(out.with_suffix(".json").read_text())
        assert report["fitted"] == f"plan{budget.replace('.', '_')}" and report["plan"]["target_macs"] == float(budget)
        assert report["verification"]["top1_identical"] and report["verification"]["max_abs_diff_scaled"] <= 1e-4
        dense = report["cost_before_pruning"]["macs"]
        graph = onnx_cost(out).macs  # counted from the graph, not by the planner
        assert graph <= float(budget) * dense, (graph, dense)
        facts = report["plan"]["facts"]
        # the planner counts conv and linear MACs exactly for its cuts; the exporter may save a little more, where
        # a window leaves an input row or column unread and the conv producing it stops computing it (absorb.py)
        layers = sum(n.macs for n in onnx_cost(out).nodes if n.op in ("Conv", "Gemm"))
        assert 0.95 * facts["predicted_macs"] <= layers <= facts["predicted_macs"] + 0.001 * dense, (
            layers, facts["predicted_macs"])


def test_a_budget_no_plan_reaches_is_one_line_and_writes_nothing(tmp_path, run_main, trained):
    out = tmp_path / "plans.json"
    result = run_main("plan", str(trained), "--target-macs", "0.02", *PLAN, "--out", str(out))
    assert_one_line_error(result, "no plan reaches 0.020 of the MACs", absent=[out])


def test_a_plan_from_another_model_is_one_line_and_writes_nothing(tmp_path, run_main, plans):
    other = tmp_path / "other"
    train(TrainConfig(**{**TINY, "width": 1.0}, epochs=1, limit_train=100), other)
    out = tmp_path / "fitted.pt"
    result = run_main("fit", str(other / "best.pt"), "--plan", str(plans), "--out", str(out))
    assert_one_line_error(result, "made for another model", absent=[out])


def test_planning_without_the_runs_data_names_data_dir(tmp_path, run_main, trained):
    loaded = load_checkpoint(trained)
    moved = replace(loaded, train_config={**loaded.train_config, "dataset": "cifar10",
                                          "data_dir": str(tmp_path / "gone")})
    moved.save(tmp_path / "moved.pt")
    out = tmp_path / "plans.json"
    result = run_main("plan", str(tmp_path / "moved.pt"), "--target-macs", "0.5", "--out", str(out))
    assert_one_line_error(result, "pass --data-dir", absent=[out])
