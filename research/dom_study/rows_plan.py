"""The DOM study's planned rows (issue 35): a trained model's DOM cut layer by layer, fitted, then
fine-tuned, against torch-pruning at the very MACs each planned DOM has.

``pretrained-plan`` (``-lr0.1``: a tenth of the study's rate; ``-2F``: 2F epochs): from the trained baseline
every row starts from, ``wascompress plan`` for budgets 0.75 / 0.5 / 0.35 (cuts scored on 256 training and
512 validation images), ``wascompress fit --plan`` (1,024 training images), then each budget's planned DOM,
physically pruned as the exporter prunes it (windows shrunk, channels removed), fine-tuned F epochs as the
study fine-tunes torch-pruning's net (plain training of the small net, cosine to zero). Beside each, in the
same unit, torch-pruning's net pruned from the same baseline to at most that DOM's MACs (free rounding) and
fine-tuned alike, at the same rate. Every net's test top-1 is recorded before fine-tuning and after, through
its exported ONNX file. The training path with a plan (the DOM trained beside the AOM) is not in this row:
it measures the plan and its fit as a deployed net, each method at the same epochs and rate.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from rows_pretrained import BUDGETS, start_facts, start_weights
from rows_pruning import conv_channels, onnx_start_top1, prune_and_tune
from study_rows import BUDGET, ROW_SETTINGS
from study_runs import Study, onnx_facts, run_training, training_time

from wascompress.checkpoint import load_checkpoint
from wascompress.data.run_data import checkpoint_calibration, checkpoint_splits
from wascompress.export.exporter import ExportConfig, export_model, mode_model, prune_model
from wascompress.fileio import atomic_write_text
from wascompress.fit import FitRequest, fit_checkpoint
from wascompress.models.cost import count_macs
from wascompress.plan import PlanRequest, plan_checkpoint
from wascompress.was.planned import DomPlan, plans_to_json, read_plans


def planned_checkpoint(study: Study, start: Path, folder: Path) -> Path:
    """The start checkpoint with every budget's planned DOM fitted (planned and fitted once, kept)."""
    plans_path, fitted = folder / "plans.json", folder / "fitted.pt"
    folder.mkdir(parents=True, exist_ok=True)
    if not plans_path.is_file():
        plans, info = plan_checkpoint(start, PlanRequest(target_macs=BUDGETS), data_dir=study.data_dir)
        atomic_write_text(folder / "plan-search.json", json.dumps(info, indent=1) + "\n")
        atomic_write_text(plans_path, plans_to_json(plans))
    if not fitted.is_file():
        plans = tuple(read_plans(str(plans_path)))
        fit_checkpoint(start, fitted, FitRequest(plans=plans), data_dir=study.data_dir, overwrite=True)
    return fitted


def pruned_dom(study: Study, fitted: Path, planned: dict[str, Any]) -> torch.nn.Module:
    """A budget's planned, fitted DOM as the exporter builds it before writing ONNX: frozen, BatchNorm
    re-estimated, windows shrunk and channels removed (a plain PyTorch net to fine-tune)."""
    loaded = load_checkpoint(fitted)
    splits = checkpoint_splits(loaded, study.data_dir)
    calibration = checkpoint_calibration(loaded, splits, study.scale.bn_batches)
    config = ExportConfig(mode="dom", plan=DomPlan.from_dict(planned["plan"]), fitted=planned["key"],
                          input_shape=loaded.input_shape)
    small, _ = prune_model(mode_model(loaded.build_model(), config, calibration), config)
    return small.train()


def tune_dom(study: Study, model: str, seed: int, small: torch.nn.Module, tune: int, lr_factor: float,
             run: Path, onnx: Path, test: Any) -> dict[str, Any]:
    """Fine-tune the planned DOM's small net and export it; its facts before and after."""
    onnx.parent.mkdir(parents=True, exist_ok=True)
    start_top1 = onnx_start_top1(small, onnx.with_name(onnx.stem + "-start.onnx"), test)
    fine = study.base_config(model, seed, tune, None)
    results = run_training(replace(fine, lr=fine.lr * lr_factor), run, model=copy.deepcopy(small))
    trained = copy.deepcopy(small).eval()
    trained.load_state_dict(load_checkpoint(run / "best.pt").state_dict)
    report = export_model(trained, onnx, ExportConfig(mode="aom"), overwrite=True)
    return {**onnx_facts(report, onnx, test), "structure": conv_channels(trained), "start_test_top1": start_top1,
            "trainer_test_top1": results["test_acc_aom"], **training_time(run)}


def plan_unit(study: Study, model: str, seed: int, row: str) -> dict[str, Any]:
    settings = ROW_SETTINGS[row]
    lr_factor = settings.get("lr_factor", 1.0)
    tune = study.scale.finetune_epochs(model) * settings.get("f_multiple", 1)
    start = start_weights(study, model, seed)
    folder = study.folder(model, row, seed)
    fitted = planned_checkpoint(study, start, study.folder(model, "pretrained-plan", seed) / "planned")
    loaded = load_checkpoint(fitted)
    test = checkpoint_splits(loaded, study.data_dir).test
    dense = load_checkpoint(start)
    budgets = []
    for planned in loaded.planned_doms():
        target = planned["target"]
        small = pruned_dom(study, fitted, planned)
        mine = tune_dom(study, model, seed, small, tune, lr_factor, folder / f"dom-{target:g}",
                        folder / f"dom-{target:g}.onnx", test)
        theirs = prune_and_tune(study, model, seed, dense, count_macs(small), tune, folder / f"pruning-{target:g}",
                                folder / f"pruned-{target:g}.onnx", test, lr_factor=lr_factor)
        budgets.append({"target": target, "plan": planned["key"], "predicted_mac_ratio": planned["ratio"], **mine,
                        "torch_pruning": {**theirs, **training_time(folder / f"pruning-{target:g}")}})
    headline = next(b for b in budgets if b["target"] == BUDGET)
    return {**{k: headline[k] for k in ("onnx", "macs", "params", "test_top1", "structure")},
            "epochs": str(tune), "finetune_epochs": tune, "lr_factor": lr_factor, "budgets": budgets,
            "fits": loaded.train_config["dom_budget"]["fits"], **start_facts(start),
            "train_wall_s": sum(b["train_wall_s"] for b in budgets),
            "train_quiet_s": sum(b["train_quiet_s"] for b in budgets)}
