"""Training throughput on the CPU: images/s with and without WAS, and the epoch time of every zoo model.

Part 1 trains a small model (resnet18 at width 0.25, batch 128) with and without WAS (zero-crop
(0.4, 0.6) + translate 0.3), steps interleaved, through the trainer's own data loader (random crop +
flip) and training step; the ratio of median throughputs is the headline. Part 2 times a few WAS
training steps of every zoo model at width 1 and 0.25 and extrapolates one CIFAR-10 epoch (45,000
training images plus a 5,000-image validation pass, forward only, in AOM and DOM): an estimate to plan
runs by, not a measured epoch.

    python benchmarks/bench_train_throughput.py            # both parts (~6 min here)
    python benchmarks/bench_train_throughput.py --quick    # part 1 with fewer steps, part 2 at width 0.25 (~1 min)

Last line: ``train_throughput_was_ratio: X`` (WAS images/s over plain images/s).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_times, machine, median, today, write_json  # noqa: E402

from wascompress.data import BatchLoader, make_synthetic  # noqa: E402
from wascompress.device import flush_denormals, keep_freed_memory  # noqa: E402
from wascompress.models import create_model, list_models  # noqa: E402
from wascompress.train.memory_format import probe_memory_format  # noqa: E402
from wascompress.train.step import training_step  # noqa: E402
from wascompress.was import WASConfig, apply_was_  # noqa: E402

WAS = WASConfig(crop=(0.4, 0.6), translate=0.3)
TRAIN_IMAGES, VAL_IMAGES = 45_000, 5_000


def stepper(model: torch.nn.Module, loader: BatchLoader, generator: torch.Generator | None):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = itertools.cycle(list(itertools.islice(iter(loader), 4)))
    model.train()

    def step() -> None:
        images, labels = next(batches)
        training_step(model, images, labels, optimizer, generator)

    return step


def throughput(batch_size: int, width: float, repeats: int) -> dict:
    torch.manual_seed(0)
    data = make_synthetic(True, seed=0)
    loader = BatchLoader(data, batch_size, shuffle=True, augment=True, seed=0)
    plain = create_model("resnet18", width=width)
    was = copy.deepcopy(plain)
    apply_was_(was, WAS)
    times = interleaved_times({"plain": stepper(plain, loader, None),
                               "was": stepper(was, loader, torch.Generator().manual_seed(0))}, repeats=repeats)
    plain_ips, was_ips = batch_size / median(times["plain"]), batch_size / median(times["was"])
    return {"model": "resnet18", "width": width, "batch_size": batch_size, "repeats": repeats,
            "plain_images_per_s": plain_ips, "was_images_per_s": was_ips, "ratio": was_ips / plain_ips}


def epoch_estimate(name: str, width: float, batch_size: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = create_model(name, width=width)
    apply_was_(model, WAS)
    images = torch.randn(batch_size, 3, 32, 32)
    channels_last = probe_memory_format(model, images, num_classes=10).channels_last  # as the trainer chooses
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    images = images.contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch_size,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    model.train()
    training_step(model, images, labels, optimizer, generator)  # warm-up
    step_times = []
    for _ in range(steps):
        start = time.perf_counter()
        training_step(model, images, labels, optimizer, generator)
        step_times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        model(images)
        forward = time.perf_counter() - start
    step = median(step_times)
    epoch = TRAIN_IMAGES / batch_size * step + 2 * VAL_IMAGES / batch_size * forward
    return {"model": name, "width": width, "memory_format": "channels-last" if channels_last else "contiguous",
            "step_s_median": step, "train_images_per_s": batch_size / step,
            "estimated_epoch_min": epoch / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    flush_denormals()
    keep_freed_memory()
    widths = (0.25,) if args.quick else (1.0, 0.25)
    part1 = throughput(args.batch_size, 0.25, repeats=10 if args.quick else 30)
    print(f"resnet18 width 0.25 batch {args.batch_size}: plain {part1['plain_images_per_s']:.0f} img/s, "
          f"WAS {part1['was_images_per_s']:.0f} img/s")
    zoo = []
    for name, width in itertools.product([m for m in list_models() if m != "tiny"], widths):
        row = epoch_estimate(name, width, args.batch_size, steps=2 if args.quick else 3)
        zoo.append(row)
        print(f"{name:<20} width {width:<5g} {row['train_images_per_s']:8.0f} img/s   "
              f"~{row['estimated_epoch_min']:7.1f} min per CIFAR-10 epoch")
    result = {"benchmark": "train_throughput", "date": today(), "machine": machine(),
              "command": "python benchmarks/bench_train_throughput.py" + (" --quick" if args.quick else ""),
              "was": WAS.describe(), "throughput": part1, "zoo": zoo}
    write_json(args.json, result)
    print(f"train_throughput_was_ratio: {part1['ratio']:.4f}")


if __name__ == "__main__":
    main()
