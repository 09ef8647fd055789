"""``wascompress profile``: compare ONNX models (AOM first) on cost, size, latency and accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path

from wascompress.cli.image_size import (
    RequestedSize,
    add_image_size_option,
    checkpoint_image_size,
    requested_size,
)
from wascompress.data import DATASETS
from wascompress.errors import ConfigError
from wascompress.fileio import atomic_write_text, check_output_file
from wascompress.profile import formats
from wascompress.profile.latency import TimingPlan
from wascompress.profile.profiler import ProfileRequest, profile


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("profile", help="compare ONNX models: MACs, sparsity, size, latency, accuracy",
                            description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="ONNX files, the reference (AOM) first; or one checkpoint with --seed N, whose AOM and "
                        "DOM exports are made first")
    p.add_argument("--labels", help="comma-separated row names, one per model (default: file stems, with "
                   "parent folders where stems repeat)")
    add_image_size_option(p, aliases=["--input-shape"],
                          help="H x W pixels (one value: square): needed for inputs whose height and width are "
                               "symbolic; with a checkpoint, the size to export at (default: the size it was "
                               "trained at)")
    p.add_argument("--seed", type=int, help="with a checkpoint: the DOM seed to export and compare")
    p.add_argument("--out-dir", help="with a checkpoint: folder for its exports (default: beside it)")
    p.add_argument("--providers", default="cpu", help="comma-separated: cpu, cuda, tensorrt, ... (default cpu)")
    p.add_argument("--skip-missing", action="store_true", help="skip requested providers that are not available")
    p.add_argument("--batch-sizes", type=int_list, default=(1, 32), help="comma-separated (default 1,32)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per model first (default 3)")
    timing = p.add_mutually_exclusive_group()
    timing.add_argument("--runs", type=int, help="timed runs per model (default 30)")
    timing.add_argument("--budget", type=float, metavar="SECONDS", help="time budget per model instead of --runs")
    p.add_argument("--dataset", choices=DATASETS, help="also measure test accuracy through ONNX Runtime")
    p.add_argument("--data-dir", help="data folder for --dataset and for a checkpoint's DOM export")
    p.add_argument("--limit-test", type=int, metavar="N", help="use only N test images for accuracy")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the table as Markdown")
    p.add_argument("--csv", metavar="FILE", help="write one CSV row per model, provider and batch")
    p.add_argument("--plot", metavar="FILE.png", help="latency and MACs side by side (and accuracy against MACs)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files and exports")
    p.set_defaults(run=run_profile)


def exports_for_checkpoint(args: argparse.Namespace, size: RequestedSize | None) -> tuple[Path, ...]:
    from wascompress.export.exporter import ExportConfig
    from wascompress.export.from_checkpoint import export_checkpoint

    checkpoint = Path(args.models[0])
    if args.seed is None:
        raise ConfigError(f"{checkpoint} is not an ONNX model; to profile a checkpoint give --seed N")
    folder = Path(args.out_dir) if args.out_dir else checkpoint.parent / f"{checkpoint.stem}-seed{args.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    aom, dom = folder / "aom.onnx", folder / f"dom-seed{args.seed}.onnx"
    image_size = checkpoint_image_size(size)
    export_checkpoint(checkpoint, aom, ExportConfig(mode="aom"), data_dir=args.data_dir, overwrite=args.overwrite,
                      image_size=image_size)
    export_checkpoint(checkpoint, dom, ExportConfig(mode="dom", seed=args.seed), data_dir=args.data_dir,
                      overwrite=args.overwrite, image_size=image_size)
    print(f"exported {aom} and {dom}")
    return aom, dom


def run_profile(args: argparse.Namespace) -> int:
    for path in filter(None, (args.json, args.markdown, args.csv, args.plot)):
        check_output_file(path, args.overwrite)
    size = requested_size(args.image_size)
    labels = tuple(label.strip() for label in args.labels.split(",")) if args.labels is not None else None
    single = args.models[0]
    if len(args.models) == 1 and not single.endswith(".onnx") and Path(single).is_file():
        models = exports_for_checkpoint(args, size)
    else:
        if args.seed is not None:
            raise ConfigError("--seed applies when profiling a checkpoint, not ONNX files")
        models = tuple(Path(m) for m in args.models)
    plan = TimingPlan(warmup=args.warmup, runs=None if args.budget else (args.runs or 30), budget_s=args.budget,
                      threads=args.threads)
    request = ProfileRequest(models=models, providers=tuple(args.providers.split(",")), batch_sizes=args.batch_sizes,
                             plan=plan, skip_missing=args.skip_missing, dataset=args.dataset, data_dir=args.data_dir,
                             limit_test=args.limit_test, labels=labels,
                             image_size=size.image_size if size else None, channels=size.channels if size else None)
    report = profile(request)
    print(formats.to_table(report))
    for model in report["models"]:
        if "thop_match" in model:
            print(formats.thop_line(model))
    if args.json:
        atomic_write_text(args.json, formats.to_json(report))
    if args.markdown:
        atomic_write_text(args.markdown, formats.to_markdown(report))
    if args.csv:
        atomic_write_text(args.csv, formats.to_csv(report))
    if args.plot:
        formats.plot(report, args.plot)
    return 0
