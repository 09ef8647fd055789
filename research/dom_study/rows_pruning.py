"""torch-pruning, the competitor: prune a trained dense net to a DOM's MACs and fine-tune it
(``torch-pruning``, ``torch-pruning-mixed``, ``torch-pruning-walltime``)."""

from __future__ import annotations

import copy
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from study_rows import PRUNING_TARGETS, RECIPE_ROW
from study_runs import Study, load_json, load_units, onnx_facts, run_training, training_time, tune_epoch_ratio
from rows_from_scratch import dom_row_macs

from wascompress.checkpoint import Checkpoint, load_checkpoint
from wascompress.export.exporter import ExportConfig, export_model
from wascompress.export.from_checkpoint import checkpoint_splits
from wascompress.models import create_model
from wascompress.models.cost import count_macs


PRUNE_RULE = "coarsest-within-5%"  # how prune_to_macs picks the channel rounding (units record it)
NEAR_TARGET = 0.95


def pruned_copy(model: torch.nn.Module, ratio: float, round_to: int) -> torch.nn.Module:
    """A copy of ``model`` channel-pruned by torch-pruning (group L2 magnitude) at ``ratio``, channel
    counts rounded to ``round_to``, the classifier kept whole."""
    import torch_pruning as tp

    copy_ = copy.deepcopy(model).eval()
    classifier = [m for m in copy_.modules() if isinstance(m, torch.nn.Linear)]
    pruner = tp.pruner.MetaPruner(copy_, torch.randn(1, 3, 32, 32),
                                  importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=ratio,
                                  ignored_layers=classifier, round_to=round_to)
    pruner.step()
    return copy_


def pruned_under(model: torch.nn.Module, target: int, round_to: int) -> tuple[torch.nn.Module, float]:
    """The least-pruned copy (bisection on the ratio, 12 steps) with at most ``target`` MACs, and its ratio."""
    lo, hi = 0.0, 0.9  # (torch-pruning skips a layer whose ratio would leave it almost empty)
    for _ in range(12):
        mid = (lo + hi) / 2
        if count_macs(pruned_copy(model, mid, round_to)) > target:
            lo = mid
        else:
            hi = mid
    return pruned_copy(model, hi, round_to), hi


def prune_to_macs(model: torch.nn.Module, target: int) -> tuple[torch.nn.Module, float, int]:
    """Channel-prune a copy of ``model`` (group magnitude importance) to at most ``target`` MACs, by
    bisection on the pruning ratio; channel counts rounded to 16, 8 or 1: the coarsest rounding whose
    graph lands within 5 % under the target, else the one that lands closest under it (coarse steps can
    jump far past it: steps of 8 left resnet18 at width 0.25 with 0.336 of the baseline's MACs, not 0.458,
    and the competitor should get the MACs the DOM has)."""
    reached = []
    for round_to in (16, 8, 1):
        small, ratio = pruned_under(model, target, round_to)
        macs = count_macs(small)
        if macs <= target:
            if macs >= NEAR_TARGET * target:
                return small, ratio, round_to
            reached.append((macs, small, ratio, round_to))
    if not reached:
        raise RuntimeError(f"torch-pruning cannot reach {target:,} MACs")
    _, small, ratio, round_to = max(reached, key=lambda r: r[0])
    return small, ratio, round_to


def conv_channels(model: torch.nn.Module) -> dict[str, int]:
    """Every conv's output channels: the structure a channel-pruned model has (weights aside)."""
    return {name: m.out_channels for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}


def torch_pruning_unit(study: Study, model: str, seed: int, row: str, epochs: tuple[int, int],
                       dense_row: str | None = None) -> dict[str, Any]:
    """The baseline trained ``epochs[0]`` epochs (in ``dense_row``'s folder, to share a dense run of the
    same settings; default: its own), pruned to its DOM row's MACs, fine-tuned ``epochs[1]`` epochs."""
    folder = study.folder(model, row, seed)
    dense = study.folder(model, dense_row or row, seed) / "dense"
    dense_epochs, tune = epochs
    target_macs = dom_row_macs(study, model, seed, PRUNING_TARGETS.get(row, "sandwich"))
    run_training(study.base_config(model, seed, dense_epochs, None), dense)
    checkpoint = load_checkpoint(dense / "best.pt")
    test = checkpoint_splits(checkpoint, study.data_dir).test
    facts = prune_and_tune(study, model, seed, checkpoint, target_macs, tune, folder / "finetune",
                           folder / "pruned.onnx", test)
    return {**facts, "epochs": f"{dense_epochs}+{tune}",
            "tune_epoch_ratio": tune_epoch_ratio(dense, folder / "finetune"),
            **training_time(dense, folder / "finetune")}


