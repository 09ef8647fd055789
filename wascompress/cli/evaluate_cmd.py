"""``wascompress evaluate``: test accuracy on clean and shifted images (rotation, translation, crop), of a
checkpoint's AOM and DOM seeds, or of an exported ONNX file (FP32 or INT8) run by ONNX Runtime."""

from __future__ import annotations

import argparse
import json

from pathlib import Path

from wascompress.checkpoint import load_checkpoint
from wascompress.data import limit, load_dataset
from wascompress.data.datasets import DATASETS, Images
from wascompress.data.geometry import DEFAULT_IMAGE_SIZE
from wascompress.data.run_data import checkpoint_calibration, checkpoint_splits, load_splits
from wascompress.errors import ConfigError
from wascompress.fileio import atomic_write_bytes, atomic_write_text, check_output_file
from wascompress.plotting import png_bytes, pyplot
from wascompress.profile.onnx_classifier import OnnxClassifier
from wascompress.robustness import ImageShift, parse_shift, robustness_rows, shift_rows
from wascompress.was import check_seed, has_was


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("evaluate", help="accuracy on clean and shifted test images (the paper's Tables 3-5)",
                            description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("checkpoint", metavar="CKPT|FILE.onnx",
                   help="a training checkpoint, or an ONNX file (its own mode and precision, on ONNX Runtime)")
    p.add_argument("--mode", nargs="+", choices=("aom", "dom"), default=None,
                   help="one or both modes of a checkpoint (default aom)")
    p.add_argument("--seed", nargs="+", type=int, default=None, help="DOM seed(s) (a grid with several; default 0)")
    p.add_argument("--shift", action="append", default=[], metavar="KIND:ARGS",
                   help="rotate:LO:HI (degrees), translate:F (fraction), crop:LO:HI (area); repeatable")
    p.add_argument("--shift-seed", type=int, default=0, help="seed of the per-image shift draws (default 0)")
    p.add_argument("--data-dir", help="data folder (default: the checkpoint's, or $WASCOMPRESS_DATA_DIR)")
    p.add_argument("--dataset", choices=DATASETS,
                   help="an ONNX file's test set (default: the one its wascompress export records)")
    p.add_argument("--limit-test", type=int, metavar="N", help="use only N test images")
    p.add_argument("--bn-batches", type=int, help="training batches for the DOM BatchNorm statistics "
                   "(default: as many as the trainer used)")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="accuracy per shift, one bar group per mode/seed")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    shifts = [parse_shift(s) for s in args.shift]
    seeds = [check_seed(s) for s in args.seed or [0]]
    if args.limit_test is not None and args.limit_test < 1:
        raise ConfigError(f"--limit-test must be a positive integer, got {args.limit_test}")
    for path in filter(None, (args.json, args.plot)):
        check_output_file(path, args.overwrite)
    if str(args.checkpoint).lower().endswith(".onnx"):
        test, rows = evaluate_onnx(args, shifts)
        print(f"{rows[0]['file']}: {rows[0]['precision'].upper()} on ONNX Runtime (CPU), {len(test)} test images")
    else:
        test, rows = evaluate_checkpoint(args, shifts, seeds)
    print(f"{'mode':<5} {'seed':>4}  {'shift':<18} {'top-1':>7} {'drop':>8} {'drop rate':>9}")
    for r in rows:
        seed = "-" if r["seed"] is None else str(r["seed"])
        print(f"{r['mode']:<5} {seed:>4}  {r['shift']:<18} {r['accuracy'] * 100:6.2f}% {r['drop_points']:7.2f}p "
              f"{r['drop_rate'] * 100:8.2f}%")
    if args.json:
        atomic_write_text(args.json, json.dumps({"checkpoint": str(args.checkpoint), "test_images": len(test),
                                                 "shift_seed": args.shift_seed, "rows": rows}, indent=2) + "\n")
    if args.plot:
        atomic_write_bytes(args.plot, plot_rows(rows))
    return 0


def _limit(test: Images, count: int | None) -> Images:
    return limit(test, count) if count else test


