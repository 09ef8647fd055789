"""The DOM study runs end to end at its --quick size: every row's unit, latency, and the summary lines."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

ROWS = {"baseline", "sandwich", "scratch", "torch-pruning", "sandwich-ft", "paper-crop", "paper-ct",
        "torch-pruning-walltime", "sandwich-pair", "thin",
        "pretrained-pair", "pretrained-teacher", "pretrained-multi", "torch-pruning-multi",
        "pretrained-pair-fitted", "pretrained-multi-fitted"}  # rows_pretrained.py
EXTRA_ROWS = {"sandwich-pair-aligned", "scratch-aligned", "sandwich-pair-mixed", "scratch-mixed",
              "torch-pruning-mixed"}  # run when named


def test_quick_study_writes_every_unit_and_the_summary(tmp_path, cifar_dir):
    runs = tmp_path / "study"
    command = [sys.executable, "research/dom_study/study.py", "--quick", "--seeds", "0", "--runs-dir", str(runs),
               "--data-dir", str(cifar_dir)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[-6:]] == [
        "min_baseline_top1", "best_dom_gap_points", "dom_minus_torch_pruning_points",
        "pretrained_best_dom_gap_points", "pretrained_fitted_multi_minus_torch_pruning_points",
        "pretrained_dom_minus_torch_pruning_points"]
    units = {p.stem: json.loads(p.read_text()) for p in (runs / "results" / "tiny").glob("*.json")}
    assert {name.rsplit("-seed", 1)[0] for name in units} == ROWS
    extra = subprocess.run([*command, "--rows", *sorted(EXTRA_ROWS)], cwd=REPO, capture_output=True, text=True,
                           timeout=600)
    assert extra.returncode == 0, extra.stderr[-3000:]
    lines = extra.stdout.strip().splitlines()  # the headline now counts the aligned DOM row too
    units = {p.stem: json.loads(p.read_text()) for p in (runs / "results" / "tiny").glob("*.json")}
    assert {name.rsplit("-seed", 1)[0] for name in units} == ROWS | EXTRA_ROWS
    base = units["baseline-seed0"]
    for name, unit in units.items():
        assert 0 <= unit["test_top1"] <= 1 and unit["macs"] > 0 and unit["train_wall_s"] > 0, name
        if unit["row"] != "baseline":
            assert unit["latency_ratio_b1"] > 0 and unit["latency_ratio_b32"] > 0, name
            assert unit["macs"] <= 0.5 * base["macs"], name  # every compressed row meets the budget
    sandwich, scratch = units["sandwich-seed0"], units["scratch-seed0"]
    assert scratch["macs"] == sandwich["macs"] and scratch["dom_seed"] == sandwich["dom_seed"]  # the same net
    assert units["torch-pruning-seed0"]["macs"] <= sandwich["macs"]
    thin = units["thin-seed0"]  # the baseline's net, uniformly thinner, within the DOM's MACs
    assert thin["macs"] <= sandwich["macs"] and 0 < thin["thin_width"] < 1 and thin["params"] < base["params"]
    pair = units["sandwich-pair-seed0"]  # the same DOM, trained without the random SW
    assert (pair["dom_seed"], pair["macs"], pair["random_samples"]) == (sandwich["dom_seed"], sandwich["macs"], 0)
    for row in ("sandwich-pair-aligned", "scratch-aligned"):  # the same window shapes, placed to cancel
        assert units[f"{row}-seed0"]["macs"] == sandwich["macs"], row
    mixed, alone = units["sandwich-pair-mixed-seed0"], units["scratch-mixed-seed0"]  # a DOM of its own, and its control
    assert (alone["dom_seed"], alone["macs"]) == (mixed["dom_seed"], mixed["macs"])
    competitor = units["torch-pruning-mixed-seed0"]  # pruned to the mixed DOM's MACs from the shared dense run
    assert competitor["target_macs"] == mixed["macs"] and competitor["macs"] <= mixed["macs"]
    assert not (runs / "tiny" / "torch-pruning-mixed" / "seed0" / "dense").exists()
    assert (runs / "tiny" / "torch-pruning" / "seed0" / "dense" / "best.pt").is_file()
    assert units["sandwich-ft-seed0"]["epochs"] == "1+1"
    walltime = units["torch-pruning-walltime-seed0"]  # planned by ratios of the finished units' real epochs
    assert units["torch-pruning-seed0"]["tune_epoch_ratio"] > 0 and walltime["tune_epoch_ratio"] > 0
    assert walltime["tune_epoch_ratio_used"] == units["torch-pruning-seed0"]["tune_epoch_ratio"]
    recipe_ratio = units["sandwich-pair-seed0"]["train_quiet_s"] / base["train_quiet_s"]
    assert walltime["budget_dense_epochs"] == 2 * recipe_ratio  # E = 2 recipe epochs, in dense epochs
    # a second invocation finds every unit done: it trains nothing and prints the same summary
    again = subprocess.run([*command, "--summary"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-5:] == lines[-5:]
    # from trained: every row starts from torch-pruning's dense run and trains F (or 2F) epochs; its sha256 is
    # taken here over the file's bytes and read back from each unit's JSON and its run's own config.json
    # (catches a unit or run that records another file's digest, or none)
    start_path = runs / "tiny" / "torch-pruning" / "seed0" / "dense" / "best.pt"
    start = hashlib.sha256(start_path.read_bytes()).hexdigest()
    for row in ("pretrained-pair", "pretrained-teacher", "pretrained-multi", "torch-pruning-multi"):
        assert units[f"{row}-seed0"]["start_sha256"] == start and units[f"{row}-seed0"]["finetune_epochs"] == 1, row
    for row in ("pretrained-pair", "pretrained-teacher", "pretrained-multi"):
        recorded = json.loads((runs / "tiny" / row / "seed0" / "run" / "config.json").read_text())["config"]
        assert (recorded["init_from"], recorded["init_sha256"]) == (str(start_path.resolve()), start), row
    sys.path.insert(0, str(REPO / "research" / "dom_study"))
    import rows_pretrained
    import study_runs

    study = study_runs.Study(study_runs.SCALES["quick"], runs, runs / "results", str(cifar_dir))
    for row, epochs, lr in (("pretrained-multi-2F", 2, 0.05), ("pretrained-pair-lr0.1", 1, 0.005)):  # run when named
        config, _ = rows_pretrained.recipe_config(study, "tiny", 0, row)
        assert (config.epochs, config.lr) == (epochs, pytest.approx(lr)), row
        assert config.init_from == str(start_path.resolve()), row
    assert units["pretrained-teacher-seed0"]["distill"] == "frozen start"
    multi, pruned = units["pretrained-multi-seed0"], units["torch-pruning-multi-seed0"]
    assert [b["target"] for b in multi["budgets"]] == [0.75, 0.5, 0.35]
    for budget, competitor in zip(multi["budgets"], pruned["budgets"]):  # each budget against torch-pruning at its MACs
        assert budget["macs"] <= budget["target"] * base["macs"] and budget["latency_ratio_b32"] > 0
        assert competitor["target"] == budget["target"] and competitor["target_macs"] == budget["macs"]
        assert competitor["macs"] <= budget["macs"] and competitor["latency_ratio_b32"] > 0
