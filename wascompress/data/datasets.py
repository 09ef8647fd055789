"""Data sets and the ways to get one: the in-memory :class:`ImageSet` and :func:`load_dataset`.

:func:`load_dataset` returns one split of a named data set: its images (uint8, at the run's image
size), int64 labels, the class names and the per-channel mean/std used for normalisation. Four sources
are known: ``cifar10`` and ``cifar100`` (read by :mod:`wascompress.data.cifar`, held in memory),
``imagefolder`` (a user's ``train/<class>/*.png`` and ``test/`` or ``val/`` folders, streamed from
disk: a :class:`~wascompress.data.folder.FolderSet`) and ``synthetic`` (a seeded, learnable 10-class
task that needs no files, in memory). :func:`split_validation` and :func:`limit` carve seeded subsets
out of either kind of split.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import torch
import torch.nn.functional as F

from wascompress.data import geometry
from wascompress.data.cifar import read_cifar
from wascompress.data.seeding import seeded_generator
from wascompress.data.stats import channel_stats
from wascompress.errors import ConfigError, DataError

if TYPE_CHECKING:
    from wascompress.data.folder import FolderSet

logger = logging.getLogger(__name__)

DATASETS = ("cifar10", "cifar100", "imagefolder", "synthetic")
DATA_DIR_ENV = "WASCOMPRESS_DATA_DIR"

CIFAR_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
SYNTHETIC_SIZES = {True: 2000, False: 500}
SYNTHETIC_CLASSES = 10
# Separate random streams per use, so e.g. a validation split never mirrors a limit with the same seed.
_STREAM_TRAIN, _STREAM_TEST, _STREAM_SPLIT, _STREAM_LIMIT = 0, 1, 2, 3


@dataclass(frozen=True, eq=False)
class ImageSet:
    """One split held in memory: ``images`` uint8 [N, 3, H, W] and ``labels`` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise DataError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
            raise DataError(f"labels must be int64 [{images.shape[0]}], got {labels.dtype} {tuple(labels.shape)}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise DataError(f"mean and std need 3 values with std > 0, got mean={self.mean} std={self.std}")
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    @property
    def image_size(self) -> int:
        """Height of the images."""
        return int(self.images.shape[2])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(3, H, W)``: the input shape of a model for these images."""
        return 3, int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, index: torch.Tensor) -> ImageSet:
        """The images at ``index`` (integer positions or a boolean mask), same classes and stats."""
        index = torch.as_tensor(index, device=self.images.device)
        return ImageSet(self.images[index], self.labels[index], self.classes, self.mean, self.std)


Images = Union[ImageSet, "FolderSet"]  # a split in memory or streamed from an image folder


def load_dataset(
    name: str,
    data_dir: str | Path | None,
    train: bool,
    *,
    download: bool = False,
    image_size: int | tuple[int, int] = 32,
    seed: int = 0,
    workers: int | None = None,
) -> ImageSet | FolderSet:
    """Load the train or test split of data set ``name`` (one of :data:`DATASETS`).

    ``data_dir`` is where the files are (for CIFAR, ``None`` means the ``WASCOMPRESS_DATA_DIR``
    environment variable); ``download`` lets CIFAR fetch its archive when it is missing; images are
    resized to ``image_size`` (H, or (H, W)); ``seed`` only affects ``synthetic``; ``workers`` are the
    loader processes that read an image folder (None: :func:`~wascompress.data.folder.default_workers`).
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    size = geometry.image_size(image_size)
    if name in CIFAR_STATS:
        return _load_cifar(name, data_dir, train, download, size)
    if name == "imagefolder":
        if data_dir is None:
            raise DataError(
                "dataset 'imagefolder' needs data_dir: a folder with train/<class>/ and test/ (or val/) folders"
            )
        from wascompress.data.folder import load_image_folder

        return load_image_folder(data_dir, train, size, workers)
    return make_synthetic(train, seed=seed, image_size=size)


def split_validation(data: Images, n_val: int, seed: int) -> tuple[Images, Images]:
    """Split off ``n_val`` images chosen by a seeded permutation; returns ``(train, val)``.

    Both parts keep the original order. ``n_val=0`` gives an empty validation set.
    """
    if not isinstance(n_val, int) or isinstance(n_val, bool) or not 0 <= n_val < len(data):
        raise ConfigError(f"n_val must be an integer in [0, {len(data)}) for {len(data)} images, got {n_val!r}")
    order = torch.randperm(len(data), generator=seeded_generator(seed, _STREAM_SPLIT))
    val_index, _ = order[:n_val].sort()
    train_index, _ = order[n_val:].sort()
    return data.subset(train_index), data.subset(val_index)


def limit(data: Images, n: int | None, seed: int = 0) -> Images:
    """The first ``n`` images of a seeded permutation (in original order); ``None`` or ``n >= len`` keeps all."""
    if n is None:
        return data
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"the image limit must be a positive integer or None, got {n!r}")
    if n >= len(data):
        return data
    index, _ = torch.randperm(len(data), generator=seeded_generator(seed, _STREAM_LIMIT))[:n].sort()
    return data.subset(index)


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 images [N, 3, H, W] to ``size`` (height, width; bilinear, antialiased), in chunks."""
    if tuple(images.shape[2:]) == tuple(size):
        return images
    out = torch.empty((images.shape[0], 3, *size), dtype=torch.uint8)
    for start in range(0, images.shape[0], 2048):
        chunk = images[start : start + 2048].float()
        resized = F.interpolate(chunk, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        out[start : start + 2048] = resized.round().clamp(0, 255).to(torch.uint8)
    return out


# --- CIFAR -----------------------------------------------------------------------------------------


def _load_cifar(name: str, data_dir: str | Path | None, train: bool, download: bool,
                image_size: tuple[int, int]) -> ImageSet:
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
        if data_dir is None:
            raise DataError(
                f"no data directory for {name}: pass data_dir (e.g. --data-dir) or set {DATA_DIR_ENV} "
                "to the folder that holds the CIFAR archive"
            )
    root = Path(data_dir).expanduser().resolve()
    key = (name, str(root), root.stat().st_mtime_ns if root.exists() else 0, train, image_size)
    if key in _CIFAR_CACHE:  # reading the archive costs seconds; studies and exports read it repeatedly
        return _CIFAR_CACHE[key]
    split = read_cifar(name, data_dir, train, download=download)
    images = torch.from_numpy(np.ascontiguousarray(split.images))
    labels = torch.from_numpy(np.ascontiguousarray(split.labels, dtype=np.int64))
    if image_size != tuple(images.shape[2:]):
        logger.info("resizing %s images from %dx%d to %dx%d pixels", name, *images.shape[2:], *image_size)
        images = resize_images(images, image_size)
    mean, std = CIFAR_STATS[name]
    data = ImageSet(images, labels, split.classes, mean, std)
    if len(_CIFAR_CACHE) >= 4:
        _CIFAR_CACHE.pop(next(iter(_CIFAR_CACHE)))
    _CIFAR_CACHE[key] = data
    return data


_CIFAR_CACHE: dict[tuple, ImageSet] = {}


# --- synthetic -------------------------------------------------------------------------------------


def make_synthetic(train: bool, *, seed: int = 0, image_size: int | tuple[int, int] = 32,
                   size: int | None = None) -> ImageSet:
    """A seeded, learnable 10-class task of striped, tinted, noisy images.

    Class ``k`` has stripes at angle ``k * 18`` degrees (random phase and contrast) and a tint whose
    hue is drawn around ``k / 10`` (neighbouring classes overlap a little), plus Gaussian pixel noise.
    Train and test draw different samples (2,000 and 500 unless ``size`` is given); the same seed
    always gives the same images. Mean/std are computed from the 2,000 train images of that seed.
    """
    n = SYNTHETIC_SIZES[bool(train)] if size is None else size
    image_size = geometry.image_size(image_size)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"synthetic size must be a positive integer, got {n!r}")
    images, labels = _synthetic_images(n, seed, _STREAM_TRAIN if train else _STREAM_TEST, image_size)
    if train and n == SYNTHETIC_SIZES[True]:
        stats_images = images
    else:
        stats_images, _ = _synthetic_images(SYNTHETIC_SIZES[True], seed, _STREAM_TRAIN, image_size)
    mean, std = channel_stats(stats_images)
    classes = tuple(f"class{k}" for k in range(SYNTHETIC_CLASSES))
    return ImageSet(images, labels, classes, mean, std)


def _synthetic_images(n: int, seed: int, stream: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    g = seeded_generator(seed, stream)
    k = SYNTHETIC_CLASSES
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    height, width = size
    rows = torch.arange(height, dtype=torch.float32) / height
    columns = torch.arange(width, dtype=torch.float32) / width
    yy, xx = torch.meshgrid(rows, columns, indexing="ij")
    theta = (labels.to(torch.float32) * (math.pi / k)).view(n, 1, 1)
    phase = torch.rand(n, 1, 1, generator=g) * (2 * math.pi)
    stripes = torch.sin(2 * math.pi * 3.0 * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)
    contrast = 0.15 + 0.15 * torch.rand(n, 1, 1, 1, generator=g)
    hue = ((labels + torch.rand(n, generator=g) - 0.5) / k) % 1.0
    tint = 0.3 + 0.4 * _hsv_to_rgb(hue, saturation=0.7, value=0.9).view(n, 3, 1, 1)
    noise = 0.2 * torch.randn(n, 3, height, width, generator=g)
    pixels = tint + contrast * stripes.unsqueeze(1) + noise
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8), labels


def _hsv_to_rgb(hue: torch.Tensor, saturation: float, value: float) -> torch.Tensor:
    """RGB [N, 3] in 0..1 for hues [N] in 0..1 (vectorised ``colorsys.hsv_to_rgb``)."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + hue[:, None] * 6) % 6
    return value - value * saturation * torch.minimum(k, 4 - k).clamp(0, 1)
