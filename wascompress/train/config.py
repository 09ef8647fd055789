"""The training configuration: one frozen dataclass, built from a protocol preset, a config file and
command-line overrides, in that order of precedence (later wins).

Two presets: ``paper`` (the reference code's protocol: SGD lr 0.01, momentum 0.9, batch 128, no weight
decay, no schedule, no data augmentation) and ``standard`` (random crop + flip, weight decay 5e-4,
cosine schedule, lr 0.1).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from wascompress.data import geometry, normalization
from wascompress.errors import ConfigError
from wascompress.was import WASConfig

PROTOCOLS: dict[str, dict[str, Any]] = {
    "paper": {"lr": 0.01, "momentum": 0.9, "batch_size": 128, "weight_decay": 0.0, "schedule": "none",
              "augment": False},
    "standard": {"lr": 0.1, "momentum": 0.9, "batch_size": 128, "weight_decay": 5e-4, "schedule": "cosine",
                 "augment": True},
}
SCHEDULES = ("none", "cosine")
SELECT_MODES = ("aom", "dom")
INIT_TEACHER = "init"  # --teacher init: the frozen start weights of --init-from


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (together with the data)."""

    model: str = "resnet18"  # zoo name, timm:NAME, torchvision:NAME or "package.module:factory"
    model_kwargs: dict | None = None  # keyword arguments of the model's builder (besides num_classes)
    num_classes: int | None = None  # None: from the data set
    width: float = 1.0  # channel multiplier of zoo models
    dataset: str = "cifar10"
    data_dir: str | None = None  # None: $WASCOMPRESS_DATA_DIR
    download: bool = False  # fetch CIFAR when missing (needs internet)
    image_size: tuple[int, int] = geometry.DEFAULT_IMAGE_SIZE  # (height, width) in pixels every image is resized to
    workers: int | None = None  # processes reading an image folder; None: one per core but one (max 4)
    protocol: str = "paper"
    epochs: int = 10
    batch_size: int = 128  # per process
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"  # "none" or "cosine" (per epoch, to 0 at the last epoch)
    augment: bool = False  # random crop (4 px padding) + horizontal flip
    seed: int = 0  # data order, augmentation, WAS draws, initial weights, validation split
    val_size: int | None = None  # images held out of training for model selection; None: 10 %
    limit_train: int | None = None  # use only this many training images (before the split)
    limit_test: int | None = None
    was: WASConfig | None = None  # None: the plain baseline
    eval_seed: int = 0  # the DOM seed evaluated each epoch
    bn_batches: int = 32  # calibration batches for BatchNorm re-estimation (x batch size: 4,096 images)
    select_mode: str = "aom"  # which validation accuracy picks best.pt
    save_every: int = 0  # also write last.pt every N steps within an epoch (0: once per epoch)
    device: str = "auto"
    amp: bool | None = None  # mixed precision; None: on for CUDA
    channels_last: bool | None = None  # None: on for CUDA; on the CPU the faster, timed (train/memory_format.py)
    deterministic: bool = True  # deterministic algorithms (bit-identical resume on the CPU)
    # --- training the deployed sub-network on purpose (docs/method.md §6; sandwich steps, train/step.py)
    dom_seeds: tuple[int, ...] = ()  # DOM draws trained in every step (the first is evaluated and selects)
    was_samples: int | None = None  # random SW draws per step; None: 0 beside a fixed DOM, else 1
    train_pw: bool = True  # sandwich steps train PW on the labels too (off: fine-tuning a frozen DOM)
    distill: bool = False  # in-place distillation: SW forwards also learn from this step's AOM forward
    distill_weight: float = 0.5  # loss = (1 - A) CE + A T² KL
    distill_temperature: float = 1.0
    teacher: str | None = None  # a frozen teacher for the SW forwards: "init" (the start weights) or a file
    was_warmup: int = 0  # epochs of PW alone before WAS starts (progressive shrinking)
    target_macs: tuple[float, ...] | None = None  # MAC budgets (fractions of AOM's): one DOM seed each
    search_seeds: int = 32  # seeds tried for target_macs
    init_from: str | None = None  # start PW from these trained weights (a checkpoint or a state_dict file)
    init_sha256: str | None = None  # the sha256 of init_from's file (recorded by the trainer)
    dom_budget: dict | None = None  # how target_macs chose dom_seeds (recorded by the trainer)
    fit_doms: bool = False  # fit each DOM seed's kept taps to the start weights before training (wascompress.fit)
    fit_images: int = 1024  # training images the fit solves on
    # --- input normalisation (data/normalization.py): the model's own statistics where it has them
    normalize: str = "model"  # "model" (timm's pretrained_cfg, else the data's), "data", or a preset name
    mean: tuple[float, float, float] | None = None  # given, or settled by the trainer; None: the data's
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        def positive_int(name: str, allow_none: bool = False, minimum: int = 1) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= {minimum}, got {value!r}")

        positive_int("epochs")
        positive_int("batch_size")
        positive_int("num_classes", allow_none=True)
        positive_int("val_size", allow_none=True, minimum=0)
        positive_int("limit_train", allow_none=True)
        positive_int("limit_test", allow_none=True)
        positive_int("seed", minimum=0)
        positive_int("eval_seed", minimum=0)
        positive_int("bn_batches")
        positive_int("save_every", minimum=0)
        positive_int("workers", allow_none=True, minimum=0)
        object.__setattr__(self, "image_size", geometry.image_size(self.image_size))
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name.replace('_', '-')} must be a non-negative number, got {value!r}")
        if self.lr == 0:
            raise ConfigError("lr must be > 0")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.select_mode not in SELECT_MODES:
            raise ConfigError(f"select mode must be one of {SELECT_MODES}, got {self.select_mode!r}")
        if self.select_mode == "dom" and self.was is None:
            raise ConfigError("select mode 'dom' needs WAS settings (there is no DOM without WAS)")
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or not 0 < self.width <= 4:
            raise ConfigError(f"width must be in (0, 4], got {self.width!r}")
        if self.was is not None and not self.was.enabled:
            if self.was.dom_align:
                raise ConfigError("--dom-align needs WAS settings (--crop, --translate, --filter or --rotate)")
            object.__setattr__(self, "was", None)
        self._check_sub_network_training(positive_int)
        self._check_normalization()

    def _check_normalization(self) -> None:
        if self.normalize not in normalization.CHOICES:
            raise ConfigError(f"normalize must be one of {', '.join(normalization.CHOICES)}, got {self.normalize!r}")
        if (self.mean is None) != (self.std is None):
            raise ConfigError("give --mean and --std together")
        if self.mean is not None:
            mean, std = normalization.check_stats(self.mean, self.std)
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)

    @property
    def sandwich(self) -> bool:
        """Whether steps are sandwich steps (several forwards, one update) rather than the paper's."""
        return self.was is not None and (bool(self.dom_seeds) or self.distill or self.was_samples != 1
                                         or not self.train_pw or self.teacher is not None)

    def _check_sub_network_training(self, positive_int) -> None:  # type: ignore[no-untyped-def]
        seeds = self.dom_seeds
        if isinstance(seeds, (int, str)) or not isinstance(seeds, (tuple, list)):
            raise ConfigError(f"dom-seed must be a list of non-negative integers, got {seeds!r}")
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ConfigError(f"dom-seed must be a non-negative integer, got {seed!r}")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"dom-seed lists a seed twice: {list(seeds)}")
        object.__setattr__(self, "dom_seeds", tuple(seeds))
        target = self._budgets()
        fixed = len(seeds) or len(target or ())  # DOM draws trained; --target-macs picks one per budget
        if self.was_samples is None:  # the DOM study: a random draw beside the fixed DOM cost both modes accuracy
            object.__setattr__(self, "was_samples", 0 if fixed and self.was is not None else 1)
        positive_int("was_samples", minimum=0)
        positive_int("was_warmup", minimum=0)
        positive_int("search_seeds")
        for name in ("train_pw", "distill"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name.replace('_', '-')} must be true or false, got {getattr(self, name)!r}")
        weight, temperature = self.distill_weight, self.distill_temperature
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ConfigError(f"distill-weight must be in [0, 1], got {weight!r}")
        if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                or not math.isfinite(temperature) or temperature <= 0):
            raise ConfigError(f"distill-temperature must be > 0, got {temperature!r}")
        if self.teacher is not None and (not isinstance(self.teacher, str) or not self.teacher):
            raise ConfigError(f"teacher must be 'init' or a weights file, got {self.teacher!r}")
        if self.teacher == INIT_TEACHER and self.init_from is None:
            raise ConfigError("--teacher init distils from the start weights: it needs --init-from FILE")
        if self.model_kwargs is not None and not isinstance(self.model_kwargs, dict):
            raise ConfigError(f"model-kwargs must be a JSON object of keyword arguments, got {self.model_kwargs!r}")
        if self.was is None:
            for name, given in (("dom-seed", bool(seeds)), ("distill", self.distill),
                                ("teacher", self.teacher is not None),
                                ("target-macs", target is not None), ("was-warmup", self.was_warmup > 0),
                                ("fit-doms", self.fit_doms is True)):
                if given:
                    raise ConfigError(f"--{name} needs WAS settings (--crop, --translate, --filter or --rotate)")
            return
        if self.sandwich and self.was_samples + fixed == 0:
            raise ConfigError("a WAS step must train some SW: give --dom-seed, --target-macs or --was-samples >= 1")
        if self.distill and not self.train_pw:
            raise ConfigError("distillation from the AOM forward needs PW trained in the step")
        if (self.distill or self.teacher is not None) and self.was_samples + fixed == 0:
            raise ConfigError("distillation needs SW forwards: --dom-seed, --target-macs or --was-samples >= 1")
        self._check_fit(positive_int, fixed)
        if self.was_warmup >= self.epochs:
            raise ConfigError(f"was-warmup {self.was_warmup} leaves no WAS epoch of {self.epochs}")
        if seeds:
            object.__setattr__(self, "eval_seed", seeds[0])

    def _check_fit(self, positive_int, fixed: int) -> None:  # type: ignore[no-untyped-def]
        positive_int("fit_images")
        if not isinstance(self.fit_doms, bool):
            raise ConfigError(f"fit-doms must be true or false, got {self.fit_doms!r}")
        if self.fit_doms and (self.init_from is None or not fixed):
            raise ConfigError("--fit-doms fits trained DOMs to the trained weights: it needs --init-from FILE and "
                              "--target-macs or --dom-seed")

    def _budgets(self) -> tuple[float, ...] | None:
        """Check ``target_macs`` and settle it as a tuple (one number is one budget)."""
        target = self.target_macs
        if target is None:
            return None
        values = tuple(target) if isinstance(target, (tuple, list)) else (target,)
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ConfigError(f"target-macs must be fractions of the AOM's MACs in (0, 1], got {value!r}")
        if not values or len(set(values)) != len(values):
            raise ConfigError(f"target-macs must list distinct budgets, got {list(values)}")
        object.__setattr__(self, "target_macs", tuple(float(v) for v in values))
        return self.target_macs

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["was"] = self.was.to_dict() if self.was is not None else None
        data["dom_seeds"] = list(self.dom_seeds)
        data["image_size"] = list(self.image_size)
        for key in ("mean", "std"):
            data[key] = list(data[key]) if data[key] is not None else None
        if self.target_macs is not None:
            data["target_macs"] = list(self.target_macs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = _current_names(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        if isinstance(values.get("was"), dict):
            values["was"] = WASConfig.from_dict(values["was"])
        if isinstance(values.get("dom_seeds"), list):
            values["dom_seeds"] = tuple(values["dom_seeds"])
        return cls(**values)


RENAMED = {"init_checkpoint": "init_from", "dom_target_macs": "target_macs", "dom_search_seeds": "search_seeds"}


def _current_names(data: dict[str, Any]) -> dict[str, Any]:
    """A configuration recorded by an earlier wascompress (or a config file written for one), in today's
    names: the keys of :data:`RENAMED` (old: new); ``teacher`` was "aom" (in-place: today None) or
    "checkpoint" (today "init", and the ``distill`` flag then meant that teacher alone)."""
    data = dict(data)
    for old, new in RENAMED.items():
        if old in data:
            value = data.pop(old)
            if data.get(new) is None:  # a value under today's name wins
                data[new] = value
    if data.get("teacher") == "aom":
        data["teacher"] = None
    elif data.get("teacher") == "checkpoint":
        data["teacher"] = INIT_TEACHER if data.get("distill") else None
        data["distill"] = False
    return data


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a JSON or TOML file (a ``was`` table holds the WAS settings)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        data = json.loads(text)
    except (ValueError, ImportError) as err:
        raise ConfigError(f"cannot parse config file {path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings")
    return data


def resolve_config(
    overrides: dict[str, Any], config_file: str | Path | None = None, protocol: str | None = None
) -> TrainConfig:
    """Protocol preset <- config file <- ``overrides`` (None values are ignored)."""
    file_values = read_config_file(config_file) if config_file else {}
    was_values = dict(file_values.pop("was", None) or {})
    was_values.update(overrides.pop("was", None) or {})
    chosen = protocol or overrides.get("protocol") or file_values.get("protocol") or "paper"
    if chosen not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {chosen!r}; choose one of: {', '.join(PROTOCOLS)}")
    values: dict[str, Any] = {"protocol": chosen, **PROTOCOLS[chosen]}
    values.update(file_values)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["protocol"] = chosen
    values["was"] = WASConfig.from_dict(was_values) if was_values else None
    return TrainConfig.from_dict(values)