def prune_and_tune(study: Study, model: str, seed: int, dense: Checkpoint, target_macs: int, tune: int,
                   run: Path, onnx: Path, test: Any, round_to: int | None = None,
                   lr_factor: float = 0.1) -> dict[str, Any]:
    """torch-pruning's competitor: the ``dense`` checkpoint's net channel-pruned to at most ``target_macs``
    (:func:`prune_to_macs`; with ``round_to``, channel counts in that step only: the largest such net under the
    target), fine-tuned ``tune`` epochs at ``lr_factor`` of the study's learning rate in ``run``, exported to
    ``onnx``; its facts (test top-1 of the ONNX file on ``test``, and of the pruned net before fine-tuning)."""
    net = create_model(model, num_classes=dense.model.num_classes, width=study.scale.width)
    net.load_state_dict(dense.state_dict)
    if round_to is None:
        small, ratio, round_to = prune_to_macs(net, target_macs)
    else:
        small, ratio = pruned_under(net, target_macs, round_to)
        if count_macs(small) > target_macs:
            return {"target_macs": target_macs, "round_to": round_to, "reached": False}
    onnx.parent.mkdir(parents=True, exist_ok=True)
    start_top1 = onnx_start_top1(small, onnx.with_name(onnx.stem + "-start.onnx"), test)
    fine = study.base_config(model, seed, tune, None)
    results = run_training(replace(fine, lr=fine.lr * lr_factor), run, model=small)
    trained = copy.deepcopy(small).eval()
    trained.load_state_dict(load_checkpoint(run / "best.pt").state_dict)
    report = export_model(trained, onnx, ExportConfig(mode="aom"), overwrite=True)
    return {**onnx_facts(report, onnx, test), "structure": conv_channels(trained), "target_macs": target_macs,
            "pruning_ratio": ratio, "round_to": round_to, "prune_rule": PRUNE_RULE, "lr_factor": lr_factor,
            "start_test_top1": start_top1, "trainer_test_top1": results["test_acc_aom"]}


def onnx_start_top1(small: torch.nn.Module, onnx: Path, test: Any) -> float:
    """Test top-1 of the pruned net before any fine-tuning (BatchNorm statistics as pruned), through ONNX."""
    report = export_model(copy.deepcopy(small).eval(), onnx, ExportConfig(mode="aom"), overwrite=True)
    return onnx_facts(report, onnx, test)["test_top1"]


def walltime_epochs(study: Study, model: str, seed: int) -> dict[str, Any] | None:
    """The dense + fine-tuning epochs of ``torch-pruning-walltime`` (None: a unit it needs has not
    finished). Its training time is to match the recipe row's E epochs: in dense epochs, E x (the recipe
    row's quiet epoch / the baseline's, same seed), spent as dense epochs and fine-tuning epochs in the
    study's fine-tuning share, a fine-tuning epoch costing ``tune_epoch_ratio`` dense ones (measured in
    the torch-pruning units' own runs: the same seed's, else the median of the model's others). Every
    figure is a ratio of real training epochs: this shared machine's speed drifts between days by more
    than the differences at stake (resnet18's dense epoch took 108 s one day, 130 s another), and a timed
    training step alone was no substitute (it put the recipe at 1.8-2.0 dense steps; its epochs took 1.35-1.74).
    The unit's own minutes therefore need not equal the recipe's: both carry their own day's speed."""
    recipe = load_json(study.unit_path(model, RECIPE_ROW, seed))
    baseline = load_json(study.unit_path(model, "baseline", seed))
    pruned = load_json(study.unit_path(model, "torch-pruning", seed)) or {}
    others = [u["tune_epoch_ratio"] for u in load_units(study.results)
              if u["model"] == model and u["row"].startswith("torch-pruning") and "tune_epoch_ratio" in u]
    if not (recipe and baseline and ("tune_epoch_ratio" in pruned or others)):
        return None
    tune_ratio = pruned["tune_epoch_ratio"] if "tune_epoch_ratio" in pruned else statistics.median(others)
    budget = study.scale.epochs[model] * recipe["train_quiet_s"] / baseline["train_quiet_s"]  # in dense epochs
    share = study.scale.finetune_fraction
    # dense + tune * tune_ratio = budget, tune = share * (dense + tune)
    total = budget / ((1 - share) + share * tune_ratio)
    tune = max(1, round(total * share))
    return {"epochs": (max(1, round(total) - tune), tune), "tune_epoch_ratio_used": tune_ratio,
            "budget_dense_epochs": budget}
