"""The cost of WAS in a training step: step time with and without drawing and applying Shadow Weights,
and the cost of each sub-network training recipe (sandwich steps) against a plain step.

Two copies of the same model (same weights, same batch, same optimizer settings) train side by side,
steps interleaved A B A B ... so that machine drift hits both alike; the overhead is the ratio of the
median step times. Because a difference of two noisy ~seconds-long steps is coarse, the cost of WAS
alone (drawing the SW of every layer plus computing SW and its gradient, without the convolutions) is
also timed directly and reported as a share of the plain step.

    python benchmarks/bench_was_overhead.py            # resnet18, width 1, batch 128 (~6 min here)
    python benchmarks/bench_was_overhead.py --quick    # resnet18, width 0.25 (~1 min)

Recipes (each against a plain step, same interleaving): the paper's WAS step; a sandwich step (AOM
on the labels + one fixed DOM draw + one random draw, crop (0.4, 0.6)), with and without in-place
distillation; a three-budget step (AOM + the DOMs of budgets 0.75 / 0.5 / 0.35 of one shared-size crop +
filter configuration, ``--target-macs 0.75 0.5 0.35``). A SW whose draw zeroes kernel borders or
filters runs as the smaller conv (``was/window_conv.py``), so a sandwich step costs about 1 + 2 x 0.44 of
the MACs of a plain step and the three-budget step about 1 + the sum of its DOMs' MAC ratios. Goal:
sandwich <= 2.2 x plain; three budgets about 1 + the sum of their MAC ratios.

Last lines: ``was_step_overhead_pct: X`` (target <= 3), ``sandwich_step_vs_plain: X`` (goal <= 2.2), then
``three_budget_step_vs_plain: X``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_times, machine, median, today, write_json  # noqa: E402

from wascompress.device import flush_denormals, keep_freed_memory  # noqa: E402
from wascompress.models import create_model  # noqa: E402
from wascompress.train.memory_format import probe_memory_format  # noqa: E402
from wascompress.train.step import Distillation, Sandwich, sandwich_step, training_step  # noqa: E402
from wascompress.was import WASConfig, apply_was_, dom_draws, resample_, was_config, was_layers  # noqa: E402


def isolated_was_cost(model: torch.nn.Module, generator: torch.Generator, repeats: int) -> float:
    """Median seconds to draw SW for all layers and push a gradient through every SW computation."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        resample_(model, generator)
        total = sum(model.get_submodule(name).weight.sum() for name in was_layers(model))
        total.backward()
        times.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return median(times)


MULTI_WAS = WASConfig(crop=(0.4, 1.0), filter=(0.25, 1.0), shared=True)
BUDGETS = (0.75, 0.5, 0.35)


