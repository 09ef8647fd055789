"""Image folders streamed from disk: the :class:`FolderSet`, which holds file names, not pixels.

A user's ``train/<class>/*.png`` and ``test/`` (or ``val/``) folders may be far larger than memory, so
they are never loaded whole: torchvision's ``ImageFolder`` lists the files (classes from ``train/``,
in sorted order, for every split), and a ``DataLoader`` with worker processes decodes and resizes the
images of each batch when it is needed (:meth:`FolderSet.read`). Which images form a batch, and their
random crops and flips, are still decided by :class:`~wascompress.data.loader.BatchLoader` in the main
process, so a streamed epoch is as deterministic as an in-memory one. The normalisation statistics
come from a seeded sample of at most :data:`STATS_IMAGES` training images.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wascompress.data.seeding import seeded_generator
from wascompress.data.stats import chunk_stats
from wascompress.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
STATS_IMAGES = 2000  # training images the per-channel mean / std are estimated on
STATS_SEED = 0


def default_workers() -> int:
    """Loader processes when none are asked for: one core is left to the training process."""
    return min(4, max(1, (os.cpu_count() or 1) - 1))


class ResizedImage:
    """PIL image -> uint8 tensor [3, H, W], resized bilinearly (picklable, for loader workers)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def __call__(self, image: Any) -> torch.Tensor:
        from PIL import Image

        height, width = self.size
        rgb = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)


def read_image(path: str) -> Any:
    """The image at ``path`` (PIL, decoded now); an unreadable file is a one-line DataError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc


@dataclass(frozen=True, eq=False)
class FolderSet:
    """Images of one split of an image folder, read from disk batch by batch.

    Same interface as :class:`~wascompress.data.datasets.ImageSet` for everything but the pixels
    (``labels``, ``classes``, ``mean``, ``std``, ``input_shape``, ``subset``); ``index`` selects which
    files of ``folder`` (a torchvision ``ImageFolder``) belong to it.
    """

    folder: Any  # torchvision.datasets.ImageFolder whose transform gives uint8 [3, H, W]
    index: torch.Tensor  # int64 positions into folder.samples
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size: tuple[int, int]  # (height, width)
    workers: int = 0  # loader processes (0: read in this process)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def labels(self) -> torch.Tensor:
        """int64 [N], known from the folder names without reading an image."""
        return torch.as_tensor(self.folder.targets, dtype=torch.int64)[self.index]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        """Height of the images."""
        return self.size[0]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return 3, self.size[0], self.size[1]

    def subset(self, index: torch.Tensor) -> FolderSet:
        """The images at ``index`` (integer positions or a boolean mask), same classes and stats."""
        return FolderSet(self.folder, self.index[torch.as_tensor(index)], self.classes, self.mean, self.std,
                         self.size, self.workers)

    def read(self, batches: Sequence[torch.Tensor], device: torch.device | str = "cpu"
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 images [B, 3, H, W] and labels of each batch of positions (into this set), in order."""
        from torch.utils.data import DataLoader

        positions = [self.index[b.cpu()].tolist() for b in batches]
        if not positions:
            return
        device = torch.device(device)
        loader = DataLoader(self.folder, batch_sampler=positions, num_workers=min(self.workers, len(positions)),
                            pin_memory=device.type == "cuda")
        try:
            for images, labels in loader:
                yield images.to(device, non_blocking=True), labels.to(device)
        except DataError as err:  # raised in a worker: keep the message's last line, not the worker traceback
            raise DataError(str(err).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None


def load_image_folder(root: str | Path, train: bool, size: tuple[int, int], workers: int | None = None) -> FolderSet:
    """The train split (``root/train``) or the test split (``root/test``, else ``root/val``)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory")
    workers = default_workers() if workers is None else workers
    train_dir = root / "train"
    classes = folder_classes(train_dir)
    pool = _listed(train_dir, classes, size)
    index = torch.arange(len(pool.samples))
    mean, std = _train_stats(pool, classes, size, workers)
    if train:
        data = FolderSet(pool, index, classes, mean, std, size, workers)
    else:
        test_dir = next((root / sub for sub in ("test", "val") if (root / sub).is_dir()), None)
        if test_dir is None:
            raise DataError(f"image folder {root} has no test/ or val/ folder")
        listed = _listed(test_dir, classes, size)
        data = FolderSet(listed, torch.arange(len(listed.samples)), classes, mean, std, size, workers)
    logger.info("found %d images of %d classes in %s (read from disk as needed)", len(data), len(classes), root)
    return data


def _train_stats(pool: Any, classes: tuple[str, ...], size: tuple[int, int], workers: int
                 ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Mean / std of a seeded sample of the training images (remembered: the test split needs them too)."""
    key = (str(Path(pool.root).resolve()), size, len(pool.samples), STATS_IMAGES, Path(pool.root).stat().st_mtime_ns)
    if key not in _STATS_CACHE:
        sample = torch.arange(len(pool.samples))
        if len(sample) > STATS_IMAGES:
            sample, _ = torch.randperm(len(sample), generator=seeded_generator(STATS_SEED))[:STATS_IMAGES].sort()
        unknown = (0.5, 0.5, 0.5)  # the statistics are being measured
        part = FolderSet(pool, sample, classes, unknown, unknown, size, workers)
        if len(_STATS_CACHE) >= 8:
            _STATS_CACHE.pop(next(iter(_STATS_CACHE)))
        _STATS_CACHE[key] = chunk_stats(images for images, _ in part.read(torch.arange(len(sample)).split(256)))
    return _STATS_CACHE[key]


_STATS_CACHE: dict[tuple, tuple[tuple[float, float, float], tuple[float, float, float]]] = {}


def folder_classes(train_dir: Path) -> tuple[str, ...]:
    if not train_dir.is_dir():
        raise DataError(f"image folder has no train/ folder: {train_dir} is missing")
    classes = tuple(sorted(e.name for e in os.scandir(train_dir) if e.is_dir() and not e.name.startswith(".")))
    if not classes:
        raise DataError(f"{train_dir} has no class folders (expected train/<class>/<image files>)")
    return classes


def _listed(split_dir: Path, classes: tuple[str, ...], size: tuple[int, int]) -> Any:
    """torchvision's ImageFolder over ``split_dir`` with the train split's classes and labels."""
    for entry in os.scandir(split_dir):
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in classes:
            raise DataError(f"class folder {entry.path} does not exist in the train/ folder")

    folder = split_folder_type()(str(split_dir), classes, size)
    if not folder.samples:
        raise DataError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {split_dir}/<class>/")
    return folder


def is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def split_folder_type() -> type:
    """``SplitFolder``: torchvision's ``ImageFolder`` for one split, whose classes (and so labels) are
    given (the train split's). Built on first use, as torchvision takes seconds to import."""
    global _split_folder
    if _split_folder is None:
        from torchvision.datasets import ImageFolder

        class SplitFolder(ImageFolder):
            def __init__(self, root: str, classes: tuple[str, ...], size: tuple[int, int]) -> None:
                self.given_classes = tuple(classes)
                super().__init__(root, transform=ResizedImage(size), loader=read_image, is_valid_file=is_image_file,
                                 allow_empty=True)

            def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
                return list(self.given_classes), {name: i for i, name in enumerate(self.given_classes)}

        SplitFolder.__module__, SplitFolder.__qualname__ = __name__, "SplitFolder"
        _split_folder = SplitFolder
    return _split_folder


_split_folder: type | None = None


def __getattr__(name: str) -> Any:  # lets loader workers started by spawn / forkserver unpickle a SplitFolder
    if name == "SplitFolder":
        return split_folder_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
