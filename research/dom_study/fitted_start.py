"""Where a trained model's DOMs start before any fine-tuning, fitted or not, against torch-pruning's nets
at the same MACs (issue 35): the start of the from-trained rows.

For each budget's DOM seed (as the study's ``pretrained-multi`` row picked them, read from
``results/start/draws/<model>-pretrained-multi.json``), validation top-1 with BatchNorm re-estimated, no
training, of: the seed's draws on PW (the study's start today); the same draws with their kept taps fitted
to the trained network (``taps``: each kept filter's taps, ``shared``: one matrix per layer, Once-for-All's
elastic kernel); and torch-pruning's channel-pruned net (group L2 magnitude) at or under the DOM's pruned
MACs, channel counts rounded to 1 and to 16:

    python research/dom_study/fitted_start.py --model resnet18 \\
        --out research/dom_study/results/start/fitted/resnet18.json

The last line is the worst, over budgets, of the fitted (taps) DOM's start minus torch-pruning's
(round_to 1), in points: ``pretrained_start_dom_minus_torch_pruning_points`` of the issue's goal.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from rows_pruning import pruned_under
from study_rows import row_was

from wascompress.checkpoint import file_sha256, load_checkpoint
from wascompress.data.datasets import limit
from wascompress.data.run_data import checkpoint_calibration, checkpoint_calibration_images, checkpoint_splits
from wascompress.errors import WascompressError
from wascompress.evaluate import count_correct
from wascompress.export.budget import seed_costs
from wascompress.fileio import atomic_write_text
from wascompress.fit import FitSettings, fit_dom_, fit_summary
from wascompress.models.cost import count_macs
from wascompress.was import apply_was_, dom_draws, recalibrate_bn_, set_draws_, strip_was_
from wascompress.was.fitted import correction_size

HERE = Path(__file__).resolve().parent
STARTS = {"resnet18": HERE / "results/start/resnet18/seed0/best.pt", "vgg16": HERE / "results/start/vgg16/seed0/best.pt"}


def accuracy(model: torch.nn.Module, val: Any, calibration: list[torch.Tensor]) -> float:
    recalibrate_bn_(model, calibration)
    return count_correct(model, val).top1


def dom_starts(loaded: Any, model_name: str, seed: int, val: Any, calibration: list[torch.Tensor],
               fit_images: torch.Tensor, settings: FitSettings) -> dict[str, Any]:
    """The seed's DOM start, plain and fitted by each solver (each from a fresh copy of the trained model:
    a fit's reference is the model's AOM, BatchNorm statistics included)."""
    found: dict[str, Any] = {}
    for solver in ("plain", "taps", "shared"):
        model = loaded.build_model()
        apply_was_(model, row_was("pretrained-multi", model_name))
        key = None
        if solver != "plain":
            key = f"seed{seed}{solver}"
            fits = fit_dom_(model, dom_draws(model, seed), key, fit_images,
                            replace(settings, solver=solver))
            found[f"fitted_{solver}"] = {**fit_summary(fits), "stored_numbers": correction_size(model, key)}
        set_draws_(model, dom_draws(model, seed, key))
        found["seed_draws_top1" if key is None else f"fitted_{solver}_top1"] = accuracy(model, val, calibration)
    return found


def pruning_starts(loaded: Any, target: int, val: Any, calibration: list[torch.Tensor]) -> dict[str, Any]:
    """torch-pruning's nets at or under ``target`` MACs, rounded to 1 and to 16."""
    found = {}
    for round_to in (1, 16):
        net = strip_was_(loaded.build_model())
        small, ratio = pruned_under(net, target, round_to)
        if count_macs(small) > target:
            found[f"round_to_{round_to}"] = {"macs": count_macs(small), "reached": False}
            continue
        found[f"round_to_{round_to}"] = {"macs": count_macs(small), "pruning_ratio": ratio,
                                         "top1": accuracy(small, val, calibration)}
    return found


def compare(model_name: str, val_images: int, fit_images: int, data_dir: str | None,
            settings: FitSettings, budgets: list[dict[str, Any]]) -> dict[str, Any]:
    checkpoint = STARTS[model_name]
    loaded = load_checkpoint(checkpoint)
    splits = checkpoint_splits(loaded, data_dir)
    calibration = checkpoint_calibration(loaded, splits)
    val = limit(splits.val, val_images)
    images = checkpoint_calibration_images(loaded, splits, fit_images)
    probe = loaded.build_model()
    apply_was_(probe, row_was("pretrained-multi", model_name))
    costs = {c.seed: c for c in seed_costs(probe, [b["seed"] for b in budgets], loaded.input_shape)}
    aom = accuracy(loaded.build_model(), val, calibration)
    units = []
    for budget in budgets:
        began = time.perf_counter()
        cost = costs[budget["seed"]]
        unit = {"target": budget["target"], "seed": budget["seed"], "mac_ratio": cost.ratio, "macs": cost.macs,
                **dom_starts(loaded, model_name, budget["seed"], val, calibration, images, settings),
                "torch_pruning": pruning_starts(loaded, cost.macs, val, calibration)}
        unit["seconds"] = time.perf_counter() - began
        units.append(unit)
        pruned = {k: (f"{v['top1'] * 100:.2f}% at x{v['macs'] / cost.macs * cost.ratio:.3f}" if "top1" in v
                      else "not reached") for k, v in unit["torch_pruning"].items()}
        print(f"budget {unit['target']:g} seed {unit['seed']} MACs x{unit['mac_ratio']:.3f}: seed draws "
              f"{unit['seed_draws_top1'] * 100:.2f}%, fitted taps {unit['fitted_taps_top1'] * 100:.2f}% "
              f"({unit['fitted_taps']['seconds']:.0f} s), shared {unit['fitted_shared_top1'] * 100:.2f}%; "
              f"torch-pruning {pruned}", flush=True)
    return {"model": model_name, "checkpoint": str(checkpoint.relative_to(HERE)),
            "checkpoint_sha256": file_sha256(checkpoint), "row_was": "pretrained-multi",
            "val_images": len(val), "fit_images": len(images), "ridge": settings.ridge,
            "positions": settings.positions, "aom_top1": aom, "budgets": units,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(STARTS), required=True)
    parser.add_argument("--val-images", type=int, default=2000)
    parser.add_argument("--fit-images", type=int, default=1024)
    parser.add_argument("--positions", type=int, default=256)
    parser.add_argument("--ridge", type=float, default=1e-4)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="the 0.5 budget only, 500 images")
    args = parser.parse_args(argv)
    draws = json.loads((HERE / f"results/start/draws/{args.model}-pretrained-multi.json").read_text())
    targets = (0.75, 0.5, 0.35)
    budgets = [{"target": t, "seed": u["seed"]} for t, u in zip(targets, draws["seeds"])]
    val_images, fit_images = (500, 256) if args.quick else (args.val_images, args.fit_images)
    if args.quick:
        budgets = budgets[1:2]
    try:
        report = compare(args.model, val_images, fit_images, args.data_dir,
                         FitSettings(ridge=args.ridge, positions=args.positions), budgets)
    except WascompressError as err:
        parser.exit(2, f"error: {err}\n")
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    gaps = [(u["fitted_taps_top1"] - u["torch_pruning"]["round_to_1"]["top1"]) * 100 for u in report["budgets"]]
    print(f"pretrained_start_dom_minus_torch_pruning_points: {min(gaps):.2f}")


if __name__ == "__main__":
    main()