def evaluate_checkpoint(args: argparse.Namespace, shifts: list[ImageShift],
                        seeds: list[int]) -> tuple[Images, list[dict]]:
    """The test images and the rows of each mode (and DOM seed) of a checkpoint."""
    if args.dataset is not None:
        raise ConfigError("--dataset applies to an ONNX file; a checkpoint evaluates on its own run's test set")
    modes = args.mode or ["aom"]
    checkpoint = load_checkpoint(args.checkpoint)
    if "dom" in modes and checkpoint.was_config is None:
        raise ConfigError(f"{args.checkpoint} was trained without WAS: it has no DOM (use --mode aom)")
    splits = checkpoint_splits(checkpoint, args.data_dir)
    test = _limit(splits.test, args.limit_test)
    if args.bn_batches is not None and args.bn_batches < 1:
        raise ConfigError(f"--bn-batches must be a positive integer, got {args.bn_batches}")
    calibration = checkpoint_calibration(checkpoint, splits, args.bn_batches)
    rows = []
    for mode in modes:
        for seed in (seeds if mode == "dom" else [None]):
            model = checkpoint.build_model()  # fresh: each mode starts from the stored (AOM) statistics
            rows += robustness_rows(model, test, shifts, mode=mode, seed=seed,
                                    calibration=calibration if mode == "dom" and has_was(model) else None,
                                    shift_seed=args.shift_seed)
    return test, rows


def evaluate_onnx(args: argparse.Namespace, shifts: list[ImageShift]) -> tuple[Images, list[dict]]:
    """The test images and the rows of an ONNX file: as it was exported (its mode, seed and precision are
    the file's), on the test set its export records or ``--dataset``, at the file's input size."""
    for flag, given in (("--mode", args.mode), ("--seed", args.seed), ("--bn-batches", args.bn_batches)):
        if given is not None:
            raise ConfigError(f"{flag} applies to a checkpoint; an ONNX file runs as it was exported")
    if not Path(args.checkpoint).is_file():
        raise ConfigError(f"{args.checkpoint}: no such file")
    model = OnnxClassifier(args.checkpoint)
    size = model.image_size
    recorded = model.wascompress_metadata("data")
    if args.dataset is None and not isinstance(recorded, dict):
        raise ConfigError(f"{args.checkpoint} does not record its data set (not a wascompress export): "
                          f"give --dataset ({', '.join(DATASETS)}) and --data-dir")
    if args.dataset is None or (isinstance(recorded, dict) and recorded.get("dataset") == args.dataset):
        test = load_splits(recorded, args.data_dir, image_size=size).test  # the run's own test split
    else:
        test = load_dataset(args.dataset, args.data_dir, train=False, image_size=size or DEFAULT_IMAGE_SIZE)
    test = _limit(test, args.limit_test)
    mode = model.wascompress_metadata("mode") or "onnx"
    seed = model.wascompress_metadata("seed")
    rows = shift_rows(model, test, shifts, mode=mode, seed=seed if isinstance(seed, int) else None,
                      shift_seed=args.shift_seed)
    precision = "int8" if model.wascompress_metadata("quantize") else "fp32"
    return test, [{**row, "file": Path(args.checkpoint).name, "precision": precision} for row in rows]


def plot_rows(rows: list[dict]) -> bytes:
    plt = pyplot()
    shifts = list(dict.fromkeys(r["shift"] for r in rows))
    groups = list(dict.fromkeys((r["mode"], r["seed"]) for r in rows))
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(shifts) * max(1, len(groups)) / 2), 3.6))
    width = 0.8 / len(groups)
    for g, (mode, seed) in enumerate(groups):
        values = {r["shift"]: r["accuracy"] * 100 for r in rows if (r["mode"], r["seed"]) == (mode, seed)}
        label = mode.upper() if seed is None else f"{mode.upper()} seed {seed}"
        ax.bar([i + g * width for i in range(len(shifts))], [values.get(s, 0) for s in shifts], width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(shifts))], shifts, rotation=15)
    ax.set_ylabel("test top-1 (%)")
    ax.legend()
    return png_bytes(fig)
