"""``wascompress export``: freeze a checkpoint's PW (AOM) or the SW a seed draws (DOM) into ONNX."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from typing import Any

from wascompress.checkpoint import Checkpoint, load_checkpoint
from wascompress.cli.image_size import add_image_size_option, checkpoint_image_size, requested_size
from wascompress.errors import ConfigError
from wascompress.cli import add_option
from wascompress.export.exporter import FORMAT_ALIASES, FORMATS, MODES, ExportConfig, check_output
from wascompress.export.from_checkpoint import (
    OBJECTIVES,
    SeedSearch,
    budget_record,
    export_checkpoint,
    planned_budget_record,
    planned_dom_for_budget,
    trained_dom_for_budget,
    trained_dom_seed,
)
from wascompress.export.quantize import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION,
    DEFAULT_CALIBRATION_IMAGES,
    DEFAULT_MIN_AGREEMENT,
    QUANTIZE_TYPES,
    QuantizeConfig,
)
from wascompress.was.planned import DomPlan


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def format_name(text: str) -> str:
    """``--format``: today's name of a format (``sparse`` is the old name of ``dense``)."""
    return FORMAT_ALIASES.get(text, text)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("export", help="export AOM or DOM to a verified ONNX file",
                            description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by `wascompress train`")
    p.add_argument("--mode", choices=MODES, default="aom", help="aom: PW (default); dom: the SW of --seed")
    p.add_argument("--seed", type=non_negative_int, help="DOM seed N (a fresh generator seeded with N; default: "
                   "the seed the checkpoint was trained to deploy with --dom-seed / --target-macs)")
    p.add_argument("--format", choices=FORMATS, type=format_name,
                   help="dense (default for aom): the trained shapes, the DOM's zeros kept in dense convs; pruned "
                        "(default for dom): smaller kernels and fewer channels, so it really runs faster")
    add_option(p, "--sparse-initializers", aliases=["--sparse-storage"], action="store_true",
               help="store weights as ONNX sparse_initializer (COO): a smaller file only - ONNX Runtime "
                    "densifies them when it loads the model, so there is no speed-up")
    p.add_argument("--out", required=True, metavar="MODEL.onnx", help="output file (a .json report goes beside)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--data-dir", help="data folder (default: the checkpoint's, or $WASCOMPRESS_DATA_DIR)")
    add_image_size_option(p, aliases=["--input-shape"],
                          help="export, verify and count at H x W pixels (one value: square; default: the size "
                               "the model was trained at)")
    p.add_argument("--no-recalibrate-bn", action="store_true",
                   help="keep the stored BatchNorm statistics for DOM (DOM accuracy usually collapses)")
    p.add_argument("--bn-batches", type=int, help="training batches for BatchNorm re-estimation "
                   "(default: as many as the trainer used)")
    p.add_argument("--search-seeds", type=int, metavar="K", help="evaluate DOM seeds 0..K-1 and export the best")
    p.add_argument("--objective", choices=OBJECTIVES, default="accuracy", help="what --search-seeds optimises")
    p.add_argument("--max-drop", type=float, default=1.0, metavar="PCT",
                   help="with --objective macs: max validation accuracy drop against AOM, in points")
    p.add_argument("--target-macs", type=float, metavar="R",
                   help="export the DOM the run trained for budget R (train --target-macs); for a run trained "
                        "without budgets, or with --search-seeds, the most accurate seed (of --search-seeds, default "
                        "16) whose pruned graph has at most R x the AOM's MACs")
    p.add_argument("--quantize", metavar="TYPE",
                   help=f"quantize the verified export ({', '.join(QUANTIZE_TYPES)}: static QDQ by ONNX Runtime, "
                        "per-channel weights, activations calibrated on the run's training images)")
    p.add_argument("--calibration", choices=CALIBRATION_METHODS,
                   help=f"with --quantize: how activation ranges are set (default {DEFAULT_CALIBRATION})")
    p.add_argument("--calibration-images", type=int, metavar="N",
                   help=f"with --quantize: training images to calibrate on (default {DEFAULT_CALIBRATION_IMAGES})")
    p.add_argument("--min-agreement", type=float, metavar="PCT",
                   help="with --quantize: validation images whose top-1 must match the FP32 export's, in percent "
                        f"(default {DEFAULT_MIN_AGREEMENT * 100:g}); below it nothing is written")
    p.set_defaults(run=run_export)


def quantize_config(args: argparse.Namespace) -> QuantizeConfig | None:
    """The INT8 settings of the command line (None without --quantize)."""
    given = {"--calibration": args.calibration, "--calibration-images": args.calibration_images,
             "--min-agreement": args.min_agreement}
    if args.quantize is None:
        stray = [name for name, value in given.items() if value is not None]
        if stray:
            raise ConfigError(f"{', '.join(stray)} applies with --quantize int8 only")
        return None
    settings = {"calibration": args.calibration, "calibration_images": args.calibration_images,
                "min_agreement": args.min_agreement / 100 if args.min_agreement is not None else None}
    return QuantizeConfig(args.quantize.lower(), **{k: v for k, v in settings.items() if v is not None})


def run_export(args: argparse.Namespace) -> int:
    quantize = quantize_config(args)  # the options are checked before the checkpoint is read
    size = checkpoint_image_size(requested_size(args.image_size))
    count = args.search_seeds if args.search_seeds is not None else (16 if args.target_macs is not None else None)
    search = SeedSearch(count, args.objective, args.max_drop, args.target_macs) if count is not None else None
    check_output(Path(args.out), args.overwrite)
    checkpoint = load_checkpoint(args.checkpoint)
    by_budget = args.target_macs is not None and args.search_seeds is None
    planned = planned_dom_for_budget(checkpoint, args.target_macs, args.checkpoint) if by_budget else None
    if planned is not None:
        return export_planned(args, checkpoint, planned, quantize, size)
    trained = trained_dom_for_budget(checkpoint, args.target_macs, args.checkpoint) if by_budget else None
    if trained is not None:  # the run trained a DOM for this budget: export it, no search
        print(f"wascompress export: DOM seed {trained['seed']}, trained for budget {trained['target']:g} "
              f"({trained['ratio']:.3f} of the AOM's MACs)", file=sys.stderr)
        args.mode, args.seed, search = "dom", trained["seed"], None
    if search is not None and args.seed is not None:
        print("wascompress export: note: --seed is ignored with --search-seeds / --target-macs", file=sys.stderr)
    mode, seed = ("dom", 0) if search is not None else (args.mode, args.seed)  # the search sets the seed
    if search is None and mode == "dom" and seed is None:
        seed = trained_dom_seed(checkpoint)  # the DOM the run trained on purpose
        if seed is None:
            raise ConfigError("--mode dom needs --seed N (this checkpoint was not trained for a DOM seed: "
                              "no --dom-seed / --target-macs)")
        print(f"wascompress export: DOM seed {seed}, the one {args.checkpoint} was trained to deploy", file=sys.stderr)
    # the DOM the run trained is its fitted one (train --fit-doms); an explicit --seed names the seed's own draws
    own_draws = trained is None and args.seed is not None
    fitted = checkpoint.fitted_key(seed) if search is None and mode == "dom" and not own_draws else None
    if own_draws and checkpoint.fitted_key(seed) is not None:
        print(f"wascompress export: note: --seed {seed} exports the seed's own draws; the run trained its fitted "
              "DOM (omit --seed, or give --target-macs)", file=sys.stderr)
    config = ExportConfig(mode=mode, seed=seed, fitted=fitted, format=args.format, sparse_initializers=args.sparse_initializers,
                          recalibrate_bn=not args.no_recalibrate_bn, quantize=quantize)
    budget = budget_record(args.target_macs, trained) if args.target_macs is not None else None
    report = export_checkpoint(args.checkpoint, args.out, config, data_dir=args.data_dir, bn_batches=args.bn_batches,
                               search=search, overwrite=args.overwrite, image_size=size,
                               loaded=checkpoint, budget=budget)
    if "seed_search" in report:
        print(f"{'seed':>5} {'val acc':>8} {'drop':>7} {'pruned MACs':>14} {'of AOM':>7}")
        for row in report["seed_search"]["seeds"]:
            mark = "  <- chosen" if row["chosen"] else ""
            if row["val_acc"] is None:
                print(f"{row['seed']:>5} {'-':>8} {'-':>7} {row['pruned_macs']:>14,} {row['mac_ratio']:7.3f}"
                      "  (over the budget)")
                continue
            print(f"{row['seed']:>5} {row['val_acc'] * 100:7.2f}% {row['drop_points']:6.2f}p "
                  f"{row['pruned_macs']:>14,} {row['mac_ratio']:7.3f}{mark}")
    print_report(args.out, report)
    return 0


def export_planned(args: argparse.Namespace, checkpoint: Checkpoint, planned: dict[str, Any],
                   quantize: QuantizeConfig | None, size: tuple[int, int] | None) -> int:
    """Export the planned, fitted DOM a checkpoint holds for ``--target-macs`` (``wascompress fit --plan``)."""
    if args.seed is not None:
        print("wascompress export: note: --seed is ignored: the checkpoint holds a planned DOM for the budget",
              file=sys.stderr)
    print(f"wascompress export: planned DOM {planned['key']}, fitted for budget {planned['target']:g} "
          f"({planned['ratio']:.3f} of the MACs predicted)", file=sys.stderr)
    config = ExportConfig(mode="dom", plan=DomPlan.from_dict(planned["plan"], args.checkpoint), fitted=planned["key"],
                          format=args.format, sparse_initializers=args.sparse_initializers,
                          recalibrate_bn=not args.no_recalibrate_bn, quantize=quantize)
    report = export_checkpoint(args.checkpoint, args.out, config, data_dir=args.data_dir, bn_batches=args.bn_batches,
                               overwrite=args.overwrite, image_size=size, loaded=checkpoint,
                               budget=planned_budget_record(args.target_macs, planned))
    print_report(args.out, report)
    return 0


def print_report(out: str, report: dict[str, Any]) -> None:
    """The export's summary lines: what was written, its cost, its verification (and INT8's)."""
    cost, dense = report["cost"], report["cost_before_pruning"]
    seed = f" seed {report['seed']}" if report["seed"] is not None else ""
    seed = f" {report['fitted']} (planned)" if report.get("plan") else seed
    size = "x".join(map(str, report["input_shape"][1:]))
    print(f"{out}: {report['mode'].upper()}{seed} {report['format']} at {size}, {cost['macs']:,} MACs "
          f"({report['mac_ratio_vs_dense'] * 100:.1f}% of the unpruned model's {dense['macs']:,}), "
          f"{report['graph_cost']['params']:,} parameters in the file ({report['graph_cost']['nonzero_params']:,} "
          f"non-zero; {cost['params']:,} in PyTorch, BatchNorm not folded), {report['bytes']:,} bytes; "
          f"verified: max diff {report['verification']['max_abs_diff_scaled']:.1e}, top-1 identical")
    quantized = report["quantization"]
    if quantized is not None:
        test = (f"; test top-1 FP32 {quantized['fp32_test_top1'] * 100:.2f}%, INT8 {quantized['int8_test_top1'] * 100:.2f}%"
                if "fp32_test_top1" in quantized else "")
        print(f"{out}: INT8 ({quantized['calibration']} calibration on {quantized['calibration_images']} training "
              f"images): top-1 agrees with FP32 on {quantized['agreement'] * 100:.2f}% of "
              f"{quantized['validation']['images']} validation images (>= {quantized['min_agreement'] * 100:g}%){test}")
