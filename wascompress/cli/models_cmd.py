"""``wascompress models``: the model zoo with each model's size and cost at a width."""

from __future__ import annotations

import argparse

from wascompress.models import create_model, list_models
from wascompress.models.cost import count_macs, count_parameters


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("models", help="list the model zoo with parameters and MACs")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"{'model':<20}{'params':>14}{'MACs (32x32)':>16}")
    for name in list_models():
        model = create_model(name, num_classes=args.num_classes, width=args.width)
        print(f"{name:<20}{count_parameters(model):>14,}{count_macs(model) / 1e6:>14.1f} M")
    print("1 MAC = 2 FLOPs; MACs counted by thop at batch 1.")
    return 0
