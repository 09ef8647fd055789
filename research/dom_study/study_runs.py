"""The study's scale, folders and unit JSON, and what every unit does with a training run: train or resume
it, time it, export its DOM, measure its ONNX file."""

from __future__ import annotations

import datetime
import json
import os
import platform
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from wascompress.checkpoint import load_checkpoint
from wascompress.export.exporter import ExportConfig
from wascompress.export.from_checkpoint import checkpoint_splits, export_checkpoint
from wascompress.fileio import atomic_write_text
from wascompress.profile.profiler import onnx_accuracy
from wascompress.train.config import TrainConfig, resolve_config
from wascompress.train.trainer import QUIET, train
from wascompress.was import WASConfig


def machine() -> str:
    """One line naming the machine, for the unit JSON."""
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def today() -> str:
    return datetime.date.today().isoformat()


@dataclass(frozen=True)
class Scale:
    """The size of the study: data, epochs, search."""

    epochs: dict[str, int]  # E per model
    width: float = 0.25
    limit_train: int | None = None
    limit_test: int | None = None
    val_size: int = 5000
    lr: float = 0.05
    search_seeds: int = 16
    budget_seeds: int = 32
    finetune_fraction: float = 0.25
    bn_batches: int = 32  # DOM BatchNorm re-estimation at export: 32 x 128 = 4,096 training images

    def finetune_epochs(self, model: str) -> int:
        return max(1, round(self.epochs[model] * self.finetune_fraction))


SCALES = {
    "default": Scale(epochs={"vgg16": 20, "resnet18": 15}),
    "quick": Scale(epochs={"tiny": 2}, width=1.0, limit_train=600, limit_test=500, val_size=100, search_seeds=4,
                   budget_seeds=8, finetune_fraction=0.5, bn_batches=4),
}


def load_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def save_json(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return data


def unit_files(results: Path) -> list[Path]:
    """The finished units' JSON files, ``<results>/<model>/<row>-seed<N>.json`` (other JSON kept under
    ``results``, such as the start models' facts, is not a unit)."""
    return sorted(results.glob("*/*-seed[0-9]*.json"))


def load_units(results: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in unit_files(results)]


@dataclass(frozen=True)
class Study:
    scale: Scale
    runs: Path  # training runs and exports (not committed)
    results: Path  # one JSON per finished unit (committed)
    data_dir: str | None

    def base_config(self, model: str, seed: int, epochs: int, was: WASConfig | None, **extra: Any) -> TrainConfig:
        overrides = {"model": model, "width": self.scale.width, "dataset": "cifar10", "data_dir": self.data_dir,
                     "epochs": epochs, "seed": seed, "limit_train": self.scale.limit_train,
                     "limit_test": self.scale.limit_test, "val_size": self.scale.val_size, "lr": self.scale.lr,
                     "was": was.to_dict() if was else None}
        config = resolve_config(overrides, protocol="standard")
        return replace(config, **extra)

    def folder(self, model: str, row: str, seed: int) -> Path:
        return self.runs / model / row / f"seed{seed}"

    def unit_path(self, model: str, row: str, seed: int) -> Path:
        return self.results / model / f"{row}-seed{seed}.json"


def run_training(config: TrainConfig, folder: Path, model: torch.nn.Module | None = None) -> dict[str, Any]:
    """Train (or resume, or just read) one run."""
    results = load_json(folder / "results.json")
    if results is not None:
        return results
    resume = (folder / "last.pt").is_file()
    return train(config, folder, resume=resume, overwrite=not resume, reporter=QUIET, model=model)


def epoch_times(folder: Path) -> list[float]:
    """Seconds of each epoch's training loop of a run (evaluation excluded), from its metrics."""
    return [json.loads(line)["epoch_time_s"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def training_time(*folders: Path) -> dict[str, float]:
    """Training time of runs (their epochs' training loops; evaluation excluded): the sum as measured, and
    a quiet-machine estimate, each run's epochs x its fastest epoch (this 2-core machine is shared while
    the study runs; the fastest epoch is the least disturbed one)."""
    runs = [epoch_times(folder) for folder in folders]
    return {"train_wall_s": sum(sum(times) for times in runs),
            "train_quiet_s": sum(len(times) * min(times) for times in runs)}


def tune_epoch_ratio(dense: Path, finetune: Path) -> float:
    """A fine-tuning epoch of a pruned net over a dense epoch: the two runs' fastest (quiet) epochs."""
    return min(epoch_times(finetune)) / min(epoch_times(dense))


def onnx_facts(report: dict[str, Any], path: Path, test: Any) -> dict[str, Any]:
    return {"onnx": str(path), "macs": report["cost"]["macs"], "params": report["cost"]["params"],
            "test_top1": onnx_accuracy(path, test)}


def export_run(study: Study, checkpoint: Path, out: Path, config: ExportConfig,
               **options: Any) -> tuple[dict[str, Any], Any]:
    """Export a unit's checkpoint to ``out`` (replaced); the report and the run's splits, the file read once.
    ``options``: export_checkpoint's (``search``, ``bn_batches``)."""
    loaded = load_checkpoint(checkpoint)
    splits = checkpoint_splits(loaded, study.data_dir)
    if config.mode == "dom" and config.fitted is None:  # the DOM the run trained: its fitted one, if fitted
        config = replace(config, fitted=loaded.fitted_key(config.seed))
    report = export_checkpoint(checkpoint, out, config, data_dir=study.data_dir, loaded=loaded, overwrite=True,
                               **options)
    return report, splits


def export_dom(study: Study, checkpoint: Path, out: Path, dom_seed: int) -> tuple[dict[str, Any], Any]:
    return export_run(study, checkpoint, out, ExportConfig(mode="dom", seed=dom_seed),
                      bn_batches=study.scale.bn_batches)
