"""``wascompress compress``: from a model you already have to verified ONNX files and a report, in one command.

A thin layer over :func:`wascompress.pipeline.compress`: it builds a :class:`CompressConfig` from the options,
draws progress (epochs, steps, with an ETA) unless ``--quiet``, and prints the report's table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from wascompress.cli.train_cmd import add_normalization_options, json_object, reporter_for_rank
from wascompress.data import DATASETS, image_size
from wascompress.pipeline import CompressConfig, compress
from wascompress.pipeline.report import describe
from wascompress.train.reporting import QUIET


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("compress", help="compress a trained model to verified ONNX files and a report",
                            description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("--model", help="timm:NAME, torchvision:NAME, a zoo name or package.module:factory "
                                   "(not needed when --init-from is a wascompress checkpoint)")
    p.add_argument("--init-from", required=True, metavar="FILE",
                   help="the trained weights: a state_dict (.pt/.pth/.safetensors) or a wascompress checkpoint")
    p.add_argument("--target-macs", required=True, type=float, nargs="+", metavar="R",
                   help="MAC budgets as fractions of the model's, e.g. 0.75 0.5 0.35: one DOM each")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the files, the run and the report")
    p.add_argument("--dataset", choices=DATASETS, default="cifar10")
    p.add_argument("--data-dir", help="data folder (default: $WASCOMPRESS_DATA_DIR)")
    p.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs (default 5)")
    p.add_argument("--quantize", choices=["int8"], help="also export an INT8 twin of the AOM and every DOM")
    p.add_argument("--overwrite", action="store_true", help="replace a different run in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress, only the final table (for scripts)")
    p.add_argument("--image-size", type=int, nargs="+", metavar=("H", "W"), help="default 32 (or the checkpoint's)")
    p.add_argument("--num-classes", type=int, help="default: from the data set")
    p.add_argument("--model-kwargs", metavar="JSON", type=json_object, help="keyword arguments of the builder")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier of zoo models")
    add_normalization_options(p)
    tuning = p.add_argument_group("fine-tuning (defaults: the recipe for a trained model)")
    defaults = CompressConfig(model="x", init_from="x", target_macs=(0.5,))
    for name, kind, text in (("lr", float, "learning rate"), ("batch-size", int, "batch size"),
                             ("search-seeds", int, "DOM seeds tried per budget"), ("seed", int, "seed of the run"),
                             ("bn-batches", int, "BatchNorm re-estimation batches"),
                             ("fit-images", int, "training images each DOM's fit solves on"),
                             ("latency-runs", int, "timed runs per file and batch size")):
        tuning.add_argument(f"--{name}", type=kind, default=getattr(defaults, name.replace("-", "_")),
                            help=f"{text} (default %(default)s)")
    for name, text in (("crop", "kernel window area range"), ("filter", "share of filters kept")):
        tuning.add_argument(f"--{name}", type=float, nargs=2, metavar=("LO", "HI"),
                            default=getattr(defaults, name), help=f"{text} (default %(default)s)")
    for name in ("limit-train", "limit-test", "val-size", "workers"):
        tuning.add_argument(f"--{name}", type=int, metavar="N")
    tuning.add_argument("--no-fit", dest="fit", action="store_false",
                        help="train the drawn DOMs as they are (default: each DOM's kept taps first fitted, layer "
                             "by layer, to what the trained model computes)")
    tuning.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32], help="latency batch sizes")
    tuning.add_argument("--device", default="auto")
    tuning.add_argument("--channels-last", action="store_true",
                        help="train in channels-last format (often faster on the CPU; off by default so that every "
                             "run of a command gives the same files, which a format timed per run would not)")
    p.set_defaults(run=run_compress)


def config_from_args(args: argparse.Namespace) -> CompressConfig:
    values: dict[str, Any] = {name: getattr(args, name) for name in CompressConfig.field_names()}
    values["normalize"] = args.normalize or "model"
    for name in ("target_macs", "crop", "filter", "batch_sizes", "mean", "std"):
        values[name] = tuple(values[name]) if values[name] is not None else None
    values["image_size"] = image_size(args.image_size) if args.image_size else None
    return CompressConfig(**values)


class StepBar:
    """One bar over the run's steps (plan, train, each export, profile), with an ETA."""

    def __init__(self) -> None:
        self.bar = None

    def step(self, name: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc="compress", dynamic_ncols=True, file=sys.stderr)
        self.bar.set_description(f"compress: {name}")
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()


def run_compress(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.quiet:  # only the final table, and errors
        logging.getLogger("wascompress").setLevel(logging.WARNING)
    result = compress(config, args.out, overwrite=args.overwrite, reporter=QUIET if args.quiet else reporter_for_rank(0),
                      steps=None if args.quiet else StepBar())
    for row in result.rows:
        accuracy = "-" if row["test_accuracy"] is None else f"{row['test_accuracy'] * 100:.2f}%"
        batch, p50 = next(iter(row["p50_ms"].items()))
        print(f"{row['file']:<24} {describe(row):<40} MACs {row['mac_ratio']:.3f}  p50 batch {batch} {p50:.3f} ms"
              f"  top-1 {accuracy}")
    print(f"report: {result.report}")
    return 0
