"""Data sets and batching: CIFAR-10/100 readers, image folders, a synthetic task, the input geometry.

:func:`load_dataset` gives a split at an image size: CIFAR and the synthetic task whole in memory as an
:class:`ImageSet` (uint8 images, int64 labels, class names and normalisation stats), an image folder as
a :class:`FolderSet` streamed from disk; :func:`split_validation` and :func:`limit` take seeded subsets
of either; :class:`BatchLoader` turns either into deterministic, optionally augmented and sharded
batches of normalised float tensors.
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
from wascompress.data.folder import FolderSet
from wascompress.data.geometry import image_size, parse_input_shape
from wascompress.data.loader import BatchLoader
from wascompress.data.unpickle import RestrictedUnpickler, load_pickle

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "BatchLoader",
    "CifarSplit",
    "FolderSet",
    "ImageSet",
    "RestrictedUnpickler",
    "channel_stats",
    "image_size",
    "limit",
    "load_dataset",
    "load_pickle",
    "make_synthetic",
    "parse_input_shape",
    "read_cifar",
    "split_validation",
]
