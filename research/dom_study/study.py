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
baseline, interleaved, the median of 5 rounds of fresh sessions) is taken apart with ``--latency``, in a quiet moment after training, on each
unit's graph rebuilt with random weights from what its JSON records (the DOM seed, or the pruned channel
counts): latency depends on the structure only, and the trained files need not outlive a session. ``--summary`` reads the JSON and prints the
headline; ``--quick`` runs a 2-minute version (tiny model, 600 images) into a folder of its own.

    python research/dom_study/study.py [--models vgg16 resnet18] [--seeds 0 1] [--rows ...]
    python research/dom_study/study.py --latency
    python research/dom_study/study.py --summary
    python research/dom_study/render.py     # the tables of RESULTS.md and study_dom.png

The rows' settings (kind, WAS configuration, control and competitor, run by default or when named) are
data: ``rows.toml``, read by ``study_rows.py``. ``study_runs.py`` holds the study's scale, folders and what
every unit does with a training run; the units are made in ``rows_from_scratch.py`` (rows 1-4, 6, 7),
``rows_pruning.py`` (row 5) and ``rows_pretrained.py`` (the "from trained" rows, ``pretrained-*`` and
``torch-pruning-multi``); ``study_summary.py`` computes the table and the goal, ``study_latency.py`` the
latency. This file runs the units and prints the summary.

Last lines of ``--summary``: ``min_baseline_top1``, ``best_dom_gap_points``, ``dom_minus_torch_pruning_points``,
then the from-trained rows' ``pretrained_best_dom_gap_points`` and ``pretrained_dom_minus_torch_pruning_points``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import torch

from study_rows import DEFAULT_ROWS, EXTRA_ROWS, PRETRAINED_ROWS, RECIPE_ROW, ROWS, ROW_SETTINGS, default_seeds, row_was
from study_runs import SCALES, Study, load_json, load_units, machine, save_json, today
from rows_from_scratch import baseline_unit, paper_unit, sandwich_ft_unit, sandwich_unit, scratch_unit, thin_unit
from rows_pruning import torch_pruning_unit, walltime_epochs
from study_summary import goal_phrase, summary
from study_latency import LATENCY_ROUNDS, measure_latency
from rows_pretrained import print_details, print_headline, run_row

HERE = Path(__file__).resolve().parent


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
    units = load_units(results)
    print_details(units, facts["table"])
    print(f"dom_minus_torch_pruning_walltime_points: {show(facts['dom_minus_torch_pruning_walltime_points'])}")
    print(f"min_baseline_top1: {show(facts['min_baseline_top1'])}")
    print(f"best_dom_gap_points: {show(facts['best_dom_gap_points'])}")
    print(f"dom_minus_torch_pruning_points: {show(facts['dom_minus_torch_pruning_points'])}")
    print_headline(units, facts["table"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-minute version: tiny model, 600 images")
    parser.add_argument("--models", nargs="+", default=None, help="default: vgg16 resnet18")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default: 0 1 for vgg16, 0 for resnet18")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=None,
                        help=f"default: all but {' '.join(EXTRA_ROWS)} (with --latency: every finished unit)")
    parser.add_argument("--runs-dir", type=Path, default=None, help="training runs (default runs/study_dom[-quick])")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="unit JSON (default research/dom_study/results; with --quick: in the runs folder)")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default $WASCOMPRESS_DATA_DIR)")
    parser.add_argument("--summary", action="store_true", help="only read the finished units and print the headline")
    parser.add_argument("--latency", action="store_true", help="only measure latency of finished units")
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--remeasure", action="store_true", help="with --latency: also units measured before")
    parser.add_argument("--latency-rounds", type=int, default=LATENCY_ROUNDS, help="fresh session pairs per measurement")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    scale = SCALES["quick" if args.quick else "default"]
    runs = args.runs_dir or Path("runs") / ("study_dom-quick" if args.quick else "study_dom")
    results = args.results_dir or (runs / "results" if args.quick else HERE / "results")
    study = Study(scale, runs, results, args.data_dir)
    if args.summary:
        print_summary(results)
        return
    if args.latency:  # of the units of --models and --rows where they are given
        measure_latency(study, args.latency_runs, again=args.remeasure, rounds=args.latency_rounds,
                        models=args.models, rows=args.rows)
        print_summary(results)
        return
    models = args.models or list(scale.epochs)
    plan = []
    for seed_index in range(2):
        for model in models:
            seeds = args.seeds or default_seeds(model, args.quick)
            if seed_index < len(seeds):
                plan += [(model, row, seeds[seed_index]) for row in args.rows or DEFAULT_ROWS]
    for model, row, seed in plan:
        run_unit(study, model, row, seed)
    if args.quick:
        measure_latency(study, 3)
    print_summary(results)


if __name__ == "__main__":
    main()
