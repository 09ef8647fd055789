"""Fine-tuning a frozen DOM: train one DOM seed's sub-network of a checkpoint, its zeros kept zero.

The fine-tuned run is an ordinary training run whose every step trains the SW of one fixed seed (a
sandwich step with only that draw, ``train/step.py``), started from the checkpoint's Plain Weights, at a
tenth of its learning rate (the usual fine-tuning rate) on a cosine schedule. The draw is a window and a
filter subset of PW, so taps and filters outside it stay exactly zero in the SW whatever PW does, and
``wascompress export --mode dom --seed N`` of the result writes the same pruned graph as the source's.
With distillation the teacher is the source checkpoint's AOM (its Plain Weights, frozen).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from wascompress.checkpoint import load_checkpoint
from wascompress.errors import CheckpointError, ConfigError
from wascompress.train.config import INIT_TEACHER, TrainConfig
from wascompress.train.trainer import Reporter, train
from wascompress.was import check_seed

FINETUNE_LR_FACTOR = 0.1


def finetune_config(
    checkpoint_path: str | Path,
    seed: int,
    epochs: int,
    *,
    distill: bool = False,
    distill_weight: float | None = None,
    distill_temperature: float | None = None,
    lr: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """The training configuration that fine-tunes DOM ``seed`` of a checkpoint for ``epochs``."""
    check_seed(seed)
    checkpoint = load_checkpoint(checkpoint_path)
    if checkpoint.was_config is None:
        raise CheckpointError(f"{checkpoint_path} was trained without WAS: it has no DOM to fine-tune")
    if checkpoint.model.custom_structure:
        raise CheckpointError(f"{checkpoint_path} holds a custom structure; fine-tune it through the Python API")
    base = TrainConfig.from_dict(checkpoint.train_config)
    values = {
        "epochs": epochs, "lr": lr if lr is not None else base.lr * FINETUNE_LR_FACTOR, "schedule": "cosine",
        "dom_seeds": (seed,), "was_samples": 0, "train_pw": False, "was_warmup": 0, "target_macs": None,
        "dom_budget": None, "distill": False, "teacher": INIT_TEACHER if distill else None,
        "init_from": str(Path(checkpoint_path).resolve()), "init_sha256": None, "select_mode": "dom",
    }
    if distill_weight is not None:
        values["distill_weight"] = distill_weight
    if distill_temperature is not None:
        values["distill_temperature"] = distill_temperature
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}")
    return replace(base, **values)


def finetune(config: TrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
             reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the fine-tuning ``config`` (from :func:`finetune_config`) into ``out_dir``."""
    if config.init_from is None or config.train_pw or len(config.dom_seeds) != 1:
        raise ConfigError("not a fine-tuning configuration (use finetune_config)")
    return train(config, out_dir, resume=resume, overwrite=overwrite, reporter=reporter)
