"""Data sets and batching: CIFAR-10/100 readers, image folders, a synthetic task, in-memory loaders.

Splits are loaded whole into memory as an :class:`ImageSet` (uint8 images, int64 labels, class names
and normalisation stats) by :func:`load_dataset`; :func:`split_validation` and :func:`limit` take
seeded subsets; :class:`BatchLoader` turns a set into deterministic, optionally augmented and
sharded batches of normalised float tensors.
"""

from __future__ import annotations

from wascompress.data.cifar import CifarSplit, read_cifar
from wascompress.data.datasets import (
    DATA_DIR_ENV,
    DATASETS,
    ImageSet,
    channel_stats,
    limit,
    load_dataset,
    make_synthetic,
    split_validation,
)
from wascompress.data.loader import BatchLoader
from wascompress.data.unpickle import RestrictedUnpickler, load_pickle

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "BatchLoader",
    "CifarSplit",
    "ImageSet",
    "RestrictedUnpickler",
    "channel_stats",
    "limit",
    "load_dataset",
    "load_pickle",
    "make_synthetic",
    "read_cifar",
    "split_validation",
]
