"""Where a trained model's planned DOMs start before any fine-tuning, against torch-pruning's nets at the
same MACs (issue 35, item 2): ``wascompress plan`` for budgets 0.75 / 0.5 / 0.35 on the committed trained
baseline, each plan's DOM fitted (1,024 training images), validation top-1 with BatchNorm re-estimated, of the
planned DOM unfitted and fitted, and of torch-pruning's channel-pruned net (group L2 magnitude) at or under
the planned DOM's exported MACs, channel counts rounded to 1 and to 16:

    python research/dom_study/plan_start.py --model resnet18 --out research/dom_study/results/start/plan/resnet18.json

The last line is the worst, over budgets, of the fitted planned DOM's start minus torch-pruning's
(round_to 1), in points (``pretrained_start_dom_minus_torch_pruning_points`` for planned DOMs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from fitted_start import STARTS, accuracy, pruning_starts

from wascompress.checkpoint import file_sha256, load_checkpoint
from wascompress.data.datasets import limit
from wascompress.data.run_data import checkpoint_calibration, checkpoint_calibration_images, checkpoint_splits
from wascompress.errors import WascompressError
from wascompress.export.exporter import ExportConfig, mode_model, prune_model
from wascompress.fileio import atomic_write_text
from wascompress.fit import fit_dom_, fit_summary
from wascompress.fit.from_checkpoint import plannable_model
from wascompress.models.cost import count_macs
from wascompress.plan import PlanRequest, plan_checkpoint
from wascompress.was import set_draws_
from wascompress.was.planned import DomPlan

HERE = Path(__file__).resolve().parent


def plan_starts(loaded: Any, source: Path, plan: DomPlan, val: Any, calibration: list, images: Any) -> dict[str, Any]:
    """The planned DOM's start unfitted and fitted, its exported MACs."""
    model = plannable_model(loaded, str(source))
    set_draws_(model, plan.draws(model))
    unfitted = accuracy(model, val, calibration)
    model = plannable_model(loaded, str(source))
    began = time.perf_counter()
    fits = fit_dom_(model, plan.draws(model), "plan", images)
    fit_seconds = time.perf_counter() - began
    config = ExportConfig(mode="dom", plan=plan, fitted="plan", input_shape=loaded.input_shape)
    small, _ = prune_model(mode_model(model, config, calibration), config)
    return {"unfitted_top1": unfitted, "fitted_top1": accuracy(small, val, calibration), "macs": count_macs(small),
            "fit": {**fit_summary(fits), "seconds": fit_seconds}}


def compare(model_name: str, val_images: int, fit_images: int, data_dir: str | None) -> dict[str, Any]:
    source = STARTS[model_name]
    loaded = load_checkpoint(source)
    splits = checkpoint_splits(loaded, data_dir)
    calibration = checkpoint_calibration(loaded, splits)
    val = limit(splits.val, val_images)
    images = checkpoint_calibration_images(loaded, splits, fit_images)
    dense = count_macs(loaded.build_model(with_was=False))
    plans, search = plan_checkpoint(source, PlanRequest(target_macs=(0.75, 0.5, 0.35)), data_dir=data_dir)
    units = []
    for plan in plans:
        unit = {"target": plan.target_macs, "predicted_mac_ratio": plan.facts["predicted_mac_ratio"],
                "plan": plan.to_dict(), **plan_starts(loaded, source, plan, val, calibration, images)}
        unit["mac_ratio"] = unit["macs"] / dense
        unit["torch_pruning"] = pruning_starts(loaded, unit["macs"], val, calibration)
        units.append(unit)
        pruned = {k: (f"{v['top1'] * 100:.2f}% at x{v['macs'] / dense:.3f}" if "top1" in v else "not reached")
                  for k, v in unit["torch_pruning"].items()}
        print(f"budget {plan.target_macs:g}: planned DOM x{unit['mac_ratio']:.3f}, unfitted {unit['unfitted_top1'] * 100:.2f}%, "
              f"fitted {unit['fitted_top1'] * 100:.2f}% ({unit['fit']['seconds']:.0f} s fit); torch-pruning {pruned}",
              flush=True)
    return {"model": model_name, "checkpoint": str(source.relative_to(HERE)), "checkpoint_sha256": file_sha256(source),
            "val_images": len(val), "fit_images": len(images), "search": search,
            "aom_top1": accuracy(loaded.build_model(), val, calibration), "budgets": units}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(STARTS), required=True)
    parser.add_argument("--val-images", type=int, default=2000)
    parser.add_argument("--fit-images", type=int, default=1024)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        report = compare(args.model, args.val_images, args.fit_images, args.data_dir)
    except WascompressError as err:
        parser.exit(2, f"error: {err}\n")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    gaps = [(u["fitted_top1"] - u["torch_pruning"]["round_to_1"]["top1"]) * 100 for u in report["budgets"]]
    print(f"pretrained_start_plan_minus_torch_pruning_points: {min(gaps):.2f}")


if __name__ == "__main__":
    main()
