"""``wascompress train``: train a zoo model (or a user's) with crop / translate / filter / rotate WAS.

No WAS flag at all trains the plain baseline with the same trainer. Run under
``torchrun --nproc_per_node=N -m wascompress train ...`` for DistributedDataParallel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from wascompress.cli import add_option
from wascompress.data import DATASETS, image_size, normalization
from wascompress.errors import ConfigError
from wascompress.train.config import PROTOCOLS, SCHEDULES, SELECT_MODES, resolve_config
from wascompress.train.reporting import format_budgets
from wascompress.train.trainer import QUIET, LogReporter, config_for_resume, format_metrics, train
from wascompress.was.config import CROP_MODES, POLICIES


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train a model with Weight Augmentation (or the plain baseline)",
                            description=__doc__.splitlines()[0])
    add_run_options(p.add_argument_group("run"))
    data = p.add_argument_group("model and data")
    add_model_options(data)
    add_data_options(data)
    add_optimisation_options(p.add_argument_group("optimisation (defaults from --protocol)"))
    add_was_options(p.add_argument_group("weight augmentation (none given: plain baseline)"))
    add_sandwich_options(p.add_argument_group("training the deployed DOM on purpose (sandwich steps; "
                                              "docs/method.md §6)"))
    add_evaluation_options(p.add_argument_group("evaluation"))
    p.set_defaults(run=run_train)


def add_run_options(run: argparse._ArgumentGroup) -> None:
    """Where the run lives, how it resumes, the device and precision."""
    run.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (config, metrics, checkpoints)")
    run.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from last.pt")
    run.add_argument("--overwrite", action="store_true", help="replace a previous run in RUN_DIR")
    run.add_argument("--config", metavar="FILE", help="JSON or TOML file of default settings")
    run.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    run.add_argument("--save-every", type=int, metavar="STEPS", help="also checkpoint every STEPS steps")
    run.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                     help="mixed precision (default: on for CUDA)")
    run.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                     help="train in channels-last (NHWC) memory format (default: on for CUDA; on the CPU "
                          "the faster of the two, timed on the model before training)")


def add_model_options(model: argparse._ArgumentGroup) -> None:
    """The architecture and the weights it starts from."""
    model.add_argument("--model", help="zoo name (see `wascompress models`), timm:NAME, torchvision:NAME or "
                       "package.module:factory (random weights; start from trained ones with --init-from)")
    model.add_argument("--model-kwargs", metavar="JSON", type=json_object,
                       help="keyword arguments of the model's builder besides num_classes, "
                            """e.g. '{"drop_rate": 0.1}'""")
    model.add_argument("--init-from", metavar="FILE",
                       help="start from trained weights: a wascompress checkpoint or a state_dict file (.pt, .pth, "
                            ".safetensors), names matched strictly; with WAS options this compresses that model")
    model.add_argument("--num-classes", type=int, help="default: from the data set")
    model.add_argument("--width", type=float, help="channel multiplier of zoo models (default 1)")


def add_data_options(data: argparse._ArgumentGroup) -> None:
    """The data set, its image size and the subsets used."""
    data.add_argument("--dataset", choices=DATASETS, help="default cifar10")
    data.add_argument("--data-dir", help="data folder (default: $WASCOMPRESS_DATA_DIR)")
    data.add_argument("--download", action="store_true", default=None, help="download CIFAR if missing")
    data.add_argument("--image-size", type=int, nargs="+", metavar=("H", "W"),
                      help="train at H x W pixels (one value: square; default 32): every image is resized to it")
    data.add_argument("--workers", type=int, metavar="N",
                      help="processes reading an image folder (default: one per core but one, at most 4)")
    data.add_argument("--val-size", type=int, help="validation images held out of training (default 10 %%)")
    data.add_argument("--limit-train", type=int, metavar="N", help="use only N training images")
    data.add_argument("--limit-test", type=int, metavar="N", help="use only N test images")
    add_normalization_options(data)


def add_normalization_options(data: argparse._ArgumentGroup) -> None:
    """How pixels are normalised: the model's own statistics, the data's, a preset, or given."""
    data.add_argument("--normalize", choices=normalization.CHOICES,
                      help="input mean/std: model (default: timm's pretrained_cfg where the model has one, else the "
                           "data's), data (the training images' statistics), or a preset")
    data.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="input mean (0..1 scale), with --std")
    data.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="input std (0..1 scale), with --mean")


def add_optimisation_options(opt: argparse._ArgumentGroup) -> None:
    """The protocol preset and the settings that override it."""
    opt.add_argument("--protocol", choices=list(PROTOCOLS),
                     help="paper: SGD 0.01, no decay/schedule/augmentation; standard: crop+flip, wd 5e-4, cosine")
    opt.add_argument("--epochs", type=int)
    opt.add_argument("--batch-size", type=int, help="per process")
    opt.add_argument("--lr", type=float)
    opt.add_argument("--momentum", type=float)
    opt.add_argument("--weight-decay", type=float)
    opt.add_argument("--schedule", choices=SCHEDULES)
    opt.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                     help="random crop + flip")
    opt.add_argument("--seed", type=int, help="seed of everything random in the run (default 0)")


def add_was_options(was: argparse._ArgumentGroup) -> None:
    """The WAS transforms, how they combine and which layers they touch."""
    was.add_argument("--crop", nargs=2, type=float, metavar=("LO", "HI"), help="kernel crop, area fraction range")
    was.add_argument("--crop-mode", choices=CROP_MODES, help="zero (default) or resize (the reference code)")
    was.add_argument("--translate", type=float, metavar="FRAC", help="kernel shift, fraction of the kernel size")
    was.add_argument("--filter", nargs=2, type=float, metavar=("LO", "HI"), help="fraction of filters kept")
    was.add_argument("--rotate", action="store_true", default=None, help="random multiples of 90 degrees")
    was.add_argument("--was-policy", choices=POLICIES, help="compose (default) or choice (one per draw)")
    was.add_argument("--was-prob", type=float, metavar="P", help="chance a step uses SW (default 1)")
    was.add_argument("--was-include", nargs="+", metavar="GLOB", help="only these conv layers (name globs)")
    was.add_argument("--was-exclude", nargs="+", metavar="GLOB", help="leave these conv layers alone")
    was.add_argument("--transform-layers", nargs="+", metavar="TRANSFORM:GLOB",
                     help="a transform only on these WAS layers, e.g. crop:'layer1.*' filter:'layer4.*.conv1.*'")
    was.add_argument("--was-shared", action="store_true", default=None,
                     help="one size fraction per draw for every layer (crop area, filters kept), as a width "
                          "multiplier: DOM seeds then span the MAC range (several --target-macs budgets)")
    was.add_argument("--dom-align", action="store_true", default=None,
                     help="DOM seeds place crop windows so their half-pixel shifts cancel (random draws stay random)")


def add_sandwich_options(sandwich: argparse._ArgumentGroup) -> None:
    """What a sandwich step trains: the DOMs to deploy, random SW draws, distillation."""
    sandwich.add_argument("--dom-seed", type=int, nargs="+", metavar="N",
                          help="DOM draw(s) to deploy, trained in every step next to PW (and --was-samples random SW)")
    add_option(sandwich, "--target-macs", aliases=["--dom-target-macs"], type=float, nargs="+", metavar="R",
               help="MAC budgets: for each R, the DOM seed whose pruned graph is at or just under R x the AOM's "
                    "MACs, all trained in every step beside the AOM (export one with export --target-macs R)")
    add_option(sandwich, "--search-seeds", aliases=["--dom-search-seeds"], type=int, metavar="K",
               help="seeds tried for --target-macs (32)")
    sandwich.add_argument("--was-samples", type=int, metavar="K",
                          help="random SW draws per step (default: 0 beside a fixed DOM, else 1)")
    sandwich.add_argument("--distill", action="store_true", default=None,
                          help="SW forwards also learn from the AOM forward's soft predictions (in-place distillation)")
    sandwich.add_argument("--teacher", metavar="FILE|init",
                          help="SW forwards learn from a frozen teacher's soft predictions: 'init' (the --init-from "
                               "weights) or a weights file; with --distill, from it and the AOM forward")
    sandwich.add_argument("--distill-weight", type=float, metavar="A", help="loss = (1-A) CE + A T^2 KL (default 0.5)")
    sandwich.add_argument("--distill-temperature", type=float, metavar="T", help="default 1")
    sandwich.add_argument("--was-warmup", type=int, metavar="EPOCHS", help="train PW alone for the first EPOCHS")
    sandwich.add_argument("--fit-doms", action="store_true", default=None,
                          help="with --init-from: before training, fit each DOM's kept taps to the start model's "
                               "function, layer by layer on training images (a correction per DOM stored beside PW, "
                               "trained with it; export --target-macs R exports the fitted DOM)")
    sandwich.add_argument("--fit-images", type=int, metavar="N", help="training images --fit-doms solves on (default 1024)")


def add_evaluation_options(ev: argparse._ArgumentGroup) -> None:
    """What each epoch evaluates and what picks best.pt."""
    ev.add_argument("--eval-seed", type=int, help="DOM seed evaluated each epoch (default 0)")
    ev.add_argument("--bn-batches", type=int, help="batches for BatchNorm re-estimation (default 32)")
    ev.add_argument("--select-mode", choices=SELECT_MODES, help="validation accuracy that picks best.pt")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (None: not given)."""
    keys = ("model", "num_classes", "width", "dataset", "data_dir", "download", "epochs", "batch_size", "lr",
            "momentum", "weight_decay", "schedule", "augment", "seed", "val_size", "limit_train", "limit_test",
            "eval_seed", "bn_batches", "select_mode", "save_every", "device", "amp", "channels_last",
            "protocol",
            "target_macs", "search_seeds", "was_samples", "distill", "distill_weight",
            "distill_temperature", "was_warmup", "image_size", "workers", "model_kwargs", "init_from", "teacher",
            "fit_doms", "fit_images", "normalize", "mean", "std")
    values = {k: getattr(args, k) for k in keys}
    values["dom_seeds"] = args.dom_seed
    if args.image_size is not None:
        values["image_size"] = list(image_size(args.image_size))
    if args.dom_seed is not None and args.target_macs is not None:
        raise ConfigError("give --dom-seed or --target-macs, not both")
    values["was"] = was_settings(args)
    return values


