"""The CIFAR-10 study: does WAS deliver? Train, export, profile and tabulate, side by side, resumably.

Configurations (each trained with the ``paper`` and the ``standard`` protocol, over several seeds):
baseline (no WAS); Model-C resize (the paper's code: crop (0.8, 1.0) resized back); Model-C zero
(0.4, 0.6); Model-T (translate 0.3); Model-CT (zero-crop + translate); Model-F (filter 0.5-1.0). For
each: AOM test accuracy, DOM test accuracy at the seed chosen on the validation split (4 candidates),
DOM pruned MACs and ONNX Runtime CPU latency (batch 32) against AOM. The competitor: the baseline
pruned with torch-pruning (group magnitude importance) to the MACs of the best DOM pruned model and
fine-tuned, with the same total number of epochs as a WAS run (half dense training, half fine-tuning).

Default size (about 45 minutes on 2 CPU cores): resnet18 at width 0.25 (residual blocks of
3x3 convs, the paper's most common family, at a cost this machine can train), 4,000 CIFAR-10 training
images (400 held out for validation), the full 10,000-image test set, 4 epochs, 3 seeds. ``--full`` is
the paper's scale (ResNet-18 at width 1, all 50,000 images, 200 epochs) for a machine with a GPU.
``--quick`` is a smoke run (tiny model, 600 images, 1 epoch, 2 seeds, one protocol).

Every finished unit (a training run, an export, a measurement) leaves a file in the study folder; a
killed study run again continues where it stopped (training runs resume from their last.pt).

    python benchmarks/study_cifar10.py [--quick | --full] [--out STUDY_DIR] [--data-dir DIR]

Last line: ``study_configs_done: N``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, today  # noqa: E402

from wascompress.checkpoint import load_checkpoint  # noqa: E402
from wascompress.export.exporter import ExportConfig, export_model  # noqa: E402
from wascompress.export.from_checkpoint import SeedSearch, checkpoint_splits, export_checkpoint  # noqa: E402
from wascompress.fileio import atomic_write_text  # noqa: E402
from wascompress.models import create_model  # noqa: E402
from wascompress.models.cost import count_macs  # noqa: E402
from wascompress.profile.latency import TimingPlan, make_session, summarize, time_interleaved  # noqa: E402
from wascompress.profile.profiler import onnx_accuracy  # noqa: E402
from wascompress.train.config import PROTOCOLS, TrainConfig, resolve_config  # noqa: E402
from wascompress.train.trainer import QUIET, train  # noqa: E402
from wascompress.was import WASConfig  # noqa: E402

HERE = Path(__file__).resolve().parent
CONFIGS: dict[str, WASConfig | None] = {
    "baseline": None,
    "C-resize(0.8,1)": WASConfig(crop=(0.8, 1.0), crop_mode="resize"),
    "C-zero(0.4,0.6)": WASConfig(crop=(0.4, 0.6)),
    "T(0.3)": WASConfig(translate=0.3),
    "CT": WASConfig(crop=(0.4, 0.6), translate=0.3),
    "F(0.5,1)": WASConfig(filter=(0.5, 1.0)),
}
PAPER = {  # METHOD.md §1 (the paper's Tables 2 and 6, VGG-16 on CIFAR-10, 500 epochs, paper protocol)
    "vgg16 baseline": {"accuracy": 87.42, "mflops": 333.0},
    "vgg16 crop (0.4,0.6), DOM": {"accuracy": 87.99, "mflops": 223.08},
    "vgg16 translate 30%, DOM": {"accuracy": 90.37, "mflops": 230.63},
    "mean AOM gain over baselines (CIFAR-10)": {"points": 9.28},
}


@dataclass(frozen=True)
class Scale:
    model: str
    width: float
    limit_train: int | None
    limit_test: int | None
    epochs: int
    seeds: tuple[int, ...]
    protocols: tuple[str, ...]
    search_seeds: int
    latency_runs: int
    round_to: int = 16  # competitor's channel rounding: ONNX Runtime's NCHWc block, as the exporter keeps it
    batch_size: int = 128


SCALES = {
    "quick": Scale("tiny", 1.0, 600, 500, 1, (0, 1), ("standard",), 2, 3, round_to=1),  # 8-16 channels
    "default": Scale("resnet18", 0.25, 4000, None, 4, (0, 1, 2), ("paper", "standard"), 4, 15),
    "full": Scale("resnet18", 1.0, None, None, 200, (0, 1, 2), ("paper", "standard"), 8, 30),
}


def done(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def save(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return data


def train_config(scale: Scale, protocol: str, seed: int, was: WASConfig | None, data_dir: str | None,
                 epochs: int | None = None) -> TrainConfig:
    overrides = {"model": scale.model, "width": scale.width, "dataset": "cifar10", "data_dir": data_dir,
                 "epochs": epochs or scale.epochs, "seed": seed, "limit_train": scale.limit_train,
                 "limit_test": scale.limit_test, "batch_size": scale.batch_size, "was": was.to_dict() if was else None}
    if protocol == "standard":
        overrides["lr"] = 0.05  # the standard preset's 0.1 is tuned for full-size runs; short runs want less
    return resolve_config(overrides, protocol=protocol)


def run_training(config: TrainConfig, folder: Path, model: torch.nn.Module | None = None) -> dict[str, Any]:
    results = done(folder / "results.json")
    if results is not None:
        return results
    resume = (folder / "last.pt").is_file()
    return train(config, folder, resume=resume, overwrite=not resume, reporter=QUIET, model=model)


def latency(aom: Path, dom: Path, runs: int) -> dict[str, float]:
    import numpy as np

    sessions = [make_session(aom, "CPUExecutionProvider", 0), make_session(dom, "CPUExecutionProvider", 0)]
    x = np.random.default_rng(0).standard_normal((32, 3, 32, 32), dtype=np.float32)
    times = time_interleaved(sessions, "input", x, TimingPlan(warmup=2, runs=runs))
    a, d = summarize(times[0], 32), summarize(times[1], 32)
    return {"aom_ms": a["p50_ms"], "dom_ms": d["p50_ms"], "latency_ratio": d["p50_ms"] / a["p50_ms"]}


def was_unit(scale: Scale, protocol: str, name: str, seed: int, root: Path, data_dir: str | None) -> dict[str, Any]:
    folder = root / protocol / name / f"seed{seed}"
    unit = done(folder / "unit.json")
    if unit is not None:
        return unit
    folder.mkdir(parents=True, exist_ok=True)
    was = CONFIGS[name]
    results = run_training(train_config(scale, protocol, seed, was, data_dir), folder / "run")
    best = folder / "run" / "best.pt"
    aom = export_checkpoint(best, folder / "aom.onnx", ExportConfig(mode="aom"), data_dir=data_dir, overwrite=True)
    unit = {"protocol": protocol, "config": name, "seed": seed, "aom_test_acc": results["test_acc_aom"],
            "aom_macs": aom["cost"]["macs"], "epochs": results["epochs"]}
    if was is not None:
        dom = export_checkpoint(best, folder / "dom.onnx", ExportConfig(mode="dom", seed=0), data_dir=data_dir,
                                search=SeedSearch(scale.search_seeds), overwrite=True)
        splits = checkpoint_splits(load_checkpoint(best), data_dir)
        unit.update(dom_seed=dom["seed"], dom_val_acc=next(r["val_acc"] for r in dom["seed_search"]["seeds"]
                                                           if r["chosen"]),
                    dom_test_acc=onnx_accuracy(folder / "dom.onnx", splits.test), dom_macs=dom["cost"]["macs"],
                    **latency(folder / "aom.onnx", folder / "dom.onnx", scale.latency_runs))
    return save(folder / "unit.json", unit)


def prune_to_macs(model: torch.nn.Module, target: int, round_to: int) -> tuple[torch.nn.Module, float]:
    """Channel-prune a copy of ``model`` with group magnitude importance to about ``target`` MACs (bisection)."""
    import torch_pruning as tp

    def pruned(ratio: float) -> torch.nn.Module:
        copy_ = copy.deepcopy(model).eval()
        classifier = [m for m in copy_.modules() if isinstance(m, torch.nn.Linear)]
        pruner = tp.pruner.MetaPruner(copy_, torch.randn(1, 3, 32, 32), importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=ratio, ignored_layers=classifier, round_to=round_to)
        pruner.step()
        return copy_

    lo, hi = 0.0, 0.95
    for _ in range(10):
        mid = (lo + hi) / 2
        if count_macs(pruned(mid)) > target:
            lo = mid
        else:
            hi = mid
    return pruned(hi), hi


def competitor_unit(scale: Scale, protocol: str, seed: int, target_macs: int, root: Path,
                    data_dir: str | None) -> dict[str, Any]:
    folder = root / protocol / "pruned-baseline" / f"seed{seed}"
    unit = done(folder / "unit.json")
    if unit is not None and unit.get("target_macs") == target_macs and unit.get("round_to") == scale.round_to:
        return unit
    folder.mkdir(parents=True, exist_ok=True)
    first = max(1, scale.epochs // 2)
    dense = train_config(scale, protocol, seed, None, data_dir, epochs=first)
    run_training(dense, folder / "dense")
    finetune = folder / "finetune"
    if (finetune / "results.json").is_file():  # a competitor unit that is being redone (new target or rounding)
        for name in ("config.json", "metrics.jsonl", "last.pt", "best.pt", "results.json"):
            (finetune / name).unlink(missing_ok=True)
    checkpoint = load_checkpoint(folder / "dense" / "best.pt")
    model = create_model(scale.model, num_classes=checkpoint["model"]["num_classes"], width=scale.width)
    model.load_state_dict(checkpoint["state_dict"])
    small, ratio = prune_to_macs(model, target_macs, scale.round_to)
    fine = train_config(scale, protocol, seed, None, data_dir, epochs=max(1, scale.epochs - first))
    results = run_training(fine, folder / "finetune", model=small)
    small.eval()
    aom = export_model(small.cpu(), folder / "pruned.onnx", ExportConfig(mode="aom"), overwrite=True)
    baseline_onnx = root / protocol / "baseline" / f"seed{seed}" / "aom.onnx"
    unit = {"protocol": protocol, "config": "pruned-baseline", "seed": seed, "aom_test_acc": results["test_acc_aom"],
            "aom_macs": aom["cost"]["macs"], "target_macs": target_macs, "pruning_ratio": ratio, "round_to": scale.round_to,
            "epochs": f"{first}+{max(1, scale.epochs - first)}"}
    if baseline_onnx.is_file():
        unit.update(latency(baseline_onnx, folder / "pruned.onnx", scale.latency_runs))
    return save(folder / "unit.json", unit)


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def summarize_units(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    keys = ("aom_test_acc", "dom_test_acc", "dom_val_acc", "aom_macs", "dom_macs", "aom_ms", "dom_ms", "latency_ratio")
    for protocol in dict.fromkeys(u["protocol"] for u in units):
        for config in dict.fromkeys(u["config"] for u in units if u["protocol"] == protocol):
            group = [u for u in units if (u["protocol"], u["config"]) == (protocol, config)]
            row: dict[str, Any] = {"protocol": protocol, "config": config, "seeds": [u["seed"] for u in group]}
            for key in keys:
                values = [u[key] for u in group if u.get(key) is not None]
                row[key] = mean_std(values) if values else None
            table.append(row)
    return table


def plot(table: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = list(dict.fromkeys(r["protocol"] for r in table))
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4.2), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        for row in (r for r in table if r["protocol"] == protocol):
            ax.errorbar(row["aom_macs"]["mean"] / 1e6, row["aom_test_acc"]["mean"] * 100,
                        yerr=row["aom_test_acc"]["std"] * 100, fmt="o", capsize=3)
            ax.annotate(f"{row['config']} AOM", (row["aom_macs"]["mean"] / 1e6, row["aom_test_acc"]["mean"] * 100),
                        fontsize=7)
            if row.get("dom_test_acc"):
                ax.errorbar(row["dom_macs"]["mean"] / 1e6, row["dom_test_acc"]["mean"] * 100,
                            xerr=row["dom_macs"]["std"] / 1e6, yerr=row["dom_test_acc"]["std"] * 100, fmt="s",
                            capsize=3)
                ax.annotate(f"{row['config']} DOM", (row["dom_macs"]["mean"] / 1e6, row["dom_test_acc"]["mean"] * 100),
                            fontsize=7)
        ax.set_xlabel("MACs per image (millions)")
        ax.set_ylabel("CIFAR-10 test top-1 (%)")
        ax.set_title(f"{protocol} protocol (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke run: tiny model, 600 images, 1 epoch, 2 seeds")
    size.add_argument("--full", action="store_true", help="the paper's scale (needs a GPU; not run here)")
    parser.add_argument("--out", type=Path, default=None, help="study folder (default runs/study-<scale>)")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default $WASCOMPRESS_DATA_DIR)")
    parser.add_argument("--json", type=Path, default=None, help="results file (default: in the study folder)")
    parser.add_argument("--plot", type=Path, default=None, help="accuracy-against-MACs PNG (default: study folder)")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    key = "quick" if args.quick else "full" if args.full else "default"
    scale = SCALES[key]
    root = args.out or Path("runs") / f"study-{key}"
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    units = []
    for protocol in scale.protocols:
        for name in CONFIGS:
            for seed in scale.seeds:
                unit = was_unit(scale, protocol, name, seed, root, args.data_dir)
                units.append(unit)
                print(f"{protocol:<9} {name:<16} seed {seed}: AOM {unit['aom_test_acc'] * 100:.2f}%"
                      + (f", DOM seed {unit['dom_seed']} {unit['dom_test_acc'] * 100:.2f}% at "
                         f"{unit['dom_macs'] / unit['aom_macs']:.3f} of the MACs, latency x{unit['latency_ratio']:.3f}"
                         if "dom_seed" in unit else ""), flush=True)
        was_rows = summarize_units([u for u in units if u["protocol"] == protocol and "dom_macs" in u])
        best = max(was_rows, key=lambda r: (r["dom_macs"]["mean"] < r["aom_macs"]["mean"], r["dom_test_acc"]["mean"]))
        for seed in scale.seeds:
            unit = competitor_unit(scale, protocol, seed, int(best["dom_macs"]["mean"]), root, args.data_dir)
            units.append(unit)
            print(f"{protocol:<9} pruned-baseline  seed {seed}: {unit['aom_test_acc'] * 100:.2f}% at "
                  f"{unit['aom_macs']:,} MACs (matched to {best['config']} DOM)", flush=True)
    table = summarize_units(units)
    plot_path = args.plot or root / "study_cifar10.png"
    plot(table, plot_path)
    result = {"benchmark": "study_cifar10", "date": today(), "machine": machine(),
              "command": "python benchmarks/study_cifar10.py" + {"quick": " --quick", "full": " --full"}.get(key, ""),
              "scale": scale.__dict__ | {"seeds": list(scale.seeds), "protocols": list(scale.protocols)},
              "protocol_presets": {p: PROTOCOLS[p] for p in scale.protocols}, "standard_lr_used": 0.05,
              "configs": {k: (v.describe() if v else "none") for k, v in CONFIGS.items()},
              "paper": PAPER, "table": table, "units": units, "plot": str(plot_path),
              "wall_minutes_this_invocation": (time.perf_counter() - started) / 60}
    save(args.json or root / "study_cifar10.json", result)
    print(f"study_configs_done: {len(table)}")


if __name__ == "__main__":
    main()
