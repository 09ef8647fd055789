"""The DOM study's "from trained" rows: compress the trained baseline instead of training from scratch.

Every row starts from the same trained baseline as the ``torch-pruning`` row (its dense run: the baseline
trained E - F epochs, ``best.pt``; trained here once if missing) and trains F epochs, the fine-tuning
epochs torch-pruning gets (``-2F`` rows: 2F), so that every row has had E epochs of training in all. They
train at the study's learning rate (cosine to zero over their epochs); a ``-lr0.1`` row at a tenth of it,
torch-pruning's fine-tuning rate. (The first unit, resnet18 ``pretrained-pair`` at a tenth, reached only
76.88 %: its DOM was still climbing, 74.3 -> 77.8 % on validation over the 4 epochs, so the rows moved to
the full rate and that unit is kept as ``pretrained-pair-lr0.1``.)

- ``pretrained-pair``: ``--init-from`` the baseline, zero-crop (0.4, 0.6), AOM + the 0.5-budget DOM each
  step, in-place distillation (the recipe of ``sandwich-pair``, started from trained weights);
- ``pretrained-teacher``: the same, the DOM distilled from the frozen baseline instead (``--teacher init``);
- ``pretrained-multi``: budgets 0.75 / 0.5 / 0.35 from one run (``--target-macs 0.75 0.5 0.35``), a
  shared-size crop + filter configuration so that DOM seeds span the range of MACs, every budget's DOM
  trained in every step beside the AOM, in-place distillation;
- ``pretrained-pair-fitted``, ``pretrained-multi-fitted`` (``-2F``): those rows with every DOM fitted to the
  trained baseline before training (``--fit-doms``: its kept taps solved layer by layer for what the
  baseline computed, issue 35);
- ``torch-pruning-multi``: torch-pruning's competitor at each of ``pretrained-multi``'s DOM MACs (the same
  dense run pruned to that DOM's MACs, fine-tuned F epochs).

A unit's JSON records F, the start weights' sha256, their own test accuracy and the training minutes;
multi-budget units list every budget's exported DOM (or pruned net) under ``budgets``. The 0.5 budget is
the unit's headline (``test_top1``, ``macs``), so the study's table and goal read these rows as any other.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from rows_pruning import prune_and_tune
from study_rows import BUDGET, PRETRAINED_ROWS, ROW_SETTINGS, row_was
from study_runs import Study, export_dom, load_json, onnx_facts, run_training, training_time
from study_summary import paired_points

from wascompress.checkpoint import file_sha256, load_checkpoint
from wascompress.export.from_checkpoint import checkpoint_splits
from wascompress.train.config import TrainConfig
from wascompress.train.finetune import FINETUNE_LR_FACTOR

BUDGETS = (0.75, 0.5, 0.35)  # the multi-budget rows' (``was = "multi"`` in rows.toml)
ROWS = tuple(row for row in ROW_SETTINGS if row in PRETRAINED_ROWS)
FITTED_MULTI = "pretrained-multi-fitted"
HEADLINE_ROWS = tuple(row for row in ROWS if ROW_SETTINGS[row].get("headline"))  # judged at F epochs, as torch-pruning


KEPT = ("best.pt", "results.json", "metrics.jsonl", "config.json")  # a dense run's files kept in the repository


def start_weights(study: Study, model: str, seed: int) -> Path:
    """The trained baseline every row starts from: torch-pruning's dense run. A copy kept beside the unit
    JSON (``<results>/start/<model>/seed<N>/``, committed so that later sessions start from the same weights)
    is put in place; else the run is trained here (and should be kept: copy its files there)."""
    total, tune = study.scale.epochs[model], study.scale.finetune_epochs(model)
    dense = study.folder(model, "torch-pruning", seed) / "dense"
    kept = study.results / "start" / model / f"seed{seed}"
    if not (dense / "results.json").is_file() and all((kept / name).is_file() for name in KEPT):
        dense.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            shutil.copyfile(kept / name, dense / name)
    run_training(study.base_config(model, seed, total - tune, None), dense)
    return dense / "best.pt"


def recipe_config(study: Study, model: str, seed: int, row: str) -> tuple[TrainConfig, Path]:
    """The training configuration of a recipe row, and its start weights."""
    settings = ROW_SETTINGS[row]
    epochs = study.scale.finetune_epochs(model) * settings.get("f_multiple", 1)
    start = start_weights(study, model, seed)
    multi = settings["was"] == "multi"
    teacher = settings.get("teacher")
    config = study.base_config(model, seed, epochs, row_was(row, model), init_from=str(start.resolve()),
                               target_macs=BUDGETS if multi else (BUDGET,),
                               search_seeds=study.scale.budget_seeds, distill=teacher is None,
                               teacher=teacher, select_mode="dom", fit_doms=settings.get("fit", False))
    if "random_samples" in settings:  # base_config settled was_samples before the DOMs were named
        config = replace(config, was_samples=settings["random_samples"])
    low = settings.get("low_lr", False)
    return (replace(config, lr=config.lr * FINETUNE_LR_FACTOR) if low else config), start


def start_facts(start: Path) -> dict[str, Any]:
    results = load_json(start.parent / "results.json") or {}
    return {"start_sha256": file_sha256(start), "start_test_top1": results.get("test_acc_aom"),
            "start_epochs": (results.get("best") or {}).get("epoch")}


def recipe_unit(study: Study, model: str, seed: int, row: str) -> dict[str, Any]:
    config, start = recipe_config(study, model, seed, row)
    folder = study.folder(model, row, seed)
    results = run_training(config, folder / "run")
    best = folder / "run" / "best.pt"
    budgets = []
    for budget in results["budgets"]:
        path = folder / f"dom-{budget['target']:g}.onnx"
        report, splits = export_dom(study, best, path, budget["seed"])
        budgets.append({"target": budget["target"], "dom_seed": budget["seed"], "mac_ratio": budget["mac_ratio"],
                        "trainer_dom_test_top1": budget["test_acc"], **onnx_facts(report, path, splits.test)})
    headline = next(b for b in budgets if b["target"] == BUDGET)
    recorded = (load_json(folder / "run" / "config.json") or {}).get("config", {})
    fits = (recorded.get("dom_budget") or {}).get("fits")
    return {**{k: headline[k] for k in ("onnx", "macs", "params", "test_top1", "dom_seed")},
            **({"fitted": fits} if fits else {}),
            "epochs": str(config.epochs), "finetune_epochs": config.epochs, "lr": config.lr,
            "was": config.was.describe(), "distill": "frozen start" if config.teacher else "in-place AOM",
            "bn_batches": study.scale.bn_batches, "aom_test_top1": results["test_acc_aom"],
            **({"budgets": budgets} if len(budgets) > 1 else {}), **start_facts(start),
            **training_time(folder / "run")}


def multi_dom_macs(study: Study, model: str, seed: int) -> dict[float, int]:
    """The MACs of ``pretrained-multi``'s exported DOM at each budget (that unit must have finished)."""
    unit = load_json(study.unit_path(model, "pretrained-multi", seed))
    if unit is None:
        raise SystemExit(f"error: {model} torch-pruning-multi seed {seed} waits for pretrained-multi")
    return {b["target"]: b["macs"] for b in unit["budgets"]}