def was_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The WAS settings of :func:`add_was_options` given on the command line."""
    was = {"crop": args.crop, "crop_mode": args.crop_mode, "translate": args.translate, "filter": args.filter,
           "rotate": args.rotate, "policy": args.was_policy, "prob": args.was_prob,
           "include": args.was_include, "exclude": args.was_exclude, "dom_align": args.dom_align,
           "shared": args.was_shared,
           "transform_layers": args.transform_layers}
    return {k: v for k, v in was.items() if v is not None}


def json_object(text: str) -> dict[str, Any]:
    """``--model-kwargs``: a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of keyword arguments, got {text!r}")
    return value


class BarReporter:
    """A tqdm progress bar per epoch on a terminal."""

    def __init__(self) -> None:
        self.bar = None

    def epoch_start(self, epoch: int, epochs: int, steps: int, first_step: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=steps, initial=first_step, desc=f"epoch {epoch}/{epochs}", leave=False,
                        dynamic_ncols=True)

    def step(self, loss: float) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def epoch_end(self, metrics: dict[str, Any]) -> None:
        self.bar.close()
        print(format_metrics(metrics), file=sys.stderr, flush=True)


def reporter_for_rank(rank: int):  # type: ignore[no-untyped-def]
    """Progress bars on a terminal, log lines otherwise, nothing on ranks other than 0."""
    return QUIET if rank else (BarReporter() if sys.stderr.isatty() else LogReporter())


def run_train(args: argparse.Namespace) -> int:
    overrides = overrides_from_args(args)
    if args.resume:
        if args.config:
            print("wascompress train: note: --config is ignored with --resume (the run's own config is used)",
                  file=sys.stderr)
        config = config_for_resume(args.out, overrides)
    else:
        protocol = overrides.pop("protocol")
        config = resolve_config(overrides, args.config, protocol)
    rank = int(os.environ.get("RANK", "0"))
    results = train(config, args.out, resume=args.resume, overwrite=args.overwrite, reporter=reporter_for_rank(rank))
    if rank == 0:
        dom = (f", DOM seed {results['dom_seed']} {results['test_acc_dom'] * 100:.2f}%"
               if results["test_acc_dom"] is not None else "")
        print(f"test accuracy (best.pt, epoch {results['best']['epoch']}): AOM {results['test_acc_aom'] * 100:.2f}%"
              f"{dom}; run folder {args.out}")
        for line in format_budgets(results):  # every budget, not only the first (the one evaluated each epoch)
            print(line)
    return 0
