"""What one ``compress`` run is: a frozen :class:`CompressConfig` (model, start weights, data, budgets, epochs,
INT8), and the :class:`~wascompress.train.TrainConfig` it trains with (the recipe of the DOM study for a
trained model: zero-crop + filter WAS with one shared size level, every budget's DOM trained beside the AOM
with in-place distillation, the standard protocol at a small learning rate)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from wascompress.errors import ConfigError
from wascompress.export.budget import check_budget
from wascompress.train import TrainConfig
from wascompress.was import WASConfig


@dataclass(frozen=True)
class CompressConfig:
    """Everything that decides a compress run's files (``out`` and presentation flags excluded)."""

    model: str | None  # zoo name, timm:NAME, torchvision:NAME, package.module:factory; None: the checkpoint's
    init_from: str | None  # the trained weights (state_dict / safetensors / wascompress checkpoint)
    target_macs: tuple[float, ...]  # MAC budgets, fractions of the AOM's
    dataset: str = "cifar10"
    data_dir: str | None = None  # None: $WASCOMPRESS_DATA_DIR
    epochs: int = 5
    quantize: str | None = None  # "int8": INT8 twins of the AOM and every DOM
    image_size: tuple[int, int] | None = None  # None: 32 (or the checkpoint's)
    num_classes: int | None = None  # None: from the data
    model_kwargs: dict | None = None
    width: float = 1.0  # zoo models' channel multiplier
    lr: float = 0.01  # fine-tuning a trained model: a tenth of the standard protocol's
    batch_size: int = 128
    crop: tuple[float, float] = (0.4, 1.0)  # kernel window area range (zero crop)
    filter: tuple[float, float] = (0.25, 1.0)  # share of filters kept
    search_seeds: int = 32  # DOM seeds tried per budget
    fit: bool = True  # fit every DOM's kept taps to the trained model before fine-tuning (wascompress.fit)
    fit_images: int = 1024  # training images the fit solves on
    seed: int = 0
    normalize: str = "model"  # the model's own mean/std (timm's pretrained_cfg), else the data's; or "data", a preset
    mean: tuple[float, float, float] | None = None  # given: these instead
    std: tuple[float, float, float] | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    val_size: int | None = None
    bn_batches: int = 32
    workers: int | None = None
    device: str = "auto"
    channels_last: bool = False  # fixed, not timed as train does: every run of one command computes the same bytes
    latency_runs: int = 30  # timed runs per model and batch size
    batch_sizes: tuple[int, ...] = (1, 32)

    def __post_init__(self) -> None:
        if not self.target_macs:
            raise ConfigError("give at least one --target-macs budget")
        budgets = tuple(check_budget(r) for r in self.target_macs)
        if len(set(budgets)) != len(budgets):
            raise ConfigError(f"--target-macs lists a budget twice: {list(budgets)}")
        object.__setattr__(self, "target_macs", budgets)
        if self.model is None and self.init_from is None:
            raise ConfigError("give --model NAME --init-from FILE, or --init-from a wascompress checkpoint")
        if self.quantize not in (None, "int8"):
            raise ConfigError(f"--quantize {self.quantize} is not supported; choose int8")
        for name in ("epochs", "batch_size", "search_seeds", "bn_batches", "latency_runs", "fit_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, paths resolved: the command a manifest records and compares."""
        data = asdict(self)
        for key in ("init_from", "data_dir"):
            if data[key] is not None:
                data[key] = str(Path(data[key]).resolve())
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def train_config(config: CompressConfig, model: str, num_classes: int | None) -> TrainConfig:
    """The training run of ``config`` for ``model`` (its name, resolved from a checkpoint if needed)."""
    resolved = config.to_dict()
    return TrainConfig(
        model=model, model_kwargs=config.model_kwargs, num_classes=num_classes, width=config.width,
        dataset=config.dataset, data_dir=resolved["data_dir"], workers=config.workers,
        **({"image_size": config.image_size} if config.image_size else {}),
        protocol="standard", epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, momentum=0.9,
        weight_decay=5e-4, schedule="cosine", augment=True, seed=config.seed, val_size=config.val_size,
        limit_train=config.limit_train, limit_test=config.limit_test,
        was=WASConfig(crop=config.crop, filter=config.filter, shared=True), bn_batches=config.bn_batches,
        device=config.device, channels_last=config.channels_last, distill=True, target_macs=config.target_macs,
        search_seeds=config.search_seeds, init_from=resolved["init_from"], fit_doms=config.fit,
        fit_images=config.fit_images, normalize=config.normalize,
        mean=config.mean, std=config.std)
