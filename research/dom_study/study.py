"""The evidence at a real budget: DOM models against prune-and-fine-tune and the same small net alone.

Full CIFAR-10 (45,000 train / 5,000 validation, seeded split; the 10,000-image test set), standard
protocol (random crop + flip, SGD momentum 0.9, weight decay 5e-4, cosine schedule, lr 0.05, batch
128), for vgg16 and resnet18 at width 0.25. Every row gets the same total epochs E per model (vgg16:
20, resnet18: 15; fine-tuning epochs count toward E) and a DOM MAC budget of at most 0.5 of the
baseline's MACs, measured on the exported pruned graph:

1. ``baseline``: no WAS, AOM.
2. ``paper-crop`` / ``paper-ct``: the paper's step (a random SW every step; zero-crop (0.4, 0.6), and
   zero-crop + translate 0.3); the DOM exported by ``--target-macs 0.5`` (the most accurate of 16
   seeds on the validation split whose pruned graph is at or under the budget).
3. ``sandwich``: crop (0.4, 0.6); AOM on the labels + the deployed DOM seed (``--target-macs 0.5``)
   + one random SW per step, with in-place distillation.
   ``sandwich-pair``: row 3 without the random SW (AOM + the deployed DOM only; 2 passes per step, not 3).
   ``sandwich-pair-aligned``: the same with an aligned DOM (``dom_align``): the same window shapes, but
   each 2x2 window placed so that the half-pixel shifts cancel (alternate corners in module order, so the
   two convs of a residual branch cancel each other) instead of at the corners its seed drew.
   ``sandwich-pair-mixed``: the same with a mixed DOM (resnet18 only): 2x2 windows in the first stage
   (16 channels: too few to remove in blocks of 16) and half the middle channels of every other residual
   block, its kernels kept 3x3 (``transform_layers``); 0.497 of the MACs.
4. ``sandwich-ft``: row 3 for E - F epochs, then ``wascompress finetune`` of its DOM for F = E / 4
   epochs, on the labels alone (its first unit, vgg16 seed 0, fine-tuned distilled from the AOM and fell
   from 79.25 % to 74.98 %; that unit was run again this way).
5. ``torch-pruning``: the baseline trained E - F epochs, channel-pruned with torch-pruning (group
   magnitude importance, channel counts rounded to 16, else 8, else 1: the coarsest that lands within
   5 % under the budget) to at most the MACs of row 3's DOM, fine-tuned F epochs at a tenth of the
   learning rate (the first units, pruned by the coarsest rounding that reached the budget at all, were
   pruned and fine-tuned again from their dense run by this rule; ``earlier_rule`` keeps their first figures). ``torch-pruning-walltime``: the same given the training wall time of ``sandwich-pair``
   (the trainer's default recipe beside a fixed DOM), planned by ratios of real training epochs (the
   recipe's quiet epoch over the baseline's; a fine-tuning epoch over a dense one, ``tune_epoch_ratio``,
   which every torch-pruning unit records) so that the speed of the day the unit itself runs cancels; the
   recipe-over-baseline ratio comes from the same seed's two units, which ran on days of their own (vgg16:
   1.35 on seed 0, 1.74 on seed 1), so the plan carries their difference.
   ``torch-pruning-mixed``: the same dense run pruned to the MACs of ``sandwich-pair-mixed``'s DOM
   instead (its competitor at equal MACs).
6. ``scratch``: the exact DOM architecture of row 3 (the same kernel windows and channels) trained
   alone from scratch for E epochs: WAS with only that draw in every step, so no other weight is used.
   ``scratch-aligned``, ``scratch-mixed``: the same for the aligned and the mixed DOM (their rows' controls).
7. ``thin`` (not in the issue's list): the baseline's network at the widest width multiplier (a grid of
   1/64 of 0.25) with at most the MACs of row 3's DOM, trained E epochs — what a user gets by simply
   training a smaller model, and a measure of whether the goal can be reached at this budget at all.

Every DOM is exported with its BatchNorm statistics re-estimated on 32 batches of 128 training images
(the trainer's default; the first units, exported on 4, were re-exported: ``test_top1_bn_batches`` keeps
their first figure).

Each unit (model x row x seed) is its own resumable job: training runs resume from their ``last.pt``,
and a unit's JSON lands in ``research/dom_study/results/<model>/<row>-seed<N>.json`` when it finishes; finished units are
skipped (a unit whose runs were lost with a session starts again). Training time is recorded as measured
and as a quiet-machine estimate (epochs x the fastest epoch: the machine is shared while the study runs);
the walltime-matched row uses the estimate. Latency (ONNX Runtime CPU, batch 1 and 32, against the
baseline, interleaved) is taken apart with ``--latency``, in a quiet moment after training, on each
unit's graph rebuilt with random weights from what its JSON records (the DOM seed, or the pruned channel
counts): latency depends on the structure only, and the trained files need not outlive a session. ``--summary`` reads the JSON and prints the
headline; ``--quick`` runs a 2-minute version (tiny model, 600 images) into a folder of its own.

    python research/dom_study/study.py [--models vgg16 resnet18] [--seeds 0 1] [--rows ...]
    python research/dom_study/study.py --latency
    python research/dom_study/study.py --summary
    python research/dom_study/render.py     # the tables of RESULTS.md and study_dom.png

The rows' settings (kind, WAS configuration, control and competitor, run by default or when named) are
data: ``rows.toml``. The "from trained" rows (``pretrained-*``, ``torch-pruning-multi``) are made in
``rows_pretrained.py``.

Last lines of ``--summary``: ``min_baseline_top1``, ``best_dom_gap_points``, ``dom_minus_torch_pruning_points``,
then the from-trained rows' ``pretrained_best_dom_gap_points`` and ``pretrained_dom_minus_torch_pruning_points``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from wascompress.checkpoint import Checkpoint, load_checkpoint
from wascompress.export.budget import seed_costs
from wascompress.export.exporter import ExportConfig, export_model, mode_model, prune_model
from wascompress.export.from_checkpoint import SeedSearch, checkpoint_splits, export_checkpoint
from wascompress.fileio import atomic_write_text
from wascompress.models import create_model
from wascompress.models.cost import count_macs
from wascompress.profile.profiler import onnx_accuracy
from wascompress.train.config import TrainConfig, resolve_config
from wascompress.train.finetune import finetune_config
from wascompress.train.sandwich import choose_dom_seeds
from wascompress.train.trainer import QUIET, train
from wascompress.was import WASConfig, apply_was_

HERE = Path(__file__).resolve().parent


def machine() -> str:
    """One line naming the machine, for the unit JSON."""
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def today() -> str:
    return datetime.date.today().isoformat()


BUDGET = 0.5
# The rows and their WAS configurations are data: rows.toml (its header says what each setting means).
SETTINGS = tomllib.loads((HERE / "rows.toml").read_text())
ROW_SETTINGS: dict[str, dict[str, Any]] = SETTINGS["rows"]
ROWS = tuple(ROW_SETTINGS)  # in the table's order
EXTRA_ROWS = tuple(row for row, s in ROW_SETTINGS.items() if s.get("extra"))  # run when named
DEFAULT_ROWS = tuple(row for row in ROWS if row not in EXTRA_ROWS)
PRETRAINED_ROWS = tuple(row for row, s in ROW_SETTINGS.items() if s["kind"] in ("pretrained", "torch-pruning-multi"))
RECIPE_ROW = "sandwich-pair"  # the trainer's default beside a fixed DOM: the wall time the competitor is given
DOM_ROWS = tuple(row for row, s in ROW_SETTINGS.items() if s.get("dom"))
CONTROLS = {row: s["control"] for row, s in ROW_SETTINGS.items() if "control" in s}  # default: scratch
COMPETITORS = {row: s["competitor"] for row, s in ROW_SETTINGS.items() if "competitor" in s}  # default: torch-pruning
PRUNING_TARGETS = {row: s["prune_to"] for row, s in ROW_SETTINGS.items() if "prune_to" in s}  # default: sandwich


def named_was(name: str, model: str) -> WASConfig:
    """The WAS configuration ``name`` of rows.toml, for ``model`` where it has one per network."""
    table = SETTINGS["was"][name]
    if all(isinstance(value, dict) for value in table.values()):  # one per network
        if model not in table:
            raise SystemExit(f"error: the {name} WAS configuration has no entry for {model} (it has: {', '.join(table)})")
        table = table[model]
    return WASConfig.from_dict(table)


CROP = named_was("crop", "")


def row_was(row: str, model: str) -> WASConfig:
    """The WAS configuration a row trains (and builds its DOM) with."""
    return named_was(ROW_SETTINGS[row]["was"], model)


@dataclass(frozen=True)
class Scale:
    """The size of the study: data, epochs, search."""

    epochs: dict[str, int]  # E per model
    width: float = 0.25
    limit_train: int | None = None
    limit_test: int | None = None
    val_size: int = 5000
    lr: float = 0.05
    search_seeds: int = 16
    budget_seeds: int = 32
    finetune_fraction: float = 0.25
    bn_batches: int = 32  # DOM BatchNorm re-estimation at export: 32 x 128 = 4,096 training images

    def finetune_epochs(self, model: str) -> int:
        return max(1, round(self.epochs[model] * self.finetune_fraction))


SCALES = {
    "default": Scale(epochs={"vgg16": 20, "resnet18": 15}),
    "quick": Scale(epochs={"tiny": 2}, width=1.0, limit_train=600, limit_test=500, val_size=100, search_seeds=4,
                   budget_seeds=8, finetune_fraction=0.5, bn_batches=4),
}


# ----------------------------------------------------------------------------------------------------
# Units


def load_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def save_json(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return data


@dataclass(frozen=True)
class Study:
    scale: Scale
    runs: Path  # training runs and exports (not committed)
    results: Path  # one JSON per finished unit (committed)
    data_dir: str | None

    def base_config(self, model: str, seed: int, epochs: int, was: WASConfig | None, **extra: Any) -> TrainConfig:
        overrides = {"model": model, "width": self.scale.width, "dataset": "cifar10", "data_dir": self.data_dir,
                     "epochs": epochs, "seed": seed, "limit_train": self.scale.limit_train,
                     "limit_test": self.scale.limit_test, "val_size": self.scale.val_size, "lr": self.scale.lr,
                     "was": was.to_dict() if was else None}
        config = resolve_config(overrides, protocol="standard")
        return replace(config, **extra)

    def folder(self, model: str, row: str, seed: int) -> Path:
        return self.runs / model / row / f"seed{seed}"

    def unit_path(self, model: str, row: str, seed: int) -> Path:
        return self.results / model / f"{row}-seed{seed}.json"


def run_training(config: TrainConfig, folder: Path, model: torch.nn.Module | None = None) -> dict[str, Any]:
    """Train (or resume, or just read) one run."""
    results = load_json(folder / "results.json")
    if results is not None:
        return results
    resume = (folder / "last.pt").is_file()
    return train(config, folder, resume=resume, overwrite=not resume, reporter=QUIET, model=model)


def epoch_times(folder: Path) -> list[float]:
    """Seconds of each epoch's training loop of a run (evaluation excluded), from its metrics."""
    return [json.loads(line)["epoch_time_s"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def training_time(*folders: Path) -> dict[str, float]:
    """Training time of runs (their epochs' training loops; evaluation excluded): the sum as measured, and
    a quiet-machine estimate, each run's epochs x its fastest epoch (this 2-core machine is shared while
    the study runs; the fastest epoch is the least disturbed one)."""
    runs = [epoch_times(folder) for folder in folders]
    return {"train_wall_s": sum(sum(times) for times in runs),
            "train_quiet_s": sum(len(times) * min(times) for times in runs)}


def tune_epoch_ratio(dense: Path, finetune: Path) -> float:
    """A fine-tuning epoch of a pruned net over a dense epoch: the two runs' fastest (quiet) epochs."""
    return min(epoch_times(finetune)) / min(epoch_times(dense))


def onnx_facts(report: dict[str, Any], path: Path, test: Any) -> dict[str, Any]:
    return {"onnx": str(path), "macs": report["cost"]["macs"], "params": report["cost"]["params"],
            "test_top1": onnx_accuracy(path, test)}


def dom_seed_for_budget(study: Study, model: str, was: WASConfig) -> dict[str, Any]:
    """The DOM seed the sandwich rows deploy, chosen as the trainer chooses it (``choose_dom_seeds``):
    its pruned graph at or just under the budget (structure only: the same for every training seed)."""
    net = create_model(model, num_classes=10, width=study.scale.width)
    apply_was_(net, was)
    config = sandwich_config(study, model, 0, 1, was=was)
    return choose_dom_seeds(config, net, (3, 32, 32)).dom_budget["chosen"][0]


def baseline_unit(study: Study, model: str, seed: int) -> dict[str, Any]:
    folder = study.folder(model, "baseline", seed)
    epochs = study.scale.epochs[model]
    results = run_training(study.base_config(model, seed, epochs, None), folder / "run")
    splits = checkpoint_splits(load_checkpoint(folder / "run" / "best.pt"), study.data_dir)
    aom = export_checkpoint(folder / "run" / "best.pt", folder / "aom.onnx", ExportConfig(mode="aom"),
                            data_dir=study.data_dir, overwrite=True)
    return {**onnx_facts(aom, folder / "aom.onnx", splits.test), "epochs": str(epochs),
            "trainer_test_top1": results["test_acc_aom"], **training_time(folder / "run")}


def paper_unit(study: Study, model: str, seed: int, was: WASConfig, row: str) -> dict[str, Any]:
    folder = study.folder(model, row, seed)
    epochs = study.scale.epochs[model]
    results = run_training(study.base_config(model, seed, epochs, was), folder / "run")
    best = folder / "run" / "best.pt"
    splits = checkpoint_splits(load_checkpoint(best), study.data_dir)
    dom = export_checkpoint(best, folder / "dom.onnx", ExportConfig(mode="dom", seed=0), data_dir=study.data_dir,
                            search=SeedSearch(study.scale.search_seeds, target_macs=BUDGET), overwrite=True,
                            bn_batches=study.scale.bn_batches)
    return {**onnx_facts(dom, folder / "dom.onnx", splits.test), "dom_seed": dom["seed"], "epochs": str(epochs),
            "bn_batches": study.scale.bn_batches,
            "aom_test_top1": results["test_acc_aom"], "was": was.describe(),
            **training_time(folder / "run")}


def sandwich_config(study: Study, model: str, seed: int, epochs: int, random_samples: int = 1,
                    was: WASConfig = CROP) -> TrainConfig:
    return study.base_config(model, seed, epochs, was, target_macs=BUDGET, search_seeds=study.scale.budget_seeds,
                             distill=True, select_mode="dom", was_samples=random_samples)


def export_dom(study: Study, checkpoint: Path, out: Path, dom_seed: int) -> tuple[dict[str, Any], Any]:
    splits = checkpoint_splits(load_checkpoint(checkpoint), study.data_dir)
    report = export_checkpoint(checkpoint, out, ExportConfig(mode="dom", seed=dom_seed), data_dir=study.data_dir,
                               overwrite=True, bn_batches=study.scale.bn_batches)
    return report, splits


def sandwich_unit(study: Study, model: str, seed: int, row: str = "sandwich", random_samples: int = 1) -> dict[str, Any]:
    folder = study.folder(model, row, seed)
    epochs = study.scale.epochs[model]
    results = run_training(sandwich_config(study, model, seed, epochs, random_samples, row_was(row, model)), folder / "run")
    dom_seed = results["dom_seed"]
    report, splits = export_dom(study, folder / "run" / "best.pt", folder / "dom.onnx", dom_seed)
    return {**onnx_facts(report, folder / "dom.onnx", splits.test), "dom_seed": dom_seed, "epochs": str(epochs),
            "random_samples": random_samples, "bn_batches": study.scale.bn_batches,
            "aom_test_top1": results["test_acc_aom"], "trainer_dom_test_top1": results["test_acc_dom"],
            **training_time(folder / "run")}


def sandwich_ft_unit(study: Study, model: str, seed: int) -> dict[str, Any]:
    folder = study.folder(model, "sandwich-ft", seed)
    total, tune = study.scale.epochs[model], study.scale.finetune_epochs(model)
    first = run_training(sandwich_config(study, model, seed, total - tune), folder / "run")
    dom_seed = first["dom_seed"]
    config = finetune_config(folder / "run" / "best.pt", dom_seed, tune, distill=False)
    run_training(config, folder / "finetune")
    report, splits = export_dom(study, folder / "finetune" / "best.pt", folder / "dom.onnx", dom_seed)
    return {**onnx_facts(report, folder / "dom.onnx", splits.test), "dom_seed": dom_seed,
            "epochs": f"{total - tune}+{tune}", "bn_batches": study.scale.bn_batches, "finetune_distill": False,
            "aom_test_top1": first["test_acc_aom"],
            "dom_test_top1_before_finetune": first["test_acc_dom"],
            **training_time(folder / "run", folder / "finetune")}


def scratch_unit(study: Study, model: str, seed: int, row: str = "scratch") -> dict[str, Any]:
    folder = study.folder(model, row, seed)
    epochs = study.scale.epochs[model]
    dom_seed = dom_seed_for_budget(study, model, row_was(row, model))["seed"]
    config = study.base_config(model, seed, epochs, row_was(row, model), dom_seeds=(dom_seed,), train_pw=False, was_samples=0,
                               select_mode="dom")
    run_training(config, folder / "run")
    report, splits = export_dom(study, folder / "run" / "best.pt", folder / "dom.onnx", dom_seed)
    return {**onnx_facts(report, folder / "dom.onnx", splits.test), "dom_seed": dom_seed, "epochs": str(epochs),
            "bn_batches": study.scale.bn_batches, **training_time(folder / "run")}


PRUNE_RULE = "coarsest-within-5%"  # how prune_to_macs picks the channel rounding (units record it)
NEAR_TARGET = 0.95


def prune_to_macs(model: torch.nn.Module, target: int) -> tuple[torch.nn.Module, float, int]:
    """Channel-prune a copy of ``model`` (group magnitude importance) to at most ``target`` MACs, by
    bisection on the pruning ratio; channel counts rounded to 16, 8 or 1: the coarsest rounding whose
    graph lands within 5 % under the target, else the one that lands closest under it (coarse steps can
    jump far past it: steps of 8 left resnet18 at width 0.25 with 0.336 of the baseline's MACs, not 0.458,
    and the competitor should get the MACs the DOM has)."""
    import torch_pruning as tp

    def pruned(ratio: float, round_to: int) -> torch.nn.Module:
        copy_ = copy.deepcopy(model).eval()
        classifier = [m for m in copy_.modules() if isinstance(m, torch.nn.Linear)]
        pruner = tp.pruner.MetaPruner(copy_, torch.randn(1, 3, 32, 32),
                                      importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=ratio,
                                      ignored_layers=classifier, round_to=round_to)
        pruner.step()
        return copy_

    reached = []
    for round_to in (16, 8, 1):
        lo, hi = 0.0, 0.9  # (torch-pruning skips a layer whose ratio would leave it almost empty)
        for _ in range(12):
            mid = (lo + hi) / 2
            if count_macs(pruned(mid, round_to)) > target:
                lo = mid
            else:
                hi = mid
        small = pruned(hi, round_to)
        macs = count_macs(small)
        if macs <= target:
            if macs >= NEAR_TARGET * target:
                return small, hi, round_to
            reached.append((macs, small, hi, round_to))
    if not reached:
        raise RuntimeError(f"torch-pruning cannot reach {target:,} MACs")
    _, small, ratio, round_to = max(reached, key=lambda r: r[0])
    return small, ratio, round_to


def dom_row_macs(study: Study, model: str, seed: int, dom_row: str) -> int:
    """The MACs of a DOM row's exported graph (before that row has finished: from its seed choice)."""
    target = load_json(study.unit_path(model, dom_row, seed))
    if target is not None:
        return int(target["macs"])
    was = row_was(dom_row, model)
    net = create_model(model, num_classes=10, width=study.scale.width)
    apply_was_(net, was)
    return seed_costs(net, [dom_seed_for_budget(study, model, was)["seed"]], (3, 32, 32))[0].macs


THIN_STEPS = 64  # the thin row's width grid: multiples of 1/64 of the study's width


def thin_width(model: str, width: float, target: int) -> float:
    """The widest multiplier on a grid of ``width`` / THIN_STEPS whose network has at most ``target`` MACs."""
    for step in range(THIN_STEPS, 0, -1):
        candidate = width * step / THIN_STEPS
        if count_macs(create_model(model, num_classes=10, width=candidate)) <= target:
            return candidate
    raise RuntimeError(f"no width of {model} has at most {target:,} MACs")


def thin_unit(study: Study, model: str, seed: int) -> dict[str, Any]:
    """The baseline's network made uniformly thinner (every layer's channels scaled by one width factor)
    to at most the MACs of row 3's DOM, trained E epochs: the compression needing no tool at all."""
    folder = study.folder(model, "thin", seed)
    epochs = study.scale.epochs[model]
    width = thin_width(model, study.scale.width, dom_row_macs(study, model, seed, "sandwich"))
    config = replace(study.base_config(model, seed, epochs, None), width=width)
    results = run_training(config, folder / "run")
    splits = checkpoint_splits(load_checkpoint(folder / "run" / "best.pt"), study.data_dir)
    report = export_checkpoint(folder / "run" / "best.pt", folder / "thin.onnx", ExportConfig(mode="aom"),
                               data_dir=study.data_dir, overwrite=True)
    return {**onnx_facts(report, folder / "thin.onnx", splits.test), "epochs": str(epochs), "thin_width": width,
            "trainer_test_top1": results["test_acc_aom"], **training_time(folder / "run")}


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
                   run: Path, onnx: Path, test: Any) -> dict[str, Any]:
    """torch-pruning's competitor: the ``dense`` checkpoint's net channel-pruned to at most ``target_macs``
    (:func:`prune_to_macs`), fine-tuned ``tune`` epochs at a tenth of the study's learning rate in ``run``,
    exported to ``onnx``; its facts (test top-1 of the ONNX file on ``test``)."""
    net = create_model(model, num_classes=dense.model.num_classes, width=study.scale.width)
    net.load_state_dict(dense.state_dict)
    small, ratio, round_to = prune_to_macs(net, target_macs)
    fine = study.base_config(model, seed, tune, None)
    results = run_training(replace(fine, lr=fine.lr * 0.1), run, model=small)
    trained = copy.deepcopy(small).eval()
    trained.load_state_dict(load_checkpoint(run / "best.pt").state_dict)
    report = export_model(trained, onnx, ExportConfig(mode="aom"), overwrite=True)
    return {**onnx_facts(report, onnx, test), "structure": conv_channels(trained), "target_macs": target_macs,
            "pruning_ratio": ratio, "round_to": round_to, "prune_rule": PRUNE_RULE,
            "trainer_test_top1": results["test_acc_aom"]}


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


def run_unit(study: Study, model: str, row: str, seed: int) -> dict[str, Any] | None:
    path = study.unit_path(model, row, seed)
    done = load_json(path)
    if done is not None:
        return done
    started = time.perf_counter()
    total, tune = study.scale.epochs[model], study.scale.finetune_epochs(model)
    settings = ROW_SETTINGS[row]
    kind = settings["kind"]
    units: dict[str, Callable[[], dict[str, Any]]] = {
        "baseline": lambda: baseline_unit(study, model, seed),
        "paper": lambda: paper_unit(study, model, seed, row_was(row, model), row),
        "sandwich": lambda: sandwich_unit(study, model, seed, row, settings["random_samples"]),
        "sandwich-ft": lambda: sandwich_ft_unit(study, model, seed),
        "torch-pruning": lambda: torch_pruning_unit(study, model, seed, row, (total - tune, tune),
                                                    settings.get("dense_row")),
        "scratch": lambda: scratch_unit(study, model, seed, row),
        "thin": lambda: thin_unit(study, model, seed),
    }
    if row in PRETRAINED_ROWS:
        from rows_pretrained import run_row

        facts = run_row(study, model, seed, row)
    elif kind == "torch-pruning-walltime":
        plan = walltime_epochs(study, model, seed)
        if plan is None:
            print(f"{model} {row} seed {seed}: waits for the baseline, {RECIPE_ROW} and torch-pruning units", flush=True)
            return None
        facts = {**torch_pruning_unit(study, model, seed, row, plan.pop("epochs")), **plan}
    else:
        facts = units[kind]()
    unit = {"model": model, "row": row, "seed": seed, "width": study.scale.width, **facts,
            "unit_wall_s": time.perf_counter() - started, "date": today(), "machine": machine()}
    save_json(path, unit)
    print(f"{model} {row} seed {seed}: test top-1 {unit['test_top1'] * 100:.2f}% at {unit['macs']:,} MACs "
          f"({unit['train_wall_s'] / 60:.1f} min training)", flush=True)
    return unit


# ----------------------------------------------------------------------------------------------------
# Summary


def load_units(results: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("*/*.json"))]


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def table(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model x study row: means and standard deviations over seeds."""
    out = []
    for model in dict.fromkeys(u["model"] for u in units):
        base = [u for u in units if u["model"] == model and u["row"] == "baseline"]
        base_macs = base[0]["macs"] if base else None
        for row in ROWS:
            group = [u for u in units if u["model"] == model and u["row"] == row]
            if not group:
                continue
            entry: dict[str, Any] = {"model": model, "row": row, "seeds": [u["seed"] for u in group],
                                     "epochs": " / ".join(dict.fromkeys(u["epochs"] for u in group)),  # per seed where they differ
                                     "top1_by_seed": {u["seed"]: u["test_top1"] for u in group}}
            for key in ("test_top1", "aom_test_top1", "macs", "params", "train_wall_s", "train_quiet_s",
                        "latency_ratio_b1",
                        "latency_ratio_b32"):
                values = [u[key] for u in group if u.get(key) is not None]
                entry[key] = mean_std(values) if values else None
            entry["mac_ratio"] = entry["macs"]["mean"] / base_macs if base_macs else None
            out.append(entry)
    return out


def paired_difference(row: dict[str, Any], other: dict[str, Any]) -> dict[str, float] | None:
    """``row``'s test top-1 minus ``other``'s in points, seed by seed over the seeds both have (the same
    seed is the same data split and order, so seed noise cancels in pairs): mean, std and n of those
    differences; None if they share no seed."""
    mine, theirs = row["top1_by_seed"], other["top1_by_seed"]
    common = shared_seeds(row, other)
    return mean_std([(mine[seed] - theirs[seed]) * 100 for seed in common]) if common else None


def paired_points(row: dict[str, Any], other: dict[str, Any]) -> float | None:
    """The mean of :func:`paired_difference`, in points."""
    difference = paired_difference(row, other)
    return difference["mean"] if difference else None


def shared_seeds(row: dict[str, Any], other: dict[str, Any]) -> list[int]:
    return sorted(seed for seed in row["top1_by_seed"] if seed in other["top1_by_seed"])


GOAL_POINTS = 1.0  # the goal: a DOM row at most this many points under the baseline


def goal_check(row: dict[str, Any], rows: dict[str, dict[str, Any]], control: str = "scratch",
               competitor: str = "torch-pruning") -> dict[str, Any] | None:
    """Whether a DOM row meets the issue's goal: at most ``BUDGET`` of the baseline's MACs, at most
    ``GOAL_POINTS`` under the baseline, and at least as accurate as its torch-pruning competitor (at
    equal epochs; beside ``torch-pruning``, also at equal training time: ``torch-pruning-walltime``, the
    same row of the issue) and its scratch control, each difference paired by seed. ``rows`` maps the
    model's row names to rows. Returns ``met``, ``shortfalls`` (one phrase per failed condition) and
    ``seeds_beyond`` (seed -> points against the baseline where one seed alone is beyond the line);
    None until the baseline, competitor and control share a seed with the row."""
    floors = {"baseline": -GOAL_POINTS, competitor: 0.0, control: 0.0}
    if competitor == "torch-pruning":
        floors["torch-pruning-walltime"] = 0.0
    differences = {name: paired_difference(row, rows[name]) for name in floors if name in rows}
    differences = {name: d for name, d in differences.items() if d is not None}
    if any(name not in differences for name in ("baseline", competitor, control)):
        return None
    shortfalls = []
    if row["mac_ratio"] is None or row["mac_ratio"] > BUDGET + 1e-9:
        shortfalls.append(f"over {BUDGET} of the baseline's MACs")
    for name, d in differences.items():
        if d["mean"] < floors[name]:
            shortfalls.append(f"{-d['mean']:.2f} points under the baseline, {floors[name] - d['mean']:.2f} beyond the "
                              f"{GOAL_POINTS:g}-point line" if name == "baseline" else f"{-d['mean']:.2f} points under {name}")
    base = rows["baseline"]["top1_by_seed"]
    beyond = {seed: (top1 - base[seed]) * 100 for seed, top1 in sorted(row["top1_by_seed"].items())
              if seed in base and (top1 - base[seed]) * 100 < -GOAL_POINTS}
    return {"met": not shortfalls, "shortfalls": shortfalls, "seeds_beyond": beyond}


def goal_phrase(check: dict[str, Any]) -> str:
    """A goal check in words: "meets the goal", "meets the goal on the mean (not on seed 1: -1.79)", or
    "misses the goal (...)"."""
    if not check["met"]:
        return f"misses the goal ({'; '.join(check['shortfalls'])})"
    if check["seeds_beyond"]:
        seeds = ", ".join(f"seed {seed}: {points:+.2f}" for seed, points in check["seeds_beyond"].items())
        return f"meets the goal on the mean, not on every seed against the baseline ({seeds})"
    return "meets the goal"


def default_seeds(model: str, quick: bool = False) -> list[int]:
    """The seeds the study runs for ``model`` unless told: two for vgg16 (and at --quick), one for resnet18."""
    return [0, 1] if model == "vgg16" or quick else [0]


def summary(units: list[dict[str, Any]]) -> dict[str, Any]:
    rows = table(units)
    by = {(r["model"], r["row"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    facts: dict[str, Any] = {"models": {}}
    for model in models:
        base = by.get((model, "baseline"))
        doms = [by[(model, r)] for r in DOM_ROWS if (model, r) in by
                and by[(model, r)]["mac_ratio"] is not None and by[(model, r)]["mac_ratio"] <= BUDGET + 1e-9]
        best = max(doms, key=lambda r: r["test_top1"]["mean"]) if doms else None
        competitor = COMPETITORS.get(best["row"], "torch-pruning") if best else None
        pruning = by.get((model, competitor)) if best else None
        walltime = by.get((model, "torch-pruning-walltime")) if pruning and competitor == "torch-pruning" else None
        named = {row: r for (m, row), r in by.items() if m == model}
        check = goal_check(best, named, CONTROLS.get(best["row"], "scratch"), competitor) if best and base else None
        facts["models"][model] = {
            "baseline_top1": base["test_top1"]["mean"] * 100 if base else None,
            "best_dom_row": best["row"] if best else None,
            "best_dom_top1": best["test_top1"]["mean"] * 100 if best else None,
            "best_dom_gap_points": paired_points(base, best) if base and best else None,
            "gap_seeds": shared_seeds(base, best) if base and best else [],
            "dom_minus_torch_pruning_points": paired_points(best, pruning) if best and pruning else None,
            "dom_minus_torch_pruning_walltime_points": paired_points(best, walltime) if best and walltime else None,
            "goal": check,
        }
    per = facts["models"].values()
    pick = lambda key, fn: fn([m[key] for m in per if m[key] is not None], default=None)  # noqa: E731
    facts["min_baseline_top1"] = pick("baseline_top1", min)
    facts["best_dom_gap_points"] = pick("best_dom_gap_points", max)
    facts["dom_minus_torch_pruning_points"] = pick("dom_minus_torch_pruning_points", min)
    facts["dom_minus_torch_pruning_walltime_points"] = pick("dom_minus_torch_pruning_walltime_points", min)
    checks = {model: m["goal"] for model, m in facts["models"].items()}
    facts["goal_met"] = bool(checks) and all(c is not None and c["met"] for c in checks.values())
    facts["table"] = rows
    return facts


def print_summary(results: Path) -> None:
    facts = summary(load_units(results))
    for row in facts["table"]:
        acc = row["test_top1"]
        aom = f"  AOM {row['aom_test_top1']['mean'] * 100:.2f}%" if row.get("aom_test_top1") else ""
        ratio = f"{row['mac_ratio']:.3f}" if row["mac_ratio"] is not None else "?"
        print(f"{row['model']:<9} {row['row']:<23} {acc['mean'] * 100:6.2f}% ± {acc['std'] * 100:.2f} (n={acc['n']})"
              f"  MACs x{ratio}  epochs {row['epochs']}{aom}")
    show = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    for model, m in facts["models"].items():
        if m["goal"] is not None:
            print(f"goal, {model} ({m['best_dom_row']}): {goal_phrase(m['goal'])}")
    from rows_pretrained import print_details, print_headline

    units = load_units(results)
    print_details(units, facts["table"])
    print(f"dom_minus_torch_pruning_walltime_points: {show(facts['dom_minus_torch_pruning_walltime_points'])}")
    print(f"min_baseline_top1: {show(facts['min_baseline_top1'])}")
    print(f"best_dom_gap_points: {show(facts['best_dom_gap_points'])}")
    print(f"dom_minus_torch_pruning_points: {show(facts['dom_minus_torch_pruning_points'])}")
    print_headline(units, facts["table"])


# ----------------------------------------------------------------------------------------------------
# Latency (apart from training, in a quiet moment)


def conv_channels(model: torch.nn.Module) -> dict[str, int]:
    """Every conv's output channels: the structure a channel-pruned model has (weights aside)."""
    return {name: m.out_channels for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}


def rebuild_pruned(model: str, width: float, structure: dict[str, int]) -> torch.nn.Module:
    """A zoo model (random weights) channel-pruned with torch-pruning to ``structure``'s channel counts."""
    import torch_pruning as tp

    net = create_model(model, num_classes=10, width=width).eval()
    example = torch.randn(1, 3, 32, 32)
    for name, channels in structure.items():
        conv = net.get_submodule(name)
        if conv.out_channels > channels:
            graph = tp.DependencyGraph().build_dependency(net, example_inputs=example)
            graph.get_pruning_group(conv, tp.prune_conv_out_channels,
                                    idxs=list(range(conv.out_channels - channels))).prune()
    if conv_channels(net) != structure:
        raise RuntimeError(f"could not rebuild the pruned structure of {model}")
    return net


def graph_spec(study: Study, unit: dict[str, Any]) -> tuple:
    """What a unit's deployed graph is built from, weights aside (hashable: rows deploying the same
    structure, such as a DOM and its scratch control, share one export)."""
    model, row = unit["model"], unit["row"]
    kind = ROW_SETTINGS[row]["kind"]
    if kind in ("baseline", "thin"):
        return ("plain", model, unit.get("thin_width", study.scale.width))
    if kind.startswith("torch-pruning"):
        return ("pruned", model, tuple(unit["structure"].items()))  # in module order, as recorded
    return ("dom", model, row_was(row, model), unit["dom_seed"])


def build_graph(study: Study, spec: tuple) -> torch.nn.Module:
    """The deployed graph of :func:`graph_spec` with random weights: latency depends on the structure only
    (ONNX Runtime computes zeros like any other weight), so it is timed apart from the trained files."""
    kind, model, *rest = spec
    if kind == "plain":
        return create_model(model, num_classes=10, width=rest[0]).eval()
    if kind == "pruned":
        return rebuild_pruned(model, study.scale.width, dict(rest[0]))
    was, dom_seed = rest
    net = create_model(model, num_classes=10, width=study.scale.width)
    apply_was_(net, was)
    config = ExportConfig(mode="dom", seed=dom_seed, recalibrate_bn=False)
    pruned, _ = prune_model(mode_model(net, config, None), config)
    return pruned


def measure_latency(study: Study, runs: int, again: bool = False) -> None:
    """ONNX Runtime CPU latency of every finished unit's graph at batch 1 and 32 against the baseline's,
    interleaved (median of each; the ratio of the medians)."""
    import tempfile

    import numpy as np

    from wascompress.export.onnx_graph import onnx_bytes, to_onnx
    from wascompress.models.cost import count_macs
    from wascompress.profile.latency import TimingPlan, time_rounds

    with tempfile.TemporaryDirectory() as tmp:
        graphs: dict[tuple, tuple[Path, int]] = {}  # graph_spec -> (ONNX file, its MACs)

        def graph_file(unit: dict[str, Any]) -> Path:
            spec = graph_spec(study, unit)
            if spec not in graphs:
                net = build_graph(study, spec)
                path = Path(tmp) / f"{len(graphs)}.onnx"
                path.write_bytes(onnx_bytes(to_onnx(net, (3, 32, 32))))
                graphs[spec] = path, count_macs(net)
            path, macs = graphs[spec]
            if unit["row"] != "baseline" and macs != unit["macs"]:
                raise RuntimeError(f"rebuilt graph of {unit['model']} {unit['row']} seed {unit['seed']} has "
                                   f"{macs:,} MACs, not {unit['macs']:,}")
            return path

        def time_against_baseline(base: Path, mine: Path, into: dict[str, Any]) -> None:
            inputs = {b: np.random.default_rng(0).standard_normal((b, 3, 32, 32), dtype=np.float32) for b in (1, 32)}
            plans = {b: TimingPlan(warmup=3, runs=runs * (4 if b == 1 else 1)) for b in inputs}
            (timed,) = time_rounds([{"baseline": base, "unit": mine}], inputs, plans)
            for batch, measured in timed.items():
                into[f"baseline_ms_b{batch}"] = measured.median("baseline") * 1e3
                into[f"ms_b{batch}"] = measured.median("unit") * 1e3
                into[f"latency_ratio_b{batch}"] = measured.median_ratio("unit", "baseline")

        for path in sorted(study.results.glob("*/*.json")):
            unit = json.loads(path.read_text())
            if unit["row"] == "baseline" or ("latency_ratio_b32" in unit and not again):
                continue
            base = graph_file({"model": unit["model"], "row": "baseline", "seed": -1})
            time_against_baseline(base, graph_file(unit), unit)
            for budget in unit.get("budgets", []):  # a multi-budget unit: every budget's graph too
                time_against_baseline(base, graph_file({**unit, **budget}), budget)
            unit["latency_date"] = today()
            save_json(path, unit)
            print(f"{unit['model']} {unit['row']} seed {unit['seed']}: latency x{unit['latency_ratio_b1']:.3f} "
                  f"(batch 1), x{unit['latency_ratio_b32']:.3f} (batch 32)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-minute version: tiny model, 600 images")
    parser.add_argument("--models", nargs="+", default=None, help="default: vgg16 resnet18")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default: 0 1 for vgg16, 0 for resnet18")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(DEFAULT_ROWS),
                        help=f"default: all but {' '.join(EXTRA_ROWS)}")
    parser.add_argument("--runs-dir", type=Path, default=None, help="training runs (default runs/study_dom[-quick])")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="unit JSON (default research/dom_study/results; with --quick: in the runs folder)")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default $WASCOMPRESS_DATA_DIR)")
    parser.add_argument("--summary", action="store_true", help="only read the finished units and print the headline")
    parser.add_argument("--latency", action="store_true", help="only measure latency of finished units")
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--remeasure", action="store_true", help="with --latency: also units measured before")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    scale = SCALES["quick" if args.quick else "default"]
    runs = args.runs_dir or Path("runs") / ("study_dom-quick" if args.quick else "study_dom")
    results = args.results_dir or (runs / "results" if args.quick else HERE / "results")
    study = Study(scale, runs, results, args.data_dir)
    if args.summary:
        print_summary(results)
        return
    if args.latency:
        measure_latency(study, args.latency_runs, again=args.remeasure)
        print_summary(results)
        return
    models = args.models or list(scale.epochs)
    plan = []
    for seed_index in range(2):
        for model in models:
            seeds = args.seeds or default_seeds(model, args.quick)
            if seed_index < len(seeds):
                plan += [(model, row, seeds[seed_index]) for row in args.rows]
    for model, row, seed in plan:
        run_unit(study, model, row, seed)
    if args.quick:
        measure_latency(study, 3)
    print_summary(results)


if __name__ == "__main__":
    main()
