"""The data of a run: its train / validation / test splits and its calibration images (for BatchNorm and INT8).

Read from a run's recorded settings (a training configuration as a dict, e.g. a checkpoint's
``train_config``; the ``checkpoint_*`` functions take any :class:`RunRecord` holding one), so that
training, export, evaluation and profiling all see the same images: at the run's image size, the
validation split carved from the (limited) training set by the run's seed, and the calibration batches
the trainer re-estimated BatchNorm with (their count, size and seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import torch
from torch import Tensor

from wascompress.data.datasets import Images, limit, load_dataset, split_validation
from wascompress.data.geometry import DEFAULT_IMAGE_SIZE
from wascompress.data.loader import BatchLoader
from wascompress.data.normalization import with_stats
from wascompress.errors import ConfigError, DataError


# the settings of a run that decide which images its splits hold (recorded in its exports' metadata)
DATA_SETTINGS = ("dataset", "data_dir", "seed", "image_size", "limit_train", "limit_test", "val_size", "mean", "std")


def data_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a run's ``settings`` that :func:`load_splits` reads to choose its images."""
    return {key: settings[key] for key in DATA_SETTINGS if settings.get(key) is not None}


class RunRecord(Protocol):
    """What records a run's training settings, e.g. a :class:`wascompress.checkpoint.Checkpoint`."""

    @property
    def train_config(self) -> Mapping[str, Any]: ...


@dataclass
class Splits:
    train: Images
    val: Images
    test: Images


def load_splits(settings: Mapping[str, Any], data_dir: str | None = None,
                image_size: tuple[int, int] | None = None) -> Splits:
    """Train / validation / test sets of a run's ``settings`` (``data_dir`` overrides where the files are,
    ``image_size`` the size the images come at): validation carved from the (limited) training set by the
    run's seed."""
    dataset, seed = settings.get("dataset", "cifar10"), int(settings.get("seed", 0))
    where = str(data_dir) if data_dir is not None else settings.get("data_dir")
    read = {"download": bool(settings.get("download", False)), "seed": seed, "workers": settings.get("workers"),
            "image_size": image_size or settings.get("image_size") or DEFAULT_IMAGE_SIZE}
    try:
        pool = load_dataset(dataset, where, train=True, **read)
        test = load_dataset(dataset, where, train=False, **read)
    except DataError as err:
        if data_dir is None and where is not None:  # the folder the run recorded is gone (or moved)
            raise DataError(f"{err} (the data the run recorded; pass --data-dir to read it from elsewhere)") from None
        raise
    if settings.get("mean") is not None:  # the run's normalisation, not the data set's own statistics
        pool, test = (with_stats(d, settings["mean"], settings["std"]) for d in (pool, test))
    pool = limit(pool, settings.get("limit_train"), seed=seed)
    test = limit(test, settings.get("limit_test"), seed=seed)
    val_size = settings.get("val_size")
    n_val = val_size if val_size is not None else len(pool) // 10
    if n_val >= len(pool):
        raise ConfigError(f"val-size {n_val} leaves no training images (the training set has {len(pool)})")
    train, val = split_validation(pool, n_val, seed=seed)
    return Splits(train, val, test)


def checkpoint_splits(checkpoint: RunRecord, data_dir: str | None = None,
                      image_size: tuple[int, int] | None = None) -> Splits:
    """The splits of the run that wrote ``checkpoint`` (at ``image_size`` if given, else the run's)."""
    return load_splits(checkpoint.train_config, data_dir, image_size)


def calibration_batches(train: Images, num_batches: int, batch_size: int, seed: int = 0) -> list[Tensor]:
    """``num_batches`` normalised, un-augmented batches of training images, chosen by ``seed``."""
    loader = BatchLoader(train, batch_size, shuffle=True, augment=False, seed=seed)
    loader.set_epoch(0)
    return [images for _, (images, _labels) in zip(range(num_batches), loader)]


def checkpoint_calibration(checkpoint: RunRecord, splits: Splits, bn_batches: int | None = None) -> list[Tensor]:
    """The calibration batches the trainer of ``checkpoint`` used (``bn_batches`` overrides their count)."""
    settings = checkpoint.train_config
    count = bn_batches if bn_batches is not None else int(settings.get("bn_batches", 4))
    return calibration_batches(splits.train, count, int(settings.get("batch_size", 128)),
                               seed=int(settings.get("seed", 0)))


def checkpoint_calibration_images(checkpoint: RunRecord, splits: Splits, count: int) -> Tensor:
    """The first ``count`` (or all, if fewer) training images in the order the trainer of ``checkpoint``
    drew its BatchNorm calibration batches: the same source, so its BatchNorm batches are a prefix."""
    settings = checkpoint.train_config
    return calibration_images(splits.train, count, int(settings.get("batch_size", 128)),
                              seed=int(settings.get("seed", 0)))


def calibration_images(train: Images, count: int, batch_size: int, seed: int = 0) -> Tensor:
    """The first ``count`` (or all, if fewer) images of :func:`calibration_batches` of that batch size and seed."""
    batches = calibration_batches(train, math.ceil(count / batch_size), batch_size, seed=seed)
    return torch.cat(batches)[:count] if batches else torch.empty(0)