def pruning_unit(study: Study, model: str, seed: int, row: str = "torch-pruning-multi") -> dict[str, Any]:
    """torch-pruning from the same dense run to each budget DOM's MACs, each fine-tuned F epochs (the row's
    ``f_multiple`` of F), at a tenth of the study's learning rate or the row's ``lr_factor``, channel counts
    rounded freely or to the row's ``round_to`` (a budget that rounding cannot reach is recorded as such)."""
    settings = ROW_SETTINGS[row]
    start = start_weights(study, model, seed)
    tune = study.scale.finetune_epochs(model) * settings.get("f_multiple", 1)
    checkpoint = load_checkpoint(start)
    splits = checkpoint_splits(checkpoint, study.data_dir)
    folder = study.folder(model, row, seed)
    budgets = []
    for target, macs in sorted(multi_dom_macs(study, model, seed).items(), reverse=True):
        run = folder / f"finetune-{target:g}"
        facts = prune_and_tune(study, model, seed, checkpoint, macs, tune, run, folder / f"pruned-{target:g}.onnx",
                               splits.test, round_to=settings.get("round_to"),
                               lr_factor=settings.get("lr_factor", FINETUNE_LR_FACTOR))
        budgets.append({"target": target, **facts, **(training_time(run) if facts.get("reached", True) else {})})
    reached = [b for b in budgets if b.get("reached", True)]
    headline = next((b for b in reached if b["target"] == BUDGET), reached[-1] if reached else None)
    if headline is None:
        raise SystemExit(f"error: {model} {row}: no budget reachable")
    return {**{k: headline[k] for k in ("onnx", "macs", "params", "test_top1", "structure")},
            "epochs": str(tune), "finetune_epochs": tune, "budgets": budgets, **start_facts(start),
            "train_wall_s": sum(b["train_wall_s"] for b in reached),
            "train_quiet_s": sum(b["train_quiet_s"] for b in reached)}


def run_row(study: Study, model: str, seed: int, row: str) -> dict[str, Any]:
    if ROW_SETTINGS[row]["kind"] == "torch-pruning-multi":
        return pruning_unit(study, model, seed, row)
    if ROW_SETTINGS[row]["kind"] == "plan":
        from rows_plan import plan_unit  # rows_plan imports this module

        return plan_unit(study, model, seed, row)
    return recipe_unit(study, model, seed, row)


