"""``wascompress models``: the model zoo with each model's size and cost at a width and an image size."""

from __future__ import annotations

import argparse

from torch import nn

from wascompress.cli import add_option
from wascompress.data.geometry import image_size
from wascompress.models import create_model, list_models
from wascompress.models.cost import count_macs, count_parameters


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("models", help="list the model zoo with parameters and MACs")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1)")
    parser.add_argument("--num-classes", type=int, default=10)
    add_option(parser, "--image-size", aliases=["--input-size"], type=int, nargs="+", default=[32],
               metavar=("H", "W"), help="count MACs for H x W images (one value: square; default 32)")
    parser.add_argument("--model", action="append", metavar="PACKAGE.MODULE:FACTORY",
                        help="also list a model of your own (repeatable), e.g. torchvision.models:resnet18")
    parser.set_defaults(run=run)


def macs_at(model: nn.Module, shape: tuple[int, int, int]) -> int | None:
    """MACs for one image of ``shape``; None when the model cannot take that size (e.g. a classifier sized
    for the feature map of 32x32 input)."""
    try:
        return count_macs(model, shape)
    except RuntimeError:
        return None


def run(args: argparse.Namespace) -> int:
    height, width = image_size(args.image_size)
    header = f"MACs ({height}x{width})"
    names = list_models() + (args.model or [])
    column = max(20, *(len(n) + 2 for n in names))
    print(f"{'model':<{column}}{'params':>14}{header:>18}")
    for name in names:
        model = create_model(name, num_classes=args.num_classes, width=args.width)
        macs = macs_at(model, (3, height, width))
        cost = f"{macs / 1e6:.1f} M" if macs is not None else f"- (not {height}x{width})"
        print(f"{name:<{column}}{count_parameters(model):>14,}{cost:>18}")
    print("1 MAC = 2 FLOPs; MACs counted by thop at batch 1 (BatchNorm left out: export folds it into the conv).")
    return 0