def three_budget_model(plain: torch.nn.Module, name: str, input_shape: tuple[int, ...],
                       seeds: int) -> tuple[torch.nn.Module, list]:
    """A copy of ``plain`` with shared-size crop + filter WAS (on a ResNet, filters only on the residual blocks'
    first convs of stages 2-4, whose outputs meet no addition) and the DOM seed of each budget."""
    from dataclasses import replace

    from wascompress.export.budget import closest_under, seed_costs

    was = replace(MULTI_WAS, transform_layers=("filter:layer[234].*.conv1.conv",)) if name.startswith("resnet") else MULTI_WAS
    model = copy.deepcopy(plain)
    apply_was_(model, was)
    costs = seed_costs(model, range(seeds), tuple(input_shape))
    return model.train(), [closest_under(costs, budget) for budget in BUDGETS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="width 0.25, fewer repeats (~1 min)")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--width", type=float, default=None, help="default 1 (0.25 with --quick)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per variant")
    parser.add_argument("--memory-format", choices=("auto", "channels-last", "contiguous"), default="auto",
                        help="auto: the faster for the plain model, timed as the trainer does")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    args = parser.parse_args()
    width = args.width if args.width is not None else (0.25 if args.quick else 1.0)
    repeats = args.repeats if args.repeats is not None else (30 if args.quick else 16)

    flush_denormals()  # as the trainer does
    keep_freed_memory()
    torch.manual_seed(0)
    plain = create_model(args.model, width=width)
    was = copy.deepcopy(plain)
    config = WASConfig(crop=(0.4, 0.6), translate=0.3)
    apply_was_(was, config)
    plain.train(), was.train()
    images = torch.randn(args.batch_size, 3, 32, 32)
    channels_last = (probe_memory_format(plain, images, num_classes=10).channels_last if args.memory_format == "auto"
                     else args.memory_format == "channels-last")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    images = images.contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (args.batch_size,))
    for model in (plain, was):
        model.to(memory_format=memory_format)
    opt_plain = torch.optim.SGD(plain.parameters(), lr=0.01, momentum=0.9)
    opt_was = torch.optim.SGD(was.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)

    crop = copy.deepcopy(plain)
    apply_was_(crop, WASConfig(crop=(0.4, 0.6)))
    crop.to(memory_format=memory_format)
    crop_kd = copy.deepcopy(crop)
    crop.train(), crop_kd.train()
    fixed = (dom_draws(crop, 0),)
    sandwich = Sandwich(fixed=fixed, random_samples=1)
    sandwich_kd = Sandwich(fixed=fixed, random_samples=1, distill=Distillation())
    opt_crop = torch.optim.SGD(crop.parameters(), lr=0.01, momentum=0.9)
    opt_crop_kd = torch.optim.SGD(crop_kd.parameters(), lr=0.01, momentum=0.9)
    gen_crop, gen_crop_kd = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    multi, budgets = three_budget_model(plain, args.model, images.shape[1:], seeds=16 if args.quick else 32)
    multi.to(memory_format=memory_format)
    three = Sandwich(fixed=tuple(dom_draws(multi, b.seed) for b in budgets), random_samples=0, distill=Distillation())
    opt_multi = torch.optim.SGD(multi.parameters(), lr=0.01, momentum=0.9)
    times = interleaved_times(
        {
            "plain": lambda: training_step(plain, images, labels, opt_plain, None),
            "was": lambda: training_step(was, images, labels, opt_was, generator),
            "sandwich": lambda: sandwich_step(crop, images, labels, opt_crop, gen_crop, sandwich),
            "sandwich_distill": lambda: sandwich_step(crop_kd, images, labels, opt_crop_kd, gen_crop_kd, sandwich_kd),
            "three_budgets": lambda: sandwich_step(multi, images, labels, opt_multi, None, three),
        },
        repeats=repeats,
    )
    recipes = {name: {"step_s_median": median(times[name]), "vs_plain": median(times[name]) / median(times["plain"]),
                      "paired_ratio_median": median([t / p for t, p in zip(times[name], times["plain"])])}
               for name in ("was", "sandwich", "sandwich_distill", "three_budgets")}
    expected = 1 + sum(b.ratio for b in budgets)
    plain_s, was_s = median(times["plain"]), median(times["was"])
    overhead = (was_s / plain_s - 1) * 100
    paired = median([w / p for w, p in zip(times["was"], times["plain"])])
    isolated = isolated_was_cost(was, generator, repeats=50)
    result = {
        "benchmark": "was_overhead",
        "date": today(),
        "machine": machine(),
        "command": "python benchmarks/bench_was_overhead.py" + (" --quick" if args.quick else ""),
        "model": args.model,
        "width": width,
        "batch_size": args.batch_size,
        "memory_format": "channels-last" if channels_last else "contiguous",
        "was": config.describe(),
        "was_layers": len(was_layers(was)),
        "repeats": repeats,
        "plain_step_s_median": plain_s,
        "was_step_s_median": was_s,
        "was_step_overhead_pct": overhead,
        "paired_ratio_median": paired,
        "isolated_was_cost_ms_median": isolated * 1e3,
        "isolated_was_cost_pct_of_step": isolated / plain_s * 100,
        "recipes": recipes,
        "recipe_descriptions": {
            "was": f"the paper's step: one random SW ({config.describe()})",
            "sandwich": "AOM on the labels + DOM seed 0 + 1 random SW, crop(0.4,0.6,zero)",
            "sandwich_distill": "the same with in-place distillation (weight 0.5, T 1)",
            "three_budgets": (f"AOM on the labels + the DOMs of budgets 0.75 / 0.5 / 0.35 (seeds "
                              f"{', '.join(str(b.seed) for b in budgets)} at {' / '.join(f'{b.ratio:.3f}' for b in budgets)}"
                              f" of the MACs; 1 + their sum = {expected:.2f}), {was_config(multi).describe()}, in-place distillation"),
        },
        "sandwich_step_vs_plain": recipes["sandwich"]["vs_plain"],
        "three_budget_mac_ratios": [b.ratio for b in budgets],
        "three_budget_expected_vs_plain": expected,
        "three_budget_step_vs_plain": recipes["three_budgets"]["vs_plain"],
    }
    print(f"{args.model} width {width} batch {args.batch_size} ({result['memory_format']}), WAS {config.describe()} on "
          f"{result['was_layers']} layers, {repeats} interleaved steps each")
    print(f"plain step median {plain_s:.3f} s, WAS step median {was_s:.3f} s "
          f"(median of paired WAS/plain ratios {paired:.4f})")
    print(f"WAS alone (draw + SW + its gradient): {isolated * 1e3:.2f} ms "
          f"= {result['isolated_was_cost_pct_of_step']:.3f} % of a plain step")
    for name, recipe in recipes.items():
        print(f"{name}: {recipe['step_s_median']:.3f} s per step = {recipe['vs_plain']:.3f} x plain "
              f"(median paired ratio {recipe['paired_ratio_median']:.3f})")
    write_json(args.json, result)
    print(f"was_step_overhead_pct: {overhead:.2f}")
    print(f"three budgets: 1 + the sum of their MAC ratios = {expected:.3f}")
    print(f"sandwich_step_vs_plain: {recipes['sandwich']['vs_plain']:.3f}")
    print(f"three_budget_step_vs_plain: {recipes['three_budgets']['vs_plain']:.3f}")


if __name__ == "__main__":
    main()