def summary(units: list[dict[str, Any]], table: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model: the best 0.5-budget DOM of the from-trained rows at F epochs against the baseline and
    torch-pruning (paired by seed), and each budget of the multi-budget run against torch-pruning at its
    MACs; across models the worse network's figures (None until a model has its rows)."""
    by = {(r["model"], r["row"]): r for r in table}
    facts: dict[str, Any] = {"models": {}}
    for model in dict.fromkeys(r["model"] for r in table):
        base, pruning = by.get((model, "baseline")), by.get((model, "torch-pruning"))
        doms = [by[(model, r)] for r in HEADLINE_ROWS if (model, r) in by]
        best = max(doms, key=lambda r: r["test_top1"]["mean"]) if doms else None
        if best is None or base is None:
            continue
        facts["models"][model] = {
            "best_row": best["row"], "best_top1": best["test_top1"]["mean"] * 100,
            "gap_points": paired_points(base, best),
            "minus_torch_pruning_points": paired_points(best, pruning) if pruning else None,
            "multi_minus_torch_pruning": budget_differences(units, model),
            "fitted_multi_minus_torch_pruning": budget_differences(units, model, FITTED_MULTI),
        }
    per = facts["models"].values()
    gaps = [m["gap_points"] for m in per if m["gap_points"] is not None]
    margins = [m["minus_torch_pruning_points"] for m in per if m["minus_torch_pruning_points"] is not None]
    facts["pretrained_best_dom_gap_points"] = max(gaps) if gaps else None
    facts["pretrained_dom_minus_torch_pruning_points"] = min(margins) if margins else None
    fitted = [v for m in per for v in m["fitted_multi_minus_torch_pruning"].values()]
    facts["pretrained_fitted_multi_minus_torch_pruning_points"] = min(fitted) if fitted else None  # worst budget
    return facts


COMPETITOR_ROWS = ("torch-pruning-multi", "torch-pruning-multi-lr1")  # free rounding, F epochs, the two rates


def budget_differences(units: list[dict[str, Any]], model: str, row: str = "pretrained-multi") -> dict[str, float]:
    """A multi-budget row's DOM (``pretrained-multi``'s, or a fitted twin's: they train the same seeds, so
    torch-pruning-multi's nets have their MACs) minus torch-pruning's net at its better learning rate
    (:data:`COMPETITOR_ROWS`), budget by budget, in points (mean over the seeds both have)."""
    mine = {u["seed"]: u for u in units if u["model"] == model and u["row"] == row}
    theirs: dict[int, dict[float, float]] = {}
    for unit in units:
        if unit["model"] == model and unit["row"] in COMPETITOR_ROWS:
            best = theirs.setdefault(unit["seed"], {})
            for b in unit["budgets"]:
                if "test_top1" in b:
                    best[b["target"]] = max(best.get(b["target"], 0.0), b["test_top1"])
    out: dict[str, list[float]] = {}
    for seed in sorted(set(mine) & set(theirs)):
        for budget in mine[seed]["budgets"]:
            if budget["target"] in theirs[seed]:
                out.setdefault(f"{budget['target']:g}", []).append(
                    (budget["test_top1"] - theirs[seed][budget["target"]]) * 100)
    return {k: sum(v) / len(v) for k, v in out.items()}


def show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def print_details(units: list[dict[str, Any]], table: list[dict[str, Any]]) -> None:
    """The from-trained rows' line per model in the study's summary."""
    facts = summary(units, table)
    for model, m in facts["models"].items():
        budgets, fitted = (", ".join(f"{k}: {v:+.2f}" for k, v in m[key].items()) or "n/a"
                           for key in ("multi_minus_torch_pruning", "fitted_multi_minus_torch_pruning"))
        print(f"from trained, {model}: best {m['best_row']} {m['best_top1']:.2f}%, {show(m['gap_points'])} points "
              f"under the baseline, {show(m['minus_torch_pruning_points'])} above torch-pruning; multi-budget "
              f"minus torch-pruning at its MACs: {budgets}; fitted: {fitted}")


def print_headline(units: list[dict[str, Any]], table: list[dict[str, Any]]) -> None:
    """The study summary's last two lines: the from-trained goal's figures."""
    facts = summary(units, table)
    print(f"pretrained_best_dom_gap_points: {show(facts['pretrained_best_dom_gap_points'])}")
    print(f"pretrained_fitted_multi_minus_torch_pruning_points: "
          f"{show(facts['pretrained_fitted_multi_minus_torch_pruning_points'])}")
    print(f"pretrained_dom_minus_torch_pruning_points: {show(facts['pretrained_dom_minus_torch_pruning_points'])}")
