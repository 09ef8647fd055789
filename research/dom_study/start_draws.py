"""How good is each DOM of a *trained* model before any fine-tuning, and would draws chosen by weight
magnitude start better than a seed's random ones?

For every DOM seed asked for, two sub-networks of the same size (kernel windows of the seed's sizes, the
seed's number of filters per layer) are compared on the validation split, BatchNorm re-estimated, no
training: the seed's own draws, and the same draws re-placed by magnitude (each crop window where the
layer's PW has the largest L1 mass, each layer's kept filters its own largest-L1 ones; the study's
torch-pruning rows rank coupled channel groups by L2 instead). A diagnostic for compressing trained models (issue 28), not a study row:

    python research/dom_study/start_draws.py --checkpoint runs/study_dom/resnet18/torch-pruning/seed0/dense/best.pt \\
        --model resnet18 --row pretrained-multi --seeds 5 15 9 \\
        --out research/dom_study/results/start/draws/resnet18-pretrained-multi.json

The last line is the median gain of the magnitude draws over the seeds' draws, in points.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch
from torch import nn

from study_rows import ROW_SETTINGS, row_was

from wascompress.checkpoint import file_sha256, load_checkpoint
from wascompress.data.datasets import Images, limit
from wascompress.data.run_data import checkpoint_calibration, checkpoint_splits
from wascompress.evaluate import count_correct
from wascompress.export.budget import seed_costs
from wascompress.errors import WascompressError
from wascompress.fileio import atomic_write_text
from wascompress.was import apply_was_, dom_draws, recalibrate_bn_, was_layers
from wascompress.was.shadow import Draws, set_draws_
from wascompress.was.transforms import CropWindow, FilterKeep


def magnitude_draws(model: nn.Module, draws: Draws) -> Draws:
    """``draws`` with each zero-mode crop window moved to where its layer's PW has the largest L1 mass and
    each layer's kept filters replaced by its largest-L1 ones (same sizes and counts: same MACs)."""
    placed = {}
    for name, layer in was_layers(model).items():
        weight = model.get_submodule(name).parametrizations.weight.original.detach().abs()
        mass = weight.sum(dim=(0, 1))  # [kH, kW]
        new = []
        for draw in draws[name]:
            if isinstance(draw, CropWindow) and not draw.resize:
                positions = [(top, left) for top in range(layer.kernel[0] - draw.height + 1)
                             for left in range(layer.kernel[1] - draw.width + 1)]
                top, left = max(positions, key=lambda p: (float(mass[p[0]:p[0] + draw.height,
                                                                     p[1]:p[1] + draw.width].sum()), -p[0], -p[1]))
                draw = CropWindow(top, left, draw.height, draw.width, False)
            elif isinstance(draw, FilterKeep):
                norms = weight.flatten(1).sum(dim=1)
                draw = FilterKeep(tuple(sorted(norms.argsort(descending=True)[:len(draw.kept)].tolist())))
            new.append(draw)
        placed[name] = tuple(new)
    return placed


@torch.no_grad()
def start_accuracy(model: nn.Module, draws: Draws, val: Images, calibration: list[torch.Tensor]) -> float:
    """Validation top-1 of the sub-network ``draws`` make, BatchNorm re-estimated on ``calibration``."""
    set_draws_(model, draws)
    recalibrate_bn_(model, calibration)
    return count_correct(model, val).top1


def compare(checkpoint: Path, model_name: str, row: str, seeds: list[int], val_images: int,
            data_dir: str | None) -> dict[str, Any]:
    """The start accuracy of each seed's DOM and of its magnitude-placed twin (see the module's text)."""
    loaded = load_checkpoint(checkpoint)
    model = loaded.build_model()
    apply_was_(model, row_was(row, model_name))
    splits = checkpoint_splits(loaded, data_dir)
    calibration = checkpoint_calibration(loaded, splits)
    val = limit(splits.val, val_images)
    costs = {c.seed: c.ratio for c in seed_costs(model, seeds, loaded.input_shape)}
    aom = start_accuracy(model, {name: None for name in was_layers(model)}, val, calibration)
    units = []
    for seed in seeds:
        draws = dom_draws(model, seed)
        units.append({"seed": seed, "mac_ratio": costs[seed],
                      "seed_draws_top1": start_accuracy(model, draws, val, calibration),
                      "magnitude_draws_top1": start_accuracy(model, magnitude_draws(model, draws), val, calibration)})
    return {"checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint), "model": model_name,
            "row": row, "val_images": len(val), "aom_top1": aom, "seeds": units}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="the trained model (a wascompress checkpoint)")
    parser.add_argument("--model", required=True, help="the network name rows.toml's WAS settings are for")
    parser.add_argument("--row", default="pretrained-multi", choices=sorted(ROW_SETTINGS),
                        help="the study row whose WAS settings draw the DOMs")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--val-images", type=int, default=2000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the comparison as JSON here")
    parser.add_argument("--quick", action="store_true", help="two seeds on 500 images")
    args = parser.parse_args(argv)
    seeds, images = (args.seeds[:2], 500) if args.quick else (args.seeds, args.val_images)
    try:
        report = compare(args.checkpoint, args.model, args.row, seeds, images, args.data_dir)
    except WascompressError as err:  # a missing checkpoint or data, a bad seed: one line, no traceback
        parser.exit(2, f"error: {err}\n")
    for unit in report["seeds"]:
        print(f"seed {unit['seed']:3d}  MACs x{unit['mac_ratio']:.3f}  seed draws {unit['seed_draws_top1'] * 100:6.2f}%  "
              f"magnitude draws {unit['magnitude_draws_top1'] * 100:6.2f}%")
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    gains = [(u["magnitude_draws_top1"] - u["seed_draws_top1"]) * 100 for u in report["seeds"]]
    print(f"magnitude_minus_seed_draws_points: {statistics.median(gains):.2f}")


if __name__ == "__main__":
    main()
